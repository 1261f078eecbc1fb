"""Training entry points: `fit` (one model), `fit_members` (several: stacked when they can be, else one
after another — both through the one loop in `nnlab.training.loop`) and `fit_baseline` (full-batch Newton).

Device and precision are resolved here, once, so the loop has no device branches; small CPU models train
on one thread. This module never prints or writes files.
"""

from __future__ import annotations

import contextlib
import math
import time
from typing import Any, Iterator, Optional

import numpy as np
import torch
from torch import nn

from nnlab.training import metrics as metric_fns
from nnlab.errors import SpecError
from nnlab.training.state import (EpochRecord, FitInterrupted, FitResult, LoopState, Member, OnEpoch, OnState,
                            Problem)
from nnlab.training.evaluation import EVAL_BATCH, read
from nnlab.core.columns import prefixed, unprefixed
from nnlab.training.lossscale import LossScale
from nnlab.training.loop import fit_stack
from nnlab.training.optim import LossFn, build_loss
from nnlab.spec import BaselineSpec, TrainSpec
from nnlab.spec.base import shorten
from nnlab.training.stack import can_stack, can_stack_modules, shared_train_settings

__all__ = ["EVAL_BATCH", "EpochRecord", "FitInterrupted", "FitResult", "LoopState", "Member", "OnEpoch", "OnState",
           "Problem", "can_stack", "can_stack_members", "evaluate", "fit", "fit_baseline", "fit_members", "predict",
           "resolve_device", "resolve_precision"]


def resolve_device(name: str) -> torch.device:
    """`auto` is cuda, then mps, then cpu; a named device that is not there is a spec error."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda"):
        # Checked before torch.device, which wraps an index past 127 (cuda:200 is cuda:-56) and fails past 2**31.
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        index = name.partition(":")[2] or "0"
        if not index.isdigit() or len(index) > 9 or int(index) >= count:
            allowed = f"auto, cpu, cuda or cuda:N with N < {count}" if count else "auto or cpu"
            raise SpecError(f"train.device: '{shorten(name)}' is not available here (CUDA devices: "
                            f"{count or 'none'}); expected {allowed}")
    device = torch.device(name)
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise SpecError("train.device: 'mps' is not available here; use auto or cpu")
    return device


def resolve_precision(precision: str, device: torch.device) -> Optional[torch.dtype]:
    """The autocast dtype, or None for plain fp32."""
    if precision == "auto":
        return torch.bfloat16 if device.type == "cuda" and torch.cuda.is_bf16_supported() else None
    if precision == "fp16" and device.type != "cuda":
        raise SpecError(f"train.precision: fp16 needs a CUDA device; this model trains on {device.type}")
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


SMALL_STEP_WORK = 20_000_000  # rows per step x parameters below which one CPU thread beats several


def compute_params(model: nn.Module) -> int:
    """Parameters that cost arithmetic per row: an embedding table is a lookup, whatever its size."""
    return sum(p.numel() for m in model.modules() if not isinstance(m, nn.Embedding)
               for p in m.parameters(recurse=False))


@contextlib.contextmanager
def cpu_threads_for(params: int, rows_per_step: int, device: torch.device) -> Iterator[None]:
    """One intra-op thread for small CPU steps: waking a thread pool costs more than such a step's
    arithmetic, and on a busy machine spinning threads are many times slower still."""
    before = torch.get_num_threads()
    small = device.type == "cpu" and rows_per_step * params < SMALL_STEP_WORK
    if small:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def fit(name: str, model: nn.Module, problem: Problem, train: TrainSpec, seed: int, on_epoch: OnEpoch,
        on_state: Optional[OnState] = None, resume: Optional[LoopState] = None) -> FitResult:
    """Train one model with minibatches; keep the weights of the best epoch by `problem.monitor`; test them
    once. `model` ends holding those weights. The same loop as a stack of members, with K = 1.
    `on_state` gets a LoopState after every epoch; `resume=state` continues from one exactly."""
    return fit_members([Member(name, model, train, seed)], problem, on_epoch, on_state, resume)[0]


def can_stack_members(members: list[Member]) -> tuple[bool, str]:
    """Whether built members can share one stack (same layers, shared settings); if not, why."""
    if len(members) == 1:
        return True, ""
    ok, reason = can_stack_modules([m.model for m in members])
    return (ok, reason) if not ok else shared_train_settings([m.train for m in members])


def fit_members(members: list[Member], problem: Problem, on_epoch: OnEpoch, on_state: Optional[OnState] = None,
                resume: Optional[LoopState] = None) -> list[FitResult]:
    """Train members — each built with its own seed — as one stack when `can_stack_members` says they can,
    else one after another. Each member's result equals the same member trained alone (`fit`) with its seed.
    An interrupt raises FitInterrupted with the results of every member begun so far. `on_state` gets each
    group's LoopState after every epoch (its `names` say which group); `resume` continues one stack."""
    groups = [members] if can_stack_members(members)[0] else [[m] for m in members]
    if resume is not None and len(groups) > 1:
        raise ValueError("resume continues one stack; these members train one after another")
    results: list[FitResult] = []
    for group in groups:
        try:
            results += _fit_group(group, problem, on_epoch, on_state, resume)
        except FitInterrupted as interrupted:
            raise FitInterrupted(results + interrupted.results, interrupted.cause) from interrupted.cause
    return results


