"""The run-folder format (version 1): file names and layout under `runs/`, known only to this package.

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

import json
import os
import re
import secrets
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from nnlab.records import FORMAT_VERSION, RUN_STATUSES, epoch_columns

RUN_FILE = "run.json"
SPEC_FILE = "spec.yaml"
METRICS_FILE = "metrics.csv"
SUMMARY_FILE = "summary.json"
MODELS_DIR = "models"
ERRORS_DIR = "errors"
CURVES_FILE = "curves.png"
STATUSES = RUN_STATUSES
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


