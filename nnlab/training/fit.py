"""The fit entry points, the one place where a fit's placement is resolved: `fit_stack` (members that share
one stack, K = 1 included), `fit_one_after_another` (members that cannot: one stack of one each, resumable
between them) — both through the one loop, `nnlab.training.loop.run_epochs` — and `fit_baseline`
(full-batch Newton). This module never prints or writes files.
"""

from __future__ import annotations

import contextlib
import math
import time
from typing import ContextManager, Optional

import numpy as np
import torch
from torch import nn

from nnlab.models.linear import fit_convex
from nnlab.training import metrics as metric_fns
from nnlab.training.state import (BuiltMember, Cull, EpochRecord, FitInterrupted, FitResult, FitState, LoopState,
                                  OnEpoch, OnFitState, OnState, Problem, SequenceState)
from nnlab.training.evaluation import EVAL_BATCH, read
from nnlab.core.columns import prefixed, unprefixed
from nnlab.training.loop import run_epochs
from nnlab.training.optim import LossFn, build_loss
from nnlab.training.placement import (Placement, compute_params, resolve_device, resolve_placement,
                                      resolve_precision, small_step_threads)
from nnlab.spec import BaselineSpec, TrainSpec
from nnlab.training.stack import can_stack, can_stack_modules, shared_train_settings

__all__ = ["EVAL_BATCH", "BuiltMember", "EpochRecord", "FitInterrupted", "FitResult", "FitState", "LoopState",
           "OnEpoch", "OnFitState", "OnState", "Problem", "SequenceState", "can_stack", "can_stack_members",
           "evaluate", "fit_baseline", "fit_one_after_another", "fit_stack", "predict", "resolve_device",
           "resolve_precision"]


def can_stack_members(members: list[BuiltMember]) -> tuple[bool, str]:
    """Whether built members can share one stack (same layers, shared settings); if not, why."""
    if len(members) == 1:
        return True, ""
    ok, reason = can_stack_modules([m.model for m in members])
    return (ok, reason) if not ok else shared_train_settings([m.train for m in members])


def fit_stack(members: list[BuiltMember], problem: Problem, on_epoch: OnEpoch, on_state: Optional[OnState] = None,
              resume: Optional[LoopState] = None, cull: Optional[Cull] = None) -> list[FitResult]:
    """Train members — each built with its own seed, `can_stack_members` — as one stack (one member: one model
    alone); each member's result equals the same member trained alone with its seed. Keeps each member's
    weights of its best epoch by `problem.monitor` and tests them once. `on_state` gets a LoopState after
    every epoch; `resume=state` continues from one exactly; `cull` (sweep --halving) may stop members after an
    epoch, and they leave the stack. An interrupt raises FitInterrupted."""
    train = members[0].train  # the settings members share: precision, batch size
    work = sum(compute_params(m.model) for m in members) * train.batch_size
    placement = resolve_placement(train, problem.device, work)
    with placement.cpu_threads():
        return run_epochs(members, problem, on_epoch, placement, on_state, resume, cull)


def fit_one_after_another(members: list[BuiltMember], problem: Problem, on_epoch: OnEpoch,
                          on_state: Optional[OnFitState] = None, resume: Optional[SequenceState] = None
                          ) -> list[FitResult]:
    """Members that do not stack, each as a stack of one, with a SequenceState after every epoch and after
    each member; `resume` continues from one. Raises FitInterrupted with every member's result so far."""
    names = [m.name for m in members]
    results: list[FitResult] = list(resume.done) if resume else []
    if resume and resume.done:
        torch.set_rng_state(resume.rng_after)  # as the finished members left it
    for index in range(len(results), len(members)):
        current = resume.current if resume and index == len(resume.done) else None
        rng_before = torch.get_rng_state()
        keep = None if on_state is None else (
            lambda state, done=list(results), rng=rng_before: on_state(SequenceState(names, done, rng, state)))
        try:
            results += fit_stack([members[index]], problem, on_epoch, keep, current)
        except FitInterrupted as stop:
            raise FitInterrupted(results + stop.results, stop.cause) from stop.cause
        if on_state is not None and index + 1 < len(members):
            on_state(SequenceState(names, list(results), torch.get_rng_state()))
    return results


