"""Random search: distributions over settings, sampled into sweep points exactly like grid points.

    --sample 16 --space 'train.optimizer.lr=loguniform(1e-4,1e-2)' --space 'models.mlp.dropout=uniform(0,0.5)'

A space is `KEY=NAME(ARGS)`; each argument is read as YAML (the bounded reader, never eval), so a choice
of lists needs its brackets: `choice([64],[128,64])`. Distributions:

    uniform(lo, hi)      a float in [lo, hi)
    loguniform(lo, hi)   log-uniform in [lo, hi], lo > 0; integer bounds give integers
    int(lo, hi)          an integer in [lo, hi], both ends included
    choice(v1, v2, ...)  one of the values, each equally likely

The points are drawn by numpy's Generator seeded with the spec's seed, one key after another in the
order given, so the same command gives the same points. Each point is a regular sweep Point: the sweep
trains it into its own run folder, and points that differ only in stackable settings (lr, dropout, ...)
train as one stack (grid.SweepPlan.units).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from nnlab.core.jsonvalue import JSONValue
from nnlab.core.messages import show_value, shorten
from nnlab.errors import SpecError
from nnlab.spec import MAX_SWEEP_POINTS, Spec, load_spec, parse_yaml, sweep_key_problem
from nnlab.sweeps import grid

if TYPE_CHECKING:
    from numpy.random import Generator

_NAMES = ("uniform", "loguniform", "int", "choice")
_ALLOWED = "uniform(lo,hi), loguniform(lo,hi), int(lo,hi) or choice(v1,v2,...)"
_FORM = re.compile(r"^\s*([A-Za-z_]\w*)\s*\((.*)\)\s*$", re.DOTALL)


@dataclass(frozen=True)
class Distribution:
    """One swept setting and where its values are drawn from."""

    key: str
    name: str  # one of _NAMES
    args: tuple[JSONValue, ...]

    @property
    def integers(self) -> bool:
        return self.name == "int" or (self.name == "loguniform" and all(_is_int(a) for a in self.args))

    def draw(self, rng: Generator) -> JSONValue:
        if self.name == "choice":
            return self.args[int(rng.integers(len(self.args)))]
        lo, hi = self.args
        if self.name == "uniform":
            return _short(float(rng.uniform(lo, hi)), hi)
        if self.name == "int":
            return int(rng.integers(lo, hi, endpoint=True))
        if self.integers:  # log-uniform over the integers lo..hi: each cell [k, k+1) in log space, floored
            return min(int(math.exp(rng.uniform(math.log(lo), math.log(hi + 1)))), int(hi))
        return _short(float(math.exp(rng.uniform(math.log(lo), math.log(hi)))), hi)


def _short(value: float, hi: float) -> float:
    """Four significant digits, so labels and run notes stay readable (the point trains with exactly the
    value shown); rounding never lifts a draw to `hi` itself."""
    rounded = float(f"{value:.4g}")
    return rounded if rounded < hi else value


readable = _short  # the Optuna search rounds the floats it is asked the same way (sweeps/optuna_search.py)


def _is_int(value: JSONValue) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: JSONValue) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def parse_space_option(text: str, where: str = "--space") -> Distribution:
    """`KEY=NAME(ARGS)` -> Distribution; one line naming the key and what is allowed when it is not."""
    key, sep, body = text.partition("=")
    key = key.strip()
    if not sep or not key or not body.strip():
        raise SpecError(f"{where} {shorten(text)!r}: expected KEY=DIST, DIST one of {_ALLOWED}, e.g. "
                        "train.optimizer.lr=loguniform(1e-4,1e-2)")
    return parse_distribution(key, body, where)


def parse_distribution(key: str, body: str, where: str) -> Distribution:
    at = f"{where} {shorten(key)}"
    match = _FORM.match(body)
    if not match:
        raise SpecError(f"{at}: {shorten(body.strip())!r} is not NAME(ARGS); allowed: {_ALLOWED}")
    name, inside = match.group(1), match.group(2)
    if name not in _NAMES:
        raise SpecError(f"{at}: unknown distribution '{shorten(name)}'; allowed: {_ALLOWED}")
    if not inside.strip():
        what = "choice() has no values; give at least one" if name == "choice" else f"{name}() needs lo and hi"
        raise SpecError(f"{at}: {what}")
    args = tuple(parse_yaml(piece, at) for piece in grid.split_values(inside, at))
    if name == "choice":
        return Distribution(key, name, args)
    if len(args) != 2 or not all(_is_number(a) for a in args):
        given = ", ".join(show_value(a) for a in args)
        raise SpecError(f"{at}: {name}(lo,hi) takes two numbers; given {name}({shorten(given)})")
    lo, hi = args
    if name == "int" and not all(_is_int(a) for a in args):
        raise SpecError(f"{at}: int(lo,hi) takes two integers; given int({show_value(lo)},{show_value(hi)})")
    if lo >= hi:
        raise SpecError(f"{at}: {name}({show_value(lo)},{show_value(hi)}): lo must be below hi")
    if name == "loguniform" and lo <= 0:
        raise SpecError(f"{at}: loguniform({show_value(lo)},{show_value(hi)}): lo must be above 0")
    return Distribution(key, name, args)


def sample_points(space: list[Distribution], count: int, seed: int) -> list[grid.Point]:
    """`count` points, each a value of every key in order, from numpy's Generator seeded with `seed`."""
    import numpy as np

    rng = np.random.default_rng(seed)
    return [grid.Point(tuple((d.key, d.draw(rng)) for d in space)) for _ in range(count)]


