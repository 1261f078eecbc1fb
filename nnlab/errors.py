"""The errors nnlab raises for bad input. Each renders as one line: where, what is allowed, what was given.

They are raised where a problem is found and rendered only in `cli.py` (stderr, exit code 2).
"""

import errno
import re


class NnlabError(Exception):
    """A problem with the user's input, described in one line that points at the fix."""


class SpecError(NnlabError):
    """The spec file or a `--set` override is invalid."""


class DataError(NnlabError):
    """The data file cannot be used as the spec says."""


class RunError(NnlabError):
    """A run reference or a run folder cannot be used."""


def describe(error: BaseException) -> str:
    """One line for an unexpected failure (a run's error, a model or sweep point that failed): a full disk
    says so; anything else is its class and the first line of its message."""
    if isinstance(error, OSError) and error.errno == errno.ENOSPC:
        return f"the disk is full ({error.filename or 'writing the run'}); free space and run it again"
    text = str(error).strip().splitlines()
    return f"{error.__class__.__name__}: {text[0] if text else ''}".rstrip(": ")


# C0 controls but newline and tab, DEL, C1 (\x9b is a CSI by itself): in a note, a model name, a file name
# or a CSV header they would move the cursor, retitle the window or rewrite the screen of whoever reads it.
CONTROL_CHARS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def escape_controls(text: str, json: bool = False) -> str:
    r"""`text` with each control character shown as its escape (`\x1b`); `json`: as `\u001b`, which keeps
    a JSON text valid and means the same character."""
    form = "\\u{:04x}" if json else "\\x{:02x}"
    return CONTROL_CHARS.sub(lambda m: form.format(ord(m.group())), text) if CONTROL_CHARS.search(text) else text
