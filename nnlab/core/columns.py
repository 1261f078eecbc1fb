"""The metric-column vocabulary: the one place where `<split>_<metric>` is spelled and read, and which
direction of a metric is better.

metrics.csv, summary.json, every table and the training loop name their columns through these helpers
(`val_accuracy`, `test_rmse`, `val_accuracy_sd`). The metric computations themselves live in
`nnlab.training.metrics`; this module is torch-free so that the browse commands can use it.

The direction rule: `higher_is_better` returns None for anything that is not a metric (`train_seconds`,
`lr`, a setting): tables use that to leave such a column unranked. Code that ranks by a monitor the spec
has already checked can rely on a bool.
"""

from __future__ import annotations

import math
from typing import Iterable, Optional, TypeVar

from nnlab.core.numbers import stored_float

SPLITS: tuple[str, ...] = ("train", "val", "test")
EVAL_SPLITS: tuple[str, ...] = ("val", "test")
SD_SUFFIX = "_sd"  # `val_accuracy_sd`: the standard deviation over repeats beside its mean
DEFAULT_MONITOR = "val_loss"

HIGHER_IS_BETTER: dict[str, bool] = {
    "loss": False, "log_loss": False, "mse": False, "rmse": False, "mae": False,
    "accuracy": True, "precision": True, "recall": True, "f1": True, "roc_auc": True, "r2": True,
    "pr_auc": True, "brier": False, "ece": False,  # FINAL_METRICS
}

# Computed once at the end of training, on val and test, for every classification model besides the spec's
# `metrics` (which are logged every epoch); stored with them in summary.json (training.metrics.final_metrics).
FINAL_METRICS: dict[str, tuple[str, ...]] = {"binary": ("pr_auc", "brier"), "multiclass": ("ece",),
                                             "regression": ()}

V = TypeVar("V")


def metric_column(split: str, metric: str) -> str:
    """`("val", "accuracy")` -> `val_accuracy`: the name of a metric column in metrics.csv and tables."""
    return f"{split}_{metric}"


def split_column(column: str) -> tuple[Optional[str], str]:
    """`val_accuracy` -> `("val", "accuracy")`; a bare metric -> `(None, metric)`."""
    for split in SPLITS:
        if column.startswith(split + "_"):
            return split, column[len(split) + 1:]
    return None, column


def metric_name(column: str) -> str:
    """`val_accuracy` -> `accuracy`: a metric column without its split prefix (a bare name stays)."""
    return split_column(column)[1]


def monitor_metric(monitor: Optional[str]) -> str:
    """`val_loss` -> `loss`: the metric the monitor names, without its split."""
    return (monitor or DEFAULT_MONITOR).removeprefix("val_")


def epoch_columns(metric_names: list[str]) -> list[str]:
    """The columns of metrics.csv for models that report `metric_names` besides the loss. `member` is the
    repeat (0 .. repeats-1) a row belongs to."""
    metrics = [m for m in metric_names if m != "loss"]
    return ["model", "member", "epoch", metric_column("train", "loss"), metric_column("val", "loss"),
            *[metric_column("train", m) for m in metrics], *[metric_column("val", m) for m in metrics],
            "lr", "seconds"]


def prefixed(split: str, values: dict[str, V]) -> dict[str, V]:
    """`{"loss": ...}` -> `{"val_loss": ...}`: metrics.csv's column names."""
    return {metric_column(split, k): v for k, v in values.items()}


def unprefixed(split: str, values: dict[str, V]) -> dict[str, V]:
    """The columns of one split, by their bare metric names."""
    return {metric: v for column, v in values.items() for on, metric in [split_column(column)] if on == split}


def higher_is_better(column: str) -> Optional[bool]:
    """Direction of a metric or metric column (`accuracy`, `test_accuracy`, `val_accuracy_sd` is not one);
    None when it is not a metric. Never raises."""
    return HIGHER_IS_BETTER.get(metric_name(column))


def best_value(values: Iterable[object], metric: str) -> Optional[float]:
    """The best of `values` for `metric` (a name or a column): the highest where higher is better, else the
    lowest; missing values (None, NaN) are ignored; None when no value is left or the metric has no
    direction."""
    higher = higher_is_better(metric)
    present = [v for v in (stored_float(x) for x in values) if not math.isnan(v)]
    if not present or higher is None:
        return None
    return max(present) if higher else min(present)


def best_positions(values: list[object], metric: str) -> set[int]:
    """Positions holding the best value of `metric` (all of them on a tie), where two or more values exist."""
    numbers = [stored_float(v) for v in values]
    if sum(1 for v in numbers if not math.isnan(v)) < 2:
        return set()
    best = best_value(numbers, metric)
    return set() if best is None else {i for i, v in enumerate(numbers) if v == best}
