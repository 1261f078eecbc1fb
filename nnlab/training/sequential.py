"""Members that cannot share a stack (layers without a stacked form, such as batch norm, with repeats) train
one after another; this keeps their progress resumable like a stack's.

`SequenceState` is what a checkpoint holds for them: the results of the members that finished, torch's
global generator after the last of them (a member built without its own generator state, `Member.torch_rng`,
draws its dropout from it; a member built by `members.fit_group` starts from its build's, as alone), and the
`LoopState` of the member in training. `fit_one_after_another` continues from one exactly: finished members are not
trained again, the member in training goes on from its last epoch, the rest start as they would have.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional


@dataclass
class SequenceState:
    names: list[str]  # every member's model name, in training order
    done: list[Any]  # FitResult of each finished member, in order
    rng_after: Any  # torch's global generator state after the last finished member (a uint8 tensor)
    current: Any = None  # LoopState of the member in training; None between members

    def member_epochs(self, members: list[tuple[str, int]]) -> dict[tuple[str, int], Optional[int]]:
        """The last epoch each member's rows are kept to: None (all) for finished members, the current
        member's state epoch, 0 for the members after it."""
        kept: dict[tuple[str, int], Optional[int]] = {key: None for key in members[:len(self.done)]}
        rest = members[len(self.done):]
        if rest:
            kept[rest[0]] = self.current.epoch if self.current is not None else 0
        return kept

    def where(self) -> str:
        member = len(self.done) + 1
        epoch = self.current.epoch if self.current is not None else 0
        return f"member {member} of {len(self.names)}, epoch {epoch}"


def fit_one_after_another(members: list[Any], problem: Any, on_epoch: Any, on_state: Optional[Callable],
                          resume: Optional[SequenceState]) -> list[Any]:
    """`train.fit_members` for members that do not stack, with a SequenceState after every epoch and after
    each member; `resume` continues from one. Raises FitInterrupted with every member's result so far."""
    import torch

    from nnlab.training import fit as train

    names = [m.name for m in members]
    results: list[Any] = list(resume.done) if resume else []
    if resume and resume.done:
        torch.set_rng_state(resume.rng_after)  # as the finished members left it
    for index in range(len(results), len(members)):
        current = resume.current if resume and index == len(resume.done) else None
        rng_before = torch.get_rng_state()
        keep = None if on_state is None else (
            lambda state, done=list(results), rng=rng_before: on_state(SequenceState(names, done, rng, state)))
        try:
            results += train.fit_members([members[index]], problem, on_epoch, keep, current)
        except train.FitInterrupted as stop:
            raise train.FitInterrupted(results + stop.results, stop.cause) from stop.cause
        if on_state is not None and index + 1 < len(members):
            on_state(SequenceState(names, list(results), torch.get_rng_state()))
    return results
