"""The `nnlab` command line. Parses, calls, renders; maps NnlabError to one line on stderr and exit code 2.

Heavy modules (torch, the runner) are imported inside the commands that train, so `--help`, `runs`,
`compare`, `show`, `validate` and `check` start fast. One module per group of commands; importing them
registers the commands on the one Typer app, in the order `--help` lists them.
"""
# ruff: noqa: E402, F401, I001 - the imports below register the commands, in this order

from nnlab.core import interrupts
interrupts.install_at_start()  # first: a signal during the imports below ends it in one line

from nnlab.cli.base import app, main
from nnlab.cli import training
from nnlab.cli import sweeping
from nnlab.cli import browse
from nnlab.cli import report
from nnlab.cli import use
from nnlab.cli import export
from nnlab.cli import store
from nnlab.cli import lrfind

__all__ = ["app", "main"]
