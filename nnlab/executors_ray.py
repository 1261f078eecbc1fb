"""Sweep units as Ray tasks: the same `run(units)` as executors.LocalExecutor, on a local Ray instance or a
cluster. Ray is an optional extra, imported only here and only when this executor runs.

Data: a unit travels as its spec path plus overrides (executors.Unit), and each task re-reads the spec and
its data from disk. So the spec, its data and the run store must sit on a file system that every node
reads at the same absolute path (one machine, NFS, a cluster's shared volume). The other way, the
prepared arrays put once in Ray's object store and shared by every unit, is not built: it pays off when
many units read one large data set over a slow file system.

Results: each task writes its run folder with runner.execute (the runstore's atomic protocol), first in a
staging folder of its own under `<store>/.attempts/` (hidden: readers skip it), then renamed into the store
whole. A store that is not shared (each node returning its run folder's files to the driver) is not built.

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
import os
import secrets
import shutil
import socket
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Optional

from nnlab.errors import NnlabError
from nnlab.executors import STOP_GRACE_SECONDS, Unit, UnitResult, run_unit

RAY_MISSING = "--executor ray needs Ray: pip install 'nnlab[ray]'"
ATTEMPTS_DIR = ".attempts"  # under the store; hidden, so `runs` and `compare` never read a staged run
NOT_STARTED = "not started: the sweep was interrupted"
STOPPED = "stopped: the sweep was interrupted"

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
                 max_retries: int = 1, num_cpus: Optional[int] = None, train_unit: TrainUnit = run_unit):
        self.address, self.num_cpus = address, num_cpus
        self.cpus_per_trial, self.gpus_per_trial = cpus_per_trial, gpus_per_trial
        self.max_retries = max_retries
        self.train_unit = train_unit

    def run(self, units: Iterable[Unit]) -> Iterator[UnitResult]:
        """Start or join Ray now (so that a bad address fails here), then submit every unit."""
        ray = import_ray()
        units = [_absolute(unit) for unit in units]
        started_here = self._connect(ray)
        return self._results(ray, units, started_here)

    def _connect(self, ray: Any) -> bool:
        if ray.is_initialized():
            return False
        options = dict(include_dashboard=False, log_to_driver=False, logging_level="WARNING")
        try:
            if self.address is None:
                # "local": a new instance, even where `ray start` runs one on this machine
                ray.init(address="local", num_cpus=self.num_cpus or os.cpu_count() or 1, **options)
            else:
                ray.init(address=self.address, **options)
        except (ConnectionError, RuntimeError, ValueError) as e:
            where = self.address or "a local instance"
            raise NnlabError(f"--address {where}: cannot start or join Ray ({_first_line(e)})") from None
        return True

    def _results(self, ray: Any, units: list[Unit], started_here: bool) -> Iterator[UnitResult]:
        task = ray.remote(_attempt).options(num_cpus=self.cpus_per_trial, num_gpus=self.gpus_per_trial,
                                            max_retries=self.max_retries, retry_exceptions=False)
        threads = max(1, int(self.cpus_per_trial))
        batch = secrets.token_hex(4)  # names this call's staging folders apart from any other driver's
        pending = {task.remote(unit, _unit_key(batch, unit), self.train_unit, threads): unit for unit in units}
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

    def _result(self, ray: Any, ref: Any, unit: Unit, batch: str) -> UnitResult:
        try:
            return ray.get(ref)
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


def _cancel(ray: Any, pending: dict[Any, Unit]) -> list[tuple[Unit, UnitResult]]:
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


# --- in the worker ------------------------------------------------------------------------------------

def _attempt(unit: Unit, key: str, train_unit: TrainUnit, threads: int) -> UnitResult:
    """One try at a unit, in a Ray worker: train into this attempt's staging folder, then move the run into
    the store. What an earlier attempt of this unit left (its worker died) is deleted first."""
    import torch

    from nnlab import interrupts

    torch.set_num_threads(threads)  # the task's CPUs, whatever the reused worker ran before
    if not Path(unit.spec_path).is_file():
        return UnitResult(unit.index, "failed", message=f"{unit.spec_path}: not found on node "
                          f"{socket.gethostname()}; with Ray, the spec, its data and --runs-dir must be on a "
                          "file system every node shares")
    store = Path(unit.store)
    unit_dir = store / ATTEMPTS_DIR / key
    shutil.rmtree(unit_dir, ignore_errors=True)
    staging = unit_dir / secrets.token_hex(4)
    staging.mkdir(parents=True)
    with interrupts.handled():  # Ray's cancel arrives as SIGINT: the run ends interrupted, writes deferred
        try:
            result = train_unit(dataclasses.replace(unit, store=str(staging)))
        except KeyboardInterrupt:
            result = UnitResult(unit.index, "interrupted", message=STOPPED)
        published = result
        try:
            with interrupts.deferred():  # a cancel now waits until the run is in the store and said so
                published = _publish(result, staging, store)
        except KeyboardInterrupt:
            pass  # it came during the move, which was done whole: the run ended as it says
    return published


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
