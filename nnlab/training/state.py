"""What a fit takes and gives back, torch-side: the problem, the built members, epoch records, results, the
interrupt that carries them, and `LoopState` — everything the loop needs to continue after an epoch exactly
as if it had never stopped (resume) — with `SequenceState` for members that train one after another.
Shared by `nnlab.training.loop` (which fills them) and `nnlab.training.fit`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional, Union

import numpy as np
import torch
from torch import nn

from nnlab.core.inputs import SparseRows
from nnlab.core.records import HalvingStop
from nnlab.models.tensors import as_tensor
from nnlab.spec import TrainSpec


@dataclass
class Problem:
    """What every fit needs to know about the data: tensors on the device, the task and how to score it."""

    task: str
    x: dict[str, torch.Tensor]
    y: dict[str, torch.Tensor]
    metrics: list[str]
    monitor: str
    target_std: float = 1.0
    n_outputs: int = 1  # classes for multiclass, else 1

    @classmethod
    def from_arrays(cls, task: str, x: dict[str, np.ndarray | SparseRows], y: dict[str, np.ndarray],
                    metrics: list[str], monitor: str, device: torch.device, target_std: float = 1.0,
                    n_outputs: int = 1) -> Problem:
        """Dense arrays become dense tensors, SparseRows sparse CSR tensors (only the baseline reads those)."""
        # Moved to the device once; every batch after this is a slice of these tensors.
        return cls(task, {k: as_tensor(v, device) for k, v in x.items()},
                   {k: torch.from_numpy(v).to(device) for k, v in y.items()}, metrics, monitor, target_std,
                   n_outputs)

    @property
    def device(self) -> torch.device:
        return self.x["train"].device


@dataclass
class EpochRecord:
    model: str
    epoch: int
    values: dict[str, float]  # train_loss, val_loss, train_<metric>, val_<metric>
    lr: Optional[float]
    seconds: float  # the epoch's wall time (shared by the members of a stack)
    member: int = 0


@dataclass
class FitResult:
    name: str
    status: str  # completed | diverged | failed | interrupted
    best_epoch: int
    epochs_run: int
    val: dict[str, float]
    test: dict[str, float]
    train_seconds: float
    samples_per_second: float
    history: list[EpochRecord] = field(default_factory=list)
    message: Optional[str] = None
    stop_reason: Optional[str] = None
    state: Optional[dict[str, torch.Tensor]] = None  # best weights, on the CPU
    val_probabilities: Optional[np.ndarray] = None  # `predict` on val: probabilities, or standardized values
    member: int = 0
    test_probabilities: Optional[np.ndarray] = None  # the same on test, where it was tested
    halved: Optional[HalvingStop] = None  # why a cull (`sweep --halving`) stopped it early


class FitInterrupted(KeyboardInterrupt):
    """Ctrl-C or a signal arrived during a fit. `result` is what was trained so far: status "interrupted", the
    best epoch's validation scores, best weights and validation probabilities (best_epoch 0 and no state when
    no epoch finished); no test evaluation. `results` holds every member's (members that had already
    finished keep their own status and test scores). `cause` is the KeyboardInterrupt that arrived (it may
    carry the signal)."""

    def __init__(self, results: FitResult | list[FitResult], cause: BaseException):
        self.results = [results] if isinstance(results, FitResult) else list(results)
        self.result, self.cause = self.results[0], cause
        super().__init__(f"{self.result.name}: interrupted after {self.result.epochs_run} epoch(s)")


@dataclass
class BuiltMember:
    """One member of a fit (a row of a stack): its module (built with its seed), settings and seed; `member`
    is its repeat index.
    `torch_rng`/`cuda_rng`: torch's global generators as building this member left them. A module without a
    stacked form draws its dropout from them, so training it alone starts from them, whatever was built or
    trained before it (members built together and then trained one after another equal their runs alone)."""

    name: str
    model: nn.Module
    train: TrainSpec
    seed: int
    member: int = 0
    torch_rng: Optional[torch.Tensor] = None
    cuda_rng: Optional[list[torch.Tensor]] = None


OnEpoch = Callable[[EpochRecord], None]


@dataclass(frozen=True)
class MemberStanding:
    """A member of a stack as a cull sees it after an epoch: still training (`live`), and its best monitored
    validation score so far (None before any)."""

    name: str
    member: int
    live: bool
    score: Optional[float]


# After every epoch: which live members (by row) to stop, and why. Stopped members leave the stack.
Cull = Callable[[int, list[MemberStanding]], dict[int, HalvingStop]]


@dataclass
class MemberProgress:
    """One member's host-side progress between epochs: what `LoopState` saves and restores."""

    status: str = "running"
    message: Optional[str] = None
    stop_reason: Optional[str] = None
    best_score: Optional[float] = None
    best_epoch: int = 0
    best_values: dict[str, float] = field(default_factory=dict)
    best_buffers: dict[str, torch.Tensor] = field(default_factory=dict)
    history: list[EpochRecord] = field(default_factory=list)
    seconds: float = 0.0
    stopping_best: Optional[float] = None  # early stopping's best monitored value and epochs without improving
    stopping_stale: int = 0
    halved: Optional[HalvingStop] = None  # stopped by a cull


@dataclass
class LoopState:
    """The loop after `epoch` complete epochs, on the CPU: weights, optimizer moments and step count, each
    member's schedule, early-stopping state, best-so-far weights and progress, fp16's loss scale, and every
    generator the loop
    draws from (each member's batch order and dropout, and torch's global one, which modules without a
    stacked form use for dropout). `fit(..., resume=state)` continues from it exactly: the results equal an
    uninterrupted run's bit for bit. Nothing here is written to disk; the run store decides that."""

    names: list[str]
    epoch: int
    params: torch.Tensor  # [K, P]
    best_params: torch.Tensor  # [K, P]
    buffers: dict[str, torch.Tensor]  # the modules' buffers now (batch-norm statistics)
    optimizer: dict
    schedules: list[dict]
    members: list[MemberProgress]
    order_rng: list[torch.Tensor]
    dropout_rng: list[torch.Tensor]
    torch_rng: torch.Tensor
    cuda_rng: Optional[list[torch.Tensor]] = None
    loss_scale: Optional[dict[str, torch.Tensor]] = None  # fp16's dynamic scale and its clean-step count
    augment_rng: Optional[list[torch.Tensor]] = None  # each member's train.augment generator


OnState = Callable[[LoopState], None]


@dataclass
class SequenceState:
    """Members that cannot share a stack (layers without a stacked form, such as batch norm, with repeats)
    train one after another; this is what a checkpoint holds for them, so that their progress resumes like a
    stack's: the results of the members that finished, torch's global generator after the last of them (a
    member built without its own generator state, `BuiltMember.torch_rng`, draws its dropout from it; a member
    built by `run.members` starts from its build's, as alone), and the `LoopState` of the member in training.
    `fit.fit_one_after_another` continues from one exactly: finished members are not trained again, the
    member in training goes on from its last epoch, the rest start as they would have."""

    names: list[str]  # every member's model name, in training order
    done: list[FitResult]  # each finished member's, in order
    rng_after: torch.Tensor  # torch's global generator state after the last finished member (uint8)
    current: Optional[LoopState] = None  # the member in training's; None between members

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


FitState = Union[LoopState, SequenceState]  # what a checkpoint keeps of a fit in progress
OnFitState = Callable[[FitState], None]
