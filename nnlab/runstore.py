"""The run-folder format (version 1): the only module that knows file names and layout under `runs/`.

    runs/<name>-<YYYYmmdd-HHMMSS>-<4 hex>/
      run.json       id, name, status, times, seed, device, versions, git commit, note, format version
      spec.yaml      the resolved spec, defaults included, exactly as run
      metrics.csv    one row per (model, epoch), appended and flushed each epoch
      summary.json   per-model results, written atomically at the end
      models/<model>.safetensors + models/<model>.json (what predicting again needs)
      errors/<model>.csv   validation examples the model gets wrong, most confident first

Writes are crash-safe: a run folder appears complete with `run.json` (renamed into place), JSON files are
replaced atomically, and metric rows are whole lines. Reading is tolerant: a folder that is not a readable
run is reported as a warning, never an exception. Torch is imported only when weights are saved or loaded.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import secrets
import socket
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml

from nnlab.errors import RunError

FORMAT_VERSION = 1
RUN_FILE = "run.json"
SPEC_FILE = "spec.yaml"
METRICS_FILE = "metrics.csv"
SUMMARY_FILE = "summary.json"
MODELS_DIR = "models"
ERRORS_DIR = "errors"
CURVES_FILE = "curves.png"
STATUSES = ("running", "completed", "failed", "interrupted")
RUNS_DIR_ENV = "NNLAB_RUNS_DIR"
_ID_TIME_FORMAT = "%Y%m%d-%H%M%S"
_LAST_REF = re.compile(r"^last(?:~(\d+))?$")


def store_path(option: str | Path | None = None) -> Path:
    """The run store: the `--runs-dir` option, else $NNLAB_RUNS_DIR, else ./runs."""
    return Path(option or os.environ.get(RUNS_DIR_ENV) or "runs")


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")  # orders runs started in one second


def _write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False, default=_json_default) + "\n")
    os.replace(tmp, path)


def _json_default(value: Any) -> Any:
    # numpy scalars and Paths reach summaries through metrics and specs.
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def metric_columns(metric_names: list[str]) -> list[str]:
    """The columns of metrics.csv for a run whose models report `metric_names` besides the loss."""
    return ["model", "epoch", "train_loss", "val_loss", *[f"train_{m}" for m in metric_names],
            *[f"val_{m}" for m in metric_names], "lr", "seconds"]


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


@dataclass
class Run:
    """A run folder read back. `meta` is run.json; the rest is read on first use."""

    path: Path
    meta: dict[str, Any]
    warnings: list[str] = field(default_factory=list)

    @property
    def id(self) -> str:
        return self.meta["id"]

    @property
    def name(self) -> str:
        return self.meta.get("name", "")

    @property
    def note(self) -> str:
        return self.meta.get("note") or ""

    @property
    def started_at(self) -> str:
        return self.meta.get("started_at") or ""

    @property
    def status(self) -> str:
        """run.json's status, except that a `running` run whose process is gone reads as `interrupted`."""
        status = self.meta.get("status", "running")
        if status == "running" and self.meta.get("host") == socket.gethostname() and not _pid_alive(
                self.meta.get("pid")):
            return "interrupted"
        return status

    @cached_property
    def spec(self) -> dict[str, Any]:
        """The resolved spec: from run.json, else (a run.json without it) from spec.yaml."""
        if isinstance(self.meta.get("spec"), dict):
            return self.meta["spec"]
        try:
            spec = yaml.safe_load((self.path / SPEC_FILE).read_text())
        except (OSError, yaml.YAMLError):
            return {}
        return spec if isinstance(spec, dict) else {}

    @cached_property
    def summary(self) -> dict[str, Any] | None:
        """summary.json, or None while the run is unfinished (or if it was damaged)."""
        try:
            data = json.loads((self.path / SUMMARY_FILE).read_text())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def metrics(self) -> Any:
        """metrics.csv as a pandas DataFrame; a last line that a crash cut short is dropped."""
        import pandas as pd

        try:
            text = (self.path / METRICS_FILE).read_text()
        except OSError:
            return pd.DataFrame(columns=["model", "epoch"])
        if not text.endswith("\n"):
            text = text[: text.rfind("\n") + 1]  # every row is written whole with its newline: drop a cut one
        try:
            frame = pd.read_csv(io.StringIO(text), on_bad_lines="skip")
        except (ValueError, pd.errors.EmptyDataError):
            return pd.DataFrame(columns=["model", "epoch"])
        if "epoch" in frame:
            frame = frame[pd.to_numeric(frame["epoch"], errors="coerce").notna()]
        return frame

    def files(self) -> dict[str, Path]:
        """The files this run has, by what they hold."""
        found = {"run": self.path / RUN_FILE, "spec": self.path / SPEC_FILE, "metrics": self.path / METRICS_FILE,
                 "summary": self.path / SUMMARY_FILE, "curves": self.path / CURVES_FILE}
        found = {k: p for k, p in found.items() if p.exists()}
        for kind, folder in (("model", MODELS_DIR), ("errors", ERRORS_DIR)):
            for p in sorted((self.path / folder).glob("*")) if (self.path / folder).is_dir() else []:
                found[f"{kind}:{p.name}"] = p
        return found

    def model_info(self, model: str) -> dict[str, Any]:
        return json.loads((self.path / MODELS_DIR / f"{model}.json").read_text())

    def load_weights(self, model: str) -> dict[str, Any]:
        from safetensors.torch import load_file

        return load_file(str(self.path / MODELS_DIR / f"{model}.safetensors"))


