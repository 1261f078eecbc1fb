"""`report` (the selected runs as one self-contained HTML file) and `curves` (learning curves as a PNG): read
the run store only, no torch."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from nnlab.cli.base import RunsDirOption, app, draw_curves, fail, stdout, warn
from nnlab.cli.browse import NameOption, SmokeOption, SweepOption
from nnlab.cli.filter_options import NoteFilterOption, TagFilterOption, WhereOption, run_filter
from nnlab.errors import NnlabError

REPORT_FILE = "report.html"
OVERLAY_FILE = "curves.png"


@app.command("curves")
def curves_command(
    refs: list[str] = typer.Argument(..., metavar="RUN", show_default=False,
                                     help="Run ids, unique prefixes, folders, last or last~N."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", show_default=False,
                                       help="The PNG to write (default: one run's curves.png in its folder; "
                                            "for several runs ./curves.png)."),
    runs_dir: Optional[Path] = RunsDirOption,
) -> None:
    """Draw learning curves as a PNG: one run's per model in its folder (curves.png), or several runs
    overlaid as the report draws them (validation solid, train dotted, repeats mean ± sd, * best epoch,
    x early stop). Needs matplotlib: pip install -e '.[plots]'."""
    if len(refs) == 1 and out is None:
        draw_curves(refs[0], runs_dir)
        return
    try:
        from nnlab import runstore
        from nnlab.views.curves import draw_overlay

        store = runstore.store_path(runs_dir)
        listed, warnings = runstore.list_runs(store)
        runs = list({run.path: run for run in (runstore.resolve_run(ref, store, listed) for ref in refs)}.values())
        path = draw_overlay(runs, out or Path(OVERLAY_FILE))
    except NnlabError as e:
        fail(e)
    stdout().print(f"curves: {path} ({len(runs)} run(s))", markup=False, soft_wrap=True)
    warn([*warnings, *(w for run in runs for w in run.warnings)])


@app.command("report")
def report_command(
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
    where: Optional[list[str]] = WhereOption,
    tag: Optional[list[str]] = TagFilterOption,
    note: Optional[str] = NoteFilterOption,
    out: Path = typer.Option(Path(REPORT_FILE), "--out", "-o", help="The HTML file to write."),
    runs_dir: Optional[Path] = RunsDirOption,
) -> None:
    """Write one HTML file that opens with no network: the runs as compare shows them, learning curves
    overlaid across runs and models (repeats as mean ± sd), a sweep's effects, and per model the confusion
    matrix, ROC, precision-recall and calibration curves, the misclassified examples, the layers and the
    diagnosis. Needs plotly: pip install -e '.[report]'."""
    try:
        from nnlab import runstore
        from nnlab.report import compare
        from nnlab.runstore.layout import write_atomic

        try:
            import plotly  # noqa: F401  (the `report` extra)
        except ImportError:
            raise NnlabError("report needs plotly: pip install -e '.[report]' in the nnlab checkout "
                             "(or pip install plotly)") from None
        from nnlab.views.html import report_html

        store = runstore.store_path(runs_dir)
        chosen_by = run_filter(where, tag, note)
        if refs and chosen_by:
            raise NnlabError("report: --where, --tag and --note choose the runs; give them without RUN")
        selection = compare.select_runs(store, refs or [], name, last, sweep, smoke, chosen_by)
        if not selection.runs:
            raise NnlabError(f"report: no runs to report in {store}"
                             + (" with these --name/--sweep/--last/--where/--tag/--note"
                                if name or sweep or last or chosen_by else ""))
        if out.is_dir():
            raise NnlabError(f"--out: expected a file name; got the folder '{out}'")
        page = report_html(selection.runs, selection.store_runs, sweep=sweep)
        try:
            write_atomic(out, page)
        except OSError as e:
            raise NnlabError(f"--out: cannot write {out} ({e.strerror or e})") from None
    except NnlabError as e:
        fail(e)
    stdout().print(f"report: {out} ({len(selection.runs)} run(s), {len(page) / 2**20:.1f} MB)", markup=False,
                   soft_wrap=True)
    warn([*selection.warnings, *(w for run in selection.runs for w in run.warnings)])
