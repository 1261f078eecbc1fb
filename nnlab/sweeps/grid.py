"""Sweeps: settings to try, expanded into points; every point checked before anything trains; each point
trained into its own run folder by an executor (views/sweep.py shows each setting's effect on validation).

    --grid train.optimizer.lr=1e-3,1e-2 --grid models.mlp.hidden=[64],[128,64]

A full grid is the cartesian product (first key slowest). `--one-at-a-time` varies each key alone from
the spec's own value, as the material recommends; the spec as written is the shared reference point,
trained once. Values are YAML, split on commas outside brackets, so a list value needs its brackets.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from nnlab.core.keys import MISSING, value_at
from nnlab.core.messages import show_value, shorten
from nnlab.errors import NnlabError, SpecError
from nnlab.sweeps.executors.units import Unit
from nnlab.spec import MAX_SWEEP_POINTS, grid_points, load_spec, parse_yaml
from nnlab.training.stacking import stackable_key
from nnlab.core.jsonvalue import JSONObject, JSONValue

_MISSING = MISSING  # an absent setting, as the one resolver (core.keys) gives it
_GRID_HELP = "expected KEY=V1,V2,..., e.g. train.optimizer.lr=1e-3,1e-2 or 'models.mlp.hidden=[64],[128,64]'"


@dataclass(frozen=True)
class Axis:
    """One swept setting and the values to try, in order."""

    key: str
    values: tuple[JSONValue, ...]


@dataclass(frozen=True)
class Point:
    """One combination of settings; no settings is the reference point (the spec as written)."""

    settings: tuple[tuple[str, JSONValue], ...] = ()

    @property
    def overrides(self) -> list[str]:
        # JSON is YAML, and round-trips every value the spec's YAML loader reads (1e-05 included).
        return [f"{key}={json.dumps(value)}" for key, value in self.settings]

    @property
    def label(self) -> str:
        if not self.settings:
            return "reference (the spec's own values)"
        return ", ".join(f"{key}={show_value(value)}" for key, value in self.settings)

    def value(self, key: str) -> object:  # JSONValue, or keys.MISSING
        return dict(self.settings).get(key, _MISSING)


# --- parsing and expanding ------------------------------------------------------------------------

def parse_grid_option(text: str) -> Axis:
    """`KEY=V1,V2,...` -> Axis. Each value is read as YAML; commas inside [] or {} belong to the value."""
    key, sep, values_text = text.partition("=")
    key = key.strip()
    if not sep or not key or not values_text.strip():
        raise SpecError(f"--grid {text!r}: {_GRID_HELP}")
    pieces = split_values(values_text, f"--grid {key}")
    return _axis(key, [parse_yaml(piece, f"--grid {key}") for piece in pieces], "--grid")


def split_values(text: str, where: str) -> list[str]:
    """Split on the commas that are outside brackets and quotes: `[64],[128,64]` -> `[64]`, `[128,64]`."""
    pieces, depth, quote, start = [], 0, "", 0
    for i, char in enumerate(text):
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char in "[{":
            depth += 1
        elif char in "]}":
            depth -= 1
            if depth < 0:
                raise SpecError(f"{where}: '{char}' without its opening bracket in {text!r}")
        elif char == "," and depth == 0:
            pieces.append(text[start:i])
            start = i + 1
    if depth or quote:
        raise SpecError(f"{where}: unclosed {'quote' if quote else 'bracket'} in {text!r}")
    pieces.append(text[start:])
    if any(not piece.strip() for piece in pieces):
        raise SpecError(f"{where}: an empty value in {text!r}; {_GRID_HELP}")
    return [piece.strip() for piece in pieces]


def _axis(key: str, values: list[JSONValue], where: str) -> Axis:
    if not values:
        raise SpecError(f"{where} {key}: no values to try")
    for i, value in enumerate(values):
        if value in values[:i]:
            raise SpecError(f"{where} {key}: the value {show_value(value)} appears twice")
    return Axis(key, tuple(values))


def merge_axes(from_spec: list[Axis], from_cli: list[Axis]) -> list[Axis]:
    """The spec's `sweep.grid`, with a `--grid` of the same key replacing it and new keys added after."""
    keys = [axis.key for axis in from_cli]
    if len(set(keys)) < len(keys):
        twice = next(k for k in keys if keys.count(k) > 1)
        raise SpecError(f"--grid {twice}: given twice; put every value in one --grid {twice}=V1,V2,...")
    cli = {axis.key: axis for axis in from_cli}
    merged = [cli.pop(axis.key, axis) for axis in from_spec]
    return merged + list(cli.values())


def expand_grid(axes: list[Axis]) -> list[Point]:
    """Every combination, the first key varying slowest."""
    combos = itertools.product(*(axis.values for axis in axes))
    return [Point(tuple((axis.key, value) for axis, value in zip(axes, combo))) for combo in combos]


def expand_one_at_a_time(axes: list[Axis], resolved: JSONObject) -> list[Point]:
    """The reference point, then each key alone at each of its values other than the spec's own."""
    points = [Point()]
    for axis in axes:
        own = value_at(resolved, axis.key)
        points += [Point(((axis.key, value),)) for value in axis.values if not _same(value, own)]
    return points


def _same(value: JSONValue, own: object) -> bool:
    """Equal as settings: 0.001 == 1e-3 and 1 == 1.0, but true is not 1."""
    return own is not _MISSING and value == own and isinstance(value, bool) == isinstance(own, bool)


