"""The Typer app and what every command shares: consoles that survive a closed pipe and show control
characters escaped, one-line errors (NnlabError -> stderr, exit 2), the run-store option."""

from __future__ import annotations

import io
import os
import sys
from enum import Enum
from pathlib import Path
from typing import ContextManager, Optional, TextIO

import typer
from rich.console import Console, ConsoleOptions, Group, RenderableType
from rich.segment import Segment
from rich.table import Table
from rich.text import Text

from nnlab.core import interrupts
from nnlab.errors import CONTROL_CHARS, NnlabError, escape_controls

app = typer.Typer(
    help="Train neural networks from a YAML spec, baseline first, and compare the runs.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

def _print_version(value: bool) -> None:
    if value:
        from nnlab.version import __version__

        typer.echo(f"nnlab {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                 help="Print nnlab's version and exit."),
) -> None:
    """Train neural networks from a YAML spec, baseline first, and compare the runs."""


RunsDirOption = typer.Option(None, "--runs-dir", help="Run store (default: $NNLAB_RUNS_DIR or ./runs).",
                             show_default=False)


class _ClosedSafe(io.TextIOBase):
    """stdout that keeps working when the reader goes away (`nnlab train ... | head`): output is dropped,
    training goes on and the run ends normally."""

    def __init__(self, stream: TextIO):
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


def _escape_text(text: Text) -> None:
    """Escape the control characters of `text` in place, its styles kept (moved with the text they cover)."""
    if not CONTROL_CHARS.search(text.plain):
        return
    out = text.blank_copy()
    start = 0
    for found in CONTROL_CHARS.finditer(text.plain):
        out.append_text(text[start:found.start()])
        char = text[found.start():found.end()]
        out.append(escape_controls(found.group()), style=char.spans[-1].style if char.spans else None)
        start = found.end()
    out.append_text(text[start:])
    text.plain, text.spans = out.plain, out.spans


def _escape_tree(renderable: RenderableType) -> None:
    """Escape the Text in `renderable` and in the tables and groups it holds before rich measures them, so
    that a column is as wide as the escaped text it shows (strings are escaped as rich converts them)."""
    if isinstance(renderable, Text):
        _escape_text(renderable)
    elif isinstance(renderable, Table):
        for column in renderable.columns:
            for cell in (column.header, column.footer, *column.cells):
                _escape_tree(cell)
    elif isinstance(renderable, Group):
        for part in renderable.renderables:
            _escape_tree(part)


class SafeConsole(Console):
    """A rich Console that never writes a control character of the text it shows: strings, Text and the
    Text in tables are escaped before they are measured and laid out (so columns fit them), and any other
    segment's text as it is rendered. Rich's own styling (colour codes, cursor moves) is added after, from the
    segments' styles and control codes, so it is kept."""

    def render_str(self, text: str, **kwargs) -> Text:  # type: ignore[override]
        return super().render_str(escape_controls(text), **kwargs)

    def render(self, renderable: RenderableType, options: Optional[ConsoleOptions] = None):  # type: ignore[override]
        _escape_tree(renderable)
        for segment in super().render(renderable, options):
            if segment.control is None and CONTROL_CHARS.search(segment.text):
                segment = Segment(escape_controls(segment.text), segment.style)
            yield segment


def echo(text: str, json: bool = False) -> None:
    """Plain text (csv, markdown, YAML, predictions; JSON with `json`) to stdout, control characters escaped."""
    typer.echo(escape_controls(text, json), nl=False)


def stdout() -> Console:
    # Not a terminal (a pipe, a file, CI): lines as wide as they need, so that no number is ever cut.
    stream = _ClosedSafe(sys.stdout)
    return SafeConsole(file=stream, highlight=False, width=None if stream.isatty() else 200)


def stderr() -> Console:
    return SafeConsole(stderr=True, highlight=False, soft_wrap=True)


def fail(error: NnlabError) -> None:
    console = stderr()
    for line in str(error).splitlines():
        console.print(f"error: {line}", markup=False)
    raise typer.Exit(2)



def warn(warnings: list[str]) -> None:
    """Warnings (a skipped run folder, an ignored column) go to stderr, one line each."""
    for warning in warnings:
        stderr().print(f"warning: {warning}", markup=False)


def draw_curves(run_ref: str | Path, runs_dir: Optional[Path] = None) -> None:
    from nnlab import runstore
    from nnlab.views.curves import draw_curves as plot_curves

    try:
        run = runstore.resolve_run(str(run_ref), runstore.store_path(runs_dir))
        path = plot_curves(run, runstore.curves_path(run))
    except NnlabError as e:
        fail(e)
    stdout().print(f"curves: {path}", markup=False, soft_wrap=True)
    warn(run.warnings)


class ExecutorName(str, Enum):
    local = "local"
    ray = "ray"


class _Process:
    as_command = False  # `main` ran: this process is the `nnlab` command, not a test runner or a notebook


def main() -> None:
    """The `nnlab` command: its commands run as their own process (see `interrupt_handling`)."""
    _Process.as_command = True
    app()


def interrupt_handling() -> ContextManager[None]:
    """The one way a command that trains (`train`, `sweep`) takes SIGINT, SIGTERM and SIGHUP: as `Interrupted`
    while it runs, its previous handlers back when it ends. As the `nnlab` command itself, once interrupted,
    later signals are ignored until the process exits, so that a storm of them cannot cut its shutdown short."""
    return interrupts.handled(own_process=_Process.as_command)