def unique_points(points: list[grid.Point]) -> tuple[list[grid.Point], int]:
    """The points without repeats (a choice over few values draws the same point again), in the order
    drawn, and how many were dropped: a repeated point would train the same run twice."""
    seen: set[str] = set()
    kept = []
    for point in points:
        identity = json.dumps(point.settings)  # as the point's overrides give it to the spec
        if identity not in seen:
            seen.add(identity)
            kept.append(point)
    return kept, len(points) - len(kept)


def merge_spaces(from_spec: list[Distribution], from_cli: list[Distribution]) -> list[Distribution]:
    """The spec's `sweep.space`, a --space of the same key replacing it and new keys added after."""
    keys = [d.key for d in from_cli]
    twice = next((k for k in keys if keys.count(k) > 1), None)
    if twice:
        raise SpecError(f"--space {twice}: given twice; give one distribution per key")
    cli = {d.key: d for d in from_cli}
    return [cli.pop(d.key, d) for d in from_spec] + list(cli.values())


def space_of(spec: Spec, space_options: list[str]) -> list[Distribution]:
    """The spec's `sweep.space` merged with the --space options, every key checked against the spec: the one
    reading of a space (the random search's and the Optuna search's); empty when neither gives one."""
    section = spec.sweep
    from_spec = [parse_distribution(k, v, "sweep.space") for k, v in (section.space if section else {}).items()]
    space = merge_spaces(from_spec, [parse_space_option(text) for text in space_options])
    resolved = spec.resolved()
    for d in space:
        problem = sweep_key_problem(d.key, resolved)
        if problem:  # the grid's check, naming the option the key came from
            raise SpecError(problem.replace("sweep.grid:", "--space:", 1))
    return space


def is_search(spec_path: Path, space_options: list[str], sample: Optional[int],
              overrides: Sequence[str] = ()) -> bool:
    """Whether this sweep samples (a --space, --sample, or a `sweep.space` in the spec) rather than a grid."""
    if space_options or sample is not None:
        return True
    spec, _ = load_spec(spec_path, list(overrides))
    return bool(spec.sweep and spec.sweep.space)


def plan_search(spec_path: Path, space_options: list[str], sample: Optional[int], grid_options: list[str],
                one_at_a_time: bool = False, repeats: Optional[int] = None, note: str = "",
                smoke: bool = False, overrides: Sequence[str] = ()) -> grid.SweepPlan:
    """Sample the space (crossed with any --grid keys) and check every point as `train` would; writes nothing.
    The first point is the one changes are measured against (there is no spec point in a random search).
    `overrides` (--set) apply to the spec before the space's keys are checked, and to every point; repeated
    draws are dropped (the plan counts them)."""
    spec, _ = load_spec(spec_path, list(overrides))
    section = spec.sweep
    space = space_of(spec, space_options)
    count = sample if sample is not None else (section.sample if section else None)
    if not space:
        raise SpecError("--sample: nothing to sample; give --space KEY=DIST (e.g. "
                        "train.optimizer.lr=loguniform(1e-4,1e-2)) or a sweep.space section in the spec")
    if count is None:
        raise SpecError(f"--space {space[0].key}: how many points? give --sample N or sweep.sample in the spec")
    if one_at_a_time:
        raise SpecError("--one-at-a-time: varies a grid's keys one by one; a --sample search draws every key "
                        "at each point; drop one of them")
    # a grid (the spec's sweep.grid, --grid) is crossed with the samples: every grid point gets every draw
    spec_axes = [grid.Axis(k, tuple(v)) for k, v in (section.grid if section else {}).items()]
    axes = grid.merge_axes(spec_axes, [grid.parse_grid_option(text) for text in grid_options])
    both = next((a.key for a in axes if a.key in {d.key for d in space}), None)
    if both:
        raise SpecError(f"--grid {both}: also given to --space; a key is either a grid or sampled, not both")
    combos = grid.expand_grid(axes) if axes else [grid.Point()]
    if count * len(combos) > MAX_SWEEP_POINTS:
        raise SpecError(f"--sample: {count * len(combos):,} points ({count} x {len(combos)} grid points); "
                        f"at most {MAX_SWEEP_POINTS:,}")
    drawn, duplicates = unique_points(sample_points(space, count, spec.seed))
    points = [grid.Point(combo.settings + point.settings) for combo in combos for point in drawn]
    common = [*overrides, *([f"repeats={repeats}"] if repeats else [])]
    grid.check_points(spec_path, points, common, smoke)
    return grid.SweepPlan(grid.new_sweep_id(spec.name), Path(spec_path), spec.monitor, points, 0, False, False,
                          [m.name for m in spec.models], common, note, smoke,
                          duplicates=duplicates * len(combos))
