"""A fast reader for the YAML that `yaml.safe_dump` writes, with libyaml as the fallback.

spec.yaml is written by `yaml.safe_dump(spec, sort_keys=False)`: block mappings and sequences of plain or
single-quoted one-line scalars. Reading that subset line by line is about 6x faster than libyaml
(PyYAML builds a node and resolves a tag per value), which is what comparing 1,000 runs needs. Anything
outside the subset (double quotes, multi-line scalars, anchors, tags, comments, flow collections other
than `{}` and `[]`, octal or sexagesimal numbers, dates) is handed to libyaml, so the result always equals
`yaml.load(text, yaml.CSafeLoader)`; tests/test_compare_fastyaml.py checks that against PyYAML.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_RESOLVERS = yaml.resolver.Resolver.yaml_implicit_resolvers
_INT = re.compile(r"[-+]?(?:0|[1-9][0-9]*)")
_FLOAT = re.compile(r"[-+]?(?:[0-9]+\.[0-9]*|\.[0-9]+)(?:[eE][-+][0-9]+)?")
_SPECIAL = frozenset("&*!|>[{%@`\"")


class _Unsupported(Exception):
    """The text uses YAML outside the subset read here."""


def load(text: str) -> Any:
    """`yaml.load(text, CSafeLoader)`, faster for the output of `yaml.safe_dump`."""
    try:
        return _Reader(text).document()
    except _Unsupported:
        return yaml.load(text, Loader=_LOADER)


class _Reader:
    def __init__(self, text: str):
        if "\t" in text or "#" in text or "\r" in text:
            raise _Unsupported
        self.lines = [(len(line) - len(body), body) for line in text.split("\n") if (body := line.lstrip(" "))]
        self.i = 0

    def document(self) -> Any:
        if not self.lines or self.lines[0][1].startswith(("---", "%")):
            raise _Unsupported
        value = self.node(self.lines[0][0])
        if self.i != len(self.lines):
            raise _Unsupported
        return value

    def node(self, col: int) -> Any:
        indent, text = self.lines[self.i]
        if indent != col:
            raise _Unsupported
        return self.sequence(col) if text[:2] == "- " else self.mapping(col)

    def sequence(self, col: int) -> list[Any]:
        lines, items = self.lines, []
        while self.i < len(lines):
            indent, text = lines[self.i]
            if indent != col or text[:2] != "- ":
                break
            rest = text[2:]
            if rest[:2] == "- " or (": " in rest or rest[-1:] == ":") and rest[:1] != "'":
                # an inline nested block ("- - 1" or "- key: value"): the same line, read two columns in
                lines[self.i] = (col + 2, rest)
                items.append(self.node(col + 2))
            else:
                self.i += 1
                items.append(scalar(rest))
                if self.i < len(lines) and lines[self.i][0] > col:
                    raise _Unsupported  # a deeper line would continue the scalar (a wrapped long string)
        return items

    def mapping(self, col: int) -> dict[Any, Any]:
        lines, items = self.lines, {}
        i, n = self.i, len(lines)
        while i < n:
            indent, text = lines[i]
            if indent != col or text[:2] == "- ":
                if indent > col:
                    raise _Unsupported
                break
            key, sep, rest = text.partition(": ")
            if not sep:
                if text[-1:] != ":":
                    raise _Unsupported
                key = text[:-1]
            key = scalar(key)
            if key in items or isinstance(key, (list, dict)):
                raise _Unsupported
            i += 1
            if rest:
                items[key] = scalar(rest)
                if i < n and lines[i][0] > col:
                    raise _Unsupported  # a deeper line would continue the scalar (a wrapped long string)
            elif i < n and (lines[i][0] > col or (lines[i][0] == col and lines[i][1][:2] == "- ")):
                self.i = i
                items[key] = self.node(lines[i][0])
                i = self.i
            else:
                items[key] = None
        self.i = i
        return items


_SEEN: dict[str, Any] = {}  # scalar text -> value: specs repeat the same few hundred scalars


def scalar(text: str) -> Any:
    """One plain or single-quoted scalar as PyYAML's SafeLoader reads it."""
    try:
        return _SEEN[text]
    except KeyError:
        pass
    if text == "{}":
        return {}
    if text == "[]":
        return []
    value = _scalar(text)
    if len(_SEEN) > 100_000:
        _SEEN.clear()
    _SEEN[text] = value
    return value


def _scalar(text: str) -> Any:
    first = text[:1]
    if first == "'":
        if len(text) < 2 or not text.endswith("'") or "'" in text[1:-1].replace("''", ""):
            raise _Unsupported
        return text[1:-1].replace("''", "'")
    if not text or first in _SPECIAL or text.endswith((" ", ":")) or ": " in text:
        raise _Unsupported
    tag = next((tag for tag, regexp in _RESOLVERS.get(first, ()) if regexp.match(text)), None)
    if tag is None:
        return text
    kind = tag.rsplit(":", 1)[-1]
    if kind == "null":
        return None
    if kind == "bool":
        return text.lower() in ("yes", "true", "on")
    if kind == "int" and _INT.fullmatch(text):
        return int(text)
    if kind == "float" and _FLOAT.fullmatch(text):
        return float(text)
    raise _Unsupported