def curves_path(run: Run) -> Path:
    return run.path / CURVES_FILE


def _pid_alive(pid: Any) -> bool:
    if not isinstance(pid, int):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_run(path: Path) -> Run:
    """Read one run folder; RunError says why it is not a readable run."""
    try:
        meta = json.loads((path / RUN_FILE).read_text())
    except FileNotFoundError:
        raise RunError(f"{path}: not a run folder (no {RUN_FILE})") from None
    except (OSError, ValueError) as e:
        raise RunError(f"{path / RUN_FILE}: unreadable ({e})") from None
    if not isinstance(meta, dict) or "id" not in meta:
        raise RunError(f"{path / RUN_FILE}: not an nnlab run record")
    version = meta.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise RunError(f"{path}: run format version {version!r} is newer than this nnlab reads "
                       f"({FORMAT_VERSION}); upgrade nnlab")
    return Run(path, meta)


def list_runs(store: Path) -> tuple[list[Run], list[str]]:
    """Every readable run in the store, newest first, and one warning per folder that is not one."""
    runs: list[Run] = []
    warnings: list[str] = []
    if not store.is_dir():
        return runs, warnings
    for entry in os.scandir(store):
        if entry.name.startswith(".") or not entry.is_dir():
            continue
        try:
            runs.append(read_run(Path(entry.path)))
        except RunError as e:
            warnings.append(f"skipped {e}")
    runs.sort(key=lambda r: (r.started_at, r.id), reverse=True)
    return runs, warnings


def resolve_run(ref: str, store: Path) -> Run:
    """A run from a reference: a path to its folder, its id, a unique id prefix, `last` or `last~N`."""
    as_path = Path(ref)
    if (as_path / RUN_FILE).exists():
        return read_run(as_path)
    runs, _ = list_runs(store)
    last = _LAST_REF.match(ref)
    if last:
        back = int(last.group(1) or 0)
        if back >= len(runs):
            raise RunError(f"run '{ref}': the store {store} has {len(runs)} run(s)")
        return runs[back]
    exact = [r for r in runs if r.id == ref]
    matches = exact or [r for r in runs if r.id.startswith(ref)]
    if len(matches) == 1:
        return matches[0]
    if matches:
        listed = ", ".join(r.id for r in matches[:8]) + (" ..." if len(matches) > 8 else "")
        raise RunError(f"run '{ref}' is ambiguous: it matches {len(matches)} runs ({listed})")
    known = ", ".join(r.id for r in runs[:5]) + (" ..." if len(runs) > 5 else "")
    raise RunError(f"run '{ref}': no such run in {store} "
                   + (f"(newest: {known}; or use last, last~N)" if runs else "(the store is empty)"))
