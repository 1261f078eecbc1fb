"""`nnlab report`: one self-contained HTML file of the selected runs, readable with no network.

Plotly draws the charts (the optional `report` extra): its JavaScript bundle is written inline, and each
chart is a plain figure dict (data + layout) embedded as JSON, built here without plotly's Python figure
classes (validating thousands of figures would cost seconds for 200 runs). Charts inside a closed
<details> are drawn when it is opened, so a report of many runs opens fast.

Everything that comes from a spec, a note or the data is user text: escaped with html.escape in the page,
and the embedded JSON has `<`, `>` and `&` as \\u escapes, so no `</script>` can end its block. Plotly reads
some HTML in labels, so the labels are escaped too.
"""

from __future__ import annotations

import csv
import html
import json
import math
from datetime import datetime, timezone
from itertools import islice
from typing import TYPE_CHECKING, Optional, Sequence

import numpy as np

from nnlab.core.columns import SD_SUFFIX, metric_column, monitor_metric
from nnlab.core.files import DamagedFile
from nnlab.core.jsonvalue import JSONValue as Json
from nnlab.core.messages import shorten
from nnlab.core.numbers import format_value, stored_float
from nnlab.core.records import ModelResult, PerClassResult
from nnlab.core.settings import short_keys
from nnlab.errors import NnlabError
from nnlab.report import classcurves
from nnlab.report.compare import DELTA_SUFFIX, Comparison, best_rows, compare_runs, noise_lines
from nnlab.report.curvedata import Curve, panels, run_curves
from nnlab.report.fingerprints import StoreFacts, data_hash
from nnlab.report.rows import baseline_name, run_monitor
from nnlab.report.runlist import runs_rows
from nnlab.runstore import Run
from nnlab.views.perclass import heading
from nnlab.views.tables import duration, metric_cell, seconds, started_local

if TYPE_CHECKING:
    import pandas as pd


ERRORS_SHOWN = 20  # misclassified examples per model
ERROR_COLUMNS = 10  # of the errors file's columns: row, true, predicted, confidence and the first originals
CURVE_POINTS = 200  # a ROC or precision-recall curve is drawn through at most this many of its points
TEXT_CELL = 300  # characters of a message shown in the errors table
OPEN_DETAILS = 6  # up to this many runs, each run's per-model section is open when the page loads
PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
           "#bcbd22", "#17becf"]
