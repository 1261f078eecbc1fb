"""Successive halving inside a stack (`sweep --halving [--rungs 3 --keep 0.5]`; Li et al. 2018, ASHA).

A sweep's stacked points train side by side; at each rung — epochs growing geometrically by 1/keep up to the
spec's epochs, e.g. 3, 6, 12 of 24 for three rungs keeping half — the live points of the stack are ranked by
their best monitored validation score so far, and all but the best `keep` share (at least one) stop there.
A stopped point's members leave the stack (training.loop compacts the member dimension), so later epochs
cost what a stack of the survivors costs; its run records the rung and why (`records.HalvingStop`).

The rule is here, torch-free: `rung_epochs` and `halving_stops` are pure, and `StackHalving` is the loop's
cull for one stack (training.state.Cull), grouping members by point (`<model>@<point>`, as sweeps.points
names them) so that a point's models and repeats stop together. Points that cannot share a stack train to
the end: halving only halves within stacks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional, Sequence

from nnlab.core.columns import higher_is_better
from nnlab.core.records import HalvingStop
from nnlab.errors import NnlabError

if TYPE_CHECKING:
    from pathlib import Path

    from nnlab.training.state import MemberStanding

DEFAULT_RUNGS, DEFAULT_KEEP = 3, 0.5


@dataclass(frozen=True)
class Halving:
    """How many rungs, and the share of the live points each rung keeps."""

    rungs: int = DEFAULT_RUNGS
    keep: float = DEFAULT_KEEP

    def rung_epochs(self, epochs: int) -> list[int]:
        return rung_epochs(epochs, self.rungs, self.keep)


def halving_options(halving: bool, rungs: Optional[int], keep: Optional[float]) -> Optional[Halving]:
    """The command line's --halving, --rungs and --keep as a Halving (None: no halving); one-line errors."""
    if not halving:
        given = [name for name, value in (("--rungs", rungs), ("--keep", keep)) if value is not None]
        if given:
            raise NnlabError(f"{given[0]}: only with --halving")
        return None
    if rungs is not None and rungs < 1:
        raise NnlabError(f"--rungs {rungs}: the number of halving rungs must be at least 1, e.g. --rungs 3")
    if keep is not None and not 0 < keep < 1:
        raise NnlabError(f"--keep {keep:g}: the share of live points each rung keeps must be between 0 and 1 "
                         "(both excluded), e.g. --keep 0.5")
    return Halving(DEFAULT_RUNGS if rungs is None else rungs, DEFAULT_KEEP if keep is None else keep)


def rung_epochs(epochs: int, rungs: int, keep: float) -> list[int]:
    """The epochs after which a rung ranks the live points: epochs · keep^(rungs - i + 1) for i = 1..rungs,
    rounded, at least 1 and below `epochs` (the last epoch needs no rung), without repeats. 24 epochs, 3 rungs,
    keep 0.5: [3, 6, 12]."""
    found = []
    for i in range(rungs, 0, -1):
        epoch = max(1, round(epochs * keep ** i))
        if epoch < epochs and epoch not in found:
            found.append(epoch)
    return found


def halving_stops(scores: Sequence[Optional[float]], keep: float, higher: bool) -> list[int]:
    """Which of the live points (their scores, by position) stop at a rung: all but the best
    max(1, ceil(n · keep)). A missing or NaN score ranks last; ties go to the earlier point. Sorted."""
    return sorted(ranking(scores, higher)[kept_count(len(scores), keep):])


def ranking(scores: Sequence[Optional[float]], higher: bool) -> list[int]:
    """Positions best first."""
    def key(i: int) -> tuple[bool, float, int]:
        score = scores[i]
        if score is None or math.isnan(score):
            return True, 0.0, i
        return False, -score if higher else score, i
    return sorted(range(len(scores)), key=key)


def kept_count(live: int, keep: float) -> int:
    return max(1, math.ceil(live * keep - 1e-9))  # 1e-9: 0.5 · 6 is 3, not 4 after rounding


def point_of(member_name: str) -> str:
    """`mlp@3` -> `3`: which point of the stack a member is (the whole name when it has no `@`)."""
    return member_name.rpartition("@")[2]


class StackHalving:
    """The cull of one stack: at a rung epoch, the points with a live member are ranked by the mean of their
    live members' best scores (repeats and the point's models in this stack), and the worst stop."""

    def __init__(self, halving: Halving, epochs: int, monitor: str):
        self.halving, self.epochs, self.monitor = halving, epochs, monitor
        self.rungs = halving.rung_epochs(epochs)
        self.higher = higher_is_better(monitor)

    def __call__(self, epoch: int, standings: list[MemberStanding]) -> dict[int, HalvingStop]:
        if epoch not in self.rungs:
            return {}
        rows_of: dict[str, list[int]] = {}
        for row, standing in enumerate(standings):
            if standing.live:
                rows_of.setdefault(point_of(standing.name), []).append(row)
        points = list(rows_of)
        scores = [_mean([standings[r].score for r in rows_of[p]]) for p in points]
        order = ranking(scores, self.higher)
        kept = kept_count(len(points), self.halving.keep)
        rung = self.rungs.index(epoch) + 1
        stops: dict[int, HalvingStop] = {}
        for rank, position in enumerate(order, 1):
            if rank <= kept:
                continue
            score = scores[position]
            shown = "no score" if score is None or math.isnan(score) else f"{self.monitor} {score:.4g}"
            reason = (f"stopped early by halving at rung {rung} of {len(self.rungs)} (epoch {epoch} of "
                      f"{self.epochs}): {shown} ranked {rank} of {len(points)} points; the best {kept} went on")
            record = HalvingStop(rung=rung, rungs=len(self.rungs), epoch=epoch, epochs=self.epochs, rank=rank,
                                 live=len(points), kept=kept, score=None if shown == "no score" else score,
                                 reason=reason)
            stops.update({row: record for row in rows_of[points[position]]})
        return stops


def keep_all(epoch: int, standings: list[MemberStanding]) -> dict[int, HalvingStop]:
    """The cull that stops nobody: given to a stack, members that stop on their own still leave it."""
    return {}


def _mean(scores: list[Optional[float]]) -> Optional[float]:
    known = [s for s in scores if s is not None and not math.isnan(s)]
    return sum(known) / len(known) if known else None


def rungs_line(halving: Halving, points: int, spec_path: Path, overrides: list[str], smoke: bool) -> str:
    """What the sweep says before training: where the rungs are, for `points` points of the spec with these
    overrides. Raises NnlabError when there is nothing to halve (one point, or too few epochs for a rung)."""
    from nnlab.run.session import SMOKE_EPOCHS
    from nnlab.spec import load_spec

    if points < 2:
        raise NnlabError(f"--halving: the sweep has {points} point; halving ranks several points "
                         "(--grid with several values, or --sample N)")
    spec, _ = load_spec(spec_path, overrides)
    epochs = max(m.train.epochs for m in spec.models)
    epochs = min(epochs, SMOKE_EPOCHS) if smoke else epochs
    at = halving.rung_epochs(epochs)
    if not at:
        raise NnlabError(f"--halving: train.epochs is {epochs}; a rung needs an epoch before the last")
    return (f"halving: after epoch{'s' if len(at) > 1 else ''} {', '.join(map(str, at))} of {epochs}, each "
            f"stack's worst live points stop (the best {halving.keep:.0%} go on); only stacked points halve, "
            "points that train alone run to the end")
