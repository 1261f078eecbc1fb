"""Writing one run folder while it trains (see layout.py for the format)."""

from __future__ import annotations

import csv
import os
import secrets
import socket
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from nnlab.errors import RunError
from nnlab.runstore.layout import (ERRORS_DIR, FORMAT_VERSION, METRICS_FILE, MODELS_DIR, RUN_FILE, SPEC_FILE,
                                   STATUSES, SUMMARY_FILE, _ID_TIME_FORMAT, _write_json_atomic, now_iso)


class RunWriter:
    """Writes one run folder while it trains. Create with `RunWriter.create`."""

    def __init__(self, path: Path, meta: dict[str, Any], columns: list[str]):
        self.path = path
        self.meta = meta
        self.columns = columns
        self._metrics = open(path / METRICS_FILE, "a", newline="")
        self._csv = csv.DictWriter(self._metrics, fieldnames=columns, extrasaction="ignore")

    @property
    def id(self) -> str:
        return self.meta["id"]

    @classmethod
    def create(cls, store: Path, name: str, spec: dict[str, Any], columns: list[str],
               meta: dict[str, Any]) -> RunWriter:
        """Make a new run folder with status `running`. The folder appears whole or not at all."""
        store.mkdir(parents=True, exist_ok=True)
        for _ in range(100):
            run_id = f"{name}-{datetime.now().strftime(_ID_TIME_FORMAT)}-{secrets.token_hex(2)}"
            staging = store / f".creating-{run_id}-{secrets.token_hex(4)}"
            staging.mkdir()
            # The resolved spec is in run.json too, so that listing and comparing runs reads one JSON file
            # per run; spec.yaml is the same spec for people.
            full_meta = {"format_version": FORMAT_VERSION, "id": run_id, "name": name, "status": "running",
                         "started_at": now_iso(), "finished_at": None, "duration_seconds": None,
                         "pid": os.getpid(), "host": socket.gethostname(), **meta, "spec": spec}
            _write_json_atomic(staging / RUN_FILE, full_meta)
            (staging / SPEC_FILE).write_text(yaml.safe_dump(spec, sort_keys=False))
            with open(staging / METRICS_FILE, "w", newline="") as f:
                csv.writer(f).writerow(columns)
            try:
                # rename() onto an existing run fails (it is never empty), so two runs never share an id.
                os.rename(staging, store / run_id)
            except OSError:
                _remove_tree(staging)
                continue
            return cls(store / run_id, full_meta, columns)
        raise RunError(f"{store}: could not create a unique run folder")

    def append_epoch(self, row: dict[str, Any]) -> None:
        """One row of metrics.csv, flushed so a crash keeps every finished epoch."""
        self._csv.writerow({k: _csv_value(v) for k, v in row.items()})
        self._metrics.flush()

    def save_model(self, model: str, tensors: dict[str, Any], info: dict[str, Any]) -> None:
        """Weights as safetensors (loads without running code) and what predicting again needs, as JSON."""
        from safetensors.torch import save_file

        folder = self.path / MODELS_DIR
        folder.mkdir(exist_ok=True)
        save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()},
                  str(folder / f"{model}.safetensors"))
        _write_json_atomic(folder / f"{model}.json", info)

    def save_errors(self, model: str, frame: Any) -> None:
        """The validation examples `model` gets wrong (a pandas DataFrame), most confident first."""
        folder = self.path / ERRORS_DIR
        folder.mkdir(exist_ok=True)
        frame.to_csv(folder / f"{model}.csv", index=False)

    def write_summary(self, summary: dict[str, Any]) -> None:
        _write_json_atomic(self.path / SUMMARY_FILE, {"format_version": FORMAT_VERSION, **summary})

    def update(self, **fields: Any) -> None:
        """Change fields of run.json (atomically), e.g. the device once it is known."""
        self.meta.update(fields)
        _write_json_atomic(self.path / RUN_FILE, self.meta)

    def finish(self, status: str, error: str | None = None) -> None:
        assert status in STATUSES, status
        self._metrics.close()
        started = datetime.fromisoformat(self.meta["started_at"])
        finished = datetime.now(timezone.utc)
        self.update(status=status, error=error, finished_at=finished.isoformat(timespec="milliseconds"),
                    duration_seconds=round((finished - started).total_seconds(), 3))


def _csv_value(value: Any) -> Any:
    if isinstance(value, float):
        return repr(value)  # shortest text that reads back to the same float
    return value


def _remove_tree(path: Path) -> None:
    for child in path.iterdir():
        child.unlink()
    path.rmdir()


