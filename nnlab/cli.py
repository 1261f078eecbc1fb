"""The `nnlab` command line. Parses, calls, renders; maps NnlabError to one line on stderr and exit code 2.

Heavy modules (torch, the runner) are imported inside the commands that train, so `--help`, `runs`,
`compare`, `show` and `validate` start fast.
"""

from __future__ import annotations

import signal
from enum import Enum
from pathlib import Path
from typing import Optional

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


def _out() -> Console:
    return Console(highlight=False)


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
                                                      "2 epochs."),
    device: Optional[str] = typer.Option(None, "--device", help="auto | cpu | cuda | cuda:N | mps, for every model."),
    runs_dir: Optional[Path] = RunsDirOption,
    progress: Optional[bool] = typer.Option(None, "--progress/--no-progress",
                                            help="Progress bars (default: on a terminal only)."),
    curves: bool = typer.Option(False, "--curves", help="Also draw curves.png (needs matplotlib)."),
) -> None:
    """Train the baseline, then every model of SPEC, and write a run folder.

    Exit codes: 0 ok, 1 an `expect` gate missed or a model failed, 2 bad input, 130 interrupted.
    """
    from nnlab import runner
    from nnlab.report import TrainReport, results_table, verdict_lines
    from nnlab.runstore import store_path

    out = _out()
    # SIGTERM (a CI timeout, `kill`) and SIGINT end the run like Ctrl-C: status interrupted, finished epochs
    # kept. SIGINT is set too because a shell starts background jobs with it ignored.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.default_int_handler)
    try:
        plan = runner.plan(spec, set_, device, smoke)
        outcome = runner.execute(plan, store_path(runs_dir), note, TrainReport(out, progress))
    except NnlabError as e:
        _fail(e)
    except KeyboardInterrupt:
        Console(stderr=True).print("interrupted: the run keeps every finished epoch and is marked interrupted")
        raise typer.Exit(130)
    out.print(results_table(outcome.summary))
    for line in verdict_lines(outcome.summary):
        out.print(line, markup=False, soft_wrap=True)
    if curves:
        _draw_curves(outcome.path)
    out.print(f"run: {outcome.path}", markup=False, soft_wrap=True)
    if outcome.gates_missed or outcome.failed_models:
        raise typer.Exit(1)


def _draw_curves(run_ref: str | Path, runs_dir: Optional[Path] = None) -> None:
    from nnlab import runstore
    from nnlab.curves import draw_curves

    try:
        run = runstore.resolve_run(str(run_ref), runstore.store_path(runs_dir))
        path = draw_curves(run, runstore.curves_path(run))
    except NnlabError as e:
        _fail(e)
    _out().print(f"curves: {path}", markup=False, soft_wrap=True)


@app.command()
def curves(run: str = typer.Argument(..., help="Run id, unique prefix, folder, last or last~N.", show_default=False),
           runs_dir: Optional[Path] = RunsDirOption) -> None:
    """Draw curves.png in a run folder: train and validation loss and the monitored metric per model."""
    _draw_curves(run, runs_dir)


@app.command()
def validate(spec: Path = typer.Argument(..., help="The experiment spec (YAML).", show_default=False),
             set_: list[str] = typer.Option([], "--set", help="Override a spec value: KEY.PATH=VALUE.")) -> None:
    """Check SPEC and print it with every default filled in (exit 2 and the problems if it is invalid)."""
    import yaml

    from nnlab.spec import load_spec

    try:
        loaded, _ = load_spec(spec, set_)
    except NnlabError as e:
        _fail(e)
    typer.echo(yaml.safe_dump(loaded.resolved(), sort_keys=False), nl=False)


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


def _warn(warnings: list[str]) -> None:
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    for warning in warnings:
        err.print(f"warning: {warning}", markup=False)


def _emit(columns: list[str], rows: list[dict], format: Format, table) -> None:
    """csv/markdown/json go to stdout undecorated; `table` builds the rich renderable only when needed."""
    from nnlab import formats

    if format is Format.table:
        _out().print(table())
    else:
        writer = {Format.csv: formats.to_csv, Format.markdown: formats.to_markdown, Format.json: formats.to_json}
        typer.echo(writer[format](columns, rows), nl=False)


@app.command("runs")
def runs_command(
    name: Optional[str] = NameOption,
    status: Optional[Status] = typer.Option(None, "--status", help="Only runs with this status.",
                                            show_default=False),
    last: Optional[int] = typer.Option(None, "--last", min=1, help="Only the newest K runs.", show_default=False),
    format: Format = FormatOption,
    runs_dir: Optional[Path] = RunsDirOption,
) -> None:
    """List the runs, newest first: status, start, duration, models, the best model and its test score."""
    try:
        from nnlab import compare, runstore, tables

        store = runstore.store_path(runs_dir)
        found, warnings = runstore.list_runs(store)
        _warn(warnings)
        rows = compare.runs_rows(compare.filter_runs(found, name, status.value if status else None, last))
        _emit(compare.RUNS_COLUMNS, rows, format, lambda: tables.runs_table(rows, str(store)))
    except NnlabError as e:
        _fail(e)


@app.command("compare")
def compare_command(
    refs: Optional[list[str]] = typer.Argument(
        None, metavar="RUN", show_default=False,
        help="Runs by id, unique id prefix, folder path, last or last~N. Default: the last 10 (or --name)."),
    name: Optional[str] = NameOption,
    last: Optional[int] = typer.Option(None, "--last", min=1, show_default=False,
                                       help="Without RUN: the newest K runs (default 10; all runs with --name)."),
    metric: Optional[list[str]] = typer.Option(None, "--metric", "-m", show_default=False,
                                               help="A metric column to show (repeatable), e.g. accuracy or loss."),
    sort: Optional[str] = typer.Option(None, "--sort", show_default=False,
                                       help="Best first by this metric (test split unless --split val)."),
    split: Optional[Split] = typer.Option(None, "--split", help="Only this split's metrics.", show_default=False),
    model: Optional[list[str]] = typer.Option(None, "--model", show_default=False,
                                              help="Only this model's rows (repeatable)."),
    format: Format = FormatOption,
    runs_dir: Optional[Path] = RunsDirOption,
) -> None:
    """Compare runs: one row per (run, model), the settings that differ, metrics and the gain over the baseline.

    Without RUN: the last 10 runs (or those named by --name). With exactly two runs the table shows A and B side by side: what differs, B-A per model and metric, and both validation curves.
    """
    try:
        from nnlab import compare, runstore, tables

        store = runstore.store_path(runs_dir)
        selected, warnings = compare.select_runs(store, refs or [], name, last)
        _warn(warnings)
        split_name = split.value if split else None
        if refs and len(refs) == 2 and format is Format.table:
            pair = compare.compare_pair(selected[0], selected[1], metric, split_name, model)
            _out().print(tables.pair_view(pair))
            return
        comparison = compare.compare_runs(selected, metric, split_name, model, sort)
        _warn(comparison.warnings)
        _emit(comparison.columns, comparison.rows, format,
              lambda: tables.compare_table(comparison, metric))
    except NnlabError as e:
        _fail(e)


@app.command("show")
def show_command(
    ref: str = typer.Argument(..., metavar="RUN", help="id, unique id prefix, folder path, last or last~N."),
    runs_dir: Optional[Path] = RunsDirOption,
) -> None:
    """Show one run: note, spec summary, each model's results and diagnosis, progress if unfinished, its files."""
    try:
        from nnlab import runstore, tables

        run = runstore.resolve_run(ref, runstore.store_path(runs_dir))
        _out().print(tables.show_view(run))
    except NnlabError as e:
        _fail(e)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
