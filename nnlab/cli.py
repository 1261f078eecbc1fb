"""The `nnlab` command line. Parses, calls, renders; maps NnlabError to one line on stderr and exit code 2.

Heavy modules (torch, the runner) are imported inside the commands that train, so `--help`, `runs`,
`compare`, `show` and `validate` start fast.
"""

from __future__ import annotations

import importlib.util
import io
import os
import sys
from enum import Enum
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console

from nnlab.errors import NnlabError

app = typer.Typer(
    help="Train neural networks from a YAML spec, baseline first, and compare the runs.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

RunsDirOption = typer.Option(None, "--runs-dir", help="Run store (default: $NNLAB_RUNS_DIR or ./runs).",
                             show_default=False)


class _ClosedSafe(io.TextIOBase):
    """stdout that keeps working when the reader goes away (`nnlab train ... | head`): output is dropped,
    training goes on and the run ends normally."""

    def __init__(self, stream: Any):
        self.stream, self.closed_by_reader = stream, False

    def write(self, text: str) -> int:
        if not self.closed_by_reader:
            try:
                self.stream.write(text)
            except (BrokenPipeError, ValueError):
                self._drop()
        return len(text)

    def flush(self) -> None:
        if not self.closed_by_reader:
            try:
                self.stream.flush()
            except (BrokenPipeError, ValueError):
                self._drop()

    def _drop(self) -> None:
        self.closed_by_reader = True
        try:  # Python's own flush at exit must not complain about the closed pipe either
            os.dup2(os.open(os.devnull, os.O_WRONLY), self.stream.fileno())
        except (OSError, ValueError, io.UnsupportedOperation):
            pass

    def isatty(self) -> bool:
        try:
            return self.stream.isatty()
        except (ValueError, AttributeError):
            return False

    def fileno(self) -> int:
        return self.stream.fileno()


def _out() -> Console:
    # Not a terminal (a pipe, a file, CI): lines as wide as they need, so that no number is ever cut.
    stream = _ClosedSafe(sys.stdout)
    return Console(file=stream, highlight=False, width=None if stream.isatty() else 200)


def _err() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True)


def _fail(error: NnlabError) -> None:
    console = Console(stderr=True, highlight=False, soft_wrap=True)
    for line in str(error).splitlines():
        console.print(f"error: {line}", markup=False)
    raise typer.Exit(2)


