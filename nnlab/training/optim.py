"""Losses, the optimizer step and learning-rate schedules, for a stack of K members (K = 1: one model).

The spec's Literal fields list the same names as the dicts here (tests/test_registries.py checks that they
agree). The step is written by hand on the members' flat parameters [K, P]: Adam, AdamW and SGD are
elementwise, so one set of ops updates every member, each with its own learning rate, weight decay and
momentum as [K, 1] tensors. tests/test_optim.py checks it against torch.optim, member by member.
"""

from __future__ import annotations

import math
import warnings
from typing import Callable, Optional

import torch
from torch import nn
from torch.nn import functional as F

from nnlab.spec import OptimizerSpec, TrainSpec

# The torch optimizer each name reproduces (the oracle in tests/test_optim.py).
OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = {
    "sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW}
SCHEDULERS = {
    "step": lambda opt, s, epochs, mode: torch.optim.lr_scheduler.StepLR(opt, s.step_size, s.gamma),
    "cosine": lambda opt, s, epochs, mode: torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs, s.min_lr),
    "plateau": lambda opt, s, epochs, mode: torch.optim.lr_scheduler.ReduceLROnPlateau(
        opt, mode=mode, factor=s.factor, patience=s.patience),
}
REGRESSION_LOSSES: dict[str, Callable[..., torch.Tensor]] = {
    "auto": F.mse_loss, "mse": F.mse_loss, "mae": F.l1_loss, "huber": F.huber_loss}
BETAS, EPS = (0.9, 0.999), 1e-8  # torch's Adam defaults; the spec does not expose them
CLIP_EPS = 1e-6  # what clip_grad_norm_ adds to the norm

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def skip_dynamo_import() -> None:
    """Every optimizer's constructor calls Optimizer.add_param_group, which torch wraps with
    torch._disable_dynamo; that wrapper's first call imports torch._dynamo (2.5 s on a 2-core machine) only to
    mark the function as not traceable by torch.compile. nnlab never compiles optimizers, so the wrapper's
    cache is filled with the plain function. Should torch change this private detail, this does nothing and
    the import merely costs its time."""
    plain = getattr(torch.optim.Optimizer.add_param_group, "__wrapped__", None)
    if plain is not None and not hasattr(plain, "__dynamo_disable"):
        plain.__dynamo_disable = plain


# --- losses -------------------------------------------------------------------------------------------

