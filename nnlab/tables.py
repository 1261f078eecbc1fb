"""Rich renderables for `nnlab runs`, `compare`, `compare A B` and `show`; built and returned, the caller prints.

The tables are `grid.Grid`s (fast for 1,000 runs, fitted to the console width: long text cut, the least
important columns left out, no row ever wrapped); numbers are right-justified and the best value of each
metric column is highlighted.
"""

from __future__ import annotations

import math
import os
import time
from datetime import datetime, timezone
from typing import Any, Iterable

from rich.console import Group
from rich.text import Text

from nnlab import compare
from nnlab.compare import DELTA_SUFFIX, Comparison, Pair, higher_is_better
from nnlab.formats import format_value
from nnlab.grid import Col, Grid
from nnlab.runstore import Run

BEST = "bold green"
BETTER, WORSE = "green", "red"
STATUS_STYLES = {"completed": "green", "running": "cyan", "interrupted": "yellow", "failed": "red",
                 "diverged": "red"}
SPARKS = "▁▂▃▄▅▆▇█"


def _status_styles(statuses: Iterable[str]) -> list[str | None]:
    return [STATUS_STYLES.get(s) for s in statuses]


def seconds(value: Any) -> str:
    """Train seconds: `0.03`, `1.60`, `12.5`, `125`."""
    value = compare.to_float(value)
    if math.isnan(value):
        return ""
    return f"{value:.2f}" if abs(value) < 10 else f"{value:.1f}" if abs(value) < 100 else f"{value:.0f}"


def duration(seconds: float) -> str:
    """`12.3s`, `4m05s`, `1h02m`."""
    if seconds is None or math.isnan(seconds):
        return ""
    if seconds < 60:
        return f"{seconds:.1f}s"
    if seconds < 3600:
        return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"
    return f"{int(seconds // 3600)}h{int(seconds % 3600 // 60):02d}m"


# ---------------------------------------------------------------- nnlab runs

def runs_table(rows: list[dict[str, Any]], store: str = "runs") -> Any:
    """One line per run, newest first; the test score is the best model's, on the monitored metric. The id
    starts with the run's name, so the name has no column of its own here (it has in csv and json)."""
    if not rows:
        return Text(f"No runs in {store}. Train one with `nnlab train SPEC`.")
    now = time.time()
    monitors = {r["monitor"] for r in rows}
    metric = compare.monitor_metric(next(iter(monitors))) if len(monitors) == 1 else None
    with_year = len({r["started_at"][:4] for r in rows}) > 1
    took = []
    for r in rows:
        if r["status"] == "running" and math.isnan(r["duration_seconds"]):
            took.append(duration(now - _epoch(r["started_at"])) + "…" if r["started_at"] else "")
        else:
            took.append(duration(r["duration_seconds"]))
    scores = ["" if math.isnan(r["best_test"]) else format_value(r["best_test"]) + (
        "" if metric else f" {compare.monitor_metric(r['monitor'])}") for r in rows]
    statuses = [r["status"] for r in rows]
    columns = [
        Col("id", [r["id"] for r in rows], min_width=40, max_width=40, priority=9, keep_end=True),
        Col("status", statuses, _status_styles(statuses), min_width=11, priority=8),
        Col("started", [started_local(r["started_at"], with_year) for r in rows], min_width=16, priority=5),
        Col("took", took, right=True, priority=4),
        Col("models", [str(len(r["models"])) for r in rows], right=True, min_width=6, priority=2),
        Col("best", [r["best_model"] or "" for r in rows], min_width=6, max_width=20, priority=7),
        Col(f"test {metric}" if metric else "test", scores, right=True, priority=7),
        Col("note", [r["note"] for r in rows], min_width=8, max_width=60, priority=1),
    ]
    return Grid(columns)


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


# ---------------------------------------------------------------- nnlab compare

def short_keys(keys: list[str]) -> dict[str, str]:
    """Each dotted key's shortest ending that no other key shares: `train.optimizer.lr` -> `lr`."""
    short = {}
    for key in keys:
        parts = key.split(".")
        for n in range(1, len(parts) + 1):
            ending = ".".join(parts[-n:])
            if sum(1 for k in keys if k == ending or k.endswith("." + ending)) == 1:
                break
        short[key] = ending
    return short


