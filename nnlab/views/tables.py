"""Rich renderables for `nnlab runs` and `nnlab compare`, and the cell helpers the other views share
(`pair.py` for `compare A B`, `show.py` for `show`); built and returned, the caller prints.

The tables are `grid.Grid`s (fast for 1,000 runs, fitted to the console width: long text cut, the least
important columns left out, no row ever wrapped, no number ever cut). Settings are left out before any
metric. Numbers are right-justified; with repeats a metric reads `mean ± sd`; the best value of each
validation column (the split decisions read) is highlighted.
"""

from __future__ import annotations

import math
import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Iterable, Optional

from rich.console import RenderableType
from rich.text import Text

from nnlab.report.compare import DELTA_SUFFIX, Comparison, best_rows, noise_lines
from nnlab.views.grid import Col, Grid
from nnlab.core.numbers import format_spread, format_value, stored_float
from nnlab.core.columns import higher_is_better, split_column, SD_SUFFIX, monitor_metric
from nnlab.report.rows import Row, run_monitor
from nnlab.core.settings import short_keys

if TYPE_CHECKING:
    from nnlab.runstore import Run

BEST = "bold green"
BETTER, WORSE = "green", "red"
SMOKE_STYLE = "yellow"
STATUS_STYLES = {"completed": "green", "running": "cyan", "interrupted": "yellow", "failed": "red",
                 "diverged": "red"}
# When the width is short, columns go lowest priority first: seconds, epochs, settings, then the metrics.
PRIORITY = {"secs": 1, "ep": 2, "setting": 3, "delta": 4, "val": 7, "test": 6, "status": 8, "model": 9}


def status_styles(statuses: Iterable[str]) -> list[Optional[str]]:
    return [STATUS_STYLES.get(s.split()[0] if s else s) for s in statuses]


def status_text(status: str, smoke: bool) -> str:
    return f"{status} smoke" if smoke else status


def seconds(value: object) -> str:
    """Train seconds: `0.03`, `1.60`, `12.5`, `125`."""
    value = stored_float(value)
    if math.isnan(value):
        return ""
    return f"{value:.2f}" if abs(value) < 10 else f"{value:.1f}" if abs(value) < 100 else f"{value:.0f}"


def duration(seconds: Optional[float]) -> str:
    """`12.3s`, `4m05s`, `1h02m`."""
    if seconds is None or math.isnan(seconds):
        return ""
    if seconds < 60:
        return f"{seconds:.1f}s"
    if seconds < 3600:
        return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"
    return f"{int(seconds // 3600)}h{int(seconds % 3600 // 60):02d}m"


def metric_cell(row: Row, column: str, signed: bool = False) -> str:
    """A metric of a row, as `mean ± sd` where the row is a mean over repeats."""
    if (row.get("repeats") or 1) > 1:
        return format_spread(row.get(column, math.nan), row.get(column + SD_SUFFIX), signed=signed)
    return format_value(stored_float(row.get(column)), signed=signed)


def started_local(iso: str, with_year: bool = False) -> str:
    """An ISO UTC time as short local time: `01-05 14:03` (or with the year)."""
    try:
        when = datetime.fromisoformat(iso)
    except (TypeError, ValueError):
        return iso or ""
    when = (when if when.tzinfo else when.replace(tzinfo=timezone.utc)).astimezone()
    return when.strftime("%Y-%m-%d %H:%M" if with_year else "%m-%d %H:%M")


def _epoch(iso: str) -> float:
    try:
        return datetime.fromisoformat(iso).timestamp()
    except ValueError:
        return time.time()


# ---------------------------------------------------------------- nnlab runs