NOT_RECORDED = "not recorded by this run"


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def script_json(value: Json) -> str:
    """JSON safe inside <script>: no NaN (null instead), and no `<`, `>`, `&` that could end the block."""
    try:  # the charts' number lists are finite already (nums): one fast pass
        text = json.dumps(value, separators=(",", ":"), allow_nan=False)
    except ValueError:
        text = json.dumps(_finite(value), separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def nums(values: Sequence[float]) -> list[Json]:
    """A chart's numbers: 6 significant digits (what a plot can show: a smaller file), null where missing."""
    array = np.asarray(values, dtype=float)
    finite = np.isfinite(array)
    rounded = [float(f"{v:.6g}") for v in array[finite]]
    out: list[Json] = [None] * len(array)
    for i, v in zip(np.flatnonzero(finite), rounded):
        out[i] = v
    return out


def _finite(value: Json) -> Json:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


class Page:
    """The figures of one page, each drawn into its <div id>."""

    def __init__(self) -> None:
        self.figures: dict[str, Json] = {}

    def chart(self, data: list[Json], layout: dict[str, Json], css: str = "chart") -> str:
        key = f"chart{len(self.figures)}"
        base: dict[str, Json] = {"margin": {"l": 55, "r": 15, "t": 40, "b": 45}, "template": None,
                                 "legend": {"font": {"size": 10}}, "hovermode": "closest"}
        self.figures[key] = {"data": data, "layout": {**base, **layout}}
        return f'<div class="{css}" id="{key}"></div>'


def report_html(runs: list[Run], store_runs: list[Run], title: str = "nnlab report",
                sweep: Optional[str] = None) -> str:
    """The whole page for `runs` (in compare's order); `store_runs` are every run of the store (for how
    often a test split was seen); `sweep` names the sweep the runs were selected by (its section is shown
    even for one point; any other sweep among the runs gets one from two points on)."""
    from plotly.offline import get_plotlyjs  # the optional `report` extra, only when a report is made

    page = Page()
    comparison = compare_runs(runs)
    facts = StoreFacts(store_runs)
    sections = [_runs_section(runs, facts), _curves_section(page, runs), _compare_section(comparison, facts)]
    for sweep_id in dict.fromkeys(r.meta.sweep for r in runs if r.meta.sweep):  # each sweep among the runs
        points = [r for r in runs if r.meta.sweep == sweep_id]
        if len(points) > 1 or sweep_id == sweep:
            sections.append(_sweep_section(page, compare_runs(points) if len(points) < len(runs) else comparison,
                                           sweep_id))
    sections.append(_data_section(runs, facts))
    sections.append(_models_section(page, runs))
    warnings = [*comparison.warnings]
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    from nnlab.version import __version__

    head = (f"<h1>{esc(title)}</h1><p class=dim>{len(runs)} run(s) · made {esc(when)} by nnlab "
            f"{esc(__version__)}</p>")
    if warnings:
        head += "<ul class=warn>" + "".join(f"<li>{esc(w)}</li>" for w in dict.fromkeys(warnings)) + "</ul>"
    return (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{esc(title)}</title>"
            f"<meta name=viewport content='width=device-width, initial-scale=1'><style>{CSS}</style>"
            f"<script>{get_plotlyjs()}</script></head><body>{head}{''.join(sections)}"
            f"<script type='application/json' id='nnlab-figures'>{script_json(page.figures)}</script>"
            f"<script>{DRAW_JS}</script></body></html>")


# ---------------------------------------------------------------- tables

def _table(heads: Sequence[str], rows: Sequence[Sequence[str]], css: str = "", raw: bool = False) -> str:
    """An HTML table; cells are escaped unless `raw` (cells built here from escaped parts)."""
    cell = (lambda v: v) if raw else esc
    return (f"<div class=scroll><table class='{css}'><thead><tr>" + "".join(f"<th>{esc(h)}</th>" for h in heads) + "</tr></thead><tbody>"
            + "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in row) + "</tr>" for row in rows)
            + "</tbody></table></div>")


def _runs_section(runs: list[Run], facts: StoreFacts) -> str:
    rows = runs_rows(runs)
    body = [[r["id"], r["status"] + (" smoke" if r["smoke"] else ""), started_local(r["started_at"], True),
             duration(stored_float(r["duration_seconds"])), r["best_model"] or "",
             f"{r['monitor']} {metric_cell({'repeats': r['repeats'], 'm': r['best_val'], 'm_sd': r['best_val_sd']}, 'm')}",
             metric_cell({"repeats": r["repeats"], "m": r["best_test"], "m_sd": r["best_test_sd"]}, "m"),
             r["sweep"] or "", str(facts.split_seen(run) or ""), r["note"]] for r, run in zip(rows, runs)]
    return ("<section id=runs><h2>Runs</h2>"
            + _table(["run", "status", "started", "took", "best model", "val (monitored)", "test", "sweep",
                      "test split seen by", "note"], body, "runs") + "</section>")


def _compare_section(comparison: Comparison, facts: StoreFacts) -> str:
    """compare's rows as its table shows them: the changed settings, each metric per split (mean ± sd),
    the difference to the run's baseline, and under it the verdicts in words."""
    rows = comparison.rows
    short = short_keys(comparison.settings)
    best = best_rows(comparison.metric_columns, rows, comparison.split)
    heads = ["run", "model", "kind", "status", *(short[k] for k in comparison.settings), "best/run epochs", "N"]
    for metric in comparison.metrics:
        heads += [c for s in ("val", "test") for c in (f"{s} {metric}", f"{s} {metric} Δ base")
                  if metric_column(s, metric) in comparison.metric_columns]
    heads.append("train s")
    body = []
    for i, row in enumerate(rows):
        cells = [esc(row["run"]), esc(row["model"]), esc(row.get("kind") or ""), esc(row.get("status") or ""),
                 *(esc(format_value(row.get(k), None)) for k in comparison.settings),
                 esc(f"{format_value(row.get('best_epoch'), None)}/{format_value(row.get('epochs_run'), None)}"),
                 esc(row.get("repeats") or 1)]
        for metric in comparison.metrics:
            for split in ("val", "test"):
                col = metric_column(split, metric)
                if col not in comparison.metric_columns:
                    continue
                text = esc(metric_cell(row, col))
                cells.append(f"<b class=best>{text}</b>" if i in best.get(col, ()) else text)
                cells.append(esc(format_value(stored_float(row.get(col + DELTA_SUFFIX)), signed=True)))
        cells.append(esc(seconds(row.get("train_seconds"))))
        body.append(cells)
    notes = [n for n in [comparison.note] if n]
    notes += [f"{short[k]} = {k}" for k in comparison.settings if short[k] != k]
    notes += noise_lines(comparison)
    notes += [f"{run.folder}: note: {run.note}" for run in comparison.runs if run.note]
    notes += facts.lines(comparison.runs)
    notes.append(f"Δ base: the difference to the same run's baseline; bold: the best {comparison.split} value "
                 "of a column; N: repeats (mean ± sd)")
    return ("<section id=compare><h2>Compared (as nnlab compare)</h2>"
            + (_table(heads, body, "compare", raw=True) if rows else "<p>No model rows to compare.</p>")
            + "<ul class=notes>" + "".join(f"<li>{esc(n)}</li>" for n in notes) + "</ul></section>")


# ---------------------------------------------------------------- learning curves

def _rgba(color: str, alpha: float) -> str:
    r, g, b = (int(color[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def curve_traces(curves: list[Curve]) -> list[Json]:
    """Plotly traces: per curve the validation mean (solid), its ±1 sd band with repeats, the train mean
    (dotted), the best epoch (a star) and early stopping's last epoch (an x)."""
    traces: list[Json] = []
    for i, c in enumerate(curves):
        color, group, name = PALETTE[i % len(PALETTE)], f"g{i}", esc(c.label)
        for split in ("val", "train"):
            if split not in c.mean:
                continue
            mean, sd = c.mean[split], c.sd[split]
            if c.members > 1 and split == "val":
                upper = [m + s if math.isfinite(s) else m for m, s in zip(mean, sd)]
                lower = [m - s if math.isfinite(s) else m for m, s in zip(mean, sd)]
                traces.append({"type": "scatter", "x": c.epochs, "y": nums(upper), "mode": "lines", "line": {"width": 0},
                               "legendgroup": group, "showlegend": False, "hoverinfo": "skip"})
                traces.append({"type": "scatter", "x": c.epochs, "y": nums(lower), "mode": "lines", "line": {"width": 0},
                               "fill": "tonexty", "fillcolor": _rgba(color, 0.18), "legendgroup": group,
                               "showlegend": False, "hoverinfo": "skip"})
            suffix = f" ({split}{', mean of ' + str(c.members) if c.members > 1 else ''})"
            traces.append({"type": "scatter", "x": c.epochs, "y": nums(mean), "mode": "lines", "name": name + esc(suffix),
                           "legendgroup": group, "showlegend": split == "val",
                           "line": {"color": color, "width": 2 if split == "val" else 1,
                                    "dash": "solid" if split == "val" else "dot"}})
        marks = [(c.best_epoch, "star", "best epoch"), (c.stopped_at, "x", "early stopping ended training")]
        for epoch, symbol, what in marks:
            value = c.value_at("val", epoch)
            if math.isfinite(value):
                traces.append({"type": "scatter", "x": [epoch], "y": nums([value]), "mode": "markers", "legendgroup": group,
                               "showlegend": False, "name": esc(f"{c.label}: {what} {epoch}"),
                               "marker": {"symbol": symbol, "size": 11, "color": color,
                                          "line": {"width": 1, "color": "#222"}}})
    return traces


def _curves_section(page: Page, runs: list[Run]) -> str:
    charts = []
    metrics = panels(runs)
    per_run = [run_curves(run, metrics) for run in runs]
    for metric in metrics:
        curves = [c for drawn in per_run for c in drawn[metric]]
        if not curves:
            continue
        charts.append(page.chart(curve_traces(curves), {
            "title": {"text": esc(f"{metric} per epoch")}, "xaxis": {"title": {"text": "epoch"}},
            "yaxis": {"title": {"text": esc(metric)}}, "height": 420}, "chart wide"))
    if not charts:
        return "<section id=curves><h2>Learning curves</h2><p>No epochs of a neural model recorded.</p></section>"
    return ("<section id=curves><h2>Learning curves</h2><p class=dim>solid: validation, dotted: train; with repeats "
            "the mean and a ±1 sd band; ★ the best epoch, × where early stopping ended training. Click a legend "
            "entry to hide a run.</p>" + "".join(charts) + "</section>")


# ---------------------------------------------------------------- a sweep

def _sweep_section(page: Page, comparison: Comparison, sweep: str) -> str:
    """Each changed setting's effect on the monitored validation metric: mean ± sd per value and model."""
    monitor = monitor_metric(run_monitor(comparison.runs[0])) if comparison.runs else "loss"
    column = metric_column("val", monitor)
    charts = []
    for key in comparison.settings:
        traces: list[Json] = []
        models = [m for m in dict.fromkeys(r["model"] for r in comparison.rows)]
        for i, model in enumerate(models):
            rows = [r for r in comparison.rows if r["model"] == model and not _missing(r.get(key))]
            if not rows:
                continue
            traces.append({"type": "scatter", "mode": "markers+lines" if len(rows) > 1 else "markers",
                           "name": esc(model), "x": [esc(format_value(r.get(key), None)) for r in rows],
                           "y": nums([stored_float(r.get(column)) for r in rows]),
                           "error_y": {"type": "data", "visible": True,
                                       "array": nums([stored_float(r.get(column + SD_SUFFIX)) for r in rows])},
                           "text": [esc(r["run"]) for r in rows],
                           "marker": {"size": 9, "color": PALETTE[i % len(PALETTE)]}})
        charts.append(page.chart(traces, {"title": {"text": esc(f"{key} → {column}")},
                                          "xaxis": {"title": {"text": esc(key)}, "type": "category"},
                                          "yaxis": {"title": {"text": esc(column)}}, "height": 360}))
    body = "".join(charts) or "<p>No setting differs between the sweep's runs.</p>"
    return (f"<section id=sweep><h2>Sweep {esc(sweep)}</h2><p class=dim>each setting's effect on {esc(column)} "
            "(validation: what decisions read), mean ± sd over repeats; every point's curve is in Learning "
            "curves above.</p>" + body + "</section>")


def _missing(value: object) -> bool:
    """A setting a row does not have (compare fills it with NaN)."""
    return isinstance(value, float) and math.isnan(value)


# ---------------------------------------------------------------- data

def _data_section(runs: list[Run], facts: StoreFacts) -> str:
    rows = []
    for run in runs:
        fingerprint = run.meta.data_fingerprint or {}
        data = run.spec.get("data") if isinstance(run.spec.get("data"), dict) else {}
        seen = facts.split_seen(run)
        rows.append([run.folder, str(data.get("path") or data.get("builtin") or "?"), str(data.get("target", "?")),
                     (data_hash(run) or "")[:16], str(fingerprint.get("rows", "")), str(fingerprint.get("columns", "")),
                     f"seed {fingerprint.get('split_seed', '?')}, val {fingerprint.get('val', '?')}, test "
                     f"{fingerprint.get('test', '?')}", str(fingerprint.get("split", "")),
                     f"test split seen by {seen} run(s)" if seen else "no fingerprint"])
    notes = facts.lines(runs)
    return ("<section id=data><h2>Data</h2>"
            + _table(["run", "data", "target", "sha256", "rows", "columns", "split", "split id", "test split"],
                     rows, "data")
            + "<ul class=notes>" + "".join(f"<li>{esc(n)}</li>" for n in notes) + "</ul></section>")


# ---------------------------------------------------------------- per model

def _models_section(page: Page, runs: list[Run]) -> str:
    parts = []
    for run in runs:
        results = run.summary.models if run.summary else {}
        inner = "".join(_model_block(page, run, result) for result in results.values())
        opened = " open" if len(runs) <= OPEN_DETAILS else ""
        parts.append(f"<details class=run{opened}><summary><b>{esc(run.folder)}</b> <span class=dim>"
                     f"{esc(run.note)}</span></summary>{inner or '<p>No model has a result yet.</p>'}</details>")
    return "<section id=models><h2>Per model</h2>" + "".join(parts) + "</section>"


def _model_block(page: Page, run: Run, result: ModelResult) -> str:
    task = run.summary.task if run.summary else ""
    trained = (f"best epoch {result.best_epoch} of {result.epochs_run}" if result.ensemble is None
               else f"ensemble of {len(result.ensemble)} member(s)")
    head = (f"<h3>{esc(result.name)} <span class=dim>{esc(result.kind)} · {result.params:,} parameters · "
            f"{esc(result.status)} · {trained}</span></h3>")
    verdicts = [*result.diagnosis, *([result.message] if result.message and result.message not in result.diagnosis else [])]
    parts = [head, "<h4>Diagnosis</h4><ul>" + ("".join(f"<li>{esc(v)}</li>" for v in verdicts)
                                              or "<li>no verdicts recorded</li>") + "</ul>"]
    charts = []
    if task != "regression":
        charts.append(_confusion(page, result))
        charts.extend(_prediction_charts(page, run, result.name, task))
    parts.append("<div class=charts>" + "".join(charts) + "</div>")
    parts.append(_per_class_table(result, task, result.name == baseline_name(run)))
    parts.append(_errors_table(run, result.name, task))
    if result.name != baseline_name(run):
        parts.append(_layer_table(run, result.name))
    return "<div class=model>" + "".join(parts) + "</div>"


def _per_class(result: ModelResult, split: str) -> Optional[PerClassResult]:
    """summary.json's per-class results of `split`, None for a run that did not record them."""
    entry = (result.per_class or {}).get(split)
    return entry if entry is not None and entry.labels else None


def _not_recorded(what: str) -> str:
    return f"<div class='chart missing'><p>{esc(what)}: {NOT_RECORDED}</p></div>"


def _confusion(page: Page, result: ModelResult) -> str:
    entry = _per_class(result, "val")
    if entry is None:
        return _not_recorded("confusion matrix")
    labels = [esc(label) for label in entry.labels]
    matrix: list[Json] = [list(row) for row in entry.confusion]
    return page.chart([{"type": "heatmap", "z": matrix, "x": labels, "y": labels, "colorscale": "Blues",
                        "text": matrix, "texttemplate": "%{text}", "hovertemplate": "true %{y}, predicted %{x}: %{z}<extra></extra>"}],
                      {"title": {"text": "confusion matrix (validation)"}, "xaxis": {"title": {"text": "predicted"}, "type": "category"},
                       "yaxis": {"title": {"text": "true"}, "type": "category", "autorange": "reversed"}, "height": 340})


def _per_class_table(result: ModelResult, task: str, baseline: bool) -> str:
    """Per split: the scalar extras and the decision threshold as `nnlab show` words them, then the table."""
    parts = []
    for split in ("val", "test"):
        entry = _per_class(result, split)
        if entry is None:
            continue
        rows = [[label, *(format_value(stored_float(v)) for v in (p, r, f)), format_value(n, None)]
                for label, p, r, f, n in zip(entry.labels, entry.precision, entry.recall, entry.f1, entry.support)]
        parts.append(f"<h4>Per class ({split})</h4><p class=scores>{esc(heading(result, split, task, baseline))}</p>"
                     + _table(["class", "precision", "recall", "F1", "support"], rows))
    return "".join(parts) or f"<p class=dim>per-class results: {NOT_RECORDED}</p>"


def _predictions(run: Run, model: str) -> Optional[pd.DataFrame]:
    """predictions/<model>.csv through the run store, or None where this run (or this nnlab) has none."""
    reader = getattr(run, "predictions", None)
    if reader is None:
        return None
    try:
        frame = reader(model)
    except (FileNotFoundError, DamagedFile, NnlabError, OSError, ValueError):
        return None
    return frame if frame is not None and len(frame) else None


def _prediction_charts(page: Page, run: Run, model: str, task: str) -> list[str]:
    frame = _predictions(run, model)
    if frame is None:
        return [_not_recorded("ROC and precision-recall curves" if task == "binary" else "calibration curve"),
                *([_not_recorded("calibration curve")] if task == "binary" else [])]
    columns = {c: frame[c].to_numpy() for c in frame.columns}
    if "split" in columns and (columns["split"] == "val").any():
        val = columns["split"] == "val"
        columns = {c: v[val] for c, v in columns.items()}
    target = columns["target"].astype(str)
    charts = []
    if task == "binary":
        classes = [c.removeprefix("p_") for c in columns if c.startswith("p_")]
        positive = str((run.summary.data.get("positive") if run.summary else None) or classes[-1])
        score_column = f"p_{positive}" if f"p_{positive}" in columns else list(columns)[-1]
        truth, score = target == positive, columns[score_column].astype(float)
        curve = classcurves.roc(truth, score)
        charts.append(page.chart([{"type": "scatter", **_thin(curve), "mode": "lines",
                                   "name": f"AUC {curve.area:.4f}"},
                                  {"type": "scatter", "x": [0, 1], "y": [0, 1], "mode": "lines", "name": "chance",
                                   "line": {"dash": "dot", "color": "#999"}}],
                                 {"title": {"text": f"ROC (validation), AUC {curve.area:.4f}"},
                                  "xaxis": {"title": {"text": "false positive rate"}},
                                  "yaxis": {"title": {"text": "true positive rate"}}, "height": 340}))
        pr = classcurves.precision_recall(truth, score)
        charts.append(page.chart([{"type": "scatter", **_thin(pr), "mode": "lines", "line": {"shape": "hv"},
                                   "name": f"AP {pr.area:.4f}"}],
                                 {"title": {"text": f"precision-recall (validation), AP {pr.area:.4f}"},
                                  "xaxis": {"title": {"text": "recall"}}, "yaxis": {"title": {"text": "precision"}},
                                  "height": 340}))
        correct, confidence = truth, score  # the positive class's probability against how often it is true
        axis = f"predicted P({positive})", f"fraction {positive}"
    else:
        correct = target == columns["prediction"].astype(str)
        confidence = columns["confidence"].astype(float)
        axis = "confidence", "fraction right"
    cal = classcurves.calibration(correct, confidence)
    charts.append(page.chart([{"type": "scatter", "x": nums(cal.x), "y": nums(cal.y), "mode": "lines+markers", "name": "model"},
                              {"type": "scatter", "x": [0, 1], "y": [0, 1], "mode": "lines", "name": "perfect",
                               "line": {"dash": "dot", "color": "#999"}}],
                             {"title": {"text": esc(f"calibration (validation), ECE {cal.area:.4f}")},
                              "xaxis": {"title": {"text": esc(axis[0])}, "range": [0, 1]},
                              "yaxis": {"title": {"text": esc(axis[1])}, "range": [0, 1]}, "height": 340}))
    return charts


def _thin(curve: classcurves.XY) -> dict[str, Json]:
    """A curve's x and y through at most CURVE_POINTS of its points, the first and last kept (its area is
    computed from all of them)."""
    n = len(curve.x)
    keep = np.unique(np.linspace(0, n - 1, min(n, CURVE_POINTS)).round().astype(int)) if n else np.arange(0)
    return {"x": nums([curve.x[i] for i in keep]), "y": nums([curve.y[i] for i in keep])}


def _errors_table(run: Run, model: str, task: str) -> str:
    """The first rows of errors/<model>.csv: the most confident mistakes, with the original values (the
    message, for text)."""
    path = run.files().get(f"errors:{model}.csv")
    what = "largest errors (validation)" if task == "regression" else "misclassified examples (validation, most confident first)"
    if path is None:
        return f"<h4>{esc(what)}</h4><p class=dim>{NOT_RECORDED}</p>"
    try:
        with open(path, newline="", encoding="utf-8", errors="replace") as f:
            reader = csv.reader(f)
            heads = next(reader, [])
            rows = [[shorten(cell, TEXT_CELL) for cell in row[:ERROR_COLUMNS]] for row in islice(reader, ERRORS_SHOWN)]
    except (OSError, csv.Error) as e:
        return f"<h4>{esc(what)}</h4><p class=warn>{esc(path.name)}: unreadable ({esc(e)})</p>"
    if not rows:
        return f"<h4>{esc(what)}</h4><p class=dim>none</p>"
    more = (f"<p class=dim>{len(heads) - ERROR_COLUMNS} more column(s) in errors/{esc(model)}.csv</p>"
            if len(heads) > ERROR_COLUMNS else "")
    return f"<h4>{esc(what)}</h4>" + _table(heads[:ERROR_COLUMNS], rows, "errors") + more


def _layer_table(run: Run, model: str) -> str:
    """models/<model>.json's layer table (name, type, output shape, parameters) and its total, where the run
    recorded it (since the field came; older runs show the model's settings instead)."""
    try:
        info = run.model_info(model)
    except (FileNotFoundError, DamagedFile, OSError, KeyError, ValueError):
        return f"<h4>Layers</h4><p class=dim>{NOT_RECORDED}</p>"
    layers = info.layers  # None: a run from before the table was recorded
    if not layers:
        settings = info.spec or {}
        shown = ", ".join(f"{k}={format_value(v, None)}" for k, v in settings.items() if k not in ("train", "name"))
        return (f"<h4>Layers</h4><p class=dim>layer table {NOT_RECORDED} (nnlab validate SPEC --models prints "
                f"it); the model's settings: {esc(shown)}</p>")
    rows = [[layer.name, layer.type, str(["B", *layer.output_shape]).replace("'", ""), f"{layer.params:,}"]
            for layer in layers]  # the output shape as `nnlab validate --models` prints it
    rows.append(["total", "", "", f"{sum(layer.params for layer in layers):,}"])
    return "<h4>Layers</h4>" + _table(["layer", "type", "output shape", "parameters"], rows, "layers")


CSS = """
body{font:14px/1.4 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#222;background:#fff}
h1{margin:0 0 4px}h2{margin-top:28px;border-bottom:1px solid #ddd}h3{margin:18px 0 4px}h4{margin:10px 0 4px}
.dim{color:#666;font-weight:normal}.warn{color:#a40}.best{color:#17803d}
table{border-collapse:collapse;margin:6px 0;font-size:12px}
th,td{border:1px solid #ddd;padding:3px 6px;text-align:left;vertical-align:top;white-space:nowrap}
td:last-child,table.errors td{white-space:normal;min-width:160px;max-width:480px;overflow-wrap:anywhere}
.scroll{overflow-x:auto;max-width:100%}
thead th{background:#f3f3f3}
.chart{width:440px;height:340px;display:inline-block;vertical-align:top}.chart.wide{width:100%;height:420px}
.missing{display:inline-flex;align-items:center;justify-content:center;border:1px dashed #ccc;height:80px;color:#777}
details.run{margin:8px 0;padding:4px 8px;border:1px solid #ddd;border-radius:4px}
.model{border-top:1px solid #eee;margin-top:8px}ul.notes li{color:#444}
"""

DRAW_JS = """
(function () {
  const figures = JSON.parse(document.getElementById('nnlab-figures').textContent);
  const drawn = new Set();
  window.nnlabCharts = Object.keys(figures).length;
  window.nnlabDrawn = 0;
  function draw(id) {
    const el = document.getElementById(id);
    if (!el || drawn.has(id)) return;
    drawn.add(id);
    Plotly.newPlot(el, figures[id].data, figures[id].layout, {displaylogo: false, responsive: true, showLink: false, showSendToCloud: false,
       showEditInChartStudio: false})
      .then(function () { window.nnlabDrawn += 1; });
  }
  function drawWithin(root) {
    root.querySelectorAll('div.chart[id]').forEach(function (el) {
      if (!el.parentElement.closest('details:not([open])')) draw(el.id);
    });
  }
  document.querySelectorAll('details').forEach(function (d) {
    d.addEventListener('toggle', function () { if (d.open) drawWithin(d); });
  });
  drawWithin(document);
})();
"""