@app.command()
def train(
    spec: Path = typer.Argument(..., help="The experiment spec (YAML).", show_default=False),
    set_: list[str] = typer.Option([], "--set", help="Override a spec value: KEY.PATH=VALUE (YAML), e.g. "
                                   "train.epochs=10 or models.mlp.hidden=[128,64]. Repeatable."),
    note: str = typer.Option("", "--note", help="A note kept with the run (what you changed and why)."),
    smoke: bool = typer.Option(False, "--smoke", help="Quick pipeline check: a small training sample, at most "
                                                      "2 epochs; the spec's expect gates are not checked."),
    repeats: Optional[int] = typer.Option(None, "--repeats", min=1, max=100, show_default=False,
                                          help="Train every model N times (seeds seed..seed+N-1, same split); "
                                               "scores as mean ± sd."),
    device: Optional[str] = typer.Option(None, "--device", help="auto | cpu | cuda | cuda:N | mps, for every model."),
    runs_dir: Optional[Path] = RunsDirOption,
    progress: Optional[bool] = typer.Option(None, "--progress/--no-progress",
                                            help="Progress bars (default: on a terminal only)."),
    curves: bool = typer.Option(False, "--curves", help="Also draw curves.png (needs matplotlib)."),
    resume: Optional[str] = typer.Option(None, "--resume", metavar="RUN", show_default=False,
                                         help="Continue an interrupted or failed run (id, prefix, path, last) in "
                                              "its own folder: finished models are kept, the cut-off model goes "
                                              "on from its last checkpoint. SPEC (and --set, --repeats, --device, "
                                              "--smoke) must be what it ran."),
) -> None:
    """Train the baseline, then every model of SPEC, and write a run folder.

    Exit codes: 0 ok, 1 an `expect` gate missed or a model failed or diverged, 2 bad input, 130 interrupted.
    """
    from nnlab import interrupts, runner
    from nnlab.report import TrainReport, results_table, verdict_lines
    from nnlab.runstore import store_path

    out = _out()
    if curves and importlib.util.find_spec("matplotlib") is None:
        _fail(NnlabError("--curves: drawing curves needs matplotlib: pip install 'nnlab[plots]' (or drop --curves)"))
    report = TrainReport(out, progress)
    # SIGTERM (a CI timeout, `kill`) and SIGINT end the run as interrupted, finished epochs and the best
    # weights so far kept; the previous handlers come back when the command ends.
    with interrupts.handled(own_process=_OWN_PROCESS):
        try:
            plan = runner.plan(spec, set_, device, smoke, repeats)
            point = runner.resume_from(plan, resume, store_path(runs_dir)) if resume else None
            if point:
                out.print(point.describe(), markup=False, soft_wrap=True)
            outcome = runner.execute(plan, store_path(runs_dir), note, report, resume=point)
        except NnlabError as e:
            _fail(e)
        except KeyboardInterrupt as stop:
            where = (f": {report.run_path}; continue it with `nnlab train {spec} --resume "
                     f"{Path(report.run_path).name}`{' with the same options' if set_ or repeats or device or smoke else ''}"
                     if report.run_path else "")
            _err().print(f"interrupted by {interrupts.interrupted_name(stop)}; the run is marked interrupted and "
                         f"keeps every finished epoch and model, and the best weights of the model in training"
                         f"{where}", markup=False)
            raise typer.Exit(130)
        except OSError as e:  # the run store failed mid-run (a full disk): the run is marked failed
            from nnlab.runstore.writer import describe

            where = f"; the run keeps what finished: {report.run_path}" if report.run_path else ""
            _err().print(f"error: {describe(e)}{where}", markup=False)
            raise typer.Exit(1)
    out.print(results_table(outcome.summary))
    for line in verdict_lines(outcome.summary):
        out.print(line, markup=False, soft_wrap=True)
    if smoke and plan.spec.expect:
        out.print("expect: not checked in a smoke run (it trains too little); check them with `nnlab check`",
                  markup=False, soft_wrap=True)
    if curves:
        _draw_curves(outcome.path)
    out.print(f"run: {outcome.path}", markup=False, soft_wrap=True)
    if outcome.gates_missed or outcome.failed_models:
        raise typer.Exit(1)


class ExecutorName(str, Enum):
    local = "local"
    ray = "ray"


