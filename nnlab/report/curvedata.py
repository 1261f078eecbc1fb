"""Learning curves as numbers, for the HTML report and `nnlab curves` alike (one source, so the PNG and the
report draw the same lines): per run and model, each epoch's train and validation value of a metric,
repeats as the members' mean and standard deviation (ddof=1), the best epoch and where early stopping
ended training."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Optional

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


def run_curves(run: Run, metric: str) -> list[Curve]:
    """The curves of `run`'s neural models on `metric` (the baseline's one fit is no curve)."""
    history = run.metrics()
    if history.empty:
        return []
    baseline = baseline_name(run)
    results = run.summary.models if run.summary else {}
    planned = planned_epochs(run)
    monitor = run_monitor(run)
    curves = []
    for model, rows in history.groupby("model", sort=False):
        model = str(model)
        if model == baseline:
            continue
        columns = {split: metric_column(split, metric) for split in ("train", "val")}
        columns = {s: c for s, c in columns.items() if c in rows and rows[c].notna().any()}
        if not columns:
            continue
        by_epoch = rows.groupby("epoch", sort=True)
        means = by_epoch[list(columns.values())].mean()
        sds = by_epoch[list(columns.values())].std(ddof=1)
        result = results.get(model)
        best = result.best_epoch if result and result.best_epoch else _best_epoch(rows, monitor)
        ran = int(rows["epoch"].max())
        wanted = (result.epochs_planned if result else None) or planned.get(model)
        status = result.status if result else run.status
        curves.append(Curve(run.folder, model, metric, [int(e) for e in means.index],
                            {s: [float(v) for v in means[c]] for s, c in columns.items()},
                            {s: [float(v) for v in sds[c]] for s, c in columns.items()},
                            int(rows["member"].nunique()), best,
                            ran if wanted and ran < wanted and status == "completed" else None))
    return curves


def _best_epoch(rows: pd.DataFrame, monitor: str) -> Optional[int]:
    """Member 0's best epoch on the monitor, for a run without a summary."""
    first = rows[rows["member"] == rows["member"].min()]
    if monitor not in first or first[monitor].isna().all():
        return None
    at = first[monitor].idxmax() if higher_is_better(monitor) else first[monitor].idxmin()
    return int(first.loc[at, "epoch"])
