"""One model of a run trained as N repeats (`repeats`: seeds seed .. seed+N-1 on the same split), built
here and fitted by `nnlab.training.fit`, and the repeats' fits summed up as one typed `ModelResult`: means,
standard deviations and each repeat's numbers.

`build_and_fit` builds every repeat of every model of a stack group (`stack_groups`) and fits them as one
stack (`fit.fit_stack`) when they can share one, else one after another (`fit.fit_one_after_another`); the
baseline has `build_and_fit_baseline`. A repeat that cannot be built or trained (too large for memory, an
error in a layer) is recorded as failed with the reason; the run goes on.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Optional

from nnlab.run.diagnosis import diagnose
from nnlab.errors import describe
from nnlab.core.inputs import InputInfo
from nnlab.core.records import MemberResult, ModelResult, PerClassResult
from nnlab.spec import ModelSpec
from nnlab.core.columns import higher_is_better
from nnlab.training.stacking import can_stack

if TYPE_CHECKING:
    import numpy as np
    import torch

    from nnlab.spec import BaselineSpec
    from nnlab.training.metrics import Final
    from nnlab.training.state import Cull, FitResult, FitState, OnEpoch, OnFitState, Problem

MEMORY_HEADROOM = 0.8  # refuse a model whose estimated training memory exceeds this share of what is free


@dataclass(frozen=True)
class Repeat:
    """One of a model's repeats: its index (the `member` column) and its seed."""

    index: int
    seed: int


@dataclass
class ModelToTrain:
    """A model of the run to train: its spec (None for the baseline) and its repeats."""

    name: str
    kind: str
    spec: Optional[ModelSpec]
    repeats: list[Repeat]
    epochs: int


@dataclass
class RepeatFit:
    """One repeat's outcome: the loop's FitResult (None when it never started) and how it was built."""

    member: int
    seed: int
    params: int = 0
    n_inputs: int = 0
    result: Optional[FitResult] = None
    failure: Optional[str] = None  # why the repeat could not be built or trained
    stacked: bool = False
    not_stacked: Optional[str] = None  # why it trained one after another with the others of its group
    final: Optional[Final] = None  # the end-of-training numbers (`add_final_metrics`)

    @property
    def status(self) -> str:
        return "failed" if self.result is None else self.result.status

    @property
    def state(self) -> Optional[dict[str, torch.Tensor]]:
        return None if self.result is None else self.result.state

    @property
    def val_probabilities(self) -> Optional[np.ndarray]:
        return None if self.result is None else self.result.val_probabilities


Fits = dict[str, list[RepeatFit]]  # each model's repeat fits, by model name


class ModelsInterrupted(KeyboardInterrupt):
    """A signal stopped `build_and_fit`/`build_and_fit_baseline`: `fits` holds by model what finished and what
    was cut short (best weights so far); `cause` is the KeyboardInterrupt that arrived (it may carry the
    signal)."""

    def __init__(self, fits: Fits, cause: BaseException):
        super().__init__(*cause.args)
        self.fits, self.cause = fits, cause


def _cause(stop: KeyboardInterrupt) -> BaseException:
    from nnlab.training.state import FitInterrupted

    return stop.cause if isinstance(stop, FitInterrupted) else stop


class ModelTooLarge(Exception):
    """The estimated training memory of a model exceeds what the device has free."""


Started = Callable[[ModelToTrain, int], None]


