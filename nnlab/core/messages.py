"""Values and lists as nnlab's one-line messages show them: never a whole long input, never raw control
characters. The one owner of message formatting; numbers in tables are `nnlab.core.numbers`.

Each helper prints its own form, and the tests pin them:

    shorten      text cut to a limit with `...`                         `a-very-long-na...`
    quoted       the first few items, each quoted                       `'a', 'b' and 3 more`
    listing      names, the count where some are left out               `a, b, ..., j (25 in all)`
    names_list   a file's column names, escaped, cut in the middle      `a, b, ..., z`
    excerpt      text read from a file, control characters escaped      `x\\x1b[31m`
    show         a spec value after `got`, repr at most 2 levels deep   `[1, 2, 3, 4, ...]`
    shown        a data value (numpy scalars as Python values), repr    `'yes'`, `1`
    show_value   a setting as YAML writes it                            `0.001`, `0`, `[64, 32]`, `null`
"""

from __future__ import annotations

import reprlib
from collections.abc import Iterable, Sequence

EXCERPT_CHARS = 40  # the most of a data file's own text an error line shows
_SHOW = reprlib.Repr()
_SHOW.maxlevel, _SHOW.maxlist, _SHOW.maxdict, _SHOW.maxstring, _SHOW.maxother = 2, 4, 4, 40, 40


def shorten(text: str, limit: int = 40) -> str:
    """A value as it may appear in a message: never the whole of a long input."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def quoted(items: Sequence[object], limit: int = 5) -> str:
    """`'a', 'b' and 3 more`: the first few of a list, each shortened."""
    shown = ", ".join(f"'{shorten(str(item))}'" for item in items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def listing(names: Sequence[object], limit: int = 10) -> str:
    """`a, b, c` or `a, b, ..., j (25 in all)`: a list of names for a message, never all of a long one."""
    shown = ", ".join(shorten(str(name)) for name in names[:limit])
    return shown + (f", ... ({len(names)} in all)" if len(names) > limit else "")


def names_list(columns: Iterable[object], limit: int = 12) -> str:
    """Column names for an error line, shortened in the middle so a wide table never floods it."""
    names = [excerpt(c) for c in columns]
    return ", ".join(names if len(names) <= limit else names[:limit - 1] + ["...", names[-1]])


def excerpt(value: object, limit: int = EXCERPT_CHARS) -> str:
    """Text read from a file as an error line may show it: control characters escaped (no terminal escape
    sequences, no extra lines), at most `limit` characters."""
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(value))
    return shorten(text, limit)


def show(value: object) -> str:
    """A given value as it appears after `got`: its repr, cut short and never deeper than two levels."""
    try:
        return shorten(_SHOW.repr(value), 60)
    except (RecursionError, ValueError):  # a recursive structure or an int too long to print
        return f"a {type(value).__name__}"


def plain(value: object) -> object:
    """numpy scalars -> Python values, so that JSON and error messages show 1, not np.int64(1)."""
    return value.item() if hasattr(value, "item") else value  # type: ignore[attr-defined]


def shown(value: object, width: int = 40) -> str:
    """A value as an error line shows it: repr, with long text cut."""
    value = plain(value)
    return repr(value[:width] if isinstance(value, str) else value)


def show_value(value: object) -> str:
    """A setting as a person reads it in YAML: `0.001`, `0` (not `0.0`), `[64, 32]`, `true`, `null`."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        text = repr(value)
        return text[:-2] if text.endswith(".0") else text
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(show_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {show_value(v)}" for k, v in value.items()) + "}"
    return str(value)
