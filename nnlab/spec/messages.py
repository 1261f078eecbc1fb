"""Pydantic's validation errors as nnlab's one-line messages: `field.path: what is allowed; got <value>`.

Every problem of a spec is reported at once, one line each, the number of lines capped; a value is shown
shortened (never a whole input), and an unknown key gets a did-you-mean from the class at its location.
"""

from __future__ import annotations

import difflib
import re
import types
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from nnlab.core.messages import shorten, show

MAX_LINES = 20  # problems shown; the rest are counted
MAX_FORMATTED = 500  # errors turned into lines; past it, a list of bad values is only counted
_RELATIVE_FIELD = re.compile(r"^([a-z_][a-z0-9_]*(?:\.[a-z_][a-z0-9_]*)*): ")


def format_errors(error: ValidationError, root: type[BaseModel], union_tags: set[str]) -> list[str]:
    """One line per problem. `root` is the class that was validated (for the keys allowed where an unknown
    key was found); `union_tags` are the `kind`/`name` tags that Pydantic puts into error locations."""
    lines: list[str] = []
    errors = error.errors(include_url=False)
    for err in errors[:MAX_FORMATTED]:
        loc = [p for p in err["loc"] if not _is_tag(p, union_tags)]
        if err["type"] == "extra_forbidden":  # the unknown key itself may read like a tag ('mlp')
            loc = [p for p in err["loc"][:-1] if not _is_tag(p, union_tags)] + [err["loc"][-1]]
        elif err["type"] == "union_tag_invalid":
            loc.append(err["ctx"]["discriminator"].strip("'"))
        message = _unknown_key(root, err["loc"]) if err["type"] == "extra_forbidden" else _message(err)
        for line in message.splitlines():
            lines.append(_locate(loc, line))
    lines = list(dict.fromkeys(lines))
    # A bad top-level train default also fails inside every model that inherits it: report it once.
    unique = set(lines)
    lines = [line for line in lines if not re.match(r"models\[\d+\]\.(train\..*)", line)
             or re.sub(r"^models\[\d+\]\.", "", line) not in unique]
    if len(lines) > MAX_LINES or len(errors) > MAX_FORMATTED:
        shown = lines[: MAX_LINES - 1]
        not_shown = len(lines) - len(shown) + max(len(errors) - MAX_FORMATTED, 0)
        lines = [*shown, f"... and {not_shown:,} more problem(s)"]
    return lines


def _locate(loc: list, message: str) -> str:
    # A model validator's message may start with one of its own fields ("heads: must divide ..."): place
    # the line at that field.
    match = _RELATIVE_FIELD.match(message)
    if match and loc:
        loc, message = [*loc, *match.group(1).split(".")], message[match.end():]
    return f"{_path(loc)}: {message}" if loc else message


def _is_tag(part: Any, union_tags: set[str]) -> bool:
    # Pydantic puts the tag of a discriminated union ('mlp', 'cosine') or a validator's name into the location.
    return isinstance(part, str) and (part in union_tags or part.startswith(("literal[", "function-")))


def _path(loc: list) -> str:
    out = ""
    for part in loc:
        part = part if isinstance(part, int) else shorten(str(part))
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def _unknown_key(root: type[BaseModel], loc: tuple) -> str:
    allowed = _allowed_keys(root, loc[:-1])
    key = str(loc[-1])
    close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6) if len(key) <= 100 else []
    hint = f"did you mean '{close[0]}'? " if close else ""
    return f"unknown key; {hint}allowed: {', '.join(allowed)}" if allowed else "unknown key"


def _allowed_keys(root: type[BaseModel], loc: tuple) -> list[str]:
    """The fields of the spec class at `loc`, found by walking the classes along the error's location."""
    node: Any = root
    for part in loc:
        node = _step(node, part)
        if node is None:
            return []
    models = [m for m in _members(node) if isinstance(m, type) and issubclass(m, BaseModel)]
    return list(models[0].model_fields) if len(models) == 1 else []


def _step(node: Any, part: Any) -> Any:
    for member in _members(node):
        if isinstance(member, type) and issubclass(member, BaseModel):
            if isinstance(part, str) and part in member.model_fields:
                return member.model_fields[part].annotation
            if any(get_origin(f.annotation) is Literal and get_args(f.annotation) == (part,)
                   for f in member.model_fields.values()):
                return member  # the tag of this member of a discriminated union
        elif get_origin(member) is list and isinstance(part, int):
            return get_args(member)[0]
        elif get_origin(member) is dict and isinstance(part, str):
            return get_args(member)[1]
    return node if isinstance(part, str) else None  # a validator's name in the location: no step


def _members(node: Any) -> list[Any]:
    while get_origin(node) is Annotated:
        node = get_args(node)[0]
    if get_origin(node) in (Union, types.UnionType):
        return [m for arg in get_args(node) if arg is not type(None) for m in _members(arg)]
    return [node]


def _message(err: dict) -> str:
    kind, ctx, given = err["type"], err.get("ctx") or {}, err.get("input")
    got = f"got {show(given)}"
    if kind == "missing":
        return "required field is missing"
    if kind == "literal_error":
        return f"expected one of {ctx['expected']}; {got}"
    if kind == "union_tag_invalid":
        return f"expected one of {ctx['expected_tags']}; got {show(ctx.get('tag'))}"
    if kind == "union_tag_not_found":
        return f"needs a '{ctx['discriminator'].strip(chr(39))}' key; {got}"
    if kind == "value_error":
        return str(ctx.get("error", err["msg"]))
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        return f"{err['msg'].replace('Input should be', 'must be')}; {got}"
    if kind == "finite_number":
        return f"must be a finite number; {got}"
    if kind == "string_pattern_mismatch":
        return f"must match {ctx['pattern']}; {got}"
    if kind == "string_too_long":
        return f"must be at most {ctx['max_length']} characters long; {got} ({len(given):,} characters)"
    if kind in ("too_short", "too_long"):
        bound = "at least" if kind == "too_short" else "at most"
        limit = ctx["min_length"] if kind == "too_short" else ctx["max_length"]
        return f"must have {bound} {limit} item(s); {got}"
    return f"{err['msg'].replace('Input should be', 'expected')}; {got}"