@app.command("sweep")
def sweep_command(
    spec: Path = typer.Argument(..., help="The experiment spec (YAML).", show_default=False),
    grid: list[str] = typer.Option([], "--grid", help="KEY=V1,V2,...: values to try, each read as YAML (1e-3 is "
                                   "a float); quote list values: 'models.mlp.hidden=[64],[128,64]'. Repeatable; "
                                   "replaces the same key of the spec's sweep.grid."),
    one_at_a_time: bool = typer.Option(False, "--one-at-a-time", help="Vary each key alone from the spec's own "
                                       "value (the spec as written is the reference, trained once); default: "
                                       "every combination."),
    repeats: Optional[int] = typer.Option(None, "--repeats", min=1, max=100, show_default=False,
                                          help="Train every point N times (seeds seed..seed+N-1, same split)."),
    jobs: int = typer.Option(1, "--jobs", "-j", min=1, help="Points trained at once, each in its own process "
                             "with one torch thread."),
    note: str = typer.Option("", "--note", help="A note kept with every point's run, after its settings."),
    smoke: bool = typer.Option(False, "--smoke", help="Quick pipeline check of every point (small sample, at "
                                                      "most 2 epochs)."),
    runs_dir: Optional[Path] = RunsDirOption,
    executor: ExecutorName = typer.Option(ExecutorName.local, "--executor", help="local: processes on this "
                                          "machine (--jobs); ray: tasks on a Ray instance or cluster (pip install "
                                          "'nnlab\\[ray]'; spec, data and store on a path every node reads)."),
    address: Optional[str] = typer.Option(None, "--address", show_default=False, help="With --executor ray: auto "
                                          "or ray://host:port joins a running cluster (default: a local instance)."),
    cpus_per_trial: Optional[float] = typer.Option(None, "--cpus-per-trial", min=0, show_default=False,
                                                   help="With --executor ray: CPUs per point (default 1)."),
    gpus_per_trial: Optional[float] = typer.Option(None, "--gpus-per-trial", min=0, show_default=False,
                                                   help="With --executor ray: GPUs per point (default 0)."),
    max_retries: Optional[int] = typer.Option(None, "--max-retries", min=0, show_default=False,
                                              help="With --executor ray: new attempts for a point whose worker "
                                                   "died (default 1)."),
) -> None:
    """Train SPEC once per point of a grid, each point its own run, then show each setting's effect.

    Every point is checked before anything trains; the runs share a sweep id (`compare --sweep ID`). The table ranks the points by the monitored validation metric, with each one's change against the reference point.

    Exit codes: 0 ok, 1 a point failed (the others still train), 2 bad input, 130 interrupted.
    """
    import time

    from nnlab import interrupts
    from nnlab import sweep as sweeps
    from nnlab import sweepview
    from nnlab.runstore import store_path

    out = _out()
    with interrupts.handled():
        try:
            ray_options = {"address": address, "cpus_per_trial": cpus_per_trial, "gpus_per_trial": gpus_per_trial,
                           "max_retries": max_retries}
            runner = _sweep_executor(executor, jobs, {k: v for k, v in ray_options.items() if v is not None})
            plan = sweeps.plan_sweep(spec, grid, one_at_a_time, repeats, note, smoke)
            where = f"{jobs} at a time" if executor is ExecutorName.local else "on Ray"
            out.print(f"sweep {plan.id}: {len(plan.points)} points, {where}", markup=False, soft_wrap=True)
            started = time.monotonic()
            stream = runner.run(plan.units(store_path(runs_dir)))
        except NnlabError as e:
            _fail(e)
        results: dict = {}
        try:
            for result in stream:
                results[result.index] = result
                line = sweepview.result_line(plan, result, len(results), time.monotonic() - started)
                out.print(line, markup=False, soft_wrap=True)
        except KeyboardInterrupt as stop:
            stream.close()  # stops the points still running (each marked interrupted) and starts no more
            out.print(sweepview.effect_table(plan, sweepview.effects(plan, results)))
            finished = sum(result.status != "interrupted" for result in results.values())
            _err().print(f"interrupted by {interrupts.interrupted_name(stop)}: sweep {plan.id} stopped with "
                         f"{finished} of {len(plan.points)} points finished; the running ones are marked "
                         "interrupted", markup=False)
            raise typer.Exit(130)
    out.print(sweepview.effect_table(plan, sweepview.effects(plan, results)))
    out.print(f"every point's run: nnlab compare --sweep {plan.id}", markup=False, soft_wrap=True)
    if any(result.status != "completed" for result in results.values()):
        raise typer.Exit(1)


def _sweep_executor(name: ExecutorName, jobs: int, ray_options: dict):
    """The executor a sweep's units go to; Ray is imported only when asked for."""
    if name is ExecutorName.local:
        if ray_options:
            raise NnlabError(f"--{next(iter(ray_options)).replace('_', '-')}: only with --executor ray")
        from nnlab.executors import LocalExecutor

        return LocalExecutor(jobs)
    if jobs != 1:
        raise NnlabError("--jobs: only with --executor local; Ray runs as many points at once as the cluster has "
                         "room for (--cpus-per-trial)")
    from nnlab.executors_ray import RayExecutor

    return RayExecutor(**ray_options)


def _draw_curves(run_ref: str | Path, runs_dir: Optional[Path] = None) -> None:
    from nnlab import runstore
    from nnlab.curves import draw_curves

    try:
        run = runstore.resolve_run(str(run_ref), runstore.store_path(runs_dir))
        path = draw_curves(run, runstore.curves_path(run))
    except NnlabError as e:
        _fail(e)
    _out().print(f"curves: {path}", markup=False, soft_wrap=True)
    _warn(run.warnings)


@app.command()
def curves(run: str = typer.Argument(..., help="Run id, unique prefix, folder, last or last~N.", show_default=False),
           runs_dir: Optional[Path] = RunsDirOption) -> None:
    """Draw curves.png in a run folder: train and validation loss and the monitored metric per model."""
    _draw_curves(run, runs_dir)


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
        _fail(e)
    if models:
        _print_layer_tables(loaded, base_dir)
    else:
        typer.echo(yaml.safe_dump(loaded.resolved(), sort_keys=False), nl=False)


