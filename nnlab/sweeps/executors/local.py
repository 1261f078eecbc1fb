"""The local executor: a sweep's units in this process, or in local worker processes.

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
from typing import Iterable, Iterator, Optional

from nnlab.sweeps.executors.units import STOP_GRACE_SECONDS, Unit, UnitResult, run_units


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