def build_and_fit(models: list[ModelToTrain], info: InputInfo, problem: Problem, on_epoch: OnEpoch,
                  started: Started, on_state: Optional[OnFitState] = None,
                  resume: Optional[FitState] = None, cull: Optional[Cull] = None) -> Fits:
    """Build every repeat of every model in `models` (models `stack_groups` put together) and fit them: as
    one stack when they can share one (`fit.can_stack_members`), else one after another. Returns each
    model's repeat fits. Never raises for a model's failure; store errors propagate, and an interrupt as
    ModelsInterrupted with what finished and what was cut short. `on_state` gets the group's progress after
    every epoch — a LoopState when the members train as one stack, else a SequenceState — and `resume` (one
    of the same members) continues it. `cull` (sweep --halving) may stop members of one stack early."""
    import torch

    from nnlab.training import fit as train
    from nnlab.models import build_model, count_params

    built: list[train.BuiltMember] = []
    params: dict[str, int] = {}
    failed: Fits = {}
    for model in models:
        try:
            check_memory(model.spec, info, problem, len(model.repeats))
            for repeat in model.repeats:
                torch.manual_seed(repeat.seed)  # each repeat starts from its seed, whatever trained before it
                module = build_model(model.spec, info)
                # and trains from the generators its build left, as alone (its dropout draws from them)
                cuda_rng = torch.cuda.get_rng_state_all() if problem.device.type == "cuda" else None
                built.append(train.BuiltMember(model.name, module, model.spec.train, repeat.seed, repeat.index,
                                               torch.get_rng_state(), cuda_rng))
            params[model.name] = count_params(built[-1].model)
        except (ModelTooLarge, MemoryError, RuntimeError, ValueError) as e:
            built = [m for m in built if m.name != model.name]
            reason = str(e) if isinstance(e, ModelTooLarge) else f"could not build it: {describe(e)}"
            failed[model.name] = [RepeatFit(r.index, r.seed, failure=reason) for r in model.repeats]
    for model in models:
        started(model, params.get(model.name, 0))
    if not built:
        return failed
    can, why_not = train.can_stack_members(built)
    stacked = len(built) > 1 and can
    not_stacked = why_not if len(built) > 1 and not can else None
    seeds = {(m.name, m.member): m.seed for m in built}

    def by_model(results: list[FitResult]) -> Fits:
        fits: Fits = {model.name: [] for model in models if model.name not in failed}
        for r in results:
            fits[r.name].append(RepeatFit(r.member, seeds[(r.name, r.member)], params[r.name], info.n_features, r,
                                          stacked=stacked, not_stacked=not_stacked))
        return {**fits, **failed}

    one_stack = len(built) == 1 or stacked
    names = [m.name for m in built]
    if one_stack:
        loop_state = resume if isinstance(resume, train.LoopState) and resume.names == names else None
        fit = lambda: train.fit_stack(built, problem, on_epoch, on_state, loop_state, cull)
    else:
        # a state of other members (one failed to build this time) cannot continue these
        sequence = resume if isinstance(resume, train.SequenceState) and resume.names == names else None
        fit = lambda: train.fit_one_after_another(built, problem, on_epoch, on_state, sequence)
    try:
        return by_model(fit())
    except KeyboardInterrupt as stop:
        results = stop.results if isinstance(stop, train.FitInterrupted) else []
        raise ModelsInterrupted(by_model(results), _cause(stop)) from stop
    except OSError:
        raise  # the run store failing (a full disk): the run ends, not just these models
    except Exception as e:  # noqa: BLE001 - a model's failure must not end the run; its reason is kept
        reason = f"training failed: {describe(e)}"
        return {**{model.name: [RepeatFit(r.index, r.seed, params.get(model.name, 0), info.n_features,
                                          failure=reason) for r in model.repeats] for model in models}, **failed}


def stack_groups(model_specs: list[ModelSpec], input_kind: str) -> list[list[ModelSpec]]:
    """Consecutive models that can train as one stack (same architecture and shared settings; they may differ
    in dropout, learning rate, weight decay, L1 and the like), grouped; every other model alone."""
    groups: list[list[ModelSpec]] = []
    for spec in model_specs:
        if groups and can_stack([*groups[-1], spec], input_kind)[0]:
            groups[-1].append(spec)
        else:
            groups.append([spec])
    return groups


def stacking_plan(model_specs: list[ModelSpec], input_kind: str, repeats: int) -> list[str]:
    """How the models will train, in words: which share one stack, and which train alone and why."""
    lines = []
    for group in stack_groups(model_specs, input_kind):
        names = ", ".join(spec.name for spec in group)
        stacks, why_not = can_stack(group, input_kind)
        times = f" × {repeats} repeats" if repeats > 1 else ""
        if stacks and (len(group) > 1 or repeats > 1):
            lines.append(f"one stack: {names}{times}")
        elif repeats > 1:
            lines.append(f"one after another: {names}{times} ({why_not})")
        else:
            lines.append(f"alone: {names}")
    return lines