def _print_layer_tables(loaded, base_dir: Path) -> None:
    """One table per model, built on the spec's real input shape (the data is read and split for it)."""
    from rich.table import Table

    from nnlab.data import prepare
    from nnlab.models import count_params_of, estimate_memory, layer_table

    try:
        info = prepare(loaded.data, base_dir, loaded.seed).info
    except NnlabError as e:
        _fail(e)
    out = _out()
    vocabulary = f", vocabulary {info.vocab_size:,}" if info.kind == "text" else ""
    out.print(f"{loaded.name}: input {info.kind} {list(info.shape)} per example{vocabulary}; "
              f"{info.n_outputs} output(s)", markup=False, soft_wrap=True)
    for model in loaded.models:
        rows = layer_table(model, info)
        memory = estimate_memory(model, info, model.train.batch_size) / 2**20
        out.print(f"\n{model.name} ({model.kind}): {count_params_of(rows):,} parameters; about {memory:,.1f} MiB "
                  f"to train at batch size {model.train.batch_size}", markup=False, soft_wrap=True)
        table = Table()
        for column in ("layer", "type", "output shape"):
            table.add_column(column)
        table.add_column("parameters", justify="right")
        for row in rows:
            table.add_row(row.name, row.type, str(["B", *row.output_shape]).replace("'", ""), f"{row.params:,}")
        out.print(table)


@app.command()
def schema() -> None:
    """Print the JSON Schema of the spec format (for editor completion and checks)."""
    import json

    from nnlab.spec import json_schema

    typer.echo(json.dumps(json_schema(), indent=2))


# --- runs, compare, show: read the store only (no torch) ---


class Format(str, Enum):
    table = "table"
    csv = "csv"
    markdown = "markdown"
    json = "json"


class Split(str, Enum):
    val = "val"
    test = "test"


class Status(str, Enum):
    running = "running"
    completed = "completed"
    failed = "failed"
    interrupted = "interrupted"


FormatOption = typer.Option(Format.table, "--format", "-f",
                            help="table for people; csv, markdown or json (stable column names) for scripts.")
NameOption = typer.Option(None, "--name", help="Only runs with this name (a glob such as 'spam*' works).",
                          show_default=False)


SweepOption = typer.Option(None, "--sweep", help="Only the runs of this sweep (its id).", show_default=False)
PIPE_WIDTH = 10_000  # piped output has no width to fit: nothing is cut or left out (grid.UNBOUNDED)


def _browse_out() -> Console:
    """The console of runs/compare/show: a terminal's width, $COLUMNS where set, else (a pipe, a file) wide
    enough that no number is ever cut and no column left out."""
    console = Console(highlight=False)
    if not console.is_terminal and not os.environ.get("COLUMNS"):
        console.width = PIPE_WIDTH
    return console


def _warn(warnings: list[str]) -> None:
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    for warning in warnings:
        err.print(f"warning: {warning}", markup=False)


def _emit(columns: list[str], rows: list[dict], format: Format, table) -> None:
    """csv/markdown/json go to stdout undecorated; `table` builds the rich renderable only when needed."""
    from nnlab import formats

    if format is Format.table:
        _browse_out().print(table())
    else:
        writer = {Format.csv: formats.to_csv, Format.markdown: formats.to_markdown, Format.json: formats.to_json}
        typer.echo(writer[format](columns, rows), nl=False)


@app.command("runs")
def runs_command(
    name: Optional[str] = NameOption,
    status: Optional[Status] = typer.Option(None, "--status", help="Only runs with this status.",
                                            show_default=False),
    sweep: Optional[str] = SweepOption,
    last: Optional[int] = typer.Option(None, "--last", min=1, help="Only the newest K runs.", show_default=False),
    format: Format = FormatOption,
    runs_dir: Optional[Path] = RunsDirOption,
) -> None:
    """List the runs, newest first: status (smoke runs marked), start, duration, models, the best model on
    validation, its validation and test scores (mean ± sd with repeats)."""
    try:
        from nnlab import compare, runstore, tables

        store = runstore.store_path(runs_dir)
        found, warnings = runstore.list_runs(store)
        shown = compare.filter_runs(found, name, status.value if status else None, last, sweep)
        rows = compare.runs_rows(shown)
        _emit(compare.RUNS_COLUMNS, rows, format, lambda: tables.runs_table(rows, str(store)))
        _warn([*warnings, *(w for run in shown for w in run.warnings)])
    except NnlabError as e:
        _fail(e)


