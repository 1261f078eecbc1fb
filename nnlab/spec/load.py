"""From a spec file and `--set` overrides to a raw mapping, before any validation: `--set` keys and values.

The YAML itself is read by the bounded reader in `nnlab.core.yamlfile` (limits, merge and duplicate keys,
nesting), re-exported here for the spec package.
"""

from __future__ import annotations

from typing import Any

from nnlab.errors import SpecError
from nnlab.core.settings import deep_merge  # noqa: F401 - the one deep merge, re-exported for the spec
from nnlab.core.keys import model_position
from nnlab.core.messages import shorten, show
from nnlab.core.yamlfile import MAX_DEPTH, MAX_SPEC_BYTES, MAX_VALUES, parse_yaml, read_spec_file  # noqa: F401

# Mappings whose keys are themselves dotted paths: `--set expect.mlp.test.accuracy='>= 0.9'` sets one key.
_DOTTED_KEY_MAPS = (("expect",), ("sweep", "grid"))


def apply_override(raw: dict, override: str) -> dict:
    """Apply `key.path=value` (value parsed as YAML) to the raw spec. Models can be named or indexed."""
    key, sep, value_text = override.partition("=")
    if not sep or not key.strip():
        raise SpecError(f"--set {shorten(override)!r}: expected KEY.PATH=VALUE, e.g. train.epochs=10")
    value = parse_yaml(value_text, f"--set {shorten(key)}") if value_text.strip() else None
    return set_path(raw, key.strip(), value)


def set_path(raw: dict, key: str, value: Any) -> dict:
    """Set the dotted `key` (e.g. `models.mlp.dropout`, `train.optimizer.lr`) in the raw spec to `value`.
    Used by `--set` and by sweeps; a list (models) is indexed by position or by name."""
    parts = _split_key(key)
    node: Any = raw
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        where = ".".join(parts[: i + 1])
        if isinstance(node, list):
            index = _list_index(node, part, where) if parts[:i] == ["models"] else _position(node, key, parts, i)
            if last:
                node[index] = value
            else:
                node = node[index]
        elif isinstance(node, dict):
            if last:
                node[part] = value
            else:
                if node.get(part) is None:
                    node[part] = [] if part == "models" else {}
                node = node[part]
        else:
            raise SpecError(f"--set {shorten(key)}: '{shorten('.'.join(parts[:i]))}' is a value ({show(node)}), "
                            f"not a mapping, so it has no key '{shorten(part)}'")
    return raw


def _position(items: list, key: str, parts: list[str], i: int) -> int:
    # A list inside a model or a section (hidden, metrics, ...) is indexed by position only.
    if parts[i].isdigit() and int(parts[i]) < len(items):
        return int(parts[i])
    allowed = f"an index from 0 to {len(items) - 1}" if items else "no index (the list is empty)"
    raise SpecError(f"--set {shorten(key)}: '{shorten('.'.join(parts[:i]))}' is a list of {len(items)} item(s), "
                    f"not a mapping; expected {allowed} after it; got '{shorten(parts[i])}'")


def _split_key(key: str) -> list[str]:
    if len(key) > 1000:
        raise SpecError(f"--set {shorten(key)}: the key has {len(key):,} characters; at most 1,000")
    parts = key.split(".")
    for prefix in _DOTTED_KEY_MAPS:
        if tuple(parts[: len(prefix)]) == prefix and len(parts) > len(prefix) + 1:
            parts = [*prefix, ".".join(parts[len(prefix):])]
    if len(parts) > MAX_DEPTH:
        raise SpecError(f"--set {shorten(key)}: nested deeper than {MAX_DEPTH} levels; a spec needs far fewer")
    return parts


def _list_index(items: list, part: str, where: str) -> int:
    # one rule with the sweep (core.keys): a model's name wins over an index
    names = [m.get("name") or m.get("kind") if isinstance(m, dict) else None for m in items]
    position = model_position(names, part)
    if position is not None:
        return position
    if part.isdigit():
        raise SpecError(f"--set {shorten(where)}: index {shorten(part)} out of range ({len(items)} item(s))")
    names = [n for n in names if n is not None]
    shown = ", ".join(shorten(str(n)) for n in names[:10]) + (", ..." if len(names) > 10 else "")
    raise SpecError(f"--set {shorten(where)}: no model named '{shorten(part)}' (models: {shown or 'none'})")
