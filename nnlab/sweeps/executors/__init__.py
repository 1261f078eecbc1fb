"""Where a sweep's work units train: here, in this process or in local worker processes.

The seam: an executor takes units and yields one UnitResult per unit as each ends, in any order.
`LocalExecutor` is the default; a Ray executor (issue 10) implements the same `run`. A unit writes its
run folder through `runner.execute` and so `runstore`, never by itself; the executor only moves units
and results.

Workers are spawned processes (no fork: torch's threads do not survive a fork), started once and reused
for unit after unit, so torch is imported once per worker. Stopping: the driver sends SIGTERM to each busy
worker (a terminal's Ctrl-C reaches them too; nnlab.core.interrupts ignores the second), whose running point then
ends as `interrupted` in its run folder, and never starts the rest.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing.connection import wait
from pathlib import Path
from typing import Any, Iterable, Iterator, Literal, Optional, Protocol

from nnlab.errors import NnlabError, describe

UnitStatus = Literal["completed", "failed", "interrupted"]
STOP_GRACE_SECONDS = 60  # how long a stopped point may take to mark its run folder interrupted


@dataclass(frozen=True)
class Unit:
    """One point of a sweep: the spec file and its overrides, trained into one run folder of `store`.

    The spec travels as a path plus overrides, so a worker re-reads it and its data (relative to the spec
    file): fine on one machine or a shared file system. Stacked units (several points as members of one
    model) will carry several override lists.
    """

    index: int
    spec_path: str
    overrides: tuple[str, ...]
    store: str
    note: str = ""
    sweep: Optional[str] = None
    smoke: bool = False
    device: Optional[str] = None
    stacked: tuple[Unit, ...] = ()  # more points (of the same spec) to train in one stack with this one

    @property
    def points(self) -> tuple[Unit, ...]:
        return (self, *self.stacked)


@dataclass(frozen=True)
class UnitResult:
    """How a unit ended. `failed`: a model failed or diverged, a gate missed, or no run could be made
    (`run_id` is None then); `message` says which in one line."""

    index: int
    status: UnitStatus
    run_id: Optional[str] = None
    path: Optional[str] = None
    message: str = ""


class Executor(Protocol):
    def run(self, units: Iterable[Unit]) -> Iterator[UnitResult]:
        """Yield one result per unit as each ends. Closing the iterator early stops the units still running
        (each marked interrupted) and starts no more."""
        ...


def run_unit(unit: Unit) -> UnitResult:
    """Train one unit into its run folder. KeyboardInterrupt passes through (the runner has marked the run)."""
    from nnlab.run import session as runner

    try:
        plan = runner.plan(unit.spec_path, list(unit.overrides), unit.device, unit.smoke)
        outcome = runner.execute(plan, Path(unit.store), unit.note, None, sweep=unit.sweep)
    except Exception as e:  # one point's bug or crash must not end the sweep: report it and go on
        return _failed(unit, e)
    return _result(unit, outcome)


def run_units(unit: Unit) -> list[UnitResult]:
    """A unit and the points stacked with it: trained as one stack, one run folder each, when they can share
    one (points.can_train_together), else one after another. One result per point."""
    from nnlab.sweeps import points
    from nnlab.run import session as runner

    if not unit.stacked:
        return [run_unit(unit)]
    try:
        plans = [runner.plan(u.spec_path, list(u.overrides), u.device, u.smoke) for u in unit.points]
        if not points.can_train_together(plans):
            return [run_unit(u) for u in unit.points]
        outcomes = points.execute_points(plans, Path(unit.store), [u.note for u in unit.points], unit.sweep)
    except Exception as e:  # the stack's failure fails its points; the sweep goes on
        return [_failed(u, e) for u in unit.points]
    return [_result(u, outcome) for u, outcome in zip(unit.points, outcomes)]


def _failed(unit: Unit, error: Exception) -> UnitResult:
    message = str(error).splitlines()[0] if isinstance(error, NnlabError) else describe(error)
    return UnitResult(unit.index, "failed", message=message)


def _result(unit: Unit, outcome: Any) -> UnitResult:
    problems = [f"{name} {outcome.summary.models[name].status}" for name in outcome.failed_models]
    problems += [f"expect {gate.key} missed" for gate in outcome.gates_missed]
    return UnitResult(unit.index, "failed" if problems else "completed", outcome.run_id, str(outcome.path),
                      "; ".join(problems))


class LocalExecutor:
    """`jobs` points at a time on this machine: in this process when jobs is 1, else in worker processes
    with one torch thread each (two busy workers on two cores must not fight over threads)."""

    def __init__(self, jobs: int = 1):
        self.jobs = jobs

    def run(self, units: Iterable[Unit]) -> Iterator[UnitResult]:
        units = list(units)
        if self.jobs == 1 or len(units) <= 1:
            return (result for unit in units for result in run_units(unit))
        return _Pool(min(self.jobs, len(units))).run(units)


class _Pool:
    """Long-lived spawned workers fed one unit at a time over a pipe; a worker that dies fails its unit
    only, and a fresh one takes its place."""

    def __init__(self, size: int):
        self.size = size
        self.workers: list[_Worker] = []
        self.busy: dict[_Worker, Unit] = {}

    def run(self, units: list[Unit]) -> Iterator[UnitResult]:
        pending = deque(units)
        try:
            self.workers = [_Worker.start() for _ in range(self.size)]
            while pending or self.busy:
                for worker in self.workers:
                    if worker not in self.busy and pending:
                        self._assign(worker, pending.popleft())
                ready = wait([w.conn for w in self.busy] + [w.process.sentinel for w in self.busy])
                for worker in [w for w in self.busy if w.conn in ready or w.process.sentinel in ready]:
                    yield from self._collect(worker)
        finally:
            self._stop()

    def _assign(self, worker: _Worker, unit: Unit) -> None:
        if not worker.process.is_alive():  # died while idle: replace it before handing it work
            worker.conn.close()
            worker = self.workers[self.workers.index(worker)] = _Worker.start()
        self.busy[worker] = unit
        worker.conn.send(unit)

    def _collect(self, worker: _Worker) -> list[UnitResult]:
        unit = self.busy.pop(worker)
        try:
            return worker.conn.recv()
        except (EOFError, OSError):
            worker.process.join(timeout=5)
            if worker.process.is_alive():  # its pipe broke, yet it runs on: stop it, no one reads it now
                worker.process.kill()
                worker.process.join()
            self.workers[self.workers.index(worker)] = _Worker.start()
            return [UnitResult(u.index, "failed", message=f"{_how(worker.process.exitcode)}; its run folder, if "
                                                          "made, reads interrupted") for u in unit.points]

    def _stop(self) -> None:
        for worker in self.workers:
            if worker in self.busy and worker.process.is_alive():
                os.kill(worker.process.pid, signal.SIGTERM)
            _send_quietly(worker, None)  # read once the stopped point has been marked: the worker then exits
        for worker in self.workers:
            worker.process.join(timeout=STOP_GRACE_SECONDS)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join()
            worker.conn.close()
        self.busy.clear()


def _how(exitcode: Optional[int]) -> str:
    """How a worker process ended, for its point's `failed` line."""
    from nnlab.core.interrupts import signal_name

    if exitcode is not None and exitcode < 0:
        return f"its worker process was killed by {signal_name(-exitcode)}"
    return f"its worker process died (exit code {exitcode})"


