"""Writing one run folder while it trains (see layout.py for the format).

`RunWriter` is a context manager: whatever ends the `with` block (success, an error, Ctrl-C, SIGTERM, a
full disk), the run leaves it with a final status in run.json. The steps that must not be cut in half
(creating the folder, each model's result, the final status) run with signals deferred (nnlab.core.interrupts).
"""

from __future__ import annotations

import csv
import errno
import io
import os
import secrets
import shutil
import socket
import time
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Callable, Optional, TextIO

import yaml

from nnlab.errors import RunError, describe
from nnlab.core.interrupts import deferred, interrupted_name
from nnlab.core.records import EnsembleInfo, ModelInfo, RunMeta, RunSummary
from nnlab.runstore.layout import (ERRORS_DIR, METRICS_FILE, MODELS_DIR, PREDICTIONS_DIR, RESERVE_BYTES, RESERVE_FILE, RUN_FILE,
                                   SPEC_FILE, SUMMARY_FILE, ID_TIME_FORMAT, now_iso, to_json, write_atomic)
from nnlab.runstore.layout import LR_FIND_FILE
from nnlab.runstore.liveness import RunLock, lock_run

if TYPE_CHECKING:
    import pandas as pd
    import torch

HEARTBEAT_SECONDS = 30.0  # run.json's heartbeat_at is refreshed at most this often, at the end of an epoch
MIN_FREE_BYTES = 16 * 1024 * 1024  # below this much free space a run is refused before it starts


def check_store(store: Path) -> None:
    """Refuse a store that cannot take a run, before anything trains: a file, read-only, or full."""
    if store.exists() and not store.is_dir():
        raise RunError(f"--runs-dir: {store} is a file; expected a folder for run folders")
    try:
        store.mkdir(parents=True, exist_ok=True)
        probe = store / f".probe-{secrets.token_hex(4)}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise RunError(f"--runs-dir: cannot write run folders in {store} ({e.strerror or e})") from None
    free = shutil.disk_usage(store).free
    if free < MIN_FREE_BYTES:
        raise RunError(f"--runs-dir: {store} has {free / 2**20:.1f} MiB free; a run needs at least "
                       f"{MIN_FREE_BYTES // 2**20} MiB")


