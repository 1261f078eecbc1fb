"""curves.png: train and validation loss, and the monitored metric, per model, from a run's metrics.csv.

Drawn on demand (`nnlab curves RUN`, or `nnlab train --curves`) because importing matplotlib takes about a
second, a third of a whole training run of the example; matplotlib is the optional `plots` extra.
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import numpy as np

from nnlab.errors import NnlabError, escape_controls
from nnlab.core.columns import metric_column
from nnlab.runstore.layout import write_atomic

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes

    from nnlab.runstore import Run


def draw_curves(run: Run, path: Path) -> Path:
    """Write the curves of `run` (a runstore.Run) to `path`; returns it."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise NnlabError("curves need matplotlib: pip install -e '.[plots]' in the nnlab checkout (or pip install matplotlib)") from None
    from nnlab.report.rows import baseline_name, run_metrics, run_monitor
    from nnlab.core.columns import monitor_metric

    history = run.metrics()
    history = history[history["member"] == 0]  # with repeats, the first member stands for the model
    monitor = monitor_metric(run_monitor(run))
    baseline = baseline_name(run)
    models = [m for m in dict.fromkeys(history["model"]) if m != baseline] if len(history) else []
    if not models:
        raise NnlabError(f"run '{run.id}': no epochs of a neural model to draw yet")
    # The loss, and the monitored metric (or, when the loss is monitored, the first metric of the spec).
    second = monitor if monitor != "loss" else next(iter(run_metrics(run)[1:]), None)
    panels = ["loss", second] if second else ["loss"]
    figure = Figure(figsize=(5 * len(panels), 2.6 * len(models)), layout="constrained")
    axes = figure.subplots(len(models), len(panels), squeeze=False)
    base_rows = history[history["model"] == baseline] if baseline else history.iloc[:0]
    for row, model in enumerate(models):
        rows = history[history["model"] == model]
        result = run.summary.models.get(model) if run.summary else None
        for col, metric in enumerate(panels):
            _panel(axes[row][col], model, metric, rows, base_rows, result.best_epoch if result else None)
    png = io.BytesIO()
    figure.savefig(png, format="png", dpi=110)
    try:  # renamed into place: a reader never sees half a picture, a symlink there is replaced, not followed
        write_atomic(path, png.getvalue())
    except OSError as e:
        raise NnlabError(f"{path}: cannot write the curves ({e.strerror or e})") from None
    return path


def _panel(ax: Axes, model: str, metric: str, rows: pd.DataFrame, base_rows: pd.DataFrame, best: Optional[int]) -> None:
    """One model's train and validation curve of one metric, the baseline's validation value, the best epoch."""
    for split, style in (("train", "-"), ("val", "-")):
        column = metric_column(split, metric)
        if column in rows and rows[column].notna().any():
            ax.plot(rows["epoch"], rows[column], style, label=split, alpha=0.6 if split == "train" else 1)
    base_column = metric_column("val", metric)
    base_value = float(base_rows[base_column].iloc[0]) if len(base_rows) and base_column in base_rows else math.nan
    if math.isfinite(base_value):
        ax.axhline(base_value, color="grey", ls="--", lw=1, label="baseline val")
    if best:
        ax.axvline(best, color="green", ls=":", lw=1, label=f"best epoch {best}")
    ax.set_title(escape_controls(f"{model}: {metric}"), fontsize=10)  # no glyph for, nor a warning with, ESC
    ax.set_xlabel("epoch")
    ax.legend(fontsize=7)


def draw_overlay(runs: list[Run], path: Path) -> Path:
    """Several runs' curves overlaid, the report's learning curves as a PNG (report/curvedata.py draws both):
    one panel per metric (the loss, the monitored one), per run and model the validation mean (solid), its
    ±1 sd band with repeats, the train mean (dotted), the best epoch (a star), early stopping's end (an x)."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise NnlabError("curves need matplotlib: pip install -e '.[plots]' in the nnlab checkout (or pip install matplotlib)") from None
    from nnlab.report.curvedata import panels, run_curves

    metrics = panels(runs)
    per_run = [run_curves(run, metrics) for run in runs]
    drawn = [(metric, [c for curves in per_run for c in curves[metric]]) for metric in metrics]
    drawn = [(metric, curves) for metric, curves in drawn if curves]
    if not drawn:
        raise NnlabError(f"runs {', '.join(r.folder for r in runs)}: no epochs of a neural model to draw yet")
    figure = Figure(figsize=(6.5 * len(drawn), 4.2), layout="constrained")
    axes = figure.subplots(1, len(drawn), squeeze=False)[0]
    for ax, (metric, curves) in zip(axes, drawn):
        for i, curve in enumerate(curves):
            color = f"C{i % 10}"
            for split in ("val", "train"):
                if split not in curve.mean:
                    continue
                mean = np.asarray(curve.mean[split])
                label = escape_controls(curve.label) if split == "val" else None
                ax.plot(curve.epochs, mean, "-" if split == "val" else ":", color=color, label=label,
                        lw=1.6 if split == "val" else 1)
                if split == "val" and curve.members > 1:
                    sd = np.nan_to_num(np.asarray(curve.sd[split]))
                    ax.fill_between(curve.epochs, mean - sd, mean + sd, color=color, alpha=0.18, lw=0)
            for epoch, marker in ((curve.best_epoch, "*"), (curve.stopped_at, "x")):
                value = curve.value_at("val", epoch)
                if math.isfinite(value):
                    ax.plot([epoch], [value], marker, color=color, ms=9, mec="#222")
        ax.set_title(escape_controls(f"{metric} (solid: val, dotted: train; * best, x early stop)"), fontsize=9)
        ax.set_xlabel("epoch")
        ax.legend(fontsize=7)
    png = io.BytesIO()
    figure.savefig(png, format="png", dpi=110)
    try:
        write_atomic(path, png.getvalue())
    except OSError as e:
        raise NnlabError(f"{path}: cannot write the curves ({e.strerror or e})") from None
    return path
