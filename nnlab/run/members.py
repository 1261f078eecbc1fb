"""One model of a run trained as N members (`repeats`: seeds seed .. seed+N-1 on the same split), and the
members' fits summed up as one typed `ModelResult`: means, standard deviations and each member's numbers.

Members that can share one stacked model train together (`train.fit_stack`); the others one after another.
A member that cannot be built or trained (too large for memory, an error in a layer) is recorded as failed
with the reason; the run goes on.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Any, Callable, Optional

from nnlab.run.diagnosis import diagnose
from nnlab.errors import describe
from nnlab.core.inputs import InputInfo
from nnlab.core.records import MemberResult, ModelResult
from nnlab.training.sequential import SequenceState, fit_one_after_another

MEMORY_HEADROOM = 0.8  # refuse a model whose estimated training memory exceeds this share of what is free


@dataclass(frozen=True)
class Member:
    index: int
    seed: int


@dataclass
class MemberRun:
    """What is being trained: a model (its spec; None for the baseline) as one or more members."""

    name: str
    kind: str
    spec: Any
    members: list[Member]
    epochs: int


@dataclass
class MemberFit:
    """One member's outcome: the loop's FitResult (None when it never started) and how it was built."""

    member: int
    seed: int
    params: int = 0
    n_inputs: int = 0
    result: Any = None
    failure: Optional[str] = None  # why the member could not be built or trained
    stacked: bool = False
    not_stacked: Optional[str] = None  # why it trained one after another with the others of its group

    @property
    def status(self) -> str:
        return "failed" if self.result is None else self.result.status

    @property
    def state(self) -> Any:
        return None if self.result is None else self.result.state

    @property
    def val_probabilities(self) -> Any:
        return None if self.result is None else self.result.val_probabilities


class ModelTooLarge(Exception):
    """The estimated training memory of a model exceeds what the device has free."""


Started = Callable[[MemberRun, int], None]


def fit_group(runs: list[MemberRun], info: InputInfo, problem: Any, on_epoch: Any, started: Started,
              on_state: Any = None, resume: Any = None) -> dict[str, list[MemberFit]]:
    """Train every member of every model in `runs` (models `stack_groups` put together; each model's
    repeats): as one stack when they can share one model, else one after another — `train.fit_members`
    decides. Returns each model's member fits. Never raises for a model's failure; KeyboardInterrupt and
    store errors do propagate, the interrupt carrying `.member_fits` by model: what finished, and what was
    cut short. `on_state` gets the group's progress after every epoch — a LoopState when the members train
    as one stack, else a `sequential.SequenceState` — and `resume` (one of the same members) continues it."""
    import torch

    from nnlab.training import fit as train
    from nnlab.models import build_model, count_params

    built, params, failed = [], {}, {}
    for run in runs:
        try:
            check_memory(run.spec, info, problem, len(run.members))
            for member in run.members:
                torch.manual_seed(member.seed)  # each member starts from its seed, whatever trained before it
                model = build_model(run.spec, info)
                # and trains from the generators its build left, as alone (its dropout draws from them)
                cuda_rng = torch.cuda.get_rng_state_all() if problem.x["train"].device.type == "cuda" else None
                built.append(train.Member(run.name, model, run.spec.train, member.seed, member.index,
                                          torch.get_rng_state(), cuda_rng))
            params[run.name] = count_params(built[-1].model)
        except (ModelTooLarge, MemoryError, RuntimeError, ValueError) as e:
            built = [m for m in built if m.name != run.name]
            reason = str(e) if isinstance(e, ModelTooLarge) else f"could not build it: {describe(e)}"
            failed[run.name] = [MemberFit(m.index, m.seed, failure=reason) for m in run.members]
    for run in runs:
        started(run, params.get(run.name, 0))
    if not built:
        return failed
    can, why_not = train.can_stack_members(built)
    stacked = len(built) > 1 and can
    not_stacked = why_not if len(built) > 1 and not can else None
    seeds = {(m.name, m.member): m.seed for m in built}

    def by_model(results: list[Any]) -> dict[str, list[MemberFit]]:
        fits: dict[str, list[MemberFit]] = {run.name: [] for run in runs if run.name not in failed}
        for r in results:
            fits[r.name].append(MemberFit(r.member, seeds[(r.name, r.member)], params[r.name], info.n_features, r,
                                          stacked=stacked, not_stacked=not_stacked))
        return {**fits, **failed}

    one_stack = len(built) == 1 or stacked
    if resume is not None and (resume.names != [m.name for m in built]
                               or isinstance(resume, SequenceState) == one_stack):
        resume = None  # a state of other members (one failed to build this time) cannot continue these
    fit = train.fit_members if one_stack else fit_one_after_another
    try:
        return by_model(fit(built, problem, on_epoch, on_state, resume))
    except KeyboardInterrupt as stop:
        stop.member_fits = by_model(getattr(stop, "results", []))  # type: ignore[attr-defined]
        raise
    except OSError:
        raise  # the run store failing (a full disk): the run ends, not just these models
    except Exception as e:  # noqa: BLE001 - a model's failure must not end the run; its reason is kept
        reason = f"training failed: {describe(e)}"
        return {**{run.name: [MemberFit(m.index, m.seed, params.get(run.name, 0), info.n_features, failure=reason)
                              for m in run.members] for run in runs}, **failed}


def stack_groups(model_specs: list[Any], input_kind: str) -> list[list[Any]]:
    """Consecutive models that can train as one stack (same architecture and shared settings; they may differ
    in dropout, learning rate, weight decay, L1 and the like), grouped; every other model alone."""
    from nnlab.training.stacking import can_stack

    groups: list[list[Any]] = []
    for spec in model_specs:
        if groups and can_stack([*groups[-1], spec], input_kind)[0]:
            groups[-1].append(spec)
        else:
            groups.append([spec])
    return groups


def stacking_plan(model_specs: list[Any], input_kind: str, repeats: int) -> list[str]:
    """How the models will train, in words: which share one stack, and which train alone and why."""
    from nnlab.training.stacking import can_stack

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


def fit_baseline(run: MemberRun, problem: Any, spec: Any, on_epoch: Any, started: Started) -> dict[str, list[MemberFit]]:
    import torch

    from nnlab.training import fit as train
    from nnlab.models import build_baseline, count_params

    member = run.members[0]
    torch.manual_seed(member.seed)
    n_inputs = int(problem.x["train"].shape[1])
    model = build_baseline(n_inputs, problem.n_outputs)
    fit = MemberFit(member.index, member.seed, count_params(model), n_inputs)
    started(run, fit.params)
    try:
        fit.result = train.fit_baseline(run.name, model, problem, spec, on_epoch)
    except KeyboardInterrupt as stop:
        stop.member_fits = {run.name: [MemberFit(fit.member, fit.seed, fit.params,  # type: ignore[attr-defined]
                                                 n_inputs, getattr(stop, "result", None))]}
        raise
    return {run.name: [fit]}


def check_memory(spec: Any, info: InputInfo, problem: Any, members: int) -> None:
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


def available_bytes(device: Any) -> Optional[int]:
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

def aggregate(run: MemberRun, fits: list[MemberFit], monitor: str, baseline: Optional[ModelResult]
              ) -> tuple[ModelResult, Optional[MemberFit]]:
    """The model's result over its members, and the member whose weights represent it (best validation)."""
    from nnlab.core.columns import higher_is_better

    members = [_member_result(f) for f in fits]
    best = _best_member(fits, monitor.removeprefix("val_"), higher_is_better(monitor))
    lead = best or (fits[0] if fits else None)
    result = lead.result if lead else None
    history = [r.values for r in result.history] if result else []
    status = _status(fits, len(run.members))
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
        repeats=len(run.members), members=members if len(run.members) > 1 else [],
        train_seconds=round(_wall_seconds(fits), 4),
        samples_per_second=round(statistics.fmean([f.result.samples_per_second for f in fits if f.result] or [0]), 1),
        message=message, stop_reason=result.stop_reason if result else None,
        train_loss=history[0]["train_loss"] if run.spec is None and history else None,
        stacked=any(f.stacked for f in fits),
        not_stacked=next((f.not_stacked for f in fits if f.not_stacked), None) if len(run.members) > 1 else None)
    model.diagnosis = diagnose(history, best_epoch=model.best_epoch, max_epochs=run.epochs, monitor=monitor,
                               status=status, message=message, stop_reason=model.stop_reason,
                               val=model.val if len(run.members) > 1 else result.val if result else {},
                               baseline_val=baseline.val if baseline else None,
                               baseline_train_loss=baseline.train_loss if baseline else None,
                               repeats=len(run.members), member=lead.member if lead else None)
    return model, best