def compare_table(comparison: Comparison, shown_metrics: list[str] | None = None) -> Any:
    """One row per (run, model) under a heading line per run (its id and note): the settings that differ, the
    best epoch, each metric per split with the difference to the run's baseline, train seconds. The best
    value of each metric column is in bold green. Without `shown_metrics`, the monitored metric (val and
    test) and the spec's first metric (test) are shown."""
    rows = comparison.rows
    if not rows:
        return Text("No runs to compare." if not comparison.runs else "No model rows to compare.")
    compact = not shown_metrics
    metrics = shown_metrics or default_metrics(comparison)
    best = compare.best_rows(comparison.metric_columns, rows)
    starts = [i for i, r in enumerate(rows) if i == 0 or r["run"] != rows[i - 1]["run"]]
    grouped = len(starts) == len({r["run"] for r in rows})  # not interleaved by --sort
    columns, sections = [], {}
    if grouped:  # each run's id and note on a heading line above its rows
        notes_of = {run.id: run.note for run in comparison.runs}
        sections = {i: [(rows[i]["run"], "bold"), (notes_of.get(rows[i]["run"], ""), "dim")] for i in starts}
    else:
        columns.append(Col("run", [r["run"] for r in rows], min_width=10, max_width=40, keep_end=True, priority=9))
    # a cut model name could read as another model's: a column is left out rather than a name cut
    columns.append(Col("model", [r["model"] for r in rows], ["dim" if r["model"] == "baseline" else None for r in rows],
                       min_width=20, max_width=20, priority=9))
    statuses = [str(r["status"]) for r in rows]
    if any(s != "completed" for s in statuses):
        columns.append(Col("status", statuses, _status_styles(statuses), min_width=9, priority=6))
    short = short_keys(comparison.settings)
    for key in comparison.settings:
        values = [r[key] for r in rows]
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
        # a setting is cut only if it is long text, from the start: a path differs in its end
        columns.append(Col(short[key], [format_value(v, None) for v in values], right=numeric, min_width=12,
                           max_width=24, priority=7, keep_end=True))
    columns.append(Col("ep", [format_value(r["best_epoch"], None) for r in rows], right=True, priority=4))
    delta_split = comparison.metric_columns[-1].split("_", 1)[0] if comparison.metric_columns else "test"
    for metric in metrics:
        for col in [c for c in comparison.metric_columns if c.split("_", 1)[1] == metric]:
            split = col.split("_", 1)[0]
            if compact and split == "val" and metric != metrics[0] and f"test_{metric}" in comparison.metric_columns:
                continue  # by default validation is shown for the monitored metric only: it chose the best epoch
            columns.append(Col(split, [format_value(r[col]) for r in rows],
                               [BEST if i in best.get(col, ()) else None for i in range(len(rows))],
                               right=True, priority=7 if split == "test" else 6, group=metric))
        columns.append(_delta_col(rows, f"{delta_split}_{metric}{DELTA_SUFFIX}", metric))
    columns.append(Col("secs", [seconds(r["train_seconds"]) for r in rows], right=True, priority=3))
    notes = [n for n in [comparison.note] if n]
    shortened = [f"{short[k]} = {k}" for k in comparison.settings if short[k] != k]
    if shortened:
        notes.append("settings: " + ", ".join(shortened))
    if not comparison.settings and len(rows) > 1 and not comparison.note:
        notes.append("No setting differs between these rows.")
    rest = [m for m in comparison.metrics if m not in metrics]
    if rest:
        notes.append(f"more metrics: {', '.join(rest)} (--metric NAME, or --format csv for all)")
    notes.append(f"Δ base: {delta_split} difference to the same run's baseline; bold green: the best of a column")
    return Grid(columns, notes=notes, sections=sections)


def _delta_col(rows: list[dict[str, Any]], col: str, metric: str) -> Col:
    higher = higher_is_better(col)
    values = [r.get(col, math.nan) for r in rows]
    styles = [None if math.isnan(v) or v == 0 or higher is None else (BETTER if (v > 0) == higher else WORSE)
              for v in values]
    return Col("Δ base", [format_value(v, signed=True) for v in values], styles, right=True, priority=5,
               group=metric)


