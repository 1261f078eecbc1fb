"""Spec names -> torch optimizers, schedulers and losses. Plain dicts; the spec's Literal fields list the
same names (tests/test_registries.py checks that they agree)."""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from nnlab.spec import OptimizerSpec, TrainSpec

OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = {
    "sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW}
SCHEDULERS = {
    "step": lambda opt, s, epochs, mode: torch.optim.lr_scheduler.StepLR(opt, s.step_size, s.gamma),
    "cosine": lambda opt, s, epochs, mode: torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs, s.min_lr),
    "plateau": lambda opt, s, epochs, mode: torch.optim.lr_scheduler.ReduceLROnPlateau(
        opt, mode=mode, factor=s.factor, patience=s.patience),
}
REGRESSION_LOSSES: dict[str, Callable[[], nn.Module]] = {
    "auto": nn.MSELoss, "mse": nn.MSELoss, "mae": nn.L1Loss, "huber": nn.HuberLoss}

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


def build_optimizer(spec: OptimizerSpec, params: list[torch.nn.Parameter]) -> torch.optim.Optimizer:
    """The torch optimizer: it holds the hyperparameters that schedulers change and is what `make_step` steps."""
    skip_dynamo_import()
    kwargs: dict = {"lr": spec.lr, "weight_decay": spec.weight_decay}
    if spec.name == "sgd":
        kwargs["momentum"] = spec.momentum
    return OPTIMIZERS[spec.name](params, **kwargs)


def _fused_supported(device: torch.device) -> bool:
    version = tuple(int(p) for p in torch.__version__.split("+")[0].split(".")[:2])
    return device.type == "cuda" or (device.type == "cpu" and version >= (2, 4))


def make_step(optimizer: torch.optim.Optimizer, device: torch.device) -> Callable[[], None]:
    """A function doing `optimizer.step()` through the same functional kernel torch.optim uses (fused where
    the device has it), minus Optimizer.step's per-call bookkeeping: that costs ~0.4 ms a step, more than the
    whole forward and backward pass of a small MLP. Hyperparameters are read from the optimizer's param
    group on every step, so learning-rate schedulers work as usual."""
    from torch.optim import adam, adamw, sgd

    group = optimizer.param_groups[0]
    params: list[torch.Tensor] = group["params"]
    fused = _fused_supported(device)
    step_device = device if fused else torch.device("cpu")
    if isinstance(optimizer, torch.optim.SGD):
        buffers: list = [None] * len(params)

        def sgd_step() -> None:
            with torch.no_grad():
                sgd.sgd(params, [p.grad for p in params], buffers, foreach=True, weight_decay=group["weight_decay"],
                        momentum=group["momentum"], lr=group["lr"], dampening=0.0, nesterov=False, maximize=False)
        return sgd_step
    kernel = adamw.adamw if isinstance(optimizer, torch.optim.AdamW) else adam.adam
    exp_avgs = [torch.zeros_like(p) for p in params]
    exp_avg_sqs = [torch.zeros_like(p) for p in params]
    steps = [torch.zeros((), dtype=torch.float32, device=step_device) for _ in params]
    beta1, beta2 = group["betas"]

    def adam_step() -> None:
        with torch.no_grad():
            kernel(params, [p.grad for p in params], exp_avgs, exp_avg_sqs, [], steps, foreach=not fused,
                   fused=fused or None, amsgrad=False, beta1=beta1, beta2=beta2, lr=group["lr"],
                   weight_decay=group["weight_decay"], eps=group["eps"], maximize=False)
    return adam_step


def build_scheduler(train: TrainSpec, optimizer: torch.optim.Optimizer, higher_is_better: bool):
    if train.scheduler is None:
        return None
    mode = "max" if higher_is_better else "min"
    return SCHEDULERS[train.scheduler.name](optimizer, train.scheduler, train.epochs, mode)


def build_loss(task: str, train: TrainSpec, y_train: torch.Tensor, n_outputs: int) -> LossFn:
    """The loss for a task, taking raw model outputs [N, n_outputs] and targets [N]."""
    if task == "multiclass":
        weight = None
        if train.class_weights == "balanced":
            counts = torch.bincount(y_train, minlength=n_outputs).float()
            weight = counts.sum() / (n_outputs * counts.clamp(min=1))
        return nn.CrossEntropyLoss(weight=weight)
    if task == "binary":
        pos_weight = None
        if train.class_weights == "balanced":
            positives = y_train.sum()
            pos_weight = ((len(y_train) - positives) / positives.clamp(min=1)).reshape(1)
        criterion = nn.BCEWithLogitsLoss(pos_weight=pos_weight)
    else:
        criterion = REGRESSION_LOSSES[train.loss]()
    return lambda outputs, target: criterion(outputs.reshape(-1), target)
