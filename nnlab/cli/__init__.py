"""The `nnlab` command line. Parses, calls, renders; maps NnlabError to one line on stderr and exit code 2.

Heavy modules (torch, the runner) are imported inside the commands that train, so `--help`, `runs`,
`compare`, `show`, `validate` and `check` start fast. One module per group of commands; importing them
registers the commands on the one Typer app, in the order `--help` lists them.
"""

from nnlab.cli.base import app, main
from nnlab.cli import training, sweeping, browse, use  # noqa: E402,F401,I001  (registers the commands)

__all__ = ["app", "main"]
