"""`sweep`: a grid of variations of a spec, one run per point, on local processes or Ray."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from nnlab.cli.base import ExecutorName, RunsDirOption, stderr, fail, stdout, app, interrupt_handling
from nnlab.cli.ray_options import (AddressOption, CpusPerTrialOption, GpusPerTrialOption, MaxRetriesOption,
                                   ShipOption, ray_options)
from nnlab.errors import NnlabError


@app.command("sweep")
def sweep_command(
    spec: Optional[Path] = typer.Argument(None, help="The experiment spec (YAML); left out with --resume.",
                                          show_default=False),
    grid: list[str] = typer.Option([], "--grid", help="KEY=V1,V2,...: values to try, each read as YAML (1e-3 is "
                                   "a float); quote list values: 'models.mlp.hidden=[64],[128,64]'. Repeatable; "
                                   "replaces the same key of the spec's sweep.grid."),
    space: list[str] = typer.Option([], "--space", help="KEY=DIST: a distribution to sample with --sample: "
                                    "uniform(lo,hi), loguniform(lo,hi) (integer bounds give integers), int(lo,hi) "
                                    "(both ends included) or choice(v1,v2,...), each argument read as YAML. "
                                    "Repeatable; replaces the same key of the spec's sweep.space."),
    sample: Optional[int] = typer.Option(None, "--sample", min=1, show_default=False,
                                         help="Random search: draw N points from the --space distributions "
                                         "(seeded by the spec's seed: the same command gives the same points)."),
    set_: list[str] = typer.Option([], "--set", help="Override a spec value for every point: KEY.PATH=VALUE "
                                   "(YAML), or add a model: 'models+={name: wide, kind: mlp, hidden: [256]}'. "
                                   "Repeatable."),
    one_at_a_time: bool = typer.Option(False, "--one-at-a-time", help="Vary each key alone from the spec's own "
                                       "value (the spec as written is the reference, trained once); default: "
                                       "every combination."),
    repeats: Optional[int] = typer.Option(None, "--repeats", min=1, max=100, show_default=False,
                                          help="Train every point N times (seeds seed..seed+N-1, same split)."),
    jobs: int = typer.Option(1, "--jobs", "-j", min=1, help="Points trained at once, each in its own process "
                             "with one torch thread."),
    note: str = typer.Option("", "--note", help="A note kept with every point's run, after its settings."),
    tag: list[str] = typer.Option([], "--tag", help="Tag every point's run (repeatable); `runs --tag T` finds "
                                  "them."),
    smoke: bool = typer.Option(False, "--smoke", help="Quick pipeline check of every point (small sample, at "
                                                      "most 2 epochs)."),
    ensemble: bool = typer.Option(False, "--ensemble", help="After the points: the greedy ensemble of the points' "
                                  "best models, chosen on validation, written as a run of the sweep (predict "
                                  "with --model ensemble)."),
    runs_dir: Optional[Path] = RunsDirOption,
    executor: ExecutorName = typer.Option(ExecutorName.local, "--executor", help="local: processes on this "
                                          "machine (--jobs); ray: tasks on a Ray instance or cluster (pip install "
                                          "'nnlab\\[ray]'; spec, data and store on a path every node reads, or --ship)."),
    address: Optional[str] = AddressOption,
    cpus_per_trial: Optional[float] = CpusPerTrialOption,
    gpus_per_trial: Optional[float] = GpusPerTrialOption,
    max_retries: Optional[int] = MaxRetriesOption,
    ship: bool = ShipOption,
    halving: bool = typer.Option(False, "--halving", help="Successive halving inside each stack: at --rungs "
                                 "epochs (growing by 1/--keep up to the spec's epochs) the worst of the live "
                                 "points stop, and leave the stack so the rest train faster."),
    rungs: Optional[int] = typer.Option(None, "--rungs", show_default=False,
                                        help="With --halving: how many rungs (default 3)."),
    keep: Optional[float] = typer.Option(None, "--keep", show_default=False,
                                         help="With --halving: the share of live points each rung keeps (default "
                                         "0.5)."),
    search: Optional[str] = typer.Option(None, "--search", metavar="optuna", show_default=False,
                                         help="Bayesian search instead of a grid: optuna (Optuna's TPE sampler "
                                         "over the --space distributions; pip install -e '.\\[search]')."),
    trials: Optional[int] = typer.Option(None, "--trials", show_default=False,
                                         help="With --search: how many trials (points) the search trains."),
    batch: Optional[int] = typer.Option(None, "--batch", show_default=False,
                                        help="With --search: trials asked at once, trained as one sweep (stackable "
                                        "ones as one stack); 1 (default): each alone, the median pruner reading "
                                        "every epoch."),
    resume: Optional[str] = typer.Option(None, "--resume", metavar="SWEEP", show_default=False,
                                         help="Continue a cut-off --search sweep: its finished trials are kept, "
                                         "the cut-off ones marked failed and asked afresh (SPEC left out; "
                                         "--trials may raise the count)."),
) -> None:
    """Train SPEC once per point of a grid, each point its own run, then show each setting's effect.

    Every point is checked before anything trains; the runs share a sweep id (`compare --sweep ID`). The table ranks the points by the monitored validation metric, with each one's change against the reference point.

    Exit codes: 0 ok, 1 a point failed (the others still train), 2 bad input, 130 interrupted.
    """
    import time

    from nnlab.core import interrupts
    from nnlab.views import sweep as sweepview
    from nnlab.sweeps import grid as sweeps
    from nnlab.sweeps import space as space_search
    from nnlab.sweeps.executors import executor_for
    from nnlab.runstore import store_path

    out = stdout()
    from nnlab.cli.store import checked_tags, tag_runs  # here: importing cli.store registers its commands

    tags = checked_tags(tag)
    with interrupt_handling():
        if ensemble and (search is not None or resume is not None):
            fail(NnlabError("--ensemble: ensembles a grid or random sweep's points; not with --search or --resume"))
        if search is not None or resume is not None or trials is not None or batch is not None:
            from nnlab.cli.searching import optuna_sweep  # the Bayesian search, and resuming one

            return optuna_sweep(spec, search=search, trials=trials, batch=batch, resume=resume, space=space,
                                grid=grid, sample=sample, one_at_a_time=one_at_a_time, repeats=repeats, note=note,
                                smoke=smoke, set_=set_, runs_dir=runs_dir, executor=executor.value, jobs=jobs,
                                ray=(address, cpus_per_trial, gpus_per_trial, max_retries, ship), tags=tags,
                                halving=halving)
        if spec is None:
            fail(NnlabError("sweep: give SPEC, the experiment spec (nnlab sweep SPEC --grid ...), or continue a "
                            "search with --resume SWEEP"))
        try:
            given = ray_options(address, cpus_per_trial, gpus_per_trial, max_retries, ship)
            runner = executor_for(executor.value, jobs, given)
            from nnlab.sweeps.halving import halving_options, rungs_line

            halved = halving_options(halving, rungs, keep)
            if space_search.is_search(spec, space, sample, set_):
                plan = space_search.plan_search(spec, space, sample, grid, one_at_a_time, repeats, note, smoke,
                                                set_)
            else:
                plan = sweeps.plan_sweep(spec, grid, one_at_a_time, repeats, note, smoke, set_)
            where = f"{jobs} at a time" if executor is ExecutorName.local else "on Ray"
            dropped = f" ({plan.duplicates} repeated draw(s) dropped)" if plan.duplicates else ""
            out.print(f"sweep {plan.id}: {len(plan.points)} points{dropped}, {where}", markup=False,
                      soft_wrap=True)
            if halved:
                out.print(rungs_line(halved, len(plan.points), plan.spec_path, plan.common, plan.smoke), markup=False,
                          soft_wrap=True)
            started = time.monotonic()
            stream = runner.run(plan.units(store_path(runs_dir), jobs if executor is ExecutorName.local else 0,
                                           halving=halved))
        except NnlabError as e:
            fail(e)
        results: dict = {}
        progress = sweepview.SweepProgress(out, len(plan.points), jobs if executor is ExecutorName.local else None)
        try:
            with progress:
                for result in stream:
                    results[result.index] = result
                    progress.done(result.status)
                    line = sweepview.result_line(plan, result, len(results), time.monotonic() - started)
                    out.print(line, markup=False, soft_wrap=True)
        except KeyboardInterrupt as stop:
            stream.close()  # stops the points still running (each marked interrupted) and starts no more
            tag_runs([result.path for result in results.values()], tags)
            out.print(sweepview.effect_table(plan, sweepview.effects(plan, results),
                                     sweepview.baseline_effect(plan, results)))
            finished = sum(result.status != "interrupted" for result in results.values())
            stderr().print(f"interrupted by {interrupts.interrupted_name(stop)}: sweep {plan.id} stopped with "
                         f"{finished} of {len(plan.points)} points finished; the running ones are marked "
                         "interrupted", markup=False)
            raise typer.Exit(130)
    tag_runs([result.path for result in results.values()], tags)  # each point's run has ended
    out.print(sweepview.effect_table(plan, sweepview.effects(plan, results),
                                     sweepview.baseline_effect(plan, results)))
    out.print(f"every point's run: nnlab compare --sweep {plan.id}", markup=False, soft_wrap=True)
    if ensemble:
        _print_sweep_ensemble(out, plan.id, results, store_path(runs_dir))
    if any(result.status != "completed" for result in results.values()):
        raise typer.Exit(1)


def _print_sweep_ensemble(out, sweep: str, results: dict, store: Path) -> None:
    """`--ensemble`: the ensemble of the finished points' best models, its run's table and where it is."""
    from nnlab.api.sweep_ensemble import ensemble_points
    from nnlab.views.train_report import results_table

    points = [(i, Path(r.path)) for i, r in sorted(results.items()) if r.path and r.status == "completed"]
    try:
        made = ensemble_points(points, store, sweep)
    except NnlabError as e:
        stderr().print(f"error: {e}", markup=False)
        raise typer.Exit(1)
    out.print(results_table(made.summary))
    out.print(made.line, markup=False, soft_wrap=True)
    out.print(f"ensemble run: {made.path} (nnlab predict {made.path.name} DATA --model ensemble)", markup=False,
              soft_wrap=True)
