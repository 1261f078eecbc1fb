"""`nnlab compare A B` for people: what differs between two runs, what it did to each model's metrics
(B − A, with `± spread` and `within noise` where the runs were repeated: the rule is report/noise.py's), the
differences in words, and when the validation curves parted."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Literal

from rich.console import Group, RenderableType
from rich.text import Text

from nnlab.views.grid import Col, Grid
from nnlab.report.noise import SINGLE_RUNS
from nnlab.core.numbers import format_spread, format_value
from nnlab.core.columns import higher_is_better, split_column
from nnlab.report.pair import Pair, PairMetric
from nnlab.views.tables import BETTER, SMOKE_STYLE, WORSE, seconds

if TYPE_CHECKING:
    from nnlab.runstore import Run

SPARKS = "▁▂▃▄▅▆▇█"
VERDICT_STYLES = {"better": BETTER, "worse": WORSE, "within noise": "yellow"}


def pair_view(pair: Pair, extra_notes: list[str] | None = None) -> Group:
    """What differs between two runs, what it did to each model's metrics, and when the curves parted."""
    parts: list[RenderableType] = [Text.assemble(("A ", "bold"), pair.a.folder, *_smoke(pair.a), "   ", ("B ", "bold"),
                                      pair.b.folder, *_smoke(pair.b))]
    if pair.data[0]:
        parts.append(Text(f"A and B read different data (A {pair.data[0]}, B {pair.data[1]}): their metrics are "
                          "shown side by side but not comparable, and judged neither better, worse nor noise",
                          style="yellow"))
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
    parts.extend(Text(line) for line in in_words(pair))
    for model, (a, b) in pair.curves.items():
        if max(len(a), len(b)) > 1:  # a one-epoch model (the L-BFGS baseline) has no curve to show
            parts.append(curve_view(model, pair.monitor, a, b))
    for side, models in pair.only_in.items():
        if models:
            parts.append(Text(f"only in {side.upper()}: {', '.join(models)}", style="dim"))
    parts.extend(Text(line, style="dim") for line in extra_notes or [])
    return Group(*parts)


def _smoke(run: Run) -> tuple[tuple[str, str], ...]:
    return ((" (smoke run)", SMOKE_STYLE),) if run.smoke else ()


def in_words(pair: Pair) -> list[str]:
    """Each validation metric that moved, in words, where a spread says whether it is noise:
    `dropout 0.3: +0.0040 ± 0.0060 accuracy — within noise`."""
    change = ", ".join(f"{s['key'].rsplit('.', 1)[-1]} {format_value(s['b'], None)}" for s in pair.settings[:3])
    change = (change + (" …" if len(pair.settings) > 3 else "")) or "B"
    lines, moved = [], False
    if pair.data[0]:
        return []  # nothing to say in words about scores on other data
    for row in pair.metrics:
        split, metric = split_column(row["metric"])
        if split != "val" or higher_is_better(metric) is None:
            continue
        if math.isnan(row["spread"]):  # neither side was repeated (the baseline's fit has no seed to vary)
            moved = moved or (row["delta"] != 0 and row["model"] != "baseline")
            continue
        delta = format_spread(row["delta"], row["spread"], signed=True)
        lines.append(f"{row['model']} {change}: {delta} {metric} (validation) — {row['verdict']}")
    if lines:
        return ["\nin words (within noise: |B−A| < sqrt(sd_A² + sd_B²)):", *lines]
    return ["\n" + SINGLE_RUNS] if moved else []


def _pair_metrics(table: list[PairMetric]) -> Grid | Text:
    if not table:
        return Text("\nA and B have no model in common.")
    model_cells = [r["model"] if i == 0 or r["model"] != table[i - 1]["model"] else "" for i, r in enumerate(table)]
    cells: dict[Literal["a", "b", "delta"], list[str]] = {"a": [], "b": [], "delta": []}
    for row in table:
        for key in cells:
            cells[key].append(_pair_cell(row, key))
    verdicts = [r["verdict"] for r in table]
    return Grid([Col("model", model_cells, max_width=20, priority=9),
                 Col("metric", [r["metric"] for r in table], max_width=24, priority=9),
                 Col("A", cells["a"], right=True, priority=8),
                 Col("B", cells["b"], right=True, priority=8),
                 Col("B−A", cells["delta"], right=True, priority=7),
                 Col("", verdicts, [VERDICT_STYLES.get(v) for v in verdicts], priority=6)],
                title="\nmetrics (best epoch of each model" + ("; mean ± sd over repeats)" if _spread(table) else ")"))


def _spread(table: list[PairMetric]) -> bool:
    return any(not math.isnan(r["spread"]) for r in table)


def _pair_cell(row: PairMetric, key: Literal["a", "b", "delta"]) -> str:
    value = row[key]
    if row["metric"] == "best_epoch":
        return "" if math.isnan(value) else f"{int(value):+d}" if key == "delta" else str(int(value))
    if row["metric"] == "train_seconds":
        return seconds(value) if key != "delta" or math.isnan(value) else f"{value:+.2f}"
    spread = {"a": "a_sd", "b": "b_sd", "delta": "spread"}[key]
    return format_spread(value, row[spread], signed=key == "delta")


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


