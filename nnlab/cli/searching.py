"""`sweep --search optuna` and `sweep --resume SWEEP`: the Bayesian search's side of the sweep command (the
search itself is nnlab.sweeps.optuna_search; this prints its trials as they end and the sweep's table)."""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer

from nnlab.cli.base import fail, stderr, stdout
from nnlab.errors import NnlabError

if TYPE_CHECKING:
    from rich.console import Console

    from nnlab.sweeps.executors.units import UnitResult
    from nnlab.sweeps.optuna_search import OptunaSearch


def optuna_sweep(spec: Optional[Path], *, search: Optional[str], trials: Optional[int], batch: Optional[int],
                 resume: Optional[str], space: list[str], grid: list[str], sample: Optional[int],
                 one_at_a_time: bool, repeats: Optional[int], note: str, smoke: bool, set_: list[str],
                 runs_dir: Optional[Path], executor: str, jobs: int, ray: tuple, tags: list[str],
                 halving: bool = False) -> None:
    """Plan (or reopen) the search, then train its trials batch by batch; exits as `sweep` does."""
    from nnlab.core import interrupts
    from nnlab.runstore import store_path
    from nnlab.sweeps import optuna_search
    from nnlab.sweeps.executors import executor_for
    from nnlab.views import sweep as sweepview
    from nnlab.cli.ray_options import ray_options
    from nnlab.cli.store import tag_runs

    out = stdout()
    store = store_path(runs_dir)
    try:
        optuna_search.check_options(search, trials, batch)
        if halving:
            raise NnlabError("--halving: halves a grid's or a random search's stacks; --search optuna stops bad "
                             "trials with its pruner instead")
        if resume is not None:
            given = [name for name, value in (("SPEC", spec), ("--space", space), ("--batch", batch),
                                              ("--grid", grid), ("--sample", sample), ("--set", set_),
                                              ("--repeats", repeats), ("--note", note), ("--smoke", smoke),
                                              ("--one-at-a-time", one_at_a_time)) if value]
            if given:
                raise NnlabError(f"{given[0]}: not with --resume; the search goes on as it was asked "
                                 "(only --trials may change)")
            plan = optuna_search.resume_search(resume, store, trials)
        elif search is None:
            raise NnlabError(f"--{'trials' if trials is not None else 'batch'}: only with --search optuna")
        elif spec is None:
            raise NnlabError("sweep: give SPEC, the experiment spec, or continue a search with --resume SWEEP")
        else:
            plan = optuna_search.plan_optuna(spec, space, trials, batch, grid, sample, one_at_a_time, repeats,
                                             note, smoke, set_)
        runner = executor_for(executor, jobs, ray_options(*ray))
        plan.open(store)
    except NnlabError as e:
        fail(e)
    record = plan.record
    local = executor == "local"
    left = record.trials - plan.finished
    again = f", {plan.finished} finished before" if resume else ""
    cut = f", {len(plan.cut_off)} cut off then (marked failed; asked afresh)" if plan.cut_off else ""
    out.print(f"sweep {plan.id}: Optuna TPE search, {record.trials} trials{again}{cut}, {record.batch} at a "
              f"time{' (each alone, with the median pruner)' if record.batch == 1 and local else ''}",
              markup=False, soft_wrap=True)
    started = time.monotonic()
    results = dict(plan.results)
    done = 0
    stream = plan.run(runner, jobs if local else 0, store, here=local)
    progress = sweepview.SweepProgress(out, left, jobs if local else None)
    try:
        with progress:
            for result in stream:
                results[result.index] = result
                done += 1
                progress.done(result.status)
                out.print(_line(plan, result, plan.finished, time.monotonic() - started, done, left),
                          markup=False, soft_wrap=True)
    except KeyboardInterrupt as stop:
        stream.close()  # the trials still training are marked failed in the study; a resume asks afresh
        tag_runs([r.path for r in results.values() if r.path], tags)
        _table(out, plan, results)
        stderr().print(f"interrupted by {interrupts.interrupted_name(stop)}: search {plan.id} stopped with "
                       f"{plan.finished} of {record.trials} trials finished; continue it with "
                       f"nnlab sweep --resume {plan.id}", markup=False)
        raise typer.Exit(130)
    tag_runs([r.path for r in results.values() if r.path], tags)
    _table(out, plan, results)
    best = _best(plan)
    if best:
        out.print(best, markup=False, soft_wrap=True)
    out.print(f"every trial's run: nnlab compare --sweep {plan.id}", markup=False, soft_wrap=True)
    if any(r.status == "failed" for r in results.values()):
        raise typer.Exit(1)


def _line(plan: OptunaSearch, result: UnitResult, finished: int, seconds: float, done: int, left: int) -> str:
    """`[3/5] trial 2 lr=0.0031: completed · val_loss 0.4123 · run tiny-… · about 20 s left`."""
    point = plan.plan.points[result.index]
    pruned = result.index in plan.pruned
    line = f"[{finished}/{plan.record.trials}] trial {result.index} {point.label}: "
    line += result.message if pruned else result.status + (f" ({result.message})" if result.message else "")
    value = _told(plan, result.index)  # a pruned trial's: its last reported epoch's, as Optuna keeps it
    if value is not None:
        line += f" · {plan.record.monitor} {value:.4f}"
    if result.run_id:
        line += f" · run {result.run_id}"
    remaining = left - done
    return line + (f" · about {_duration(seconds / done * remaining)} left" if remaining and done else "")


def _told(plan: OptunaSearch, number: int) -> Optional[float]:
    trial = plan.study.trials[number]
    return trial.value if trial.value is not None and math.isfinite(trial.value) else None


def _best(plan: OptunaSearch) -> Optional[str]:
    try:
        best = plan.study.best_trial
    except ValueError:  # no trial completed
        return None
    point = plan.plan.points[best.number]
    run = best.user_attrs.get("run_id")
    return f"best trial {best.number}: {point.label} · {plan.record.monitor} {best.value:.4f}" + \
           (f" · run {run}" if run else "")


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min"


def _table(out: Console, plan: OptunaSearch, results: dict[int, UnitResult]) -> None:
    from nnlab.views import sweep as sweepview

    if not results:
        return
    shape = dataclasses.replace(plan.plan, reference=min(results))  # the first finished trial
    out.print(sweepview.effect_table(shape, sweepview.effects(shape, results),
                                     sweepview.baseline_effect(shape, results)))