class RunWriter:
    """Writes one run folder. `with RunWriter(store, meta, spec, columns) as run:` creates it (status running)
    and, on leaving, records completed, failed (with the error) or interrupted (with the signal)."""

    def __init__(self, store: Path, meta: RunMeta, columns: list[str], reopen: Optional[Path] = None,
                 keep_row: Optional[Callable[[dict[str, str]], bool]] = None, lock: Optional[RunLock] = None):
        """`reopen`: continue that existing run folder instead (resume), with `meta` its run.json; metrics.csv
        then keeps only the rows `keep_row` accepts (a row as column -> text). `lock`: the folder's lock, taken
        by the resume before it checked the run (a new run takes its own); released once the run has ended."""
        self.store, self.meta, self.columns = store, meta, columns
        self.reopen, self.keep_row, self.lock = reopen, keep_row, lock
        self.path: Optional[Path] = None
        self.status: Optional[str] = None  # set by `finish`
        self._metrics: Optional[TextIO] = None
        self._csv: Optional[csv.DictWriter[str]] = None
        self._heartbeat = 0.0

    @property
    def id(self) -> str:
        return self.meta.id

    def __enter__(self) -> RunWriter:
        try:
            with deferred():  # a signal during creation is raised once the folder is whole...
                self._reopen() if self.reopen else self._create()
            return self
        except KeyboardInterrupt as stop:  # ...and then ends the new run as interrupted, not running
            self.finish("interrupted", f"interrupted by {interrupted_name(stop)}")
            raise

    def __exit__(self, kind: Optional[type[BaseException]], error: Optional[BaseException],
                 tb: Optional[TracebackType]) -> None:
        if error is None:
            self.finish("completed")
        elif isinstance(error, KeyboardInterrupt):
            self.finish("interrupted", f"interrupted by {interrupted_name(error)}")
        else:
            self.finish("failed", describe(error))

    def _create(self) -> None:
        """Make the folder under a hidden name and rename it into place: it appears whole or not at all."""
        self.store.mkdir(parents=True, exist_ok=True)
        for _ in range(100):
            run_id = f"{self.meta.name}-{datetime.now().strftime(ID_TIME_FORMAT)}-{secrets.token_hex(2)}"
            staging = self.store / f".creating-{run_id}-{secrets.token_hex(4)}"
            try:
                self._stage(staging, run_id)
                # rename() onto an existing run fails (it is never empty), so two runs never share an id.
                os.rename(staging, self.store / run_id)
            except OSError as e:
                self._release()
                _remove_tree(staging)
                if e.errno in (errno.EEXIST, errno.ENOTEMPTY):  # the id is taken: draw another
                    continue
                raise
            self.path = self.store / run_id
            self._metrics = open(self.path / METRICS_FILE, "a", newline="")
            self._csv = csv.DictWriter(self._metrics, fieldnames=self.columns, extrasaction="ignore")
            return
        raise RunError(f"{self.store}: could not create a unique run folder")

    def _stage(self, staging: Path, run_id: str) -> None:
        staging.mkdir()
        now = now_iso()
        self.meta = self.meta.model_copy(update={"id": run_id, "status": "running", "started_at": now,
                                                 "heartbeat_at": now, "pid": os.getpid(),
                                                 "host": socket.gethostname()})
        (staging / RESERVE_FILE).write_bytes(b"\0" * RESERVE_BYTES)
        self.lock = lock_run(staging, run_id, "trained")  # the lock moves with the folder's rename
        write_atomic(staging / RUN_FILE, to_json(self.meta.model_dump(mode="json")))
        (staging / SPEC_FILE).write_text(yaml.safe_dump(self.meta.spec, sort_keys=False))
        with open(staging / METRICS_FILE, "w", newline="") as f:
            csv.writer(f).writerow(self.columns)

    def _reopen(self) -> None:
        """Continue an existing run folder: metrics.csv cut back to the rows to keep, then `running` again, by
        this process. `started_at` becomes now (a run is alive while a process that started no earlier
        runs, liveness.py); the first start is kept as `first_started_at`, each resume in `resumed_at`."""
        path = self.reopen
        self._keep_rows(path / METRICS_FILE)
        now = now_iso()
        self.meta = self.meta.model_copy(update={
            "status": "running", "started_at": now, "heartbeat_at": now, "pid": os.getpid(),
            "host": socket.gethostname(), "error": None, "finished_at": None, "duration_seconds": None,
            "first_started_at": self.meta.first_started_at or self.meta.started_at,
            "resumed_at": [*self.meta.resumed_at, now]})
        (path / RESERVE_FILE).write_bytes(b"\0" * RESERVE_BYTES)
        write_atomic(path / RUN_FILE, to_json(self.meta.model_dump(mode="json")))
        self.path = path
        self._metrics = open(path / METRICS_FILE, "a", newline="")
        self._csv = csv.DictWriter(self._metrics, fieldnames=self.columns, extrasaction="ignore")

    def _keep_rows(self, path: Path) -> None:
        """Rewrite metrics.csv (atomically) with the rows `keep_row` accepts; a last line a crash cut short,
        and rows that do not parse, go too."""
        try:
            with open(path, newline="") as f:
                text = f.read()
        except OSError as e:  # deleted, or a folder in its place: the run's epochs cannot be continued
            raise RunError(f"--resume: {path}: cannot read it ({e.strerror or e}); the run's epochs cannot be "
                           f"continued: train a new run") from None
        rows = list(csv.reader(io.StringIO(text)))
        if not rows or rows[0] != self.columns:
            raise RunError(f"{path}: its columns are not the ones this spec writes; it cannot be continued")
        if not text.endswith("\n"):
            rows.pop()
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(self.columns)
        writer.writerows(r for r in rows[1:] if len(r) == len(self.columns)
                         and (self.keep_row is None or self.keep_row(dict(zip(self.columns, r)))))
        write_atomic(path, out.getvalue())

    def append_epoch(self, row: dict[str, object]) -> None:
        """One row of metrics.csv, flushed so that a crash keeps every finished epoch."""
        self._csv.writerow({k: _csv_value(v) for k, v in row.items()})
        self._metrics.flush()
        if time.monotonic() - self._heartbeat > HEARTBEAT_SECONDS:
            self._heartbeat = time.monotonic()
            self._update(heartbeat_at=now_iso())

    def write_summary(self, summary: RunSummary) -> None:
        """summary.json, replaced whole; called as soon as each model ends, so a killed run keeps it."""
        with deferred():
            write_atomic(self.path / SUMMARY_FILE, to_json(summary.model_dump(mode="json")))

    def save_model(self, model: str, tensors: dict[str, torch.Tensor], info: ModelInfo) -> None:
        """Weights as safetensors (loads without running code) and what predicting again needs, as JSON."""
        from safetensors.torch import save

        folder = self.path / MODELS_DIR
        folder.mkdir(exist_ok=True)
        with deferred():
            write_atomic(folder / f"{model}.safetensors",
                         save({k: v.detach().cpu().contiguous() for k, v in tensors.items()}))
            write_atomic(folder / f"{model}.json", to_json(info.to_file()))

    def save_ensemble(self, model: str, info: EnsembleInfo) -> None:
        """models/<model>.json of an ensemble: its members and weights (their weights are saved models)."""
        folder = self.path / MODELS_DIR
        folder.mkdir(exist_ok=True)
        with deferred():
            write_atomic(folder / f"{model}.json", to_json(info.model_dump(mode="json")))

    def save_lr_curve(self, rows: list[dict[str, object]], found: dict[str, object]) -> None:
        """An `nnlab lr-find` run's curve: lr_find.csv, a row per learning rate tried (replaced whole), and
        run.json's `lr_find` (the test's settings and its suggestion)."""
        out = io.StringIO()
        table = csv.DictWriter(out, fieldnames=list(rows[0]) if rows else [])
        table.writeheader()
        table.writerows({k: _csv_value(v) for k, v in row.items()} for row in rows)
        with deferred():
            write_atomic(self.path / LR_FIND_FILE, out.getvalue())
            self._update(lr_find=found)

    def save_errors(self, model: str, frame: pd.DataFrame) -> None:
        """The validation examples `model` gets wrong (a pandas DataFrame), most confident first."""
        folder = self.path / ERRORS_DIR
        folder.mkdir(exist_ok=True)
        with deferred():
            write_atomic(folder / f"{model}.csv", frame.to_csv(index=False))

    def save_predictions(self, model: str, frame: pd.DataFrame) -> None:
        """Every val and test row's target and prediction (a pandas DataFrame, `data.predictions_table`)."""
        folder = self.path / PREDICTIONS_DIR
        folder.mkdir(exist_ok=True)
        with deferred():
            write_atomic(folder / f"{model}.csv", frame.to_csv(index=False))

    def _update(self, **fields: object) -> None:
        self.meta = self.meta.model_copy(update=fields)
        with deferred():
            write_atomic(self.path / RUN_FILE, to_json(self.meta.model_dump(mode="json")))

    def finish(self, status: str, error: Optional[str] = None) -> None:
        """The final status. The disk reserve is freed first, so that this write fits on a full disk."""
        if self.path is None or self.status is not None:
            return
        with deferred():
            self.status = status
            (self.path / RESERVE_FILE).unlink(missing_ok=True)
            try:
                self._metrics.close()
            except OSError:
                pass  # a full disk can fail the last flush; rows are flushed whole, so none is half written
            started = datetime.fromisoformat(self.meta.started_at)
            finished = datetime.now(timezone.utc)
            self._update(status=status, error=error, finished_at=finished.isoformat(timespec="milliseconds"),
                         duration_seconds=round((finished - started).total_seconds(), 3))
            self._release()  # only once the final status is written: the next resume reads it

    def _release(self) -> None:
        if self.lock is not None:
            self.lock.release()
            self.lock = None


def _csv_value(value: object) -> object:
    if isinstance(value, float):
        return repr(value)  # shortest text that reads back to the same float
    return value


def _remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
