"""What a sweep shows: a line as each point ends, and one table of each setting's effect on the monitored
validation metric (mean ± sd over repeats), best first, with each point's change against the reference and,
with spreads, report/noise.py's within-noise verdict. Torch-free: it reads the points' run folders (report.sweeps),
and takes the plan and results as the shapes report.sweeps names, never importing the sweeps package."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

from nnlab.core.keys import model_part, model_position
from nnlab.core.messages import show_value
from nnlab.core.columns import metric_name, higher_is_better
from nnlab.report.noise import Difference, combined_spread
from nnlab.core.numbers import exact_difference, format_spread
from nnlab.core.records import ModelResult
from nnlab.report.sweeps import PointResult, SweepPoint, SweepShape, point_summary
from nnlab.core.settings import short_keys as short_names  # one rule for shortening dotted keys

if TYPE_CHECKING:
    from rich.console import Console, Group

@dataclass
class Effect:
    """One model of one point: its monitored validation score (mean ± sd over repeats) and its change
    against the same model at the reference point (report/noise.py's within-noise rule)."""

    point: SweepPoint
    model: str
    status: str
    value: float = math.nan
    sd: float = math.nan
    change: Optional[Difference] = None  # None at the reference point itself, or with nothing to compare
    run_id: Optional[str] = None
    message: str = ""
    halved: Optional[int] = None  # the epoch `sweep --halving` stopped it at: ranked apart, after the full ones


def effects(plan: SweepShape, results: dict[int, PointResult]) -> list[Effect]:
    """Every finished point's models (the baseline left out: a sweep varies the networks), best first by the
    monitored validation metric; points without results last."""
    column = plan.monitor
    summaries = {i: point_summary(result) for i, result in results.items()}
    reference = summaries.get(plan.reference)
    rows: list[Effect] = []
    for i, point in enumerate(plan.points):
        if i not in results:
            continue
        result, summary = results[i], summaries[i]
        if summary is None:
            rows.append(Effect(point, "", result.status, run_id=result.run_id, message=result.message))
            continue
        for name, model in summary.models.items():
            if name == summary.baseline or (point.settings and not touches(point, name, plan.models)):
                continue  # the baseline, and models a point leaves as they were: their rows would only repeat
            value, sd = _score(model, column)
            ref_model = reference.models.get(name) if reference and i != plan.reference else None
            change = _change(column, ref_model, value, sd) if ref_model else None
            rows.append(Effect(point, name, model.status, value, sd, change, result.run_id, result.message,
                               model.halved.epoch if model.halved else None))
    return sorted(rows, key=lambda row: _rank(row, column))


def baseline_effect(plan: SweepShape, results: dict[int, PointResult]) -> Optional[Effect]:
    """The baseline's monitored validation score, from the reference point's run (else the first point's
    that has one): every point trains the same baseline on the same split, so one row stands for all."""
    order = [plan.reference] + [i for i in sorted(results) if i != plan.reference]
    for i in order:
        summary = point_summary(results[i]) if i in results else None
        if summary is None or not summary.baseline or summary.baseline not in summary.models:
            continue
        model = summary.models[summary.baseline]
        value, sd = _score(model, plan.monitor)
        if not math.isnan(value):
            return Effect(plan.points[i], summary.baseline, model.status, value, sd, None, results[i].run_id)
    return None


def baseline_beats_all(plan: SweepShape, rows: list[Effect], baseline: Effect) -> bool:
    """Whether the baseline is strictly better than every point's every model that has a score."""
    scored = [row.value for row in rows if not math.isnan(row.value)]
    better = (lambda a, b: a > b) if higher_is_better(plan.monitor) else (lambda a, b: a < b)
    return bool(scored) and all(better(baseline.value, value) for value in scored)


def touches(point: SweepPoint, model: str, models: list[str]) -> bool:
    """Whether a point changes `model`: any key outside `models.<name|index>.` changes every model."""
    for key, _ in point.settings:
        inside = model_part(key)
        if inside is None:
            return True
        position = model_position(models, inside[0])  # a name wins over an index, as in --set
        if position is not None and models[position] == model:
            return True
    return False


def _score(model: ModelResult, column: str) -> tuple[float, float]:
    metric = metric_name(column)
    value, sd = model.score("val", metric), model.spread("val", metric)
    has_sd = model.repeats > 1 and sd is not None
    return (math.nan if value is None else value), (sd if has_sd else math.nan)


def _change(column: str, reference: ModelResult, value: float, sd: float) -> Difference:
    ref_value, ref_sd = _score(reference, column)
    return Difference(column, exact_difference(value, ref_value), combined_spread(ref_sd, sd))


def _rank(row: Effect, column: str) -> tuple[bool, bool, float]:
    """Points trained to the end first, then those halving stopped (scores of fewer epochs), each best first."""
    if math.isnan(row.value):
        return True, True, 0.0
    return row.halved is not None, False, -row.value if higher_is_better(column) else row.value


def effect_table(plan: SweepShape, rows: list[Effect], baseline: Optional[Effect] = None) -> Group:
    """The sweep's one table (setting, model, the monitored validation metric, change vs the reference)
    between a heading and the notes that read it; lines outside the table are never wrapped to its width.
    With `baseline`, its score is the table's last row, and a note says when it beats every point."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    names = short_names(plan.keys)
    spreads = any(not math.isnan(row.sd) for row in rows)
    table = Table()
    for column, justify in (("setting", "left"), ("model", "left"), (plan.monitor, "right"),
                            ("change", "right"), *([("verdict", "left")] if spreads else []), ("run", "left")):
        table.add_column(column, justify=justify)
    for i, row in enumerate(rows):
        if row.halved is not None and i and rows[i - 1].halved is None:
            table.add_section()  # the points halving stopped, apart
        setting = ", ".join(f"{names[k]}={show_value(v)}" for k, v in row.point.settings) or "reference"
        change = "(reference)" if row.point is plan.points[plan.reference] else row.change.text() if row.change else ""
        verdict = [row.change.verdict if row.change else ""] if spreads else []
        table.add_row(setting, row.model, _value_cell(row), change, *verdict, row.run_id or "")
    if baseline is not None:
        table.add_row("baseline (every point's)", baseline.model, _value_cell(baseline), "",
                      *([""] if spreads else []), baseline.run_id or "")
    heading = f"sweep {plan.id}: best first by {plan.monitor}"
    notes = _notes(plan, names, spreads)
    halved = {id(row.point) for row in rows if row.halved is not None}
    if halved:
        notes += (f"\n{len(halved)} point(s) stopped early by halving, below the line: their scores are of fewer "
                  "epochs, so they rank apart")
    if not any(row.point is plan.points[plan.reference] and not math.isnan(row.value) for row in rows):
        notes += "\nthe reference point has no result, so there is no change to show"
    if baseline is not None and baseline_beats_all(plan, rows, baseline):
        best = min((r for r in rows if not math.isnan(r.value)), key=lambda r: _rank(r, plan.monitor))
        notes += f"\nthe baseline ({baseline.model}, {_value_cell(baseline)}) beats every point on {plan.monitor} " \
                 f"(best point: {best.model} {_value_cell(best)})"
    return Group(Text(heading), table, Text(notes))


def _notes(plan: SweepShape, names: dict[str, str], spreads: bool) -> str:
    reference = plan.points[plan.reference]
    against = "the spec's own values" if not reference.settings else \
        ", ".join(f"{names[k]}={show_value(v)}" for k, v in reference.settings)
    if not plan.reference_is_spec:
        against += " (the first point: the spec's own values are not in the grid)"
    lines = [f"change vs {against}"]
    shortened = [f"{short} = {key}" for key, short in names.items() if short != key]
    if shortened:
        lines.append(" · ".join(shortened))
    if spreads:
        lines.append("mean ± sd over repeats; within noise: |change| < sqrt(sd² + sd_reference²)")
    return "\n".join(lines)


def _value_cell(row: Effect) -> str:
    if math.isnan(row.value):
        return row.status
    text = format_spread(row.value, row.sd)
    if row.halved is not None:
        return f"{text} (halved at epoch {row.halved})"
    return text if row.status == "completed" else f"{text} ({row.status})"


def result_line(plan: SweepShape, result: PointResult, done: int, seconds: float) -> str:
    """What the sweep prints as each point ends: `[2/4] lr=0.01: completed · run tiny-… · about 40 s left`."""
    point = plan.points[result.index]
    line = f"[{done}/{len(plan.points)}] {point.label}: {result.status}"
    if result.message:
        line += f" ({result.message})"
    if result.run_id:
        line += f" · run {result.run_id}"
    left = len(plan.points) - done
    return line + (f" · about {_duration(seconds / done * left)} left" if left and done else "")


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


class SweepProgress:
    """On a terminal, a live line under the per-point lines: points done, failed and running, and the time
    left (rich's estimate from the points so far). Elsewhere (CI, pipes, tests) it shows nothing."""

    def __init__(self, console: Console, total: int, slots: Optional[int]):
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self.total, self.slots, self.failed, self.finished = total, slots, 0, 0
        self.progress = Progress(TextColumn("sweep"), BarColumn(bar_width=24), TextColumn("{task.fields[counts]}"),
                                 TimeElapsedColumn(), TimeRemainingColumn(), console=console, transient=True,
                                 disable=not console.is_terminal)
        self.task = self.progress.add_task("sweep", total=total, counts=self._counts())

    def _counts(self) -> str:
        left = self.total - self.finished
        running = left if self.slots is None else min(self.slots, left)
        return f"{self.finished}/{self.total} done · {self.failed} failed · {running} running"

    def done(self, status: str) -> None:
        self.finished += 1
        self.failed += status != "completed"
        self.progress.update(self.task, advance=1, counts=self._counts())

    def __enter__(self) -> SweepProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()
