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
import math
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from nnlab.core.keys import MISSING, value_at
from nnlab.core.messages import show_value, shorten
from nnlab.errors import NnlabError, SpecError
from nnlab.sweeps.executors.units import Unit
from nnlab.sweeps.halving import Halving
from nnlab.spec import MAX_SWEEP_POINTS, grid_points, load_spec, parse_yaml
from nnlab.training.stacking import stackable_key
from nnlab.core.jsonvalue import JSONObject, JSONValue

_MISSING = MISSING  # an absent setting, as the one resolver (core.keys) gives it
STACK_MEMORY_CAP = 4 * 2**30  # the most training memory one stack of sweep points takes, whatever is free
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

    def units(self, store: Path, stacks: int = 0, halving: Optional[Halving] = None,
              budget: Optional[int] = None) -> list[Unit]:
        """One unit per point; with `stacks` > 0, points that differ only in what members of one stack may
        differ in (learning rate, dropout, ...) train as stacks. Points are grouped by their other settings
        (so by shape: `hidden=[64]` points stack with each other, not with `hidden=[128]` ones); each group is
        cut into as few chunks as memory allows (`stack_size`), at least `stacks` (one per worker) when it has
        that many points, and its points are dealt round-robin into them. `halving` goes with each stack."""
        units = [Unit(i, str(self.spec_path), tuple(point.overrides + self.common), str(store),
                      _note(point, self.note), self.id, self.smoke) for i, point in enumerate(self.points)]
        if stacks < 1:
            return units
        groups: dict[tuple[tuple[str, str], ...], list[int]] = {}
        for i, point in enumerate(self.points):
            shape = tuple((k, json.dumps(v, sort_keys=True)) for k, v in point.settings if not stackable_key(k))
            groups.setdefault(shape, []).append(i)
        stacked, alone = [], []
        for members in groups.values():
            if len(members) < 2:
                alone += members
                continue
            size = min(self.stack_size(members[0], budget), math.ceil(len(members) / stacks))
            count = math.ceil(len(members) / size)
            for chunk in (members[c::count] for c in range(count)):
                if len(chunk) == 1:
                    alone += chunk
                else:
                    stacked.append(dataclasses.replace(units[chunk[0]], stacked=tuple(units[i] for i in chunk[1:]),
                                                       halving=halving))
        return stacked + [units[i] for i in sorted(alone)]

    def stack_size(self, index: int, budget: Optional[int] = None) -> int:
        """How many points like point `index` one stack holds: the memory budget — `budget` bytes, else
        run.members' share (MEMORY_HEADROOM) of what the device has free, at most STACK_MEMORY_CAP — over one
        point's training memory (each model's parameters, gradients, optimizer moments and activations at its
        batch size, models.estimate_memory, times its repeats)."""
        from nnlab import models
        from nnlab.run import session as runner
        from nnlab.run.members import MEMORY_HEADROOM, available_bytes
        from nnlab.training.placement import resolve_device

        plan = runner.plan(self.spec_path, self.points[index].overrides + self.common, None, self.smoke)
        info = plan.prepared.info
        per_point = plan.spec.repeats * sum(models.estimate_memory(m, info, m.train.batch_size)
                                            for m in plan.spec.models)
        if budget is None:
            free = available_bytes(resolve_device(plan.spec.models[0].train.device))
            budget = min(STACK_MEMORY_CAP, int(MEMORY_HEADROOM * free)) if free else STACK_MEMORY_CAP
        return max(1, budget // max(1, per_point))


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
    data: dict = {}  # the points' data, prepared once per data section and seed
    for point in points:
        try:
            runner.plan(spec_path, point.overrides + common, None, smoke, data_cache=data)
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
