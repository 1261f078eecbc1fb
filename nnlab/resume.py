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

The loop continues a LoopState exactly, so the final numbers equal those of an uninterrupted run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from nnlab.errors import RunError
from nnlab.records import ModelResult

FINAL = ("completed", "diverged", "failed")  # a model's status that training again would not change
PLACE_KEYS = ("path", "file", "source")  # where the data lay, not what it was


@dataclass
class ResumePoint:
    """Where a cut-off run continues: `kept` results (in the run's order), each continued group's state by
    its key (the group's first model: a LoopState, or a SequenceState for members that train one after
    another), and per continued member (model, repeat) the last metrics.csv epoch kept (None: all)."""

    run: Any  # runstore.Run
    kept: dict[str, ModelResult] = field(default_factory=dict)
    states: dict[str, Any] = field(default_factory=dict)
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

    def describe(self) -> str:
        going_on = [f"{'+'.join(dict.fromkeys(state.names))} from "
                    + (state.where() if hasattr(state, "where") else f"epoch {state.epoch}")
                    for state in self.states.values()]
        return (f"resuming run {self.run.id}: kept {', '.join(self.kept) or 'no model'}"
                + (f"; continues {', '.join(going_on)}" if going_on else "")
                + (f"; trains {', '.join(self.fresh)} from the start" if self.fresh else ""))


def resume_point(ref: str, store: Path, spec: Any, metrics: list[str], fingerprint: Optional[dict],
                 smoke: bool, groups: list[list[str]]) -> ResumePoint:
    """Check that run `ref` can be continued with this spec and data, and say where. RunError (one line)
    when it cannot. `groups`: the spec's stack groups, model names in training order."""
    from nnlab import runstore

    run = runstore.resolve_run(ref, store)
    check_resumable(run, {**spec.resolved(), "metrics": metrics}, fingerprint, smoke)
    old = run.summary.models if run.summary else {}
    point = ResumePoint(run)
    if spec.baseline:
        point.kept.update({"baseline": old["baseline"]} if _final(old.get("baseline")) else {})
        point.fresh += [] if "baseline" in point.kept else ["baseline"]
    for group in groups:
        if all(_final(old.get(name)) for name in group):
            point.kept.update({name: old[name] for name in group})
            continue
        members = [(name, k) for name in group for k in range(spec.repeats)]
        state = _saved_state(run.path, [name for name, _ in members])
        if state is not None:
            point.states[group[0]] = state
            point.epochs.update(state.member_epochs(members) if hasattr(state, "member_epochs")
                                else {member: state.epoch for member in members})
        else:
            point.fresh += group
    return point


def check_resumable(run: Any, resolved: dict[str, Any], fingerprint: Optional[dict], smoke: bool) -> None:
    from nnlab.changes import changes_since

    where = f"--resume: run {run.id}"
    if run.status == "completed":
        raise RunError(f"{where} is completed; there is nothing to continue (train again without --resume)")
    if run.status == "running":
        raise RunError(f"{where} is still running (pid {run.meta.pid} on {run.meta.host}); stop it first")
    changed = changes_since(run.spec, resolved)
    if changed:
        more = f" (and {len(changed) - 3} more)" if len(changed) > 3 else ""
        raise RunError(f"{where} ran another spec: {'; '.join(changed[:3])}{more}; resume it with the spec "
                       f"it ran, or train a new run")
    if bool(run.meta.smoke) != smoke:
        raise RunError(f"{where} was {'' if run.meta.smoke else 'not '}a smoke run; resume it "
                       f"{'with' if run.meta.smoke else 'without'} --smoke")
    if _same_data(run.meta.data_fingerprint) != _same_data(fingerprint):
        raise RunError(f"{where} trained on other data (its fingerprint {_same_data(run.meta.data_fingerprint)}, "
                       f"now {_same_data(fingerprint)}); resume it on the data it read")


def _final(result: Optional[ModelResult]) -> bool:
    return result is not None and result.status in FINAL


def _same_data(fingerprint: Optional[dict]) -> Optional[dict]:
    return {k: v for k, v in fingerprint.items() if k not in PLACE_KEYS} if fingerprint else None


def _saved_state(run_path: Path, expected: list[str]) -> Any:
    """The group's checkpoint, if it is whole and of exactly these members (model names in training
    order); else None (the group starts over)."""
    from nnlab.runstore.checkpoints import checkpoint_path, load_state

    path = checkpoint_path(run_path, expected[0])
    if not path.is_file():
        return None
    try:
        state = load_state(path)
    except Exception:  # noqa: BLE001 - a damaged checkpoint only means the group trains from the start
        return None
    if getattr(state, "names", None) != expected:
        return None
    progressed = getattr(state, "epoch", 0) > 0 or getattr(state, "done", None) or getattr(state, "current", None)
    return state if progressed else None