def runs_table(rows: list[Row], store: str = "runs") -> RenderableType:
    """One line per run, newest first: the best model on the monitored validation metric, its validation
    score (what chose it) and its test score (the final report). The id starts with the run's name, so the
    name and the list of models have no column here (they have in csv and json)."""
    if not rows:
        return Text(f"No runs in {store}. Train one with `nnlab train SPEC`.")
    now = time.time()
    monitors = {r["monitor"] for r in rows}
    metric = monitor_metric(next(iter(monitors))) if len(monitors) == 1 else None
    with_year = len({r["started_at"][:4] for r in rows}) > 1
    took = []
    for r in rows:
        if r["status"] == "running" and math.isnan(r["duration_seconds"]):
            took.append(duration(now - _epoch(r["started_at"])) + "…" if r["started_at"] else "")
        else:
            took.append(duration(r["duration_seconds"]))
    suffix = ["" if metric else f" {monitor_metric(r['monitor'])}" for r in rows]
    vals = [_best_cell(r, "best_val", s) for r, s in zip(rows, suffix)]
    tests = [_best_cell(r, "best_test", s) for r, s in zip(rows, suffix)]
    statuses = [status_text(r["status"], r["smoke"]) for r in rows]
    columns = [
        Col("id", [r["id"] for r in rows], min_width=40, max_width=40, priority=9, keep_end=True),
        Col("status", statuses, status_styles(statuses), min_width=max(map(len, statuses)), priority=8),
        Col("started", [started_local(r["started_at"], with_year) for r in rows], min_width=16, priority=5),
        Col("took", took, right=True, priority=4),
        Col("best", [r["best_model"] or "" for r in rows], min_width=6, max_width=20, priority=7),
        *([Col("N", [str(r["repeats"] or "") for r in rows], right=True, priority=3)]
          if any((r["repeats"] or 1) > 1 for r in rows) else []),
        Col(f"val {metric}" if metric else "val", vals, right=True, priority=6),
        Col(f"test {metric}" if metric else "test", tests, right=True, priority=7),
        *([Col("note", [r["note"] for r in rows], min_width=8, max_width=60, priority=2)]
          if any(r["note"] for r in rows) else []),
        *([Col("tags", [",".join(r.get("tags") or []) for r in rows], min_width=6, max_width=30, priority=2)]
          if any(r.get("tags") for r in rows) else []),
    ]
    return Grid(columns)


def _best_cell(row: Row, key: str, suffix: str) -> str:
    value = stored_float(row[key])
    if math.isnan(value):
        return ""
    spread = stored_float(row.get(key + SD_SUFFIX)) if (row.get("repeats") or 1) > 1 else math.nan
    return (format_value(value) if math.isnan(spread) else format_spread(value, spread)) + suffix


# ---------------------------------------------------------------- nnlab compare

def compare_table(comparison: Comparison, shown_metrics: Optional[list[str]] = None,
                  extra_notes: Optional[list[str]] = None) -> RenderableType:
    """One row per (run, model) under a heading line per run (its id, note, smoke): the settings that
    differ, the best epoch, each metric per split (`mean ± sd` with repeats) with the difference to the
    run's baseline, train seconds; under it what is within noise and what the store knows about the test
    split. Without `shown_metrics`: the monitored metric and the spec's first other metric, on validation,
    and the other metric's test score and its difference to the baseline (the loss's only with --metric)."""
    rows = comparison.rows
    if not rows:
        return Text("No runs to compare." if not comparison.runs else "No model rows to compare.")
    metrics = shown_metrics or default_metrics(comparison)
    columns, sections = _row_heads(comparison)
    columns += _setting_cols(comparison)
    columns.append(Col("ep", [format_value(r["best_epoch"], None) for r in rows], right=True, priority=PRIORITY["ep"]))
    if comparison.repeated:
        columns.append(Col("N", [str(r.get("repeats") or 1) for r in rows], right=True, priority=PRIORITY["ep"]))
    columns += _metric_cols(comparison, metrics, compact=not shown_metrics)
    columns.append(Col("secs", [seconds(r["train_seconds"]) for r in rows], right=True, priority=PRIORITY["secs"]))
    return Grid(columns, notes=_compare_notes(comparison, metrics, extra_notes or []), sections=sections)


def _row_heads(comparison: Comparison) -> tuple[list[Col], dict[int, list[tuple[str, Optional[str]]]]]:
    """The run (as a heading line per run, or a column when --sort interleaves runs), model and status."""
    rows = comparison.rows
    starts = [i for i, r in enumerate(rows) if i == 0 or r["run"] != rows[i - 1]["run"]]
    runs = {run.folder: run for run in comparison.runs}
    columns, sections = [], {}
    if len(starts) == len({r["run"] for r in rows}):  # not interleaved by --sort
        sections = {i: [(rows[i]["run"], "bold"), *([("smoke run", SMOKE_STYLE)] if _smoke(runs, rows[i]) else []),
                        (runs[rows[i]["run"]].note if rows[i]["run"] in runs else "", "dim")] for i in starts}
    else:
        columns.append(Col("run", [r["run"] for r in rows], min_width=10, max_width=40, keep_end=True, priority=9))
    # a cut model name could read as another model's: a column is left out rather than a name cut
    columns.append(Col("model", [r["model"] for r in rows], ["dim" if r["model"] == "baseline" else None for r in rows],
                       min_width=20, max_width=20, priority=PRIORITY["model"]))
    statuses = [status_text(str(r.get("halved") or r["status"]), _smoke(runs, r)) for r in rows]
    if any(s != "completed" for s in statuses):
        columns.append(Col("status", statuses, status_styles(statuses), min_width=max(map(len, statuses)),
                           priority=PRIORITY["status"]))
    return columns, sections


