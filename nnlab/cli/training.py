"""`train`, `validate`, `schema`: the commands that read a spec (and train one)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer

from nnlab.cli import base
from nnlab.cli.base import (
    ExecutorName,
    RunsDirOption,
    draw_curves,
    echo,
    stderr,
    fail,
    stdout,
    app,
)
from nnlab.cli.ray_options import AddressOption, GpusPerTrialOption, MaxRetriesOption, ShipOption, ray_options
from nnlab.errors import NnlabError, describe

if TYPE_CHECKING:
    from nnlab.sweeps.executors import RayOptions

ENSEMBLE_OVERRIDE = "ensemble.method=greedy"  # `--ensemble`: the spec's ensemble section, set if absent


@app.command()
def train(
    spec: Optional[Path] = typer.Argument(None, help="The experiment spec (YAML); with --resume it may be left "
                                          "out (the run folder keeps the spec it ran).", show_default=False),
    set_: list[str] = typer.Option([], "--set", help="Override a spec value: KEY.PATH=VALUE (YAML), e.g. "
                                   "train.epochs=10 or models.mlp.hidden=[128,64]. Repeatable."),
    note: str = typer.Option("", "--note", help="A note kept with the run (what you changed and why)."),
    tag: list[str] = typer.Option([], "--tag", help="Tag the run (repeatable); `runs --tag T` finds it."),
    smoke: bool = typer.Option(False, "--smoke", help="Quick pipeline check: a small training sample, at most "
                                                      "2 epochs; the spec's expect gates are not checked."),
    repeats: Optional[int] = typer.Option(None, "--repeats", min=1, max=100, show_default=False,
                                          help="Train every model N times (seeds seed..seed+N-1, same split); "
                                               "scores as mean ± sd."),
    device: Optional[str] = typer.Option(None, "--device", help="auto | cpu | cuda | cuda:N | mps, for every model."),
    ensemble: bool = typer.Option(False, "--ensemble", help="After training, the members (every repeat of every "
                                  "model) chosen greedily on validation become one more model, `ensemble` "
                                  "(the spec's ensemble: section, method greedy; size 5 unless it says)."),
    runs_dir: Optional[Path] = RunsDirOption,
    progress: Optional[bool] = typer.Option(None, "--progress/--no-progress",
                                            help="Progress bars (default: on a terminal only)."),
    curves: bool = typer.Option(False, "--curves", help="Also draw curves.png (needs matplotlib)."),
    resume: Optional[str] = typer.Option(None, "--resume", metavar="RUN", show_default=False,
                                         help="Continue an interrupted or failed run (id, prefix, path, last) in "
                                              "its own folder: finished models are kept, the cut-off model goes "
                                              "on from its last checkpoint. SPEC may be left out; when given, it "
                                              "(and --set, --repeats, --device, --smoke) must be what it ran."),
    executor: ExecutorName = typer.Option(ExecutorName.local, "--executor", help="local: here; ray: the whole "
                                          "run as one task on a Ray instance or cluster (its members stack there)."),
    address: Optional[str] = AddressOption,
    gpus_per_trial: Optional[float] = GpusPerTrialOption,
    max_retries: Optional[int] = MaxRetriesOption,
    ship: bool = ShipOption,
    log_to: Optional[str] = typer.Option(None, "--log-to", metavar="mlflow[:URI]", show_default=False,
                                         help="Also stream the run to MLflow as each epoch ends (URI: a tracking "
                                              "server or store; default $MLFLOW_TRACKING_URI). A store that is "
                                              "down gives one warning; the run folder stays complete."),
) -> None:
    """Train the baseline, then every model of SPEC, and write a run folder.

    Exit codes: 0 ok, 1 an `expect` gate missed or a model failed or diverged, 2 bad input, 130 interrupted.
    """
    from nnlab.core import interrupts
    from nnlab.run import session as runner
    from nnlab.views.train_report import TrainReport, results_table, verdict_lines
    from nnlab.runstore import store_path

    out = stdout()
    set_ = [*set_, *([ENSEMBLE_OVERRIDE] if ensemble else [])]
    if spec is None and not resume:
        fail(NnlabError("train: give SPEC, the experiment spec (nnlab train SPEC), or continue a run with "
                         "--resume RUN"))
    if curves and importlib.util.find_spec("matplotlib") is None:
        fail(NnlabError("--curves: drawing curves needs matplotlib: pip install -e '.[plots]' in the nnlab checkout (or drop --curves)"))
    from nnlab.cli.store import checked_tags, tag_runs  # here: importing cli.store registers its commands

    tags = checked_tags(tag)
    given = ray_options(address, None, gpus_per_trial, max_retries, ship)
    if executor is ExecutorName.ray or given:
        if resume:
            fail(NnlabError("--resume: continue a run here, without --executor ray"))
        if log_to:
            fail(NnlabError("--log-to: streams a run trained here, without --executor ray; export a Ray run "
                            "afterwards with nnlab export RUN --to mlflow"))
        _train_on_ray(spec, set_, note, smoke, repeats, device, runs_dir, executor, given, tags)
        return
    report = TrainReport(out, progress, note)
    stream = _mlflow_stream(log_to, report) if log_to else None
    report = stream or report
    # SIGTERM (a CI timeout, `kill`), SIGHUP (the terminal closed) and SIGINT end the run as interrupted,
    # finished epochs and the best weights so far kept; the previous handlers come back when the command ends.
    point = None
    with base.interrupt_handling():
        try:
            plan = (runner.plan(spec, set_, device, smoke, repeats, store_path(runs_dir)) if spec is not None
                    else runner.plan_of_run(resume, store_path(runs_dir), set_, device, smoke, repeats))
            point = runner.resume_from(plan, resume, store_path(runs_dir)) if resume else None
            if point:
                out.print(point.describe(), markup=False, soft_wrap=True)
            outcome = runner.execute(plan, store_path(runs_dir), note, report, resume=point)
        except NnlabError as e:
            fail(e)
        except KeyboardInterrupt as stop:
            name = interrupts.interrupted_name(stop)
            if not report.run_path:  # stopped while checking the spec and the data: no run folder yet
                stderr().print(f"interrupted by {name} before the run {'was reopened' if resume else 'began'}; "
                             f"nothing was written", markup=False)
                raise typer.Exit(130)
            again = f"nnlab train {spec} --resume" if spec is not None else "nnlab train --resume"
            same = " with the same options" if spec is not None and (set_ or repeats or device or smoke) else ""
            stderr().print(f"interrupted by {name}; the run is marked interrupted and keeps every finished epoch and "
                         f"model, and the best weights of the model in training: {report.run_path}; continue it "
                         f"with `{again} {Path(report.run_path).name}`{same}", markup=False)
            raise typer.Exit(130)
        except OSError as e:  # the run store failed mid-run (a full disk): the run is marked failed
            where = f"; the run keeps what finished: {report.run_path}" if report.run_path else ""
            stderr().print(f"error: {describe(e)}{where}", markup=False)
            raise typer.Exit(1)
        finally:
            if point is not None:
                point.release()  # the writer released it once the run ended; this covers a stop before
            if stream is not None:
                stream.close()
            tag_runs([report.run_path], tags)  # once the run has ended (and released its folder)
    out.print(results_table(outcome.summary))
    for line in verdict_lines(outcome.summary, smoke):
        out.print(line, markup=False, soft_wrap=True)
    if smoke and plan.spec.expect:
        out.print("expect: not checked in a smoke run (it trains too little); check them with `nnlab check`",
                  markup=False, soft_wrap=True)
    if curves:
        draw_curves(outcome.path)
    out.print(f"run: {outcome.path}", markup=False, soft_wrap=True)
    if outcome.gates_missed or outcome.failed_models:
        raise typer.Exit(1)


def _mlflow_stream(log_to: str, report):
    """`--log-to mlflow[:URI]`: the report wrapped so that the run streams to MLflow (nnlab.export.live)."""
    from nnlab.export.live import MlflowStream, parse_log_to

    try:
        uri = parse_log_to(log_to)
        if importlib.util.find_spec("mlflow") is None:
            raise NnlabError("--log-to mlflow: needs the mlflow extra: pip install -e '.[mlflow]' in the nnlab "
                             "checkout")
    except NnlabError as e:
        fail(e)
    return MlflowStream(report, uri, lambda line: base.warn([line]))


def _train_on_ray(spec: Path, set_: list[str], note: str, smoke: bool, repeats: Optional[int],
                  device: Optional[str], runs_dir: Optional[Path], executor: ExecutorName, given: RayOptions,
                  tags: list[str]) -> None:
    """The whole run as one unit of the sweep executors (checked here first; trained and written there)."""
    from nnlab.core import interrupts
    from nnlab.run import session as runner
    from nnlab.sweeps.executors import executor_for
    from nnlab.sweeps.executors.units import Unit
    from nnlab.views.train_report import results_table, verdict_lines
    from nnlab.runstore import read_run, store_path

    with base.interrupt_handling():
        try:
            runner.plan(spec, set_, device, smoke, repeats)  # bad input: one line, exit 2, no run anywhere
            overrides = (*set_, *([f"repeats={repeats}"] if repeats else []))
            unit = Unit(0, str(spec.resolve()), overrides, str(store_path(runs_dir).resolve()), note, None, smoke,
                        device)
            (result,) = list(executor_for(executor.value, 1, given).run([unit]))
        except NnlabError as e:
            fail(e)
        except KeyboardInterrupt as stop:
            stderr().print(f"interrupted by {interrupts.interrupted_name(stop)}; the run on Ray is marked "
                         "interrupted", markup=False)
            raise typer.Exit(130)
    if result.path is None:
        stderr().print(f"error: {result.message}", markup=False)
        raise typer.Exit(1)
    from nnlab.cli.store import tag_runs

    tag_runs([result.path], tags)
    summary = read_run(Path(result.path)).summary
    if summary is not None:
        stdout().print(results_table(summary))
        for line in verdict_lines(summary, smoke):
            stdout().print(line, markup=False, soft_wrap=True)
    stdout().print(f"run: {result.path}", markup=False, soft_wrap=True)
    if result.status != "completed":
        raise typer.Exit(1)


@app.command()
def validate(spec: Path = typer.Argument(..., help="The experiment spec (YAML).", show_default=False),
             set_: list[str] = typer.Option([], "--set", help="Override a spec value: KEY.PATH=VALUE."),
             models: bool = typer.Option(False, "--models", help="Also read the data and print each model's "
                                         "layers (output shape, parameters) from a dry pass; nothing is trained.")
             ) -> None:
    """Check SPEC and print it with every default filled in (exit 2 and the problems if it is invalid).

    With --models, the data is read too and each model's layer table is printed instead, like Keras'
    model.summary(): layer, output shape, parameters, and the memory training would need.
    """
    import yaml

    from nnlab.spec import load_spec

    try:
        loaded, base_dir = load_spec(spec, set_)
    except NnlabError as e:
        fail(e)
    if models:
        _print_layer_tables(loaded, base_dir)
    else:
        echo(yaml.safe_dump(loaded.resolved(), sort_keys=False))


def _print_layer_tables(loaded, base_dir: Path) -> None:
    """One table per model, built on the spec's real input shape (the data is read and split for it)."""
    from rich.table import Table

    from nnlab.data import prepare
    from nnlab.data.text import size_models_to_vectors
    from nnlab.run.members import stacking_plan
    from nnlab.models import count_params_of, estimate_memory, layer_table
    from nnlab.views.show import augment_text

    try:
        prepared = prepare(loaded.data, base_dir, loaded.seed)
        if prepared.vectors is not None:  # as train does: the embedding takes the vectors' dimension
            size_models_to_vectors(loaded.models, prepared.vectors)
    except NnlabError as e:
        fail(e)
    info = prepared.info
    out = stdout()
    vocabulary = f", vocabulary {info.vocab_size:,}" if info.kind == "text" else ""
    vocabulary += f", beside {info.table_width} table column value(s)" if info.mixed else ""
    out.print(f"{loaded.name}: input {info.kind} {list(info.shape)} per example{vocabulary}; "
              f"{info.n_outputs} output(s)", markup=False, soft_wrap=True)
    if prepared.summary is not None and prepared.summary.vectors:
        v = prepared.summary.vectors
        out.print(f"word vectors {v['file']}: {v['covered']:,} of {v['words']:,} vocabulary words covered, "
                  f"{v['dim']}-d{', frozen' if v['frozen'] else ''}", markup=False, soft_wrap=True)
    for model in loaded.models:
        try:
            rows = layer_table(model, info)
        except ValueError as e:  # a setting that does not fit the data read (nnlab.models.combiner's)
            fail(NnlabError(f"{loaded.name}: models.{model.name}.{e}"))
        memory = estimate_memory(model, info, model.train.batch_size) / 2**20
        out.print(f"\n{model.name} ({model.kind}): {count_params_of(rows):,} parameters; about {memory:,.1f} MiB "
                  f"to train at batch size {model.train.batch_size}", markup=False, soft_wrap=True)
        if model.train.augment is not None and model.train.augment.given():
            out.print(f"augment (training batches only): {augment_text(model.train.augment.model_dump())}",
                      markup=False, soft_wrap=True)
        table = Table()
        for column in ("layer", "type", "output shape"):
            table.add_column(column)
        table.add_column("parameters", justify="right")
        for row in rows:
            table.add_row(row.name, row.type, str(["B", *row.output_shape]).replace("'", ""), f"{row.params:,}")
        out.print(table)
    out.print("\ntraining plan: " + "; ".join(stacking_plan(loaded.models, info.kind, loaded.repeats)),
              markup=False, soft_wrap=True)


@app.command()
def schema() -> None:
    """Print the JSON Schema of the spec format (for editor completion and checks)."""
    import json

    from nnlab.spec import json_schema

    typer.echo(json.dumps(json_schema(), indent=2))


# --- runs, compare, show: read the store only (no torch) ---
