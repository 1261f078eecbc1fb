"""`runs`, `compare`, `show`: read the run store only (no torch); `curves` and `report` are in report.py."""

from __future__ import annotations

import os
from enum import Enum
from pathlib import Path
from typing import Optional

import typer
from nnlab.cli.base import RunsDirOption, SafeConsole, echo, fail, warn, app
from nnlab.cli.filter_options import NoteFilterOption, TagFilterOption, WhereOption, run_filter
from nnlab.core.statuses import RUN_STATUSES
from nnlab.errors import NnlabError


class Format(str, Enum):
    table = "table"
    csv = "csv"
    markdown = "markdown"
    json = "json"


class Split(str, Enum):
    val = "val"
    test = "test"


# the statuses run.json may hold, from the run contract (not a list kept by hand here)
Status = Enum("Status", {s: s for s in RUN_STATUSES}, type=str)


FormatOption = typer.Option(Format.table, "--format", "-f",
                            help="table for people; csv, markdown or json (stable column names) for scripts.")
NameOption = typer.Option(None, "--name", help="Only runs with this name (a glob such as 'spam*' works).",
                          show_default=False)


SweepOption = typer.Option(None, "--sweep", help="Only the runs of this sweep (its id).", show_default=False)
SmokeOption = typer.Option(False, "--smoke", help="Include smoke runs (train --smoke); left out by default.")
PIPE_WIDTH = 10_000  # piped output has no width to fit: nothing is cut or left out (grid.UNBOUNDED)


def _browse_out() -> SafeConsole:
    """The console of runs/compare/show: a terminal's width, $COLUMNS where set, else (a pipe, a file) wide
    enough that no number is ever cut and no column left out."""
    console = SafeConsole(highlight=False)
    if not console.is_terminal and not os.environ.get("COLUMNS"):
        console.width = PIPE_WIDTH
    return console


def _emit(columns: list[str], rows: list[dict], format: Format, table) -> None:
    """csv/markdown/json go to stdout undecorated; `table` builds the rich renderable only when needed."""
    from nnlab.report import formats

    if format is Format.table:
        _browse_out().print(table())
    else:
        writer = {Format.csv: formats.to_csv, Format.markdown: formats.to_markdown, Format.json: formats.to_json}
        echo(writer[format](columns, rows), json=format is Format.json)


@app.command("runs")
def runs_command(
    name: Optional[str] = NameOption,
    status: Optional[Status] = typer.Option(None, "--status", help="Only runs with this status.",
                                            show_default=False),
    sweep: Optional[str] = SweepOption,
    last: Optional[int] = typer.Option(None, "--last", min=1, help="Only the newest K runs.", show_default=False),
    where: Optional[list[str]] = WhereOption,
    tag: Optional[list[str]] = TagFilterOption,
    note: Optional[str] = NoteFilterOption,
    du: bool = typer.Option(False, "--du", help="Each run's size on disk and its checkpoints' share instead."),
    format: Format = FormatOption,
    runs_dir: Optional[Path] = RunsDirOption,
) -> None:
    """List the runs, newest first: status (smoke runs marked), start, duration, models, the best model on
    validation, its validation and test scores (mean ± sd with repeats), note and tags."""
    try:
        from nnlab import runstore
        from nnlab.report import compare
        from nnlab.views import tables

        store = runstore.store_path(runs_dir)
        found, warnings = runstore.list_runs(store)
        found = run_filter(where, tag, note).apply(found)
        shown = compare.filter_runs(found, name, status.value if status else None, last, sweep)
        if du:
            from nnlab.runstore.gc import disk_usage
            from nnlab.views.store import DU_COLUMNS, du_rows, du_table

            rows = du_rows(disk_usage(shown))
            _emit(DU_COLUMNS, rows, format, lambda: du_table(rows, str(store)))
        else:
            rows = compare.runs_rows(shown)
            _emit(compare.RUNS_COLUMNS, rows, format, lambda: tables.runs_table(rows, str(store)))
        warn([*warnings, *(w for run in shown for w in run.warnings)])
    except NnlabError as e:
        fail(e)


