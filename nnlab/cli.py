"""The `nnlab` command line. Parses, calls, renders; maps NnlabError to one line on stderr and exit code 2.

Heavy modules (torch, the runner) are imported inside the commands that train, so `--help`, `runs`,
`compare`, `show` and `validate` start fast.
"""

from __future__ import annotations

import sys
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
    Console(stderr=True, highlight=False, soft_wrap=True).print(f"error: {error}", markup=False)
    raise typer.Exit(2)


# --- browse commands (runs, compare, show): owned by the compare work; edit only between these markers ---
# --- end of browse commands ---


def main() -> None:
    app()


if __name__ == "__main__":
    main()
