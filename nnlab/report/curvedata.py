"""Learning curves as numbers, for the HTML report and `nnlab curves` alike (one source, so the PNG and the
report draw the same lines): per run and model, each epoch's train and validation value of a metric,
repeats as the members' mean and standard deviation (ddof=1), the best epoch and where early stopping
ended training."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Optional

import numpy as np

from nnlab.core.columns import higher_is_better, metric_column, monitor_metric
from nnlab.report.rows import baseline_name, planned_epochs, run_metrics, run_monitor
from nnlab.runstore import Run

if TYPE_CHECKING:
    import pandas as pd


@dataclass
class Curve:
    """One model of one run on one metric: epochs, the mean per epoch of each split, the sd (NaN with one
    member), the best epoch and, when early stopping ended it before the planned epochs, the last epoch."""

    run: str  # the run's folder name
    model: str
    metric: str
    epochs: list[int]
    mean: dict[str, list[float]] = field(default_factory=dict)  # "train" / "val" -> per epoch
    sd: dict[str, list[float]] = field(default_factory=dict)
    members: int = 1
    best_epoch: Optional[int] = None
    stopped_at: Optional[int] = None  # early stopping's last epoch; None when all planned epochs ran

    @property
    def label(self) -> str:
        return f"{self.run} · {self.model}"

    def value_at(self, split: str, epoch: Optional[int]) -> float:
        if epoch is None or epoch not in self.epochs:
            return math.nan
        return self.mean.get(split, [])[self.epochs.index(epoch)] if split in self.mean else math.nan


def panels(runs: list[Run]) -> list[str]:
    """The metrics drawn: the loss, and the monitored metric (or, where the loss is monitored, the first
    other metric of the spec), of the first run that has one."""
    shown = ["loss"]
    for run in runs:
        monitor = monitor_metric(run_monitor(run))
        second = monitor if monitor != "loss" else next(iter(run_metrics(run)[1:]), None)
        if second and second not in shown:
            shown.append(second)
            break
    return shown


def run_curves(run: Run, metrics: list[str]) -> dict[str, list[Curve]]:
    """The curves of `run`'s neural models on each of `metrics` (the baseline's one fit is no curve);
    metrics.csv is read once."""
    history = run.metrics()
    drawn: dict[str, list[Curve]] = {metric: [] for metric in metrics}
    if history.empty:
        return drawn
    baseline = baseline_name(run)
    results = run.summary.models if run.summary else {}
    planned = planned_epochs(run) if not results else {}
    monitor = run_monitor(run)
    models = history["model"].to_numpy()
    for model in dict.fromkeys(models):
        model = str(model)
        if model == baseline:
            continue
        rows = history[models == model]
        epochs, at = np.unique(rows["epoch"].to_numpy(), return_inverse=True)
        members = int(rows["member"].nunique())
        result = results.get(model)
        best = result.best_epoch if result and result.best_epoch else _best_epoch(rows, monitor)
        ran = int(epochs[-1])
        wanted = (result.epochs_planned if result else None) or planned.get(model)
        status = result.status if result else run.status
        stopped = ran if wanted and ran < wanted and status == "completed" else None
        for metric in metrics:
            curve = Curve(run.folder, model, metric, epochs.tolist(), members=members, best_epoch=best,
                          stopped_at=stopped)
            for split in ("train", "val"):
                column = metric_column(split, metric)
                if column in rows:
                    mean, sd = _mean_sd(rows[column].to_numpy(dtype=float), at, len(epochs))
                    if np.isfinite(mean).any():
                        curve.mean[split], curve.sd[split] = mean.tolist(), sd.tolist()
            if curve.mean:
                drawn[metric].append(curve)
    return drawn


def _mean_sd(values: np.ndarray, at: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Per epoch (`at`: each row's epoch index) the mean and the sd (ddof=1; NaN with one value) of the
    values there, a missing value left out."""
    seen = np.isfinite(values)
    count = np.bincount(at[seen], minlength=n).astype(float)
    total = np.bincount(at[seen], values[seen], minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = total / count
        squares = np.bincount(at[seen], (values[seen] - mean[at[seen]]) ** 2, minlength=n)
        sd = np.where(count > 1, np.sqrt(squares / (count - 1)), np.nan)
    return mean, sd


def _best_epoch(rows: pd.DataFrame, monitor: str) -> Optional[int]:
    """Member 0's best epoch on the monitor, for a run without a summary."""
    first = rows[rows["member"] == rows["member"].min()]
    if monitor not in first or first[monitor].isna().all():
        return None
    at = first[monitor].idxmax() if higher_is_better(monitor) else first[monitor].idxmin()
    return int(first.loc[at, "epoch"])