def _smoke(runs: dict[str, Run], row: Row) -> bool:
    return row["run"] in runs and runs[row["run"]].smoke


def _setting_cols(comparison: Comparison) -> list[Col]:
    short = short_keys(comparison.settings)
    columns = []
    for key in comparison.settings:
        values = [r[key] for r in comparison.rows]
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
        # a setting is cut only if it is long text, from the start: a path differs in its end
        columns.append(Col(short[key], [format_value(v, None) for v in values], right=numeric, min_width=12,
                           max_width=24, priority=PRIORITY["setting"], keep_end=True))
    return columns


def _metric_cols(comparison: Comparison, metrics: list[str], compact: bool) -> list[Col]:
    rows = comparison.rows
    best = _best_by_data(comparison)
    delta_split = _delta_split(comparison)
    columns = []
    for metric in metrics:
        for col in [c for c in comparison.metric_columns if split_column(c)[1] == metric]:
            split = split_column(col)[0]
            if compact and split != comparison.split and metric == "loss" and len(metrics) > 1:
                continue  # by default the loss is shown on validation only: the other metric's test is the report
            columns.append(Col(split or "", [metric_cell(r, col) for r in rows],
                               [BEST if i in best.get(col, ()) else None for i in range(len(rows))],
                               right=True, priority=PRIORITY.get(split or "", 6), group=metric))
        if not (compact and metric == "loss" and len(metrics) > 1):
            columns.append(_delta_col(rows, f"{delta_split}_{metric}{DELTA_SUFFIX}", metric))
    return columns


def _best_by_data(comparison: Comparison) -> dict[str, set[int]]:
    """The best value of each column within each data set: a score on other data is no rival."""
    rows = comparison.rows
    best: dict[str, set[int]] = {}
    for _, runs in comparison.data_groups or [("", [r["run"] for r in rows])]:
        at = [i for i, r in enumerate(rows) if r["run"] in runs]
        for col, positions in best_rows(comparison.metric_columns, [rows[i] for i in at], comparison.split).items():
            best.setdefault(col, set()).update(at[p] for p in positions)
    return best


def _delta_split(comparison: Comparison) -> str:
    return split_column(comparison.metric_columns[-1])[0] or "test" if comparison.metric_columns else "test"


def _compare_notes(comparison: Comparison, metrics: list[str], extra: list[str]) -> list[str]:
    notes = [n for n in [comparison.note] if n]
    short = short_keys(comparison.settings)
    shortened = [f"{short[k]} = {k}" for k in comparison.settings if short[k] != k]
    if shortened:
        notes.append("settings: " + ", ".join(shortened))
    if not comparison.settings and len(comparison.rows) > 1 and not comparison.note:
        notes.append("No setting differs between these rows.")
    rest = [m for m in comparison.metrics if m not in metrics]
    if rest:
        notes.append(f"more metrics: {', '.join(rest)} (--metric NAME, or --format csv for all)")
    notes.append(f"Δ base: {_delta_split(comparison)} difference to the same run's baseline; bold green: the best "
                 f"{comparison.split} value of a column" + (" on each data set" if len(comparison.data_groups) > 1
                                                             else "") + ("; N: repeats, mean ± sd" if comparison.repeated else ""))
    return [*notes, *noise_lines(comparison), *extra]


def _delta_col(rows: list[Row], col: str, metric: str) -> Col:
    higher = higher_is_better(col.removesuffix(DELTA_SUFFIX))
    values = [stored_float(r.get(col)) for r in rows]
    styles = [None if math.isnan(v) or v == 0 or higher is None else (BETTER if (v > 0) == higher else WORSE)
              for v in values]
    return Col("Δ base", [format_value(v, signed=True) for v in values], styles, right=True,
               priority=PRIORITY["delta"], group=metric)


def default_metrics(comparison: Comparison) -> list[str]:
    """What the table shows without `--metric`: the monitored metric and the first other one."""
    monitors = [monitor_metric(run_monitor(r)) for r in comparison.runs[:1]]
    first = [m for m in comparison.metrics if m not in monitors][:1]
    return [m for m in [*monitors, *first] if m in comparison.metrics] or comparison.metrics[:2]