@app.command("compare")
def compare_command(
    refs: Optional[list[str]] = typer.Argument(
        None, metavar="RUN", show_default=False,
        help="Runs by folder name, id, unique prefix, folder path, last or last~N. Default: the last 10 "
             "(or --name, --sweep)."),
    name: Optional[str] = NameOption,
    sweep: Optional[str] = SweepOption,
    last: Optional[int] = typer.Option(None, "--last", min=1, show_default=False,
                                       help="Without RUN: the newest K runs (default 10; all runs with --name "
                                            "or --sweep)."),
    smoke: bool = typer.Option(False, "--smoke", help="Include smoke runs (train --smoke); left out by default."),
    metric: Optional[list[str]] = typer.Option(None, "--metric", "-m", show_default=False,
                                               help="A metric column to show (repeatable), e.g. accuracy or loss."),
    sort: Optional[str] = typer.Option(None, "--sort", show_default=False,
                                       help="Best first by this metric (validation unless --split test)."),
    split: Optional[Split] = typer.Option(None, "--split", show_default=False,
                                          help="Only this split's metrics; decisions (sort, best) read it. "
                                               "Default: both shown, decisions on validation."),
    model: Optional[list[str]] = typer.Option(None, "--model", show_default=False,
                                              help="Only this model's rows (repeatable)."),
    format: Format = FormatOption,
    runs_dir: Optional[Path] = RunsDirOption,
) -> None:
    """Compare runs: one row per (run, model), the settings that differ, metrics and the gain over the baseline.

    Without RUN: the last 10 runs (or those named by --name or --sweep), smoke runs left out unless --smoke.
    With repeats, metrics read mean ± sd and differences within the spread are called noise. With exactly
    two runs the table shows A and B side by side: what differs, B-A per model and metric, both
    validation curves.
    """
    try:
        from nnlab import compare, runstore

        store = runstore.store_path(runs_dir)
        selection = compare.select_runs(store, refs or [], name, last, sweep, smoke)
        split_name = split.value if split else None
        if refs and len(refs) == 2 and format is Format.table:
            _show_pair(selection, metric, split_name, model)
            return
        comparison = compare.compare_runs(selection.runs, metric, split_name, model, sort)
        _emit(comparison.columns, comparison.rows, format, lambda: _compare_table(comparison, selection, metric))
        _warn([*selection.warnings, *comparison.warnings])
    except NnlabError as e:
        _fail(e)


def _compare_table(comparison, selection, metric):
    from nnlab import tables
    from nnlab.fingerprints import StoreFacts

    notes = StoreFacts(selection.store_runs).lines(comparison.runs)
    if selection.smoke_left_out:
        notes.append(f"left out {selection.smoke_left_out} smoke run(s) (--smoke to include)")
    return tables.compare_table(comparison, metric, notes)


def _show_pair(selection, metric, split_name, model) -> None:
    from nnlab import pair, pairview
    from nnlab.fingerprints import StoreFacts

    a, b = selection.runs
    view = pair.compare_pair(a, b, metric, split_name, model)
    _browse_out().print(pairview.pair_view(view, StoreFacts(selection.store_runs).lines([a, b])))
    _warn([*selection.warnings, *a.warnings, *(w for w in b.warnings if b is not a)])


@app.command("show")
def show_command(
    ref: str = typer.Argument(..., metavar="RUN", help="folder name, id, unique prefix, folder path, last or "
                                                       "last~N."),
    runs_dir: Optional[Path] = RunsDirOption,
) -> None:
    """Show one run: note, spec summary, each model's results and diagnosis, where an interrupted model
    stopped, progress if unfinished, how often its test split was seen, its files."""
    try:
        from nnlab import runstore, showview
        from nnlab.fingerprints import StoreFacts

        store = runstore.store_path(runs_dir)
        store_runs, warnings = runstore.list_runs(store)
        run = runstore.resolve_run(ref, store, store_runs)
        _browse_out().print(showview.show_view(run, StoreFacts(store_runs).lines([run])))
        _warn([*warnings, *run.warnings])
    except NnlabError as e:
        _fail(e)


class PredictFormat(str, Enum):
    csv = "csv"
    parquet = "parquet"
    json = "json"


