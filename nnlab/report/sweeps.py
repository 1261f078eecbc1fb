"""A sweep as the read side sees it: what its table needs of the plan and of each point's result (the
shapes below, which nnlab.sweeps' SweepPlan, Point and UnitResult have), and each finished point's summary,
read back from its run folder. The read side never imports the sweeps package: the shapes are protocols.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Protocol, Sequence

from nnlab import runstore
from nnlab.core.records import RunSummary
from nnlab.errors import NnlabError


class SweepPoint(Protocol):
    """One combination of settings (dotted key, value); none is the reference point."""

    @property
    def settings(self) -> tuple[tuple[str, object], ...]: ...

    @property
    def label(self) -> str: ...


class SweepShape(Protocol):
    """What a sweep's table reads of its plan."""

    @property
    def id(self) -> str: ...

    @property
    def monitor(self) -> str: ...  # the validation column effects are measured on, e.g. val_loss

    @property
    def points(self) -> Sequence[SweepPoint]: ...

    @property
    def reference(self) -> int: ...  # the point changes are measured against

    @property
    def reference_is_spec(self) -> bool: ...

    @property
    def models(self) -> list[str]: ...  # the spec's model names, in order

    @property
    def keys(self) -> list[str]: ...


class PointResult(Protocol):
    """How one point ended, and where its run folder is (None: no run was made)."""

    @property
    def index(self) -> int: ...

    @property
    def status(self) -> str: ...

    @property
    def run_id(self) -> Optional[str]: ...

    @property
    def path(self) -> Optional[str]: ...

    @property
    def message(self) -> str: ...


def point_summary(result: PointResult) -> Optional[RunSummary]:
    """The point's run summary from its run folder; None when it made no run or the folder cannot be read."""
    if result.path is None:
        return None
    try:
        return runstore.read_run(Path(result.path)).summary
    except NnlabError:
        return None