def _wall_seconds(fits: list[MemberFit]) -> float:
    """Members one after another add up; stacked members train in the same epochs, so the longest counts."""
    seconds = [f.result.train_seconds for f in fits if f.result]
    return (max if any(f.stacked for f in fits) else sum)(seconds) if seconds else 0.0


def _member_result(fit: MemberFit) -> MemberResult:
    r = fit.result
    return MemberResult(member=fit.member, seed=fit.seed, status=fit.status, best_epoch=r.best_epoch if r else 0,
                        epochs_run=r.epochs_run if r else 0, val=r.val if r else {}, test=r.test if r else {})


def _status(fits: list[MemberFit], planned: int) -> str:
    statuses = {f.status for f in fits}
    for worst in ("failed", "diverged", "interrupted"):
        if worst in statuses:
            return worst
    return "completed" if len(fits) == planned else "interrupted"


def _best_member(fits: list[MemberFit], metric: str, higher: bool) -> Optional[MemberFit]:
    scored = [f for f in fits if f.state is not None and _finite(f.result.val.get(metric))]
    if not scored:
        return next((f for f in fits if f.state is not None), None)
    pick = max if higher else min
    return pick(scored, key=lambda f: f.result.val[metric])


def _spread(scores: list[dict[str, Any]]) -> tuple[dict[str, Optional[float]], dict[str, Optional[float]]]:
    """Mean and sample standard deviation (ddof=1) of each metric over the members that have it."""
    means: dict[str, Optional[float]] = {}
    sds: dict[str, Optional[float]] = {}
    for metric in dict.fromkeys(k for s in scores for k in s):
        values = [s[metric] for s in scores if _finite(s.get(metric))]
        means[metric] = statistics.fmean(values) if values else None
        if len(scores) > 1:
            sds[metric] = statistics.stdev(values) if len(values) > 1 else None
    return means, sds


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)