def fit_baseline(name: str, model: nn.Module, problem: Problem, spec: BaselineSpec,
                 on_epoch: OnEpoch) -> FitResult:
    """Newton's method on the convex objective scikit-learn uses: mean loss + l2/(2n)·||W||² (C = 1/l2);
    for regression, Ridge's sum of squares + l2·||W||² up to the same scale. Fitted in float64
    (`models.linear.fit_convex`), in fp32 placement."""
    x = problem.x["train"]
    # The arithmetic of a product of the rows: for sparse rows their stored entries, not rows x columns
    work = x._nnz() * problem.n_outputs if x.layout != torch.strided else len(x) * sum(
        p.numel() for p in model.parameters())
    placement = Placement(problem.device, threads=small_step_threads(work, problem.device))
    started = time.perf_counter()
    device = problem.device
    x, y = x.double(), problem.y["train"]
    n = len(x)
    loss_fn = build_loss(problem.task, TrainSpec(), y, problem.n_outputs)
    history: list[EpochRecord] = []
    with placement.cpu_threads():
        try:
            with torch.no_grad():
                weight, bias = fit_convex(x, y, problem.task, problem.n_outputs, spec.l2, spec.max_iter)
                model.to(device=device, dtype=torch.float32)
                model.weight.copy_(weight)
                model.bias.copy_(bias)
            train_values = evaluate(model, problem, "train", loss_fn, placement.autocast())
            val_values = evaluate(model, problem, "val", loss_fn, placement.autocast())
            values = read({**prefixed("train", train_values), **prefixed("val", val_values)})
            history.append(EpochRecord(name, 1, values, None, time.perf_counter() - started))
            on_epoch(history[0])
            finite = math.isfinite(values["train_loss"]) and math.isfinite(values["val_loss"])
            test = read(evaluate(model, problem, "test", loss_fn, placement.autocast()))
        except KeyboardInterrupt as cause:
            raise FitInterrupted([_baseline_interrupted(name, model, problem, history, started)], cause) from cause
        seconds = time.perf_counter() - started
        return FitResult(name, "completed" if finite else "diverged", 1, 1, unprefixed("val", values), test,
                         seconds, n / seconds if seconds > 0 else 0.0, history,
                         None if finite else "the Newton fit did not converge to finite values",
                         state={k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
                         val_probabilities=predict(model, problem, "val", placement.autocast()),
                         test_probabilities=predict(model, problem, "test", placement.autocast()))


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


def _outputs(model: nn.Module, x: torch.Tensor, autocast: ContextManager[object]) -> torch.Tensor:
    model.eval()
    with torch.inference_mode(), autocast:
        if x.layout != torch.strided:  # sparse rows cannot be sliced; they are small by being sparse
            return model(x).float()
        return torch.cat([model(x[i:i + EVAL_BATCH]).float() for i in range(0, len(x), EVAL_BATCH)])


def evaluate(model: nn.Module, problem: Problem, split: str, loss_fn: LossFn, autocast: ContextManager[object]
             ) -> dict[str, torch.Tensor]:
    """Loss and metrics of one split for a plain module, as device tensors (read them with `evaluation.read`)."""
    outputs = _outputs(model, problem.x[split], autocast)
    target = problem.y[split]
    with torch.inference_mode():
        loss = loss_fn(outputs, target.to(outputs.dtype) if target.is_floating_point() else target)
        return {"loss": loss, **metric_fns.compute(problem.task, problem.metrics, outputs, target,
                                                   problem.target_std)}


def predict(model: nn.Module, problem: Problem, split: str, autocast: ContextManager[object]) -> np.ndarray:
    """Model units, on the host: probabilities (binary: of the positive class [N]; multiclass [N, K]) or, for
    regression, STANDARDIZED predictions (the data's preprocessing turns them into the target's units)."""
    return metric_fns.probabilities(problem.task, _outputs(model, problem.x[split], autocast)).cpu().numpy()