def default_metrics(comparison: Comparison) -> list[str]:
    """What the table shows without `--metric`: the monitored metric and the first other one."""
    monitors = [compare.monitor_metric(compare.run_monitor(r)) for r in comparison.runs[:1]]
    first = [m for m in comparison.metrics if m not in monitors][:1]
    return [m for m in [*monitors, *first] if m in comparison.metrics] or comparison.metrics[:2]


# ---------------------------------------------------------------- nnlab compare A B

def pair_view(pair: Pair) -> Group:
    """What differs between two runs, what it did to each model's metrics, and when the curves parted."""
    parts: list[Any] = [Text.assemble(("A ", "bold"), pair.a.id, "   ", ("B ", "bold"), pair.b.id)]
    if not pair.settings:
        parts.append(Text("No setting differs between A and B: their metric differences are run-to-run noise."))
    else:
        keys = [s["key"] for s in pair.settings]
        notes = ["Only the seed differs: the metric differences are run-to-run noise."] if keys == ["seed"] else []
        parts.append(Grid([Col("setting", keys, max_width=40, min_width=12, priority=9),
                           Col("A", [format_value(s["a"], None) for s in pair.settings], max_width=40, priority=8),
                           Col("B", [format_value(s["b"], None) for s in pair.settings], max_width=40, priority=8)],
                          title="\nsettings that differ", notes=notes))
    parts.append(_pair_metrics(pair.metrics))
    for model, (a, b) in pair.curves.items():
        if max(len(a), len(b)) > 1:  # a one-epoch model (the L-BFGS baseline) has no curve to show
            parts.append(curve_view(model, pair.monitor, a, b))
    for side, models in pair.only_in.items():
        if models:
            parts.append(Text(f"only in {side.upper()}: {', '.join(models)}", style="dim"))
    return Group(*parts)


def _pair_metrics(table: list[dict[str, Any]]) -> Any:
    if not table:
        return Text("\nA and B have no model in common.")
    model_cells = [r["model"] if i == 0 or r["model"] != table[i - 1]["model"] else "" for i, r in enumerate(table)]
    cells: dict[str, list[str]] = {"a": [], "b": [], "delta": []}
    for row in table:
        for key in cells:
            value = row[key]
            if row["metric"] == "best_epoch":
                text = "" if math.isnan(value) else f"{int(value):+d}" if key == "delta" else str(int(value))
            elif row["metric"] == "train_seconds":
                text = seconds(value) if key != "delta" or math.isnan(value) else f"{value:+.2f}"
            else:
                text = format_value(value, signed=key == "delta")
            cells[key].append(text)
    verdicts = [r["verdict"] for r in table]
    return Grid([Col("model", model_cells, max_width=20, priority=9),
                 Col("metric", [r["metric"] for r in table], max_width=24, priority=9),
                 Col("A", cells["a"], right=True, priority=8),
                 Col("B", cells["b"], right=True, priority=8),
                 Col("B−A", cells["delta"], right=True, priority=7),
                 Col("", verdicts, [{"better": BETTER, "worse": WORSE}.get(v) for v in verdicts], priority=6)],
                title="\nmetrics (best epoch of each model)")


def sparkline(values: list[float], low: float, high: float, width: int = 50) -> str:
    """Values as block characters on a shared scale (the last value of each bucket when there are more than `width`)."""
    if len(values) > width:
        values = [values[min(len(values) - 1, math.ceil((i + 1) * len(values) / width) - 1)] for i in range(width)]
    span = high - low
    return "".join(" " if math.isnan(v) else SPARKS[0 if span <= 0 else min(7, int((v - low) / span * 8))]
                   for v in values)