@app.command("compare")
def compare_command(
    refs: Optional[list[str]] = typer.Argument(
        None, metavar="RUN", show_default=False,
        help="Runs by folder name, id, unique prefix, folder path, last or last~N. Default: the last 10 "
             "(or --name, --sweep, --where, --tag, --note)."),
    name: Optional[str] = NameOption,
    sweep: Optional[str] = SweepOption,
    last: Optional[int] = typer.Option(None, "--last", min=1, show_default=False,
                                       help="Without RUN: the newest K runs (default 10; all runs with --name, "
                                            "--sweep or a filter)."),
    smoke: bool = SmokeOption,
    metric: Optional[list[str]] = typer.Option(None, "--metric", "-m", show_default=False,
                                               help="A metric column to show (repeatable), e.g. accuracy or loss."),
    sort: Optional[str] = typer.Option(None, "--sort", show_default=False,
                                       help="Best first by this metric (validation unless --split test)."),
    split: Optional[Split] = typer.Option(None, "--split", show_default=False,
                                          help="Only this split's metrics; decisions (sort, best) read it. "
                                               "Default: both shown, decisions on validation."),
    model: Optional[list[str]] = typer.Option(None, "--model", show_default=False,
                                              help="Only this model's rows (repeatable)."),
    where: Optional[list[str]] = WhereOption,
    tag: Optional[list[str]] = TagFilterOption,
    note: Optional[str] = NoteFilterOption,
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
        from nnlab import runstore
        from nnlab.report import compare

        store = runstore.store_path(runs_dir)
        chosen_by = run_filter(where, tag, note)
        if refs and chosen_by:
            raise NnlabError("compare: --where, --tag and --note choose the runs; give them without RUN")
        selection = compare.select_runs(store, refs or [], name, last, sweep, smoke, chosen_by)
        split_name = split.value if split else None
        if refs and len(refs) == 2 and format is Format.table:
            _show_pair(selection, metric, split_name, model)
            return
        comparison = compare.compare_runs(selection.runs, metric, split_name, model, sort)
        _emit(comparison.columns, comparison.rows, format, lambda: _compare_table(comparison, selection, metric))
        warn([*selection.warnings, *comparison.warnings])
    except NnlabError as e:
        fail(e)


def _compare_table(comparison, selection, metric):
    from nnlab.views import tables
    from nnlab.report.fingerprints import StoreFacts

    notes = StoreFacts(selection.store_runs).lines(comparison.runs)
    if selection.smoke_left_out:
        notes.append(f"left out {selection.smoke_left_out} smoke run(s) (--smoke to include)")
    return tables.compare_table(comparison, metric, notes)


def _show_pair(selection, metric, split_name, model) -> None:
    from nnlab.report import pair
    from nnlab.views import pair as pairview
    from nnlab.report.fingerprints import StoreFacts

    a, b = selection.runs
    view = pair.compare_pair(a, b, metric, split_name, model)
    _browse_out().print(pairview.pair_view(view, StoreFacts(selection.store_runs).lines([a, b])))
    warn([*selection.warnings, *a.warnings, *(w for w in b.warnings if b is not a)])


@app.command("show")
def show_command(
    ref: str = typer.Argument(..., metavar="RUN", help="folder name, id, unique prefix, folder path, last or "
                                                       "last~N."),
    runs_dir: Optional[Path] = RunsDirOption,
) -> None:
    """Show one run: note, spec summary, each model's results and diagnosis, where an interrupted model
    stopped, progress if unfinished, how often its test split was seen, its files."""
    try:
        from nnlab import runstore
        from nnlab.views import show as showview
        from nnlab.report.fingerprints import StoreFacts

        store = runstore.store_path(runs_dir)
        store_runs, warnings = runstore.list_runs(store)
        run = runstore.resolve_run(ref, store, store_runs)
        _browse_out().print(showview.show_view(run, StoreFacts(store_runs).lines([run])))
        warn([*warnings, *run.warnings])
    except NnlabError as e:
        fail(e)
