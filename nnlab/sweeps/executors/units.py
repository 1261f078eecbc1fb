"""A sweep's work unit and how it ended, the one function that trains a unit into its run folder, and the
`Executor` protocol every executor (local.py, ray.py) implements.

The seam: an executor takes units and yields one UnitResult per unit as each ends, in any order. A unit
writes its run folder through `nnlab.run.session.execute` and so `runstore`, never by itself; the executor
only moves units and results.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Iterator, Literal, Optional, Protocol

from nnlab.errors import NnlabError, describe

if TYPE_CHECKING:
    from nnlab.run.session import Outcome, Reporter
    from nnlab.sweeps.halving import Halving

UnitStatus = Literal["completed", "failed", "interrupted"]
STOP_GRACE_SECONDS = 60  # how long a stopped point may take to mark its run folder interrupted


@dataclass(frozen=True)
class Unit:
    """One point of a sweep: the spec file and its overrides, trained into one run folder of `store`.

    The spec travels as a path plus overrides, so a worker re-reads it and its data (relative to the spec
    file): fine on one machine or a shared file system. Stacked units (several points as members of one
    model) will carry several override lists.
    """

    index: int
    spec_path: str
    overrides: tuple[str, ...]
    store: str
    note: str = ""
    sweep: Optional[str] = None
    smoke: bool = False
    device: Optional[str] = None
    stacked: tuple[Unit, ...] = ()  # more points (of the same spec) to train in one stack with this one
    halving: Optional[Halving] = None  # sweep --halving: the worst stacked points stop at rungs

    @property
    def points(self) -> tuple[Unit, ...]:
        return (self, *self.stacked)


@dataclass(frozen=True)
class UnitResult:
    """How a unit ended. `failed`: a model failed or diverged, a gate missed, or no run could be made
    (`run_id` is None then); `message` says which in one line."""

    index: int
    status: UnitStatus
    run_id: Optional[str] = None
    path: Optional[str] = None
    message: str = ""


class Executor(Protocol):
    def run(self, units: Iterable[Unit]) -> Iterator[UnitResult]:
        """Yield one result per unit as each ends. Closing the iterator early stops the units still running
        (each marked interrupted) and starts no more."""
        ...


def run_unit(unit: Unit, report: Optional[Reporter] = None) -> UnitResult:
    """Train one unit into its run folder, telling `report` as it goes (the Optuna search's pruner reads each
    epoch). KeyboardInterrupt passes through (run.session has marked the run)."""
    from nnlab.run import session as runner

    try:
        plan = runner.plan(unit.spec_path, list(unit.overrides), unit.device, unit.smoke)
        outcome = runner.execute(plan, Path(unit.store), unit.note, report, sweep=unit.sweep)
    except Exception as e:  # one point's bug or crash must not end the sweep: report it and go on
        return _failed(unit, e)
    return _result(unit, outcome)


def run_units(unit: Unit) -> list[UnitResult]:
    """A unit and the points stacked with it: trained as one stack, one run folder each, when they can share
    one (points.can_train_together), else one after another. One result per point."""
    from nnlab.sweeps import points
    from nnlab.run import session as runner

    if not unit.stacked:
        return [run_unit(unit)]
    try:
        data: dict = {}  # stacked points share their data: prepared once
        plans = [runner.plan(u.spec_path, list(u.overrides), u.device, u.smoke, data_cache=data) for u in unit.points]
        if not points.can_train_together(plans):
            return [run_unit(u) for u in unit.points]
        outcomes = points.execute_points(plans, Path(unit.store), [u.note for u in unit.points], unit.sweep,
                                         unit.halving)
    except Exception as e:  # the stack's failure fails its points; the sweep goes on
        return [_failed(u, e) for u in unit.points]
    return [_result(u, outcome) for u, outcome in zip(unit.points, outcomes)]


def _failed(unit: Unit, error: Exception) -> UnitResult:
    message = str(error).splitlines()[0] if isinstance(error, NnlabError) else describe(error)
    return UnitResult(unit.index, "failed", message=message)


def _result(unit: Unit, outcome: Outcome) -> UnitResult:
    problems = [f"{name} {outcome.summary.models[name].status}" for name in outcome.failed_models]
    halved = next((m.halved for m in outcome.summary.models.values() if m.halved), None)
    gates = [f"expect {gate.key} missed" for gate in outcome.gates_missed]
    if halved is None:
        problems += gates
    said = problems or ([f"stopped by halving at epoch {halved.epoch} (rung {halved.rung})"] if halved else [])
    if halved is not None and gates:  # a point stopped early is not judged by gates set for a full training
        said.append(f"{', '.join(gates)}, not judged: it trained {halved.epoch} of {halved.epochs} epochs")
    return UnitResult(unit.index, "failed" if problems else "completed", outcome.run_id, str(outcome.path),
                      "; ".join(said))