@dataclass(eq=False)
class _Worker:
    process: multiprocessing.process.BaseProcess
    conn: multiprocessing.connection.Connection

    @classmethod
    def start(cls) -> _Worker:
        ctx = multiprocessing.get_context("spawn")
        parent, child = ctx.Pipe()
        process = ctx.Process(target=_worker_main, args=(child,), daemon=True, name="nnlab-sweep-worker")
        with _sigint_ignored():  # inherited: a Ctrl-C while the child imports must not print a traceback
            process.start()
        child.close()
        return cls(process, parent)


def _send_quietly(worker: _Worker, message: Optional[Unit]) -> None:
    try:
        worker.conn.send(message)
    except (OSError, ValueError):
        pass  # the worker is gone already


@contextmanager
def _sigint_ignored() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _worker_main(conn: multiprocessing.connection.Connection) -> None:
    from nnlab.core import interrupts

    # Ctrl-C (the terminal's, to every process) and the driver's SIGTERM end the running point as interrupted,
    # with the run store's writes deferred as in `nnlab train`; an idle worker just exits.
    with interrupts.handled():
        try:
            import torch

            torch.set_num_threads(1)
            while (unit := conn.recv()) is not None:
                try:
                    results = run_units(unit)
                except KeyboardInterrupt:
                    results = [UnitResult(u.index, "interrupted", message="stopped: the sweep was interrupted")
                               for u in unit.points]
                conn.send(results)
        except (EOFError, OSError, KeyboardInterrupt):
            pass  # the driver is gone, or stopped this worker


def executor_for(name: str, jobs: int, ray_options: dict) -> Executor:
    """The executor units go to: `local` (`jobs` at a time) or `ray`; Ray is imported only when asked for."""
    if name == "local":
        if ray_options:
            raise NnlabError(f"--{next(iter(ray_options)).replace('_', '-')}: only with --executor ray")
        return LocalExecutor(jobs)
    if jobs != 1:
        raise NnlabError("--jobs: only with --executor local; Ray runs as many points at once as the cluster has "
                         "room for (--cpus-per-trial)")
    from nnlab.sweeps.executors.ray import RayExecutor

    return RayExecutor(**ray_options)