def build_loss(task: str, train: TrainSpec, y_train: torch.Tensor, n_outputs: int) -> LossFn:
    """The loss of a task: raw outputs [..., N, n_outputs] and targets [..., N] -> the mean over N, per
    leading index: a scalar for one model's [N, O], a [K] vector for K members' [K, N, O]."""
    if task == "multiclass":
        weight = class_weights(task, y_train, n_outputs) if train.class_weights == "balanced" else None

        def cross_entropy(outputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
            losses = F.cross_entropy(outputs.reshape(-1, n_outputs), target.reshape(-1), weight=weight,
                                     reduction="none").reshape(target.shape)
            if weight is None:
                return losses.mean(-1)
            return losses.sum(-1) / weight[target].sum(-1)  # torch's weighted mean: sum(w·l) / sum(w)
        return cross_entropy
    if task == "binary":
        pos_weight = class_weights(task, y_train, n_outputs) if train.class_weights == "balanced" else None
        return lambda outputs, target: F.binary_cross_entropy_with_logits(
            outputs.squeeze(-1), target, pos_weight=pos_weight, reduction="none").mean(-1)
    criterion = REGRESSION_LOSSES[train.loss]
    return lambda outputs, target: criterion(outputs.squeeze(-1), target, reduction="none").mean(-1)


LossGradFn = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def build_loss_grad(task: str, train: TrainSpec, y_train: torch.Tensor, n_outputs: int) -> Optional[LossGradFn]:
    """The loss of `build_loss` with its gradient by the outputs, without autograd: outputs [K, B, 1] and
    targets [K, B] -> (losses [K], gradient [K, B, 1]) of the sum of the K losses. Written as autograd's own
    backward formulas for these losses (FunctionsManual.cpp, mean's backward then the loss's), so the numbers
    are autograd's bit for bit (tests/test_stack.py checks it). None where only autograd has the gradient."""
    if task == "binary":
        pos_weight = class_weights(task, y_train, n_outputs) if train.class_weights == "balanced" else None

        def binary(outputs: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            logits = outputs.squeeze(-1)
            losses = F.binary_cross_entropy_with_logits(logits, target, pos_weight=pos_weight, reduction="none")
            if pos_weight is None:
                grad = logits.sigmoid().sub_(target)
            else:
                weighted = pos_weight.mul(target)
                grad = weighted.add(1).sub_(target).mul_(logits.sigmoid()).sub_(weighted)
            return losses.mean(-1), grad.mul_(_mean_grad(target)).unsqueeze(-1)
        return binary
    if task == "regression" and train.loss in ("auto", "mse"):
        def mse(outputs: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            predicted = outputs.squeeze(-1)
            losses = F.mse_loss(predicted, target, reduction="none").mean(-1)
            return losses, torch.ops.aten.mse_loss_backward(_mean_grad(target), predicted, target, 0).unsqueeze(-1)
        return mse
    return None


def _mean_grad(target: torch.Tensor) -> torch.Tensor:
    """The gradient that mean(-1) then sum() pass back to each of [K, B] losses: 1 / B, computed as autograd does."""
    k, b = target.shape
    return torch.ones(k, 1, dtype=target.dtype, device=target.device).expand(k, b).div(b)


def class_weights(task: str, y_train: torch.Tensor, n_outputs: int) -> torch.Tensor:
    """`balanced`: multiclass weight_c = n / (classes · count_c) (scikit-learn's formula); binary: the
    positive class's weight n_negative / n_positive, as BCE's pos_weight."""
    if task == "multiclass":
        counts = torch.bincount(y_train, minlength=n_outputs).float()
        return counts.sum() / (n_outputs * counts.clamp(min=1))
    positives = y_train.sum()
    return ((len(y_train) - positives) / positives.clamp(min=1)).reshape(1)


# --- the step -----------------------------------------------------------------------------------------

class StackedStep:
    """One optimizer step for K members whose parameters are the rows of `params` [K, P] and whose gradients
    are the rows of `grads` (a backward pass fills them). Hyperparameters are per member; `set_lrs` and
    `set_active` change them between epochs. An inactive member (stopped early, or diverged) is left out:
    its weights and moments stay exactly as they are.

    Where torch has fused kernels for the device (CPU and CUDA), members that share their hyperparameters
    are updated by one call of torch's own fused Adam/AdamW/SGD kernel — one pass over memory instead of ten
    elementwise ops, the difference between a stack of ten costing 3x and 2x one model. Elsewhere, and for
    fp16 steps that some members must skip, the same arithmetic runs as [K, 1]-broadcast tensor ops."""

    def __init__(self, specs: list[OptimizerSpec], params: torch.Tensor, grads: torch.Tensor,
                 grad_clips: Optional[list[Optional[float]]] = None):
        names = {s.name for s in specs}
        assert len(names) == 1 and len(specs) == len(params), "one optimizer kind, one spec per member"
        self.name, self.params, self.grads = names.pop(), params, grads
        column = lambda values: torch.tensor(values, dtype=params.dtype, device=params.device).reshape(-1, 1)
        self.weight_decay = column([s.weight_decay for s in specs])
        self.decays = bool(any(s.weight_decay for s in specs))
        self.momentum = column([s.momentum for s in specs])
        self.uses_momentum = self.name == "sgd" and any(s.momentum for s in specs)
        clips = grad_clips or [None] * len(specs)
        self.clip = column([c if c else math.inf for c in clips]) if any(clips) else None
        self.lrs = [s.lr for s in specs]
        self.active = torch.ones(len(specs), 1, dtype=torch.bool, device=params.device)
        self.all_active, self.active_list = True, [True] * len(specs)
        self.lr = column(self.lrs)
        self.steps = 0
        self.exp_avg = torch.zeros_like(params) if self.name != "sgd" or self.uses_momentum else None
        self.exp_avg_sq = torch.zeros_like(params) if self.name != "sgd" else None
        self.specs = specs
        self.fused = _fused_supported(params.device) and params.is_contiguous()
        self.step_count = torch.zeros((), dtype=torch.float32, device=params.device)  # what fused kernels read
        self.groups: list[_Group] = []
        self._refresh()

    def set_lrs(self, lrs: list[float]) -> None:
        self.lrs = list(lrs)
        self._refresh()

    def set_active(self, active: list[bool]) -> None:
        self.all_active, self.active_list = all(active), list(active)
        self.active = torch.tensor(active, dtype=torch.bool, device=self.params.device).reshape(-1, 1)
        self._refresh()

    def _refresh(self) -> None:
        # One small host-to-device copy per change (per epoch at most), never inside the step loop.
        self.lr = torch.tensor(self.lrs, dtype=self.params.dtype, device=self.params.device).reshape(-1, 1)
        self.lr = torch.where(self.active, self.lr, 0.0)
        active = self.active_list  # kept on the host: reading the device tensor would be a sync
        by_setting: dict[tuple, list[int]] = {}
        for k, (spec, lr) in enumerate(zip(self.specs, self.lrs)):
            if active[k]:
                by_setting.setdefault((lr, spec.weight_decay, spec.momentum), []).append(k)
        self.groups = [_Group(lr, decay, momentum, rows, self) for (lr, decay, momentum), rows in by_setting.items()]

    def keep(self, rows: list[int], params: torch.Tensor, grads: torch.Tensor) -> None:
        """Only the members at `rows` go on, all active, with the stack's compacted `params` and `grads`: their
        hyperparameters and moments are kept row by row, so each steps exactly as before."""
        index = torch.tensor(rows, device=params.device)
        pick = lambda t: None if t is None else t.index_select(0, index)
        self.params, self.grads = params, grads
        self.specs, self.lrs = [self.specs[r] for r in rows], [self.lrs[r] for r in rows]
        self.weight_decay, self.momentum, self.clip = pick(self.weight_decay), pick(self.momentum), pick(self.clip)
        self.decays = bool(any(s.weight_decay for s in self.specs))
        self.uses_momentum = self.name == "sgd" and any(s.momentum for s in self.specs)
        self.exp_avg, self.exp_avg_sq = pick(self.exp_avg), pick(self.exp_avg_sq)
        self.fused = _fused_supported(params.device) and params.is_contiguous()
        self.set_active([True] * len(rows))

    def __call__(self, skip: Optional[torch.Tensor] = None) -> None:
        """`skip` (bool [K, 1], optional): members whose step this is not, e.g. fp16 gradients that overflowed."""
        with torch.no_grad():
            lr, keep = self.lr, self.active
            if skip is not None:
                lr, keep = torch.where(skip, 0.0, lr), keep & ~skip
            if self.clip is not None:
                # clip_grad_norm_ per member: one norm over all of a member's gradients.
                norms = torch.linalg.vector_norm(self.grads, dim=1, keepdim=True)
                self.grads.mul_((self.clip / (norms + CLIP_EPS)).clamp(max=1.0))
            self.steps += 1
            if self.fused and skip is None:
                self.step_count.fill_(self.steps)
                for group in self.groups:
                    group.step(self.name, self.steps == 1)
                return
            grads = self.grads if self.all_active and skip is None else torch.where(keep, self.grads, 0.0)
            if self.name == "sgd":
                self._sgd(grads, lr)
            else:
                self._adam(grads, lr)

    def _sgd(self, grads: torch.Tensor, lr: torch.Tensor) -> None:
        if self.decays:
            grads = grads + self.weight_decay * self.params
        if self.uses_momentum:
            # torch starts the buffer as a copy of the first gradient; 0 * momentum + g is that copy.
            self.exp_avg.mul_(self.momentum).add_(grads)
            grads = self.exp_avg
        self.params.sub_(lr * grads)

    def _adam(self, grads: torch.Tensor, lr: torch.Tensor) -> None:
        beta1, beta2 = BETAS
        if self.name == "adamw":
            if self.decays:
                self.params.mul_(1 - lr * self.weight_decay)
        elif self.decays:
            grads = grads + self.weight_decay * self.params
        self.exp_avg.lerp_(grads, 1 - beta1)
        self.exp_avg_sq.mul_(beta2).addcmul_(grads, grads, value=1 - beta2)
        # Bias corrections are Python floats: the step count lives on the host, no sync needed.
        step_size = lr / (1 - beta1 ** self.steps)
        denom = (self.exp_avg_sq.sqrt() / math.sqrt(1 - beta2 ** self.steps)).add_(EPS)
        self.params.sub_(step_size * self.exp_avg / denom)

    def state_dict(self) -> dict:
        return {"steps": self.steps, "lrs": list(self.lrs), "active": self.active.clone(),
                "exp_avg": None if self.exp_avg is None else self.exp_avg.clone(),
                "exp_avg_sq": None if self.exp_avg_sq is None else self.exp_avg_sq.clone()}

    def load_state_dict(self, state: dict) -> None:
        self.steps, self.lrs = state["steps"], list(state["lrs"])
        self.active = state["active"].to(self.params.device).clone()
        self.active_list = self.active.reshape(-1).tolist()  # once, when a run resumes
        self.all_active = all(self.active_list)
        self.step_count.fill_(self.steps)
        for name in ("exp_avg", "exp_avg_sq"):
            if state[name] is not None:
                getattr(self, name).copy_(state[name])
        self._refresh()


class _Group:
    """Members with the same hyperparameters: the argument lists of one fused-kernel call."""

    def __init__(self, lr: float, weight_decay: float, momentum: float, rows: list[int], step: StackedStep):
        self.lr, self.weight_decay, self.momentum = lr, weight_decay, momentum
        every = len(rows) == len(step.params)
        pick = (lambda t: [t.view(-1)]) if every else (lambda t: [t[k] for k in rows])  # one tensor if all
        self.params, self.grads = pick(step.params), pick(step.grads)
        self.exp_avg = pick(step.exp_avg) if step.exp_avg is not None and (step.name != "sgd" or momentum) else []
        self.exp_avg_sq = pick(step.exp_avg_sq) if step.exp_avg_sq is not None else []
        self.steps = [step.step_count] * len(self.params)

    def step(self, name: str, first: bool) -> None:
        if name == "sgd":
            torch._fused_sgd_(self.params, self.grads, self.exp_avg, weight_decay=self.weight_decay,
                              momentum=self.momentum, lr=self.lr, dampening=0.0, nesterov=False, maximize=False,
                              is_first_step=first)
            return
        kernel = torch._fused_adamw_ if name == "adamw" else torch._fused_adam_
        kernel(self.params, self.grads, self.exp_avg, self.exp_avg_sq, [], self.steps, lr=self.lr,
               beta1=BETAS[0], beta2=BETAS[1], weight_decay=self.weight_decay, eps=EPS, amsgrad=False,
               maximize=False)


def _fused_supported(device: torch.device) -> bool:
    """torch's fused optimizer kernels exist for CUDA, and for the CPU since torch 2.4."""
    version = tuple(int(p) for p in torch.__version__.split("+")[0].split(".")[:2])
    return device.type == "cuda" or (device.type == "cpu" and version >= (2, 4))


def make_step(specs: list[OptimizerSpec], params: torch.Tensor, grads: torch.Tensor,
              grad_clips: Optional[list[Optional[float]]] = None) -> StackedStep:
    return StackedStep(specs, params, grads, grad_clips)


# --- schedules ----------------------------------------------------------------------------------------

class Schedule:
    """One member's learning rate over epochs, by torch's own scheduler classes acting on a stand-in
    optimizer (a 0-element parameter), so that StepLR, CosineAnnealingLR and ReduceLROnPlateau behave
    exactly as documented while the real step reads the rate from here."""

    def __init__(self, train: TrainSpec, higher_is_better: bool):
        skip_dynamo_import()
        self.optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(0))], lr=train.optimizer.lr)
        self.name = train.scheduler.name if train.scheduler else None
        self.scheduler = None if train.scheduler is None else SCHEDULERS[train.scheduler.name](
            self.optimizer, train.scheduler, train.epochs, "max" if higher_is_better else "min")

    @property
    def lr(self) -> float:
        return self.optimizer.param_groups[0]["lr"]

    def step(self, score: float) -> None:
        """After an epoch: `score` is the monitored validation value (plateau reads it)."""
        if self.scheduler is None:
            return
        with warnings.catch_warnings():
            # The stand-in optimizer never steps, so torch warns that the scheduler stepped first.
            warnings.filterwarnings("ignore", r"Detected call of `lr_scheduler\.step\(\)` before")
            self.scheduler.step(score) if self.name == "plateau" else self.scheduler.step()

    def state_dict(self) -> dict:
        return {"lr": self.lr, "scheduler": None if self.scheduler is None else self.scheduler.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.optimizer.param_groups[0]["lr"] = state["lr"]
        if self.scheduler is not None:
            self.scheduler.load_state_dict(state["scheduler"])
