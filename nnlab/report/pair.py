"""`nnlab compare A B`: two runs side by side — the settings that differ, each common model's metrics as
B − A (with the combined spread and `within noise` where the runs were repeated, see noise.py), and each
model's monitored validation curve in A and B."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, TypedDict

from nnlab.report.compare import SPLITS, checked_choices, union_in_order
from nnlab.report.fingerprints import data_key
from nnlab.report.noise import difference
from nnlab.core.numbers import stored_float
from nnlab.core.columns import metric_column, SD_SUFFIX
from nnlab.report.rows import model_rows, run_metrics, run_monitor
from nnlab.runstore import Run
from nnlab.core.settings import pair_settings

Curve = dict[int, float]


class PairMetric(TypedDict):
    """One model's one metric column in A and B (NaN where a side has none), B − A, and the verdict
    (noise.py; "" for train_seconds and for runs on other data). A dict: `--format json` writes it as is."""

    model: str
    metric: str
    a: float
    a_sd: float
    b: float
    b_sd: float
    delta: float
    spread: float
    verdict: str


@dataclass
class Pair:
    """The settings that differ (key, a, b), each common model's metrics (PairMetric rows), each
    model's monitored validation curve per epoch in A and B, and the models only one run has."""

    a: Run
    b: Run
    settings: list[dict[str, object]]  # settings.pair_settings: key, a, b
    metrics: list[PairMetric]
    curves: dict[str, tuple[Curve, Curve]]
    monitor: str
    only_in: dict[str, list[str]]  # "a" / "b" -> the models the other run lacks
    data: tuple[str, str] = ("", "")  # what each read, where A and B read different data (else empty)


def compare_pair(a: Run, b: Run, metrics: Optional[list[str]] = None, split: Optional[str] = None,
                 models: Optional[list[str]] = None) -> Pair:
    rows_a, rows_b = {r["model"]: r for r in model_rows(a)}, {r["model"]: r for r in model_rows(b)}
    if models:
        checked_choices("--model", models, union_in_order([rows_a, rows_b]))
    available = union_in_order([run_metrics(a), run_metrics(b)])
    chosen = checked_choices("--metric", list(dict.fromkeys(metrics)), available) if metrics else available
    columns = ["best_epoch", *[metric_column(s, m) for m in chosen for s in ([split] if split else SPLITS)],
               "train_seconds"]
    common = [m for m in rows_a if m in rows_b and (not models or m in models)]
    (key_a, data_a), (key_b, data_b) = data_key(a), data_key(b)
    other_data = key_a != key_b  # scores on other data are shown, never judged against each other
    table: list[PairMetric] = []
    for model in common:
        ra, rb = rows_a[model], rows_b[model]
        for col in columns:
            change = difference(col, ra, rb)
            table.append(PairMetric(model=model, metric=col, a=stored_float(ra.get(col)),
                                    a_sd=stored_float(ra.get(col + SD_SUFFIX)), b=stored_float(rb.get(col)),
                                    b_sd=stored_float(rb.get(col + SD_SUFFIX)), delta=change.delta,
                                    spread=change.spread,
                                    verdict="" if col == "train_seconds" or other_data else change.verdict))
    monitor = run_monitor(b)
    only = {"a": [m for m in rows_a if m not in rows_b], "b": [m for m in rows_b if m not in rows_a]}
    return Pair(a, b, pair_settings(a.spec, b.spec), table, _curves(a, b, common, monitor), monitor, only,
                (data_a, data_b) if other_data else ("", ""))


def _curves(a: Run, b: Run, models: list[str], monitor: str) -> dict[str, tuple[Curve, Curve]]:
    """Member 0's curve of each model (with repeats, every member has its own; the first stands for them)."""
    histories = [run.metrics() for run in (a, b)]
    curves = {}
    for model in models:
        pair = []
        for history in histories:
            if monitor not in history:
                pair.append({})
                continue
            rows = history[(history["model"] == model) & (history["member"] == 0)]
            pair.append({int(e): stored_float(v) for e, v in zip(rows["epoch"], rows[monitor])})
        curves[model] = (pair[0], pair[1])
    return curves
