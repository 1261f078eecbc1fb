"""`nnlab train SPEC --resume RUN`: what an interrupted or failed run keeps, and where each model continues.

A run can be continued when it is not completed and not still running, its resolved spec equals the
spec given now (the first differences are named otherwise), and the data reads back with the same
fingerprint. Then:

- models whose result in summary.json is final (completed, diverged or failed) are kept as they are, with
  their weights; a stack group is kept only when all its models are;
- every other group continues from its checkpoint (runstore/checkpoints.py) — the state after its last
  saved epoch; for members that train one after another, the finished members' results and the member in
  training's state — or starts over when it has none (cut off before its first epoch ended); the
  baseline, when not final, is fitted again;
- metrics.csv keeps the rows of kept models and, of a continued group, each member's rows up to its
  checkpoint's epoch: a SIGKILL can leave rows after the last checkpoint, and those epochs train again.
  Rows missing before that point (metrics.csv cut or deleted by hand) refuse the resume: the run would
  end with a hole in its history that nothing could fill.

The resume holds the run folder's lock (runstore/liveness.py) from before its checks until the run ends,
so a second resume of the same run is refused, naming the PID that resumes it.

The loop continues a LoopState exactly, so the final numbers equal those of an uninterrupted run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from nnlab import runstore
from nnlab.errors import RunError
from nnlab.core.files import path_kind
from nnlab.core.settings import changes_since
from nnlab.core.records import ModelResult, data_identity
from nnlab.runstore.checkpoints import checkpoint_path, read_checkpoint
from nnlab.runstore.history import read_history
from nnlab.runstore.layout import METRICS_FILE
from nnlab.runstore.liveness import RunLock, lock_run
from nnlab.spec import Spec

if TYPE_CHECKING:
    from nnlab.training.state import EpochRecord, FitState

FINAL = ("completed", "diverged", "failed")  # a model's status that training again would not change


@dataclass
class ResumePoint:
    """Where a cut-off run continues: `kept` results (in the run's order), each continued group's state by
    its key (the group's first model: a LoopState, or a SequenceState for members that train one after
    another), and per continued member (model, repeat) the last metrics.csv epoch kept (None: all)."""

    run: runstore.Run
    lock: Optional[RunLock] = None  # held until the run ends (`release`)
    kept: dict[str, ModelResult] = field(default_factory=dict)
    states: dict[str, FitState] = field(default_factory=dict)
    epochs: dict[tuple[str, int], Optional[int]] = field(default_factory=dict)
    fresh: list[str] = field(default_factory=list)  # what trains from the start

    def keep_row(self, row: dict[str, str]) -> bool:
        model = row.get("model", "")
        if model in self.kept:
            return True
        try:
            last = self.epochs.get((model, int(row.get("member") or 0)), 0)
            return last is None or int(row.get("epoch", "")) <= last
        except ValueError:
            return False

    def release(self) -> None:
        if self.lock is not None:
            self.lock.release()

    def describe(self) -> str:
        going_on = [f"{'+'.join(dict.fromkeys(state.names))} from "
                    + _where(state)
                    for state in self.states.values()]
        return (f"resuming run {self.run.id}: kept {', '.join(self.kept) or 'no model'}"
                + (f"; continues {', '.join(going_on)}" if going_on else "")
                + (f"; trains {', '.join(self.fresh)} from the start" if self.fresh else ""))


def _where(state: FitState) -> str:
    from nnlab.training.state import SequenceState

    return state.where() if isinstance(state, SequenceState) else f"epoch {state.epoch}"


def resume_point(ref: str, store: Path, spec: Spec, metrics: list[str], fingerprint: Optional[dict],
                 smoke: bool, groups: list[list[str]]) -> ResumePoint:
    """Check that run `ref` can be continued with this spec and data, and say where. RunError (one line)
    when it cannot. `groups`: the spec's stack groups, model names in training order."""
    found = runstore.resolve_run(ref, store)
    lock = lock_run(found.path, found.id, "resumed")  # first: of two resumes at once, the second stops here
    try:
        run = runstore.read_run(found.path)  # again, under the lock: another resume may have ended it meanwhile
        check_resumable(run, {**spec.resolved(), "metrics": metrics}, fingerprint, smoke)
        point = _point(ResumePoint(run, lock), spec, groups)
        _check_history(point)
    except BaseException:
        lock.release()
        raise
    return point


def _point(point: ResumePoint, spec: Spec, groups: list[list[str]]) -> ResumePoint:
    from nnlab.training.state import SequenceState

    run = point.run
    old = run.summary.models if run.summary else {}
    if spec.baseline:
        point.kept.update({"baseline": old["baseline"]} if _final(old.get("baseline")) else {})
        point.fresh += [] if "baseline" in point.kept else ["baseline"]
    for group in groups:
        if all(_final(old.get(name)) for name in group):
            point.kept.update({name: old[name] for name in group})
            continue
        members = [(name, k) for name in group for k in range(spec.repeats)]
        state = _saved_state(run, [name for name, _ in members])
        if state is not None:
            point.states[group[0]] = state
            point.epochs.update(state.member_epochs(members) if isinstance(state, SequenceState)
                                else {member: state.epoch for member in members})
        else:
            point.fresh += group
    return point


def check_resumable(run: runstore.Run, resolved: dict[str, object], fingerprint: Optional[dict], smoke: bool
                    ) -> None:
    where = f"--resume: run {run.id}"
    if run.status == "completed":
        raise RunError(f"{where} is completed; there is nothing to continue (train again without --resume)")
    if run.status == "running":
        raise RunError(f"{where} is still running (pid {run.meta.pid} on {run.meta.host}); stop it first")
    if bool(run.meta.smoke) != smoke:  # before the spec: --smoke changes its epochs, and is what to name
        raise RunError(f"{where} was {'' if run.meta.smoke else 'not '}a smoke run; resume it "
                       f"{'with' if run.meta.smoke else 'without'} --smoke")
    changed = changes_since(run.spec, resolved)
    if changed:
        more = f" (and {len(changed) - 3} more)" if len(changed) > 3 else ""
        raise RunError(f"{where} ran another spec: {'; '.join(changed[:3])}{more}; resume it with the spec "
                       f"it ran, or train a new run")
    if _same_data(run.meta.data_fingerprint) != _same_data(fingerprint):
        raise RunError(f"{where} trained on other data (its fingerprint {_same_data(run.meta.data_fingerprint)}, "
                       f"now {_same_data(fingerprint)}); resume it on the data it read")


def _final(result: Optional[ModelResult]) -> bool:
    return result is not None and result.status in FINAL


def _same_data(fingerprint: Optional[dict]) -> Optional[dict]:
    return data_identity(fingerprint) if fingerprint else None


def _check_history(point: ResumePoint) -> None:
    """Every epoch the run's record says was trained — by its kept, completed models (summary.json) and by
    each continued group's members (their checkpoint's epoch history) — must have its row in metrics.csv."""

    path = point.run.path / METRICS_FILE
    where = f"--resume: run {point.run.id}"
    what = path_kind(path)
    if what is not None:
        raise RunError(f"{where}: {path} is {'missing' if what == 'missing' else 'not a file'}; its epochs cannot be "
                       f"continued without it: train a new run")
    frame, _ = read_history(path)
    present = set(zip(frame["model"], frame["member"], frame["epoch"]))
    expected: list[tuple[str, int, int]] = []
    for name, result in point.kept.items():
        if result.status == "completed":
            members = [(m.member, m.epochs_run) for m in result.members] or [(0, result.epochs_run)]
            expected += [(name, k, e) for k, n in members for e in range(1, n + 1)]
    for state in point.states.values():
        expected += [(r.model, r.member, r.epoch) for r in _histories(state)
                     if point.keep_row({"model": r.model, "member": str(r.member), "epoch": str(r.epoch)})]
    missing = [row for row in dict.fromkeys(expected) if row not in present]
    if missing:
        model, member, epoch = missing[0]
        raise RunError(f"{where}: {path} lacks {len(missing)} epoch row(s) that the run trained (the first: "
                       f"{model}{f' member {member}' if member else ''} epoch {epoch}); it was cut or edited, "
                       f"and resuming would leave a hole in its history: train a new run")


def _histories(state: FitState) -> list[EpochRecord]:
    """The EpochRecords a checkpoint holds: a LoopState's members', a SequenceState's finished and current."""
    from nnlab.training.state import SequenceState

    if not isinstance(state, SequenceState):
        return [record for member in state.members for record in member.history]
    done = [record for result in state.done for record in result.history]
    return done + (_histories(state.current) if state.current is not None else [])


def _saved_state(run: runstore.Run, expected: list[str]) -> Optional[FitState]:
    """The group's checkpoint, if it is whole and of exactly these members (model names in training
    order); else None (the group starts over). RunError when it is there but cannot be used as one."""
    from nnlab.training.state import SequenceState
    from nnlab.training.statecodec import CheckpointFieldError, decode_state

    path = checkpoint_path(run.path, expected[0])
    what = path_kind(path)
    if what == "missing":
        return None
    if what is not None:  # a folder in its place would fail the first checkpoint write
        raise RunError(f"--resume: run {run.id}: {path} is not a file; a checkpoint is one file: move it away "
                       f"(then {expected[0]} trains from the start)")
    try:
        state = decode_state(*read_checkpoint(path))
    except CheckpointFieldError as e:
        raise RunError(f"--resume: run {run.id}: checkpoint {path}: field {e.field}: {e.problem}; it was changed "
                       f"by hand or by another version: delete it to train {expected[0]} from the start") from None
    except Exception:  # noqa: BLE001 - a damaged checkpoint only means the group trains from the start
        return None
    if state.names != expected:
        return None
    progressed = state.done or state.current if isinstance(state, SequenceState) else state.epoch > 0
    return state if progressed else None