def new_sweep_id(name: str) -> str:
    return f"{name}-sweep-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"


# --- the plan: every point checked before anything trains ------------------------------------------

@dataclass
class SweepPlan:
    id: str
    spec_path: Path
    monitor: str  # the reference spec's, e.g. val_loss: what "effect" is measured on
    points: list[Point]
    reference: int  # the point deltas are measured against
    reference_is_spec: bool  # False: a grid without the spec's own values, measured against its first point
    one_at_a_time: bool
    models: list[str] = field(default_factory=list)  # the spec's model names, in order
    common: list[str] = field(default_factory=list)  # overrides every point gets (repeats=N)
    note: str = ""
    smoke: bool = False
    duplicates: int = 0  # sampled points dropped because an earlier draw was the same point

    @property
    def keys(self) -> list[str]:
        """The swept keys, in the order they were given."""
        return list(dict.fromkeys(key for point in self.points for key, _ in point.settings))

    def units(self, store: Path, stacks: int = 0) -> list[Unit]:
        """One unit per point; with `stacks` > 0, the points that change only what members of one stack may
        differ in (learning rate, dropout, ...) are dealt round-robin into that many stacked units."""
        units = [Unit(i, str(self.spec_path), tuple(point.overrides + self.common), str(store),
                      _note(point, self.note), self.id, self.smoke) for i, point in enumerate(self.points)]
        together = [u for u, p in zip(units, self.points) if all(stackable_key(k) for k, _ in p.settings)]
        if stacks < 1 or len(together) < 2:
            return units
        chunks = [together[i::stacks] for i in range(stacks)]
        stacked = [dataclasses.replace(chunk[0], stacked=tuple(chunk[1:])) for chunk in chunks if chunk]
        return stacked + [u for u in units if u not in together]


def _note(point: Point, note: str) -> str:
    prefix = ", ".join(point.overrides) if point.settings else "reference"
    return f"{prefix}; {note}" if note else prefix


def plan_sweep(spec_path: Path, grid_options: list[str], one_at_a_time: bool = False,
               repeats: Optional[int] = None, note: str = "", smoke: bool = False,
               overrides: list[str] = ()) -> SweepPlan:
    """Expand the sweep and check every point (spec and data) as `train` would. Raises SpecError listing
    every bad point at once; writes nothing. `overrides` (--set) apply to the spec and to every point."""
    spec, _ = load_spec(spec_path, list(overrides))
    section = spec.sweep  # the spec's own `sweep:` (grid, one_at_a_time), when given
    spec_axes = [_axis(k, list(v), "sweep.grid") for k, v in section.grid.items()] if section else []
    axes = merge_axes(spec_axes, [parse_grid_option(text) for text in grid_options])
    if not axes:
        raise SpecError(f"{spec_path.name}: nothing to sweep; give --grid KEY=V1,V2,... or a sweep.grid "
                        "section in the spec")
    one_at_a_time = one_at_a_time or bool(section and section.one_at_a_time)
    _check_size(axes, one_at_a_time)
    resolved = spec.resolved()
    points = expand_one_at_a_time(axes, resolved) if one_at_a_time else expand_grid(axes)
    own = [i for i, p in enumerate(points) if all(_same(v, value_at(resolved, k)) for k, v in p.settings)]
    common = [*overrides, *([f"repeats={repeats}"] if repeats else [])]
    check_points(spec_path, points, common, smoke)
    return SweepPlan(new_sweep_id(spec.name), Path(spec_path), spec.monitor, points, own[0] if own else 0,
                     bool(own), one_at_a_time, [m.name for m in spec.models], common, note, smoke)


def _check_size(axes: list[Axis], one_at_a_time: bool) -> None:
    sizes = [len(axis.values) for axis in axes]
    count = grid_points(sizes, one_at_a_time)  # the spec's count: `sweep:` and --grid agree
    if count > MAX_SWEEP_POINTS:
        how = "1 + " + " + ".join(map(str, sizes)) if one_at_a_time else " x ".join(map(str, sizes))
        raise SpecError(f"--grid: {count:,} points ({shorten(how, 60)}); at most {MAX_SWEEP_POINTS:,}: fewer values, "
                        "or --one-at-a-time")


def check_points(spec_path: Path, points: list[Point], common: list[str], smoke: bool) -> None:
    """Plan every point as `train` would (spec, data, metrics for the task); one line per distinct problem."""
    from nnlab.run import session as runner

    swept = {key for point in points for key, _ in point.settings}
    both = next((key for text in common if (key := text.partition("=")[0].strip()) in swept), None)
    if both:  # which of the two would win is not for the reader to guess
        raise SpecError(f"--set {shorten(both)}: also swept (--grid/--space); a key is set for every point or "
                        "swept, not both")
    problems: dict[str, list[Point]] = {}
    for point in points:
        try:
            runner.plan(spec_path, point.overrides + common, None, smoke)
        except NnlabError as e:
            for line in str(e).splitlines():
                problems.setdefault(line, []).append(point)
    if problems:
        raise SpecError("\n".join(line + _which(bad, points) for line, bad in problems.items()))


def _which(bad: list[Point], points: list[Point]) -> str:
    if len(bad) == len(points):
        return ""
    named = "; ".join(p.label for p in bad[:3]) + ("; ..." if len(bad) > 3 else "")  # which ones, not just how many
    return f" (point {bad[0].label})" if len(bad) == 1 else f" ({len(bad)} of {len(points)} points) at {named}"
