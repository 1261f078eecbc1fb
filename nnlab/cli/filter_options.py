"""The options that find runs, declared once for every read command (`runs`, `compare`, `report`):
`--where KEY<op>VALUE` (repeatable), `--tag T` (repeatable), `--note TEXT`; `run_filter` turns what was
given into one report.filters.RunFilter (`.apply(runs)`), raising a one-line NnlabError for a malformed one."""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

import typer

if TYPE_CHECKING:
    from nnlab.report.filters import RunFilter

WhereOption = typer.Option(None, "--where", show_default=False, metavar="KEY<OP>VALUE",
                           help="Only runs where KEY compares so with VALUE (repeatable, all must hold): a score "
                                "('val_loss<0.2'), a model ('model=mlp', glob), a run field (name, status, tags, "
                                "seed) or a spec setting ('train.epochs>=10'). OP: < <= > >= = !=.")
TagFilterOption = typer.Option(None, "--tag", show_default=False, help="Only runs with this tag (repeatable: all).")
NoteFilterOption = typer.Option(None, "--note", show_default=False,
                                help="Only runs whose note, or a note added later, holds this text (any case).")


def run_filter(where: Optional[list[str]], tag: Optional[list[str]], note: Optional[str]) -> RunFilter:
    """A report.filters.RunFilter of the options given (falsy when none was)."""
    from nnlab.report.filters import RunFilter

    return RunFilter.parse(where or (), tag or (), note)