def build_and_fit_baseline(model: ModelToTrain, problem: Problem, spec: BaselineSpec, on_epoch: OnEpoch,
                           started: Started) -> Fits:
    """Build the baseline from its seed and fit it (`fit.fit_baseline`); an interrupt raises ModelsInterrupted."""
    import torch

    from nnlab.training import fit as train
    from nnlab.models import build_baseline, count_params

    repeat = model.repeats[0]
    torch.manual_seed(repeat.seed)
    n_inputs = int(problem.x["train"].shape[1])
    module = build_baseline(n_inputs, problem.n_outputs)
    fit = RepeatFit(repeat.index, repeat.seed, count_params(module), n_inputs)
    started(model, fit.params)
    try:
        fit.result = train.fit_baseline(model.name, module, problem, spec, on_epoch)
    except KeyboardInterrupt as stop:
        result = stop.result if isinstance(stop, train.FitInterrupted) else None
        raise ModelsInterrupted({model.name: [RepeatFit(fit.member, fit.seed, fit.params, n_inputs, result)]},
                                _cause(stop)) from stop
    return {model.name: [fit]}


def check_memory(spec: Optional[ModelSpec], info: InputInfo, problem: Problem, members: int) -> None:
    """Refuse, before allocating anything, a model whose training would not fit in the device's memory."""
    from nnlab import models

    if spec is None:
        return
    device = problem.x["train"].device
    need = models.estimate_memory(spec, info, spec.train.batch_size) * members
    free = available_bytes(device)
    if free is not None and need > MEMORY_HEADROOM * free:
        raise ModelTooLarge(
            f"needs about {_gib(need)} to train (parameters, gradients, optimizer state and activations at batch "
            f"size {spec.train.batch_size}{f', {members} members' if members > 1 else ''}); {device} has "
            f"{_gib(free)} free: make the model or the batch smaller")


def available_bytes(device: torch.device) -> Optional[int]:
    """Free memory on a device: CUDA's own count, else the host's MemAvailable (Linux)."""
    if device.type == "cuda":
        import torch

        return torch.cuda.mem_get_info(device)[0]
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _gib(n: float) -> str:
    return f"{n / 2**30:,.1f} GiB" if n >= 2**30 / 10 else f"{n / 2**20:,.0f} MiB"


# --- summing up -----------------------------------------------------------------------------------------

def add_final_metrics(fits: list[RepeatFit], task: str, metrics: list[str], y: dict[str, np.ndarray],
                      n_classes: int, apply_threshold: bool) -> None:
    """Each repeat's end-of-training numbers (`training.metrics.final_metrics`: per-class tables, PR AUC,
    Brier score, the F1 threshold on val, ECE) from its val and test probabilities, added to its scores, so
    that repeats give them as mean ± sd like every metric. Under an applied threshold the binary test scores
    it changes replace the 0.5 ones."""
    if task == "regression":
        return
    from nnlab.training.metrics import final_metrics

    for fit in fits:
        r = fit.result
        if r is None or r.val_probabilities is None:
            continue
        fit.final = final_metrics(task, metrics, {"val": r.val_probabilities, "test": r.test_probabilities}, y,
                                  n_classes, apply_threshold)
        r.val = {**r.val, **fit.final.scores.get("val", {})}
        if r.test:  # tested: an interrupted repeat has no test scores to add to
            r.test = {**r.test, **fit.final.scores.get("test", {})}


def per_class_of(fit: Optional[RepeatFit], labels: list[str]) -> tuple[Optional[dict[str, PerClassResult]],
                                                                       Optional[float]]:
    """The per-class results of the repeat a model reports (its saved weights' repeat), by split, and the
    threshold its test scores were taken at (None: 0.5)."""
    if fit is None or fit.final is None or not fit.final.per_class:
        return None, None
    tables = {split: PerClassResult(labels=labels, member=fit.member, **table)
              for split, table in fit.final.per_class.items() if split == "val" or fit.result.test}
    return tables, fit.final.threshold if fit.result.test else None


