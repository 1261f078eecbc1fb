"""curves.png: train and validation loss, and the monitored metric, per model, from a run's metrics.csv.

Drawn on demand (`nnlab curves RUN`, or `nnlab train --curves`) because importing matplotlib takes about a
second, a third of a whole training run of the example; matplotlib is the optional `plots` extra.
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any, Optional

from nnlab.errors import NnlabError, escape_controls
from nnlab.core.columns import metric_column
from nnlab.runstore.layout import write_atomic


def draw_curves(run: Any, path: Path) -> Path:
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


def _panel(ax: Any, model: str, metric: str, rows: Any, base_rows: Any, best: Optional[int]) -> None:
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
