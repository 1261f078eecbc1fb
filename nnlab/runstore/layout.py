"""The run-folder format (version 1): file names and layout under `runs/`, known only to this package.

    runs/<name>-<YYYYmmdd-HHMMSS>-<4 hex>/
      run.json       records.RunMeta: id, name, status, times, heartbeat, seed, device, versions, note, spec
      spec.yaml      the resolved spec, defaults included, exactly as run
      metrics.csv    one row per (model, member, epoch), appended and flushed each epoch
      summary.json   records.RunSummary: rewritten atomically as soon as each model ends, and at the end
      models/<model>.safetensors + models/<model>.json (what predicting again needs)
      errors/<model>.csv   validation examples the model gets wrong, most confident first
      predictions/<model>.csv   every val and test row: split, row, target, prediction (classification:
                     confidence and p_<label> per class), in the data's labels and units
      lr_find.csv    (an `nnlab lr-find` run) per learning rate tried: lr, loss, val_loss, status, suggested
      checkpoints/<model>.safetensors   the latest LoopState of the model (stack group: its first model's
                     name) in training, for `nnlab train --resume`; deleted once its result is in summary.json
      .reserve       a little disk space held back, freed so that the final status fits on a full disk
      .lock          held (flock) by the process that trains, resumes or edits the run (liveness.py)

    runs/.creating-<id>-<hex>/   a run being created (renamed to its id once whole); .importing-<hex>/ runs
                     being imported; both left only by a killed process, and removed by `nnlab gc`
    runs/.trash/<folder>/        runs moved aside by `nnlab rm` (`restore` brings them back, `rm --purge`
                     deletes them); readers skip every hidden entry of the store
    runs/.cache/     decoded data a reader may keep; `nnlab gc` trims it to gc.CACHE_LIMIT_BYTES
    runs/.sweeps/<sweep id>/   a search's own state: search.json (what `sweep --resume` repeats) and
                     study.db (the Optuna study, SQLite); the points' runs are ordinary run folders

Writes are crash-safe: a run folder appears complete with `run.json` (renamed into place), JSON files are
replaced atomically (a temporary file is removed if the write fails), and metric rows are whole lines.
Reading is tolerant: a folder that is not a readable run is reported as a warning, never an exception.
Torch is imported only when weights are saved or loaded.
"""

from __future__ import annotations

import json
import math
import os
import re
import secrets
from datetime import datetime, timezone
from pathlib import Path

from nnlab.core.records import FORMAT_VERSION  # noqa: F401 - re-exported: the format's version, next to its names

RUN_FILE = "run.json"
SPEC_FILE = "spec.yaml"
METRICS_FILE = "metrics.csv"
SUMMARY_FILE = "summary.json"
MODELS_DIR = "models"
ERRORS_DIR = "errors"
PREDICTIONS_DIR = "predictions"
CHECKPOINTS_DIR = "checkpoints"
CURVES_FILE = "curves.png"
LR_FIND_FILE = "lr_find.csv"  # `nnlab lr-find`: one row per learning rate tried
RESERVE_FILE = ".reserve"
RESERVE_BYTES = 256 * 1024
TRASH_DIR = ".trash"
CACHE_DIR = ".cache"
SWEEPS_DIR = ".sweeps"  # + <sweep id>/: a search's state, beside (never inside) its points' run folders
SEARCH_FILE = "search.json"
STUDY_FILE = "study.db"
STAGING_PREFIX = ".creating-"  # + <id>-<hex>: a new run's folder before its rename into place
IMPORTING_PREFIX = ".importing-"  # + <hex>: an archive's runs being extracted before their rename
RUNS_DIR_ENV = "NNLAB_RUNS_DIR"
ID_TIME_FORMAT = "%Y%m%d-%H%M%S"  # a run id's time: <name>-<time>-<4 hex>, written by writer.py
LAST_REF = re.compile(r"^last(?:~(\d+))?$")  # `last`, `last~N`: the reader's newest runs


def store_path(option: str | Path | None = None) -> Path:
    """The run store: the `--runs-dir` option, else $NNLAB_RUNS_DIR, else ./runs."""
    return Path(option or os.environ.get(RUNS_DIR_ENV) or "runs")


def sweep_path(store: Path, sweep_id: str) -> Path:
    """The folder a sweep keeps its own state in (created by whoever writes that state)."""
    return store / SWEEPS_DIR / sweep_id


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")  # orders runs started in one second


def write_atomic(path: Path, text: str | bytes) -> None:
    """Replace `path` with `text` in one step; on failure (a full disk) no temporary file is left. The one
    writer of nnlab's output files (run files, curves.png, `init`'s spec): a reader never sees half a file,
    and a symlink at `path` is replaced by the file, never written through (its target is left as it was)."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "xb") as f:  # "x": fails on anything already there, a planted symlink included
            f.write(text if isinstance(text, bytes) else text.encode())
        os.replace(tmp, path)
    except FileExistsError:
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def to_json(data: object) -> str:
    """JSON as nnlab writes it: never `NaN` or `Infinity` (they become null), which strict readers reject."""
    return json.dumps(_finite(data), indent=2, sort_keys=False, default=_json_default, allow_nan=False) + "\n"


def _finite(value: object) -> object:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _json_default(value: object) -> object:
    # numpy scalars and Paths reach summaries through metrics and specs.
    if hasattr(value, "item"):
        return _finite(value.item())
    return str(value)