def aggregate(run: ModelToTrain, fits: list[RepeatFit], monitor: str, baseline: Optional[ModelResult],
              labels: Optional[list[str]] = None) -> tuple[ModelResult, Optional[RepeatFit]]:
    """The model's result over its repeats, and the repeat whose weights represent it (best validation);
    its per-class results are that repeat's (`labels`: the classes as text; None for regression)."""
    members = [_member_result(f) for f in fits]
    best = _best_member(fits, monitor.removeprefix("val_"), higher_is_better(monitor))
    lead = best or (fits[0] if fits else None)
    result = lead.result if lead else None
    history = [r.values for r in result.history] if result else []
    status = _status(fits, len(run.repeats))
    message = next((f.failure or f.result.message for f in fits if f.failure or (f.result and f.result.message)),
                   None)
    if status == "interrupted":
        message = (f"interrupted at epoch {result.epochs_run} of {run.epochs}; kept the best epoch so far "
                   f"({result.best_epoch}) and its weights; not tested" if result and result.state is not None
                   else "interrupted before its first epoch finished")
    val_mean, val_sd = _spread([m.val for m in members])
    test_mean, test_sd = _spread([m.test for m in members])
    model = ModelResult(
        name=run.name, kind=run.kind, params=lead.params if lead else 0, status=status,
        best_epoch=result.best_epoch if result else 0, epochs_run=result.epochs_run if result else 0,
        epochs_planned=run.epochs, val=val_mean, test=test_mean, val_sd=val_sd, test_sd=test_sd,
        repeats=len(run.repeats), members=members if len(run.repeats) > 1 else [],
        train_seconds=round(_wall_seconds(fits), 4),
        samples_per_second=round(statistics.fmean([f.result.samples_per_second for f in fits if f.result] or [0]), 1),
        message=message, stop_reason=result.stop_reason if result else None,
        halved=result.halved if result else None,
        train_loss=history[0]["train_loss"] if run.spec is None and history else None,
        stacked=any(f.stacked for f in fits),
        not_stacked=next((f.not_stacked for f in fits if f.not_stacked), None) if len(run.repeats) > 1 else None)
    if labels is not None:
        model.per_class, model.threshold = per_class_of(lead, labels)
    model.diagnosis = diagnose(history, best_epoch=model.best_epoch, max_epochs=run.epochs, monitor=monitor,
                               status=status, message=message, stop_reason=model.stop_reason,
                               val=model.val if len(run.repeats) > 1 else result.val if result else {},
                               baseline_val=baseline.val if baseline else None,
                               baseline_train_loss=baseline.train_loss if baseline else None,
                               repeats=len(run.repeats), member=lead.member if lead else None)
    if model.threshold is not None:  # said where the verdicts are: train and show print them
        model.diagnosis.append(f"test scored at the decision threshold {model.threshold:.4g} on P(positive), the "
                               f"one that maximises F1 on validation (train.threshold: val_f1), not 0.5")
    return model, best


def _wall_seconds(fits: list[RepeatFit]) -> float:
    """Members one after another add up; stacked members train in the same epochs, so the longest counts."""
    seconds = [f.result.train_seconds for f in fits if f.result]
    return (max if any(f.stacked for f in fits) else sum)(seconds) if seconds else 0.0


def _member_result(fit: RepeatFit) -> MemberResult:
    r = fit.result
    return MemberResult(member=fit.member, seed=fit.seed, status=fit.status, best_epoch=r.best_epoch if r else 0,
                        epochs_run=r.epochs_run if r else 0, val=r.val if r else {}, test=r.test if r else {})


def _status(fits: list[RepeatFit], planned: int) -> str:
    statuses = {f.status for f in fits}
    for worst in ("failed", "diverged", "interrupted"):
        if worst in statuses:
            return worst
    return "completed" if len(fits) == planned else "interrupted"


def _best_member(fits: list[RepeatFit], metric: str, higher: bool) -> Optional[RepeatFit]:
    scored = [f for f in fits if f.state is not None and _finite(f.result.val.get(metric))]
    if not scored:
        return next((f for f in fits if f.state is not None), None)
    pick = max if higher else min
    return pick(scored, key=lambda f: f.result.val[metric])


def _spread(scores: list[dict[str, float]]) -> tuple[dict[str, Optional[float]], dict[str, Optional[float]]]:
    """Mean and sample standard deviation (ddof=1) of each metric over the members that have it."""
    means: dict[str, Optional[float]] = {}
    sds: dict[str, Optional[float]] = {}
    for metric in dict.fromkeys(k for s in scores for k in s):
        values = [s[metric] for s in scores if _finite(s.get(metric))]
        means[metric] = statistics.fmean(values) if values else None
        if len(scores) > 1:
            sds[metric] = statistics.stdev(values) if len(values) > 1 else None
    return means, sds


def _finite(value: object) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)

