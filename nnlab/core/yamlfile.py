"""The bounded YAML reader: a spec file (or a run folder's spec.yaml, or a `--set` value) as plain data,
safe and bounded, before any validation.

A spec is a short file written by a person. Anything far larger, deeper or more repetitive than that is
refused early with one line, before it can cost time or memory: the file's size is checked before it is
read, and the YAML loader counts nesting depth and values (aliases counted at their full size, so that a
500-byte "billion laughs" stops after the first hundred thousand values instead of filling the memory).
Duplicate keys are errors; merge keys (`<<: *base`) work as in safe_load.

In `core` because both the spec (`nnlab.spec.load`) and the run store (a run's spec.yaml) read YAML, and
the run store may import only `core`. May import: `nnlab.errors`, the rest of `core`, PyYAML.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Optional

import yaml

from nnlab.core.files import special_kind
from nnlab.core.messages import shorten
from nnlab.errors import SpecError

MAX_SPEC_BYTES = 1 << 20  # a spec is a few kB; 1 MiB is far past any real one
MAX_DEPTH = 50  # nesting levels of mappings and lists; a real spec has about 5
MAX_VALUES = 20_000  # values after alias expansion; a real spec has about 100
MAX_INT_DIGITS = 100


# libyaml's parser where PyYAML has it: it reads a 1 MiB spec in a fraction of a second, where the pure
# Python parser takes about 30 microseconds per value.
_BaseLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_BaseLoader):
    """safe_load, plus: duplicate keys are errors, and `1e-3` is a float (YAML 1.1 wants `1.0e-3`). Merge
    keys (`<<: *base`) work as in safe_load: the mapping's own keys win over merged ones."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: set[object] = set()
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                merged = value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
                if not all(isinstance(m, yaml.MappingNode) for m in merged):
                    raise yaml.constructor.ConstructorError(
                        None, None, "'<<' merges a mapping or a list of mappings; got "
                                    f"{'a list with other values' if isinstance(value_node, yaml.SequenceNode) else 'a value'}",
                        value_node.start_mark)
                continue  # flatten_mapping (in super) merges these; a key they bring may be overridden here
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, (list, dict)):
                break  # unhashable: SafeLoader's own error says so
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key '{shorten(str(key))}'", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        # Python refuses to convert more than 4,300 digits (a ValueError, not a YAML error); no setting
        # needs more than 20.
        if len(node.value) > MAX_INT_DIGITS:
            raise yaml.constructor.ConstructorError(
                None, None, f"an integer of {len(node.value):,} digits; at most {MAX_INT_DIGITS}", node.start_mark)
        return super().construct_yaml_int(node)


_Loader.add_constructor("tag:yaml.org,2002:int", _Loader.construct_yaml_int)


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:\d[\d_]*)?(?:\.\d*)?[eE][-+]?\d+$|^[-+]?\d[\d_]*\.\d*$|^[-+]?\.\d+$"
               r"|^[-+]?\.(?:inf|Inf|INF)$|^\.(?:nan|NaN|NAN)$"),
    list("-+0123456789."))


class _LimitError(yaml.composer.ComposerError):
    """One of nnlab's own limits (depth, values, a cycle), as opposed to the parser's errors."""


def _too_deep(mark: yaml.Mark) -> _LimitError:
    return _LimitError(None, None, f"nested deeper than {MAX_DEPTH} levels; a spec needs far fewer", mark)


def _check_bounds(text: str) -> None:
    """Walk the YAML events once, before anything is built: stop past MAX_DEPTH levels or MAX_VALUES values,
    an alias counting as the values of what it repeats (so a "billion laughs" stops early and small)."""
    try:
        _walk_events(text, _BaseLoader)
    except _LimitError:
        raise
    except yaml.MarkedYAMLError as e:
        # The libyaml of PyYAML 6.0.4 on stops nesting at 1,000 levels itself, and its scanner reads ahead
        # through `[[[[...` before it gives a single event, so its own error comes before nnlab's limit. Find
        # where nnlab's limit was crossed with the pure Python parser, on the text up to there (a short
        # prefix), so that every PyYAML reports the same line, column and words.
        mark = e.problem_mark
        if _BaseLoader is yaml.SafeLoader or mark is None or "nesting depth" not in str(e.problem):
            raise
        try:
            _walk_events(text[: mark.index + 1], yaml.SafeLoader)
        except _LimitError:
            raise
        except yaml.YAMLError:
            pass  # the prefix ends mid-document
        raise _too_deep(mark) from None