def _fit_group(members: list[Member], problem: Problem, on_epoch: OnEpoch, on_state: Optional[OnState],
               resume: Optional[LoopState]) -> list[FitResult]:
    train, device = members[0].train, problem.x["train"].device
    dtype = resolve_precision(train.precision, device)
    autocast = torch.autocast(device.type, dtype=dtype) if dtype else contextlib.nullcontext()
    scaler = LossScale(device) if dtype == torch.float16 else None
    params = sum(compute_params(m.model) for m in members)
    with cpu_threads_for(params, train.batch_size, device):
        return fit_stack(members, problem, on_epoch, autocast, scaler, on_state, resume)


def fit_baseline(name: str, model: nn.Module, problem: Problem, spec: BaselineSpec,
                 on_epoch: OnEpoch) -> FitResult:
    x = problem.x["train"]
    # The arithmetic of a product of the rows: for sparse rows their stored entries, not rows x columns
    work = x._nnz() * problem.n_outputs if x.layout != torch.strided else len(x) * sum(
        p.numel() for p in model.parameters())
    with cpu_threads_for(work, 1, x.device):
        return _fit_baseline(name, model, problem, spec, on_epoch)


def _fit_baseline(name: str, model: nn.Module, problem: Problem, spec: BaselineSpec,
                  on_epoch: OnEpoch) -> FitResult:
    """Newton's method on the convex objective scikit-learn uses: mean loss + l2/(2n)·||W||² (C = 1/l2);
    for regression, Ridge's sum of squares + l2·||W||² up to the same scale. Fitted in float64
    (`models.linear.fit_convex`)."""
    from nnlab.models.linear import fit_convex

    started = time.perf_counter()
    device = problem.x["train"].device
    x, y = problem.x["train"].double(), problem.y["train"]
    n = len(x)
    loss_fn = build_loss(problem.task, TrainSpec(), y, problem.n_outputs)
    history: list[EpochRecord] = []
    try:
        with torch.no_grad():
            weight, bias = fit_convex(x, y, problem.task, problem.n_outputs, spec.l2, spec.max_iter)
            model.to(device=device, dtype=torch.float32)
            model.weight.copy_(weight)
            model.bias.copy_(bias)
        train_values = evaluate(model, problem, "train", loss_fn, contextlib.nullcontext())
        val_values = evaluate(model, problem, "val", loss_fn, contextlib.nullcontext())
        values = read({**prefixed("train", train_values), **prefixed("val", val_values)})
        history.append(EpochRecord(name, 1, values, None, time.perf_counter() - started))
        on_epoch(history[0])
        finite = math.isfinite(values["train_loss"]) and math.isfinite(values["val_loss"])
        test = read(evaluate(model, problem, "test", loss_fn, contextlib.nullcontext()))
    except KeyboardInterrupt as cause:
        raise FitInterrupted([_baseline_interrupted(name, model, problem, history, started)], cause) from cause
    seconds = time.perf_counter() - started
    return FitResult(name, "completed" if finite else "diverged", 1, 1, unprefixed("val", values), test,
                     seconds, n / seconds if seconds > 0 else 0.0, history,
                     None if finite else "the Newton fit did not converge to finite values",
                     state={k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
                     val_probabilities=predict(model, problem, "val", contextlib.nullcontext()))


def _baseline_interrupted(name: str, model: nn.Module, problem: Problem, history: list[EpochRecord],
                          started: float) -> FitResult:
    """Interrupted inside the Newton fit: nothing is kept. Interrupted after it: the fitted weights, untested."""
    model.float()
    if not history:
        return FitResult(name, "interrupted", 0, 0, {}, {}, time.perf_counter() - started, 0.0, history,
                         "interrupted during the Newton fit")
    return FitResult(name, "interrupted", 1, 1, unprefixed("val", history[0].values), {},
                     time.perf_counter() - started, 0.0, history, "interrupted after the fit",
                     state={k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
                     val_probabilities=predict(model, problem, "val", contextlib.nullcontext()))


def _outputs(model: nn.Module, x: torch.Tensor, autocast: Any) -> torch.Tensor:
    model.eval()
    with torch.inference_mode(), autocast:
        if x.layout != torch.strided:  # sparse rows cannot be sliced; they are small by being sparse
            return model(x).float()
        return torch.cat([model(x[i:i + EVAL_BATCH]).float() for i in range(0, len(x), EVAL_BATCH)])


def evaluate(model: nn.Module, problem: Problem, split: str, loss_fn: LossFn, autocast: Any
             ) -> dict[str, torch.Tensor]:
    """Loss and metrics of one split for a plain module, as device tensors (read them with `evaluation.read`)."""
    outputs = _outputs(model, problem.x[split], autocast)
    target = problem.y[split]
    with torch.inference_mode():
        loss = loss_fn(outputs, target.to(outputs.dtype) if target.is_floating_point() else target)
        return {"loss": loss, **metric_fns.compute(problem.task, problem.metrics, outputs, target,
                                                   problem.target_std)}


def predict(model: nn.Module, problem: Problem, split: str, autocast: Any) -> np.ndarray:
    """Model units, on the host: probabilities (binary: of the positive class [N]; multiclass [N, K]) or, for
    regression, STANDARDIZED predictions (the data's preprocessing turns them into the target's units)."""
    return metric_fns.probabilities(problem.task, _outputs(model, problem.x[split], autocast)).cpu().numpy()
