"""Sweep units as Ray tasks: the same `run(units)` as local.LocalExecutor, on a local Ray instance or a
cluster. Ray is an optional extra, imported only here and only when this executor runs.

Data: a unit travels as its spec path plus overrides (units.Unit), and each task re-reads the spec and
its data from disk. So by default the spec, its data and the run store sit on a file system that every
node reads at the same absolute path (one machine, NFS, a cluster's shared volume). With `ship=True`
(`--ship`) nothing needs to be shared: the driver puts each spec and its data file into Ray's object store
once (shipping.py), each node writes them once into its temp folder, and each task sends its run folder
back as one archive. The prepared arrays themselves are not shipped: every task prepares its data again,
as it does from a shared file system.

Results: each task writes its run folder with nnlab.run.session.execute (the runstore's atomic protocol), first in a
staging folder of its own under `<store>/.attempts/` (hidden: readers skip it), then renamed into the store
whole. Shipped, the task trains into a store in its node's temp folder, and the driver unpacks the archive
into its own staging folder and renames it into the store the same way.

Faults: a task whose worker dies (killed, out of memory) is retried by Ray up to `max_retries` times
(`retry_exceptions=False`: a failing point already returns `failed` and is never retried). A new attempt
first deletes what a dead attempt of the same unit left in staging, and the driver deletes it after the
last one, so a retried unit leaves exactly one run folder, and a unit that died every time leaves none and
is reported `failed` with the reason; the other units go on.

Stopping: Ctrl-C in the driver cancels every unit not yet done (ray.cancel). A queued unit never starts; a
running one gets a KeyboardInterrupt, which ends its run as `interrupted` (signals deferred around the
store's writes, as in `nnlab train`), and the run folder is still moved into the store. Each such unit is
yielded as `interrupted` before the KeyboardInterrupt goes on to the caller.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import secrets
import shutil
import signal
import socket
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Callable, Iterable, Iterator, Optional, TypeVar

from nnlab.errors import NnlabError
from nnlab.sweeps.executors.units import STOP_GRACE_SECONDS, Unit, UnitResult, run_unit
from nnlab.sweeps.executors.shipping import Bundle, bundle_specs, pack_run, unpack_bundle, unpack_run
from nnlab.core.messages import shorten

_T = TypeVar("_T")  # what a delivery returns: the result, or the run packed to send back

RAY_MISSING = "--executor ray needs Ray: pip install -e '.[ray]' in the nnlab checkout"
ATTEMPTS_DIR = ".attempts"  # under the store; hidden, so `runs` and `compare` never read a staged run
SHIPPED_DIR = "nnlab-ray"  # in a node's temp folder, with --ship: the shipped files and the tasks' stores
NOT_STARTED = "not started: the sweep was interrupted"
STOPPED = "stopped: the sweep was interrupted"
TIMEOUT_ENV = "NNLAB_RAY_TIMEOUT"  # seconds to wait for a cluster to answer, and for room for one point
DEFAULT_TIMEOUT_S = 60.0
LOCAL_OPTIONS = dict(include_dashboard=False, log_to_driver=False, logging_level="WARNING")

TrainUnit = Callable[[Unit], UnitResult]


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise NnlabError(RAY_MISSING) from None
    return ray


class RayExecutor:
    """Each unit a Ray task with `cpus_per_trial` CPUs and `gpus_per_trial` GPUs. `address` None starts a
    local Ray instance with `num_cpus` CPUs (default: this machine's) and shuts it down at the end; "auto"
    or "ray://host:port" joins a running cluster. A Ray already initialised in this process is used as it
    is. `train_unit` is what a task runs on its unit (a test may wrap it to crash a worker)."""

    def __init__(self, address: Optional[str] = None, cpus_per_trial: float = 1, gpus_per_trial: float = 0,
                 max_retries: int = 1, num_cpus: Optional[int] = None, train_unit: TrainUnit = run_unit,
                 ship: bool = False):
        self.address, self.num_cpus, self.ship = address, num_cpus, ship
        self.cpus_per_trial, self.gpus_per_trial = cpus_per_trial, gpus_per_trial
        self.max_retries = max_retries
        self.train_unit = train_unit

    def run(self, units: Iterable[Unit]) -> Iterator[UnitResult]:
        """Start or join Ray now (so that a bad address fails here), check that a point fits on one of its
        nodes, then submit every unit."""
        ray = import_ray()
        wait_s = ray_timeout()
        units = [_absolute(unit) for unit in units]
        bundles = bundle_specs([(unit.spec_path, unit.overrides) for unit in units]) if self.ship else None
        started_here = self._connect(ray, wait_s)
        try:
            self._wait_for_room(ray, wait_s)
        except BaseException:
            if started_here:
                ray.shutdown()
            raise
        return self._results(ray, units, started_here, bundles)

    def _connect(self, ray: ModuleType, wait_s: float) -> bool:
        if ray.is_initialized():
            return False
        if self.address is None:
            try:
                start_local(ray, self.num_cpus or os.cpu_count() or 1)
            except (ConnectionError, RuntimeError, ValueError) as e:
                raise NnlabError(f"--executor ray: cannot start a local Ray instance ({_first_line(e)})") from None
            return True
        # Ray retries an address where nothing answers for ever (it never raises): give it wait_s.
        outcome: list[BaseException | None] = []
        joining = threading.Thread(target=_capture, args=(outcome, lambda: _join(ray, self.address)), daemon=True,
                                   name="nnlab-ray-connect")
        joining.start()
        joining.join(wait_s)
        if not outcome:
            raise NnlabError(f"--address {self.address}: no Ray cluster answered within {wait_s:g} s (wait "
                             f"longer with ${TIMEOUT_ENV}=SECONDS)")
        error = outcome[0]
        if isinstance(error, (ConnectionError, RuntimeError, ValueError)):
            raise NnlabError(f"--address {self.address}: cannot join Ray ({_first_line(error)})") from None
        if error is not None:
            raise error
        return True

    def _wait_for_room(self, ray: ModuleType, wait_s: float) -> None:
        """A task that asks for more than any node has waits for ever: wait up to wait_s for a node with room
        for one point (an autoscaler may add one), then say what the cluster has."""
        need = {"GPU": self.gpus_per_trial, "CPU": self.cpus_per_trial}
        deadline = time.monotonic() + wait_s
        while True:
            nodes = [node.get("Resources") or {} for node in ray.nodes() if node.get("Alive")]
            if any(all(node.get(k, 0) >= v for k, v in need.items() if v) for node in nodes):
                return
            if time.monotonic() >= deadline:
                break
            time.sleep(min(1.0, wait_s))
        short = next((k for k, v in need.items() if v and not any(node.get(k, 0) >= v for node in nodes)), "CPU")
        most = {k: max((node.get(k, 0) for node in nodes), default=0) for k in need}
        count = f"{len(nodes)} node{'s' if len(nodes) != 1 else ''}"
        raise NnlabError(f"--{short.lower()}s-per-trial {need[short]:g}: no node of the Ray cluster has room for "
                         f"a point after {wait_s:g} s ({count}, the largest with {most['CPU']:g} CPUs and "
                         f"{most['GPU']:g} GPUs; wait longer with ${TIMEOUT_ENV}=SECONDS)")

    def _results(self, ray: ModuleType, units: list[Unit], started_here: bool,
                 bundles: Optional[list[Bundle]]) -> Iterator[UnitResult]:
        task = ray.remote(_attempt).options(num_cpus=self.cpus_per_trial, num_gpus=self.gpus_per_trial,
                                            max_retries=self.max_retries, retry_exceptions=False)
        threads = max(1, int(self.cpus_per_trial))
        batch = secrets.token_hex(4)  # names this call's staging folders apart from any other driver's
        shipped: list[object] = [None] * len(units)  # ray.ObjectRef of each unit's bundle
        if bundles is not None:  # each distinct spec-and-data once into the object store, shared by its units
            refs = {bundle.digest: ray.put(bundle) for bundle in bundles}
            shipped = [refs[bundle.digest] for bundle in bundles]
        pending = {task.remote(unit, _unit_key(batch, unit), self.train_unit, threads, bundle): unit
                   for unit, bundle in zip(units, shipped)}
        try:
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                unit = pending.pop(done[0])
                yield self._result(ray, done[0], unit, batch)
        except KeyboardInterrupt:
            stopped = _cancel(ray, pending)
            pending = {}
            for unit, result in stopped:
                _discard_staging(unit, batch)
                yield result
            raise
        finally:
            _cancel(ray, pending)  # the caller closed the stream early: stop the rest
            for unit in pending.values():
                _discard_staging(unit, batch)
            _remove_if_empty(units)
            if started_here:
                ray.shutdown()

    def _result(self, ray: ModuleType, ref: object, unit: Unit, batch: str) -> UnitResult:
        try:
            got = ray.get(ref)
            return _receive(got, unit, batch) if isinstance(got, Shipped) else got
        except ray.exceptions.TaskCancelledError:
            return UnitResult(unit.index, "interrupted", message=NOT_STARTED)
        except ray.exceptions.RayTaskError as e:  # raised by the attempt itself (an unwritable store): not retried
            cause = e.cause if isinstance(e.cause, BaseException) else e
            return UnitResult(unit.index, "failed", message=f"{type(cause).__name__}: {_reason(cause)}")
        except ray.exceptions.RayError as e:  # the worker died on every attempt, or its node did
            attempts = self.max_retries + 1
            return UnitResult(unit.index, "failed", message=f"the worker died on each of {attempts} attempts "
                                                            f"({type(e).__name__}: {_reason(e)})")
        finally:
            _discard_staging(unit, batch)


def ray_timeout() -> float:
    """$NNLAB_RAY_TIMEOUT, else DEFAULT_TIMEOUT_S: how long to wait for a cluster, or for room on it."""
    text = os.environ.get(TIMEOUT_ENV, "").strip()
    if not text:
        return DEFAULT_TIMEOUT_S
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise NnlabError(f"${TIMEOUT_ENV}: seconds to wait for Ray, a number above 0; got {shorten(text)!r}")
    return value


def start_local(ray: ModuleType, num_cpus: int) -> None:
    """A new Ray instance on this machine, its servers on 127.0.0.1 only (a local instance needs no other
    interface). "local": a new one, even where `ray start` runs one on this machine."""
    here = threading.current_thread() is threading.main_thread()
    previous = signal.getsignal(signal.SIGTERM) if here else None
    with _loopback_kept():
        ray.init(address="local", num_cpus=num_cpus, _node_ip_address="127.0.0.1", **LOCAL_OPTIONS)
    if here and previous is not None:  # Ray's exits at once; nnlab.core.interrupts' ends the running points first
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def _loopback_kept() -> Iterator[None]:
    """ray.init turns a 127.0.0.1 node address into this machine's outward one (for other nodes to join), and
    its servers (GCS, raylet, workers, the driver) then listen on every interface; they listen on 127.0.0.1
    alone when the node address stays 127.0.0.1. Where Ray's internals differ, Ray's own default stands."""
    try:
        from ray._private import services
    except ImportError:
        yield
        return
    resolve = getattr(services, "resolve_ip_for_localhost", None)
    if resolve is None:
        yield
        return
    services.resolve_ip_for_localhost = lambda host: host if host == "127.0.0.1" else resolve(host)
    try:
        yield
    finally:
        services.resolve_ip_for_localhost = resolve


def _join(ray: ModuleType, address: str) -> None:
    """ray.init in a thread of its own: Ray then leaves the SIGTERM handler alone (nnlab.core.interrupts' stays),
    and says so in a warning that is of no use here."""
    quiet = _Without("SIGTERM handler is not set")
    logger = logging.getLogger("ray._private.worker")
    logger.addFilter(quiet)
    try:
        ray.init(address=address, **LOCAL_OPTIONS)
    finally:
        logger.removeFilter(quiet)


class _Without(logging.Filter):
    def __init__(self, text: str):
        super().__init__()
        self.text = text

    def filter(self, record: logging.LogRecord) -> bool:
        return self.text not in record.getMessage()


def _capture(outcome: list[BaseException | None], call: Callable[[], object]) -> None:
    try:
        call()
    except BaseException as e:  # handed to the waiting thread, which raises it there
        outcome.append(e)
    else:
        outcome.append(None)


def _cancel(ray: ModuleType, pending: dict[object, Unit]) -> list[tuple[Unit, UnitResult]]:
    """Cancel every pending task, wait for the running ones to mark their runs interrupted, force the rest."""
    if not pending:
        return []
    for ref in pending:
        ray.cancel(ref)
    _, slow = ray.wait(list(pending), num_returns=len(pending), timeout=STOP_GRACE_SECONDS)
    for ref in slow:
        ray.cancel(ref, force=True)
    stopped = []
    for ref, unit in pending.items():
        try:
            result = ray.get(ref, timeout=STOP_GRACE_SECONDS)
        except ray.exceptions.RayError:
            result = UnitResult(unit.index, "interrupted", message=NOT_STARTED if ref not in slow else STOPPED)
        stopped.append((unit, result))
    return stopped


@dataclasses.dataclass(frozen=True)
class Shipped:
    """What a shipped task returns: how its unit ended, and its run folder as one archive (None: no run)."""

    result: UnitResult
    archive: Optional[bytes]


def _receive(shipped: Shipped, unit: Unit, batch: str) -> UnitResult:
    """A shipped run folder into the store: unpacked in this unit's staging folder, then renamed in whole."""
    if shipped.archive is None:
        return shipped.result
    store = Path(unit.store)
    staging = store / ATTEMPTS_DIR / _unit_key(batch, unit) / secrets.token_hex(4)
    try:
        unpack_run(shipped.archive, staging, f"the run folder of point {unit.index + 1} sent back by its node")
    except (OSError, NnlabError) as e:
        return UnitResult(unit.index, "failed", message=f"could not unpack its run folder into {store} ({e})")
    return _publish(dataclasses.replace(shipped.result, run_id=None, path=None), staging, store)


# --- in the worker ------------------------------------------------------------------------------------

def _attempt(unit: Unit, key: str, train_unit: TrainUnit, threads: int,
             bundle: Optional[Bundle] = None) -> UnitResult | Shipped:
    """One try at a unit, in a Ray worker: train into this attempt's staging folder, then move the run into
    the store. What an earlier attempt of this unit left (its worker died) is deleted first. With a bundle,
    train from its files in this node's temp folder and send the run folder back."""
    import torch

    torch.set_num_threads(threads)  # the task's CPUs, whatever the reused worker ran before
    if bundle is not None:
        return _attempt_shipped(unit, key, train_unit, bundle)
    if not Path(unit.spec_path).is_file():
        return UnitResult(unit.index, "failed", message=f"{unit.spec_path}: not found on node "
                          f"{socket.gethostname()}; with Ray, the spec, its data and --runs-dir must be on a "
                          "file system every node shares, or add --ship")
    store = Path(unit.store)
    unit_dir = store / ATTEMPTS_DIR / key
    shutil.rmtree(unit_dir, ignore_errors=True)
    staging = unit_dir / secrets.token_hex(4)
    staging.mkdir(parents=True)
    return _train_then(dataclasses.replace(unit, store=str(staging)), train_unit,
                       lambda result: _publish(result, staging, store))


def _attempt_shipped(unit: Unit, key: str, train_unit: TrainUnit, bundle: Bundle) -> Shipped:
    local = Path(tempfile.gettempdir()) / SHIPPED_DIR
    spec = unpack_bundle(bundle, local / "bundles")  # once per node: tasks after the first find it there
    staging = local / "stores" / key
    shutil.rmtree(staging, ignore_errors=True)  # what a dead attempt of this unit left
    staging.mkdir(parents=True)
    here = dataclasses.replace(unit, spec_path=str(spec), overrides=(*unit.overrides, *bundle.overrides),
                               store=str(staging))
    try:
        return _train_then(here, train_unit, lambda result: Shipped(result, _packed(staging)))
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _train_then(unit: Unit, train_unit: TrainUnit, deliver: Callable[[UnitResult], _T]) -> UnitResult | _T:
    """Train the unit, then deliver its run (into the store, or packed to send back) with interrupts
    deferred. Ray's cancel arrives as SIGINT: the run ends interrupted, and is still delivered."""
    from nnlab.core import interrupts

    with interrupts.handled():
        try:
            result = train_unit(unit)
        except KeyboardInterrupt:
            result = UnitResult(unit.index, "interrupted", message=STOPPED)
        delivered: UnitResult | _T = result
        try:
            with interrupts.deferred():  # a cancel now waits until the run is delivered whole
                delivered = deliver(result)
        except KeyboardInterrupt:
            pass  # it came during the delivery, which was done whole: the run ended as it says
    return delivered


def _packed(staging: Path) -> Optional[bytes]:
    folders = [p for p in staging.iterdir() if p.is_dir() and not p.name.startswith(".")]
    return pack_run(folders[0]) if folders else None


def _publish(result: UnitResult, staging: Path, store: Path) -> UnitResult:
    """Rename the staged run folder into the store (one step on the same file system) and say where it is."""
    folders = [p for p in staging.iterdir() if p.is_dir() and not p.name.startswith(".")]
    if not folders:
        return result
    run = folders[0]
    try:
        os.rename(run, store / run.name)  # onto an existing run id fails (it is never empty)
    except OSError as e:
        return UnitResult(result.index, "failed", message=f"could not move run {run.name} into {store} "
                                                          f"({e.strerror or e})")
    shutil.rmtree(staging.parent, ignore_errors=True)
    return dataclasses.replace(result, run_id=run.name, path=str(store / run.name))


# --- staging folders ------------------------------------------------------------------------------------

def _unit_key(batch: str, unit: Unit) -> str:
    return f"{batch}-{unit.index}"


def _discard_staging(unit: Unit, batch: str) -> None:
    shutil.rmtree(Path(unit.store) / ATTEMPTS_DIR / _unit_key(batch, unit), ignore_errors=True)


def _remove_if_empty(units: list[Unit]) -> None:
    for store in {unit.store for unit in units}:
        try:
            (Path(store) / ATTEMPTS_DIR).rmdir()
        except OSError:
            pass  # not empty (another sweep is running into the same store) or never made


def _absolute(unit: Unit) -> Unit:
    """Workers start in other folders (and on other nodes): every path a unit carries is made absolute."""
    return dataclasses.replace(unit, spec_path=str(Path(unit.spec_path).resolve()),
                               store=str(Path(unit.store).resolve()))


def _reason(error: BaseException) -> str:
    text = _first_line(error)
    return text[:200] if text else "no reason given"


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0].strip() if lines else ""
