"""The errors nnlab raises for bad input. Each renders as one line: where, what is allowed, what was given.

They are raised where a problem is found and rendered only in `cli.py` (stderr, exit code 2).
"""


class NnlabError(Exception):
    """A problem with the user's input, described in one line that points at the fix."""


class SpecError(NnlabError):
    """The spec file or a `--set` override is invalid."""


class DataError(NnlabError):
    """The data file cannot be used as the spec says."""


class RunError(NnlabError):
    """A run reference or a run folder cannot be used."""
