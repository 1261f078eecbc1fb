"""The run store: the only package that knows file names and layout under `runs/` (layout.py), writes run
folders (writer.py) and reads them back (reader.py), with checkpoints, metrics.csv history and liveness.

May import: core and nnlab.errors only. Never torch at import time, the train side or the read side above it."""

from nnlab.runstore.layout import CURVES_FILE, FORMAT_VERSION, RUNS_DIR_ENV, now_iso, store_path
from nnlab.runstore.reader import Run, curves_path, list_runs, read_run, resolve_run
from nnlab.runstore.writer import RunWriter, check_store

__all__ = ["CURVES_FILE", "FORMAT_VERSION", "RUNS_DIR_ENV", "Run", "RunWriter", "check_store", "curves_path",
           "list_runs", "now_iso", "read_run", "resolve_run", "store_path"]