def curve_view(model: str, monitor: str, a: dict[int, float], b: dict[int, float], samples: int = 8) -> Group:
    """A model's monitored validation curve in A and B: sparklines on one scale, and a few epochs with B−A."""
    values = [v for v in [*a.values(), *b.values()] if not math.isnan(v)]
    if not values:
        return Group(Text(f"\n{model}: no {monitor} per epoch in metrics.csv", style="dim"))
    low, high = min(values), max(values)
    epochs = sorted(set(a) | set(b))
    title = Text.assemble((f"\n{model}: {monitor} per epoch", "bold"),
                          f"  ({'higher' if higher_is_better(monitor) else 'lower'} is better; "
                          f"▁ {format_value(low)} … █ {format_value(high)})")
    sparks = [Text.assemble((f"{name} ", "bold"),
                            sparkline([curve.get(e, math.nan) for e in epochs], low, high).rstrip())
              for name, curve in (("A", a), ("B", b))]
    picks = epochs if len(epochs) <= samples else sorted(
        {epochs[round(i * (len(epochs) - 1) / (samples - 1))] for i in range(samples)})
    cols = [Col("epoch", ["A", "B", "B−A"], min_width=5, priority=9)]
    for epoch in picks:
        va, vb = a.get(epoch, math.nan), b.get(epoch, math.nan)
        cols.append(Col(str(epoch), [format_value(va), format_value(vb), format_value(vb - va, signed=True)],
                        right=True, priority=1))
    return Group(title, *sparks, Grid(cols))


# ---------------------------------------------------------------- nnlab show

def show_view(run: Run) -> Group:
    """One run: status, note, what the spec trained, each model's results, how far it got, its files."""
    meta, spec, summary = run.meta, run.spec, run.summary
    status = run.status
    head = Text.assemble((run.id, "bold"), "  ", (status, STATUS_STYLES.get(status, "")),
                         f"  started {started_local(run.started_at, True)}",
                         f"  took {duration(compare.to_float(meta.get('duration_seconds')))}"
                         if meta.get("duration_seconds") is not None else "")
    parts: list[Any] = [head]
    if run.note:
        parts.append(Text(f"note: {run.note}"))
    if meta.get("error"):
        parts.append(Text(f"error: {meta['error']}", style="red"))
    facts = [f"seed {meta.get('seed', spec.get('seed'))}", f"device {meta.get('device') or '?'}"]
    if meta.get("git_commit"):
        facts.append(f"git {str(meta['git_commit'])[:10]}")
    parts.append(Text("  ".join(facts), style="dim"))
    parts.append(Text("\n".join(spec_lines(spec, (summary or {}).get("task")))))
    parts.append(_models_grid(run))
    for name, result in ((summary or {}).get("models") or {}).items():
        for line in (result or {}).get("diagnosis") or []:
            parts.append(Text(f"{name}: {line}"))
        if (result or {}).get("message"):
            parts.append(Text(f"{name}: {result['message']}", style="red"))
    for gate in (summary or {}).get("expect") or []:
        mark, style = ("pass", "green") if gate.get("passed") else ("MISS", "red")
        parts.append(Text.assemble((mark, style), f"  {gate.get('key')} {gate.get('rule')}  (got "
                                   f"{format_value(compare.to_float(gate.get('value')))})"))
    if summary is None:
        parts.append(_progress(run, status))
    files = [str(path.relative_to(run.path)) for path in run.files().values()]
    parts.append(Text(f"\nfiles in {_short_path(run.path)}{os.sep}\n" + "\n".join(f"  {name}" for name in files),
                      overflow="fold"))
    return Group(*parts)


def _short_path(path: Any) -> str:
    """A path relative to the working directory when it lies below it (`runs/spam-...`), else as it is."""
    try:
        return str(path.resolve().relative_to(os.getcwd()))
    except ValueError:
        return str(path)