def _walk_events(text: str, loader: type) -> None:
    values, open_anchors = 0, []  # anchors of the collections being read, outermost first
    sizes: dict[str, int] = {}  # anchor -> values it stands for
    starts: list[tuple[Optional[str], int]] = []  # (anchor, values before it)
    for event in yaml.parse(text, Loader=loader):
        mark = event.start_mark
        if isinstance(event, yaml.AliasEvent):
            if event.anchor in open_anchors:
                raise _LimitError(None, None, "an alias inside its own anchor (a cycle)", mark)
            values += sizes.get(event.anchor, 0)  # an undefined alias: the loader's own error names it
        elif isinstance(event, (yaml.ScalarEvent, yaml.CollectionStartEvent)):
            values += 1
            if isinstance(event, yaml.ScalarEvent):
                if event.anchor is not None:
                    sizes[event.anchor] = 1
            else:
                starts.append((event.anchor, values - 1))
                open_anchors.append(event.anchor)
                if len(starts) > MAX_DEPTH:
                    raise _too_deep(mark)
        elif isinstance(event, yaml.CollectionEndEvent):
            anchor, start = starts.pop()
            open_anchors.pop()
            if anchor is not None:
                sizes[anchor] = values - start
        if values > MAX_VALUES:
            raise _LimitError(
                None, None, f"more than {MAX_VALUES:,} values (aliases count at their expanded size); a spec "
                            f"needs far fewer", mark)


def parse_yaml(text: str, source: str) -> object:
    """YAML text -> plain data, or a one-line SpecError naming `source`, the line and the column."""
    if len(text) > MAX_SPEC_BYTES:
        raise SpecError(f"{source}: {len(text):,} characters; at most {MAX_SPEC_BYTES:,}")
    try:
        _check_bounds(text)
        return _unshared(yaml.load(text, Loader=_Loader))  # a SafeLoader subclass: no arbitrary objects
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = e.problem or e.context or "invalid YAML"
        raise SpecError(f"{source}:{where}: {shorten(' '.join(problem.split()), 160)}") from None
    except (yaml.YAMLError, RecursionError, ValueError) as e:
        raise SpecError(f"{source}: invalid YAML: {shorten(' '.join(str(e).split()), 160)}") from None


def _unshared(value: object) -> object:
    """A copy in which no list or mapping appears twice: an alias or a merge key shares the repeated value
    between its places, and a `--set` on one model must not change another. (At most MAX_VALUES values.)"""
    if isinstance(value, dict):
        return {key: _unshared(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_unshared(item) for item in value]
    return value


def read_spec_file(path: Path) -> object:
    """The spec file's YAML as plain data. Refuses what is not a regular file or is too large to be a spec,
    before reading it."""
    try:
        info = path.stat()
    except FileNotFoundError:
        raise SpecError(f"{path}: spec file not found") from None
    except OSError as e:
        raise SpecError(f"{path}: cannot read the spec file ({e.__class__.__name__}: {e.strerror or e})") from None
    what = special_kind(info.st_mode)  # the one check (core/files), in the spec file's words
    if what is not None:
        what = what if what == "a folder" else "not a regular file (a FIFO, device or socket)"
        raise SpecError(f"{path}: {what}; expected a YAML spec file")
    if info.st_size > MAX_SPEC_BYTES:
        raise SpecError(f"{path.name}: {info.st_size:,} bytes; a spec file may have at most {MAX_SPEC_BYTES:,} "
                        f"(1 MiB)")
    try:
        with path.open("rb") as file:
            data = file.read(MAX_SPEC_BYTES + 1)  # the size may change after stat
        text = data.decode("utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise SpecError(f"{path.name}: cannot read the spec file ({e.__class__.__name__}: "
                        f"{shorten(str(e), 120)})") from None
    return parse_yaml(text, path.name)