@app.command("predict")
def predict_command(
    ref: str = typer.Argument(..., metavar="RUN", help="id, unique id prefix, folder path, last or last~N."),
    data: Path = typer.Argument(..., help="Rows to predict (CSV, TSV or Parquet) with the training columns.",
                                show_default=False),
    model: Optional[str] = typer.Option(None, "--model", "-m", show_default=False,
                                        help="The model to use (default: the best by validation)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", show_default=False,
                                       help="Write the predictions to this file (default: stdout)."),
    format: Optional[PredictFormat] = typer.Option(None, "--format", "-f", show_default=False,
                                                   help="csv, parquet or json (default: from --out's suffix, "
                                                        "else csv)."),
    runs_dir: Optional[Path] = RunsDirOption,
) -> None:
    """Predict with a trained model: one output row per row of DATA, in the same order.

    Columns: `prediction` (in the target's own labels or units) and, for classification, `p_<class>` for
    each class. Columns DATA has beyond the training columns are ignored (a note on stderr says which).
    """
    from nnlab import api

    try:
        run = api.load_run(ref, runs_dir)
        frame = api.read_rows(data)
        chosen = run.model(model)
        result = api.predict_rows(chosen, frame, data.name)
        column_notes = api.column_notes(chosen, frame)
        text = api.write_predictions(result, out, format.value if format else None)
    except NnlabError as e:
        _fail(e)
    notes = [f"model '{chosen.name}' of run {run.id}", *column_notes]
    if out is not None:
        notes.append(f"wrote {len(result):,} predictions to {out}")
    Console(stderr=True, highlight=False, soft_wrap=True).print("\n".join(f"note: {n}" for n in notes),
                                                               markup=False)
    if text is not None:
        typer.echo(text, nl=False)


@app.command("init")
def init_command(
    data: Path = typer.Argument(..., help="The data file (CSV, TSV or Parquet).", show_default=False),
    target: str = typer.Option(..., "--target", "-t", help="The column to predict.", show_default=False),
    out: Path = typer.Option(Path("spec.yaml"), "--out", "-o", help="Where to write the spec."),
    force: bool = typer.Option(False, "--force", help="Overwrite OUT if it exists."),
) -> None:
    """Write a short, commented starter spec for DATA: a baseline and one small network that fits the data.

    The task and each column's kind (numeric, categorical, text, left out) are inferred from the data; the
    spec is checked like `nnlab validate` and `nnlab train` would check it before it is written.
    """
    from nnlab.starter import write_starter

    try:
        starter = write_starter(data, target, out, force)
    except NnlabError as e:
        _fail(e)
    kinds = ", ".join(f"{len(starter.named(k))} {k}" for k in ("numeric", "categorical", "text", "left out")
                      if starter.named(k))
    _out().print(f"wrote {out}: {starter.task} task on '{starter.target}', {starter.rows:,} rows; columns: "
                 f"{kinds}", markup=False, soft_wrap=True)
    _out().print(f"next: nnlab train {out}", markup=False, soft_wrap=True)


@app.command("check")
def check_command(
    ref: str = typer.Argument(..., metavar="RUN", help="id, unique id prefix, folder path, last or last~N."),
    expect: list[str] = typer.Option([], "--expect", "-e", show_default=False,
                                     help="A gate KEY=RULE, e.g. 'mlp.test.accuracy=>=0.92' (repeatable). "
                                          "Default: the gates in the run's spec."),
    runs_dir: Optional[Path] = RunsDirOption,
) -> None:
    """Re-check a finished run's `expect` gates from its recorded scores, without training.

    Prints one line per gate. Exit codes: 0 every gate passes, 1 a gate missed, 2 a bad run reference or rule.
    """
    from nnlab import runstore
    from nnlab.check import check_run

    try:
        run = runstore.resolve_run(ref, runstore.store_path(runs_dir))
        report = check_run(run, expect)
    except NnlabError as e:
        _fail(e)
    _warn(report.notes)
    for line in report.lines():
        _out().print(line, markup=False, soft_wrap=True)
    if not report.passed:
        raise typer.Exit(1)


_OWN_PROCESS = False  # True when nnlab runs as its own process (not in-process, as in tests or notebooks)


def main() -> None:
    global _OWN_PROCESS
    _OWN_PROCESS = True
    app()


if __name__ == "__main__":
    main()
