"""`nnlab runs`: one row per run (RUNS_COLUMNS) — status, smoke, sweep, times, the best model on the
monitored validation metric with its validation score (what chose it) and test score (the final report),
each with its spread over repeats."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from nnlab.core.numbers import stored_float
from nnlab.core.columns import higher_is_better, metric_column, SD_SUFFIX, monitor_metric
from nnlab.report.rows import Row, model_rows, result_row, run_monitor, unfinished
from nnlab.runstore import Run

if TYPE_CHECKING:
    import pandas as pd

RUNS_COLUMNS = ["id", "name", "status", "smoke", "sweep", "started_at", "duration_seconds", "models",
                "best_model", "monitor", "repeats", "best_val", "best_val_sd", "best_test", "best_test_sd", "note",
                "tags"]
NAN = math.nan


def as_frame(columns: list[str], rows: list[Row]) -> pd.DataFrame:
    """Rows as a pandas DataFrame with these columns (pandas only when asked: 1,000 runs list without it)."""
    import pandas as pd

    return pd.DataFrame([[row.get(c) for c in columns] for row in rows], columns=columns)


def runs_rows(runs: list[Run]) -> list[Row]:
    """`nnlab runs`, one dict per run (RUNS_COLUMNS): the best model is the best on the monitored validation
    metric, and best_test is its test score on that metric (the final report, not the choice)."""
    rows = []
    for run in runs:
        monitor = run_monitor(run)
        models, best = _best_model(run, monitor)
        test = metric_column("test", monitor_metric(monitor))
        rows.append({"id": run.folder, "name": run.name, "status": run.status, "smoke": run.smoke,
                     "sweep": run.meta.sweep, "started_at": run.started_at,
                     "duration_seconds": stored_float(run.meta.duration_seconds),
                     "models": models, "best_model": best.get("model"), "monitor": monitor,
                     "repeats": best.get("repeats"), "best_val": best.get(monitor, NAN),
                     "best_val_sd": best.get(monitor + SD_SUFFIX, NAN), "best_test": best.get(test, NAN),
                     "best_test_sd": best.get(test + SD_SUFFIX, NAN), "note": run.note,
                     "tags": list(run.meta.tags)})
    return rows


def _best_model(run: Run, monitor: str) -> tuple[list[str], Row]:
    """The run's model names and the row of the best on `monitor` (only that row is built: 1,000 runs)."""
    pick = max if higher_is_better(monitor) else min
    if not unfinished(run):
        metric = monitor_metric(monitor)
        scored = [(stored_float(r.val.get(metric)), r) for r in run.summary.models.values()]
        scored = [(value, r) for value, r in scored if not math.isnan(value)]
        best = result_row(run, pick(scored, key=lambda pair: pair[0])[1]) if scored else {}
        return list(run.summary.models), best
    rows = model_rows(run)
    scored = [r for r in rows if not math.isnan(r.get(monitor, NAN))]
    return [r["model"] for r in rows], pick(scored, key=lambda r: r[monitor]) if scored else {}


def runs_frame(runs: list[Run]) -> pd.DataFrame:
    """`runs_rows` as a pandas DataFrame."""
    return as_frame(RUNS_COLUMNS, runs_rows(runs))