def spec_lines(spec: dict[str, Any], task: str | None = None) -> list[str]:
    """The spec in a few lines: data, baseline, models, training defaults, metrics."""
    data = spec.get("data") or {}
    split = data.get("split") or {}
    source = data.get("path") or (f"builtin {data['builtin']}" if data.get("builtin") else "?")
    lines = [f"data     {source} -> {data.get('target', '?')} ({task or data.get('task', 'auto')}); "
             f"val {split.get('val', '?')}, test {split.get('test', '?')}; scale {data.get('scale', '?')}"]
    baseline = spec.get("baseline")
    lines.append("baseline " + (_pairs(baseline) if isinstance(baseline, dict) else "none"))
    train = spec.get("train") or {}
    optimizer = train.get("optimizer") or {}
    lines.append(f"train    {train.get('epochs', '?')} epochs, batch {train.get('batch_size', '?')}, "
                 f"{optimizer.get('name', '?')} lr {format_value(optimizer.get('lr'), None)}"
                 + (f", scheduler {train['scheduler'].get('name')}" if isinstance(train.get("scheduler"), dict) else ""))
    for model in spec.get("models") or []:
        if isinstance(model, dict):
            own = _pairs({k: v for k, v in model.items() if k not in ("name", "kind", "train")})
            changed = _changed(train, model.get("train") or {})
            extra = f"; {_pairs(compare.flatten(changed, 'train'))}" if changed else ""
            lines.append(f"model    {model.get('name')}: {model.get('kind')} {own}{extra}")
    lines.append(f"metrics  {', '.join(spec.get('metrics') or [])}; monitor {spec.get('monitor', 'val_loss')}")
    return lines


def _pairs(settings: dict[str, Any]) -> str:
    return " ".join(f"{k}={format_value(v, None)}" for k, v in settings.items())


def _changed(base: dict[str, Any], merged: dict[str, Any]) -> dict[str, Any]:
    """The parts of a model's merged train settings that differ from the spec's train defaults."""
    out = {}
    for key, value in merged.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            inner = _changed(base[key], value)
            if inner:
                out[key] = inner
        elif base.get(key, object()) != value:
            out[key] = value
    return out


def _models_grid(run: Run) -> Any:
    rows = compare.model_rows(run)
    if not rows:
        return Text("no model has finished an epoch yet", style="yellow")
    results = (run.summary or {}).get("models") or {}
    watched = compare.monitor_metric(compare.run_monitor(run))
    cols = [Col("model", [r["model"] for r in rows], min_width=8, max_width=20, priority=9),
            Col("kind", [str(r.get("kind") or "") for r in rows], min_width=8, priority=3),
            Col("params", [_given((results.get(r["model"]) or {}).get("params"), None) for r in rows],
                right=True, priority=2),
            Col("ep", [f"{r.get('best_epoch')}/{r.get('epochs_run')}" for r in rows], right=True, priority=5),
            Col(watched, [format_value(r.get(f"val_{watched}", math.nan)) for r in rows], right=True, priority=8,
                group="val")]
    for metric in compare.run_metrics(run):
        cols.append(Col(metric, [format_value(r.get(f"test_{metric}", math.nan)) for r in rows], right=True,
                        priority=7 if metric == watched else 4, group="test"))
    cols.append(Col("secs", [seconds(r.get("train_seconds")) for r in rows], right=True, priority=3))
    cols.append(Col("samples/s", [_given((results.get(r["model"]) or {}).get("samples_per_second"), 0)
                                  for r in rows], right=True, priority=1))
    cols.append(Col("status", [str(r.get("status")) for r in rows], _status_styles(r.get("status") for r in rows),
                    min_width=9, priority=6))
    return Grid(cols, title="\nmodels (ep: best/run; metrics at the best epoch)")


def _given(value: Any, digits: int | None) -> str:
    """A summary number, or nothing where the summary has none (an unfinished run)."""
    return "" if value is None else format_value(value, digits)


def _progress(run: Run, status: str) -> Any:
    rows = compare.progress(run)
    started = [r for r in rows if r["epochs_done"]]
    if not started:
        return Text(f"\n{status}: no epoch recorded yet", style="yellow")
    current = started[-1]
    planned = current["epochs_planned"]
    verb = "is at" if status == "running" else "stopped at"
    head = (f"\n{status}, no summary yet: {verb} {current['model']} epoch {current['epochs_done']}"
            + (f" of {planned}" if planned else ""))
    return Grid([Col("model", [r["model"] for r in rows], priority=9),
                 Col("epochs", [f"{r['epochs_done']}/{r['epochs_planned']}" if r["epochs_planned"] else
                                str(r["epochs_done"]) for r in rows], right=True),
                 Col("last val_loss", [format_value(r["val_loss"]) for r in rows], right=True)], title=head)
