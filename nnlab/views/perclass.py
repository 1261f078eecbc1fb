"""`nnlab show`'s per-class results: each classification model's confusion matrix (classes by their original
labels), per-class precision, recall, F1 and support, and the scalar extras (binary: PR AUC, Brier score and
the F1 threshold on validation; multiclass: ECE), on test (validation where the model was never tested)."""

from __future__ import annotations

from typing import Optional

from rich.text import Text

from nnlab.core.messages import shorten
from nnlab.core.numbers import format_value, stored_float
from nnlab.core.records import ModelResult, PerClassResult, RunSummary
from nnlab.views.grid import Col, Grid

MAX_MATRIX_CLASSES = 12  # beyond this a matrix no longer reads in a terminal: summary.json keeps it whole
LABEL_WIDTH = 16
EXTRAS = {"binary": ("pr_auc", "brier"), "multiclass": ("ece",)}


def per_class_parts(summary: Optional[RunSummary]) -> list[object]:
    """A heading line and a small grid per model that has per-class results; nothing for regression or for
    older runs (their summaries have none)."""
    if summary is None:
        return []
    parts: list[object] = []
    for result in summary.models.values():
        split = "test" if result.per_class and "test" in result.per_class else "val"
        table = (result.per_class or {}).get(split)
        if table is None:
            continue
        parts.append(Text(f"\n{heading(result, split, summary.task, result.name == summary.baseline)}"))
        parts.append(_matrix(table) if len(table.labels) <= MAX_MATRIX_CLASSES else Text(
            f"  {len(table.labels)} classes: the confusion matrix is in summary.json (per_class.{split})",
            style="dim"))
    return parts


def heading(result: ModelResult, split: str, task: str, baseline: bool = False) -> str:
    """`mlp test (member 0): pr_auc 0.9733  brier 0.0676  F1 threshold on val 0.4652 (applied to test)`."""
    scores = result.test if split == "test" else result.val
    member = result.per_class[split].member if result.per_class else 0
    parts = [f"{result.name} {split}" + (f" (member {member}, the one its weights are of)" if result.repeats > 1
                                         else "") + ":"]
    parts += [f"{m} {format_value(stored_float(scores.get(m)))}" for m in EXTRAS.get(task, ()) if m in scores]
    threshold = result.val.get("f1_threshold")
    if task == "binary" and threshold is not None:
        parts.append(f"F1 threshold on val {format_value(threshold)} "
                     + ("(applied to test)" if result.threshold is not None else "(test at 0.5)" if baseline
                        else "(test at 0.5; train.threshold: val_f1 applies it)"))
    return "  ".join(parts)


def _matrix(table: PerClassResult) -> Grid:
    labels = [shorten(label, LABEL_WIDTH) for label in table.labels]
    cols = [Col("true \\ predicted", labels, min_width=6, max_width=LABEL_WIDTH + 2, priority=9)]
    for k, label in enumerate(labels):
        cols.append(Col(label, [str(row[k]) for row in table.confusion], right=True, min_width=3, priority=8))
    for name, values in (("precision", table.precision), ("recall", table.recall), ("f1", table.f1)):
        cols.append(Col(name, [format_value(v) for v in values], right=True, priority=5))
    cols.append(Col("support", [str(n) for n in table.support], right=True, priority=6))
    return Grid(cols)
