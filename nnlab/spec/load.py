"""From a spec file and `--set` overrides to a raw mapping, before any validation: `--set` keys and values.

The YAML itself is read by the bounded reader in `nnlab.core.yamlfile` (limits, merge and duplicate keys,
nesting), re-exported here for the spec package.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, get_args

from nnlab.errors import SpecError
from nnlab.core.settings import deep_merge  # noqa: F401 - the one deep merge, re-exported for the spec
from nnlab.core.keys import ADD_MODEL, changes_kind, model_position
from nnlab.core.messages import listing, quoted, shorten, show
from nnlab.core.yamlfile import MAX_DEPTH, MAX_SPEC_BYTES, MAX_VALUES, parse_yaml, read_spec_file  # noqa: F401
from nnlab.spec.models import MODEL_KINDS, ModelSpec

# Mappings whose keys are themselves dotted paths: `--set expect.mlp.test.accuracy='>= 0.9'` sets one key.
_DOTTED_KEY_MAPS = (("expect",), ("sweep", "grid"))
# The settings each model kind takes (its class's fields), for a `--set models.<m>.kind=...` that changes it.
_FIELDS_BY_KIND = {kind: set(cls.model_fields) for kind, cls in zip(MODEL_KINDS, get_args(get_args(ModelSpec)[0]))}
_DEFAULT_MODEL = {"name": "mlp", "kind": "mlp"}  # what a spec without `models:` trains (experiment.Spec)
_ADD_WHERE = f"--set {ADD_MODEL}="
_ADD_EXAMPLE = "{name: wide, kind: mlp, hidden: [256]}"


def apply_overrides(raw: dict, overrides: Sequence[str]) -> dict:
    """Apply every `--set` in order, except that models added by `models+=` come first and then changes of a
    model's kind: a kind change drops the settings the new kind does not take, so a setting given beside it
    (`models.net.hidden=[64]` with `models.net.kind=resmlp`) meets the new kind's validation, never is dropped."""
    def rank(override: str) -> int:
        key = override.partition("=")[0].strip()
        return 0 if key == ADD_MODEL else 1 if changes_kind(key) else 2

    for override in sorted(overrides, key=rank):  # stable: the given order within each rank
        raw = apply_override(raw, override)
    return raw


def apply_override(raw: dict, override: str) -> dict:
    """Apply `key.path=value` (value parsed as YAML) to the raw spec. Models can be named or indexed;
    `models+={...}` adds a model."""
    key, sep, value_text = override.partition("=")
    if not sep or not key.strip():
        raise SpecError(f"--set {shorten(override)!r}: expected KEY.PATH=VALUE, e.g. train.epochs=10")
    if key.strip().endswith("+"):
        return add_model(raw, key.strip(), value_text)
    value = parse_yaml(value_text, f"--set {shorten(key)}") if value_text.strip() else None
    return set_path(raw, key.strip(), value)


def add_model(raw: dict, key: str, value_text: str) -> dict:
    """`models+={name: wide, kind: mlp, hidden: [256]}`: one more model after the spec's (after the default
    network when the spec has no `models:`). The mapping, its kind and its name are checked here, so each
    problem names `--set models+=`; its other settings are validated with the spec."""
    if key != ADD_MODEL:
        raise SpecError(f"--set {shorten(key)}=: only {ADD_MODEL}= adds (a model, e.g. {_ADD_EXAMPLE}); "
                        "other keys take KEY.PATH=VALUE")
    try:
        model = parse_yaml(value_text, _ADD_WHERE) if value_text.strip() else None
    except SpecError as e:
        problem = str(e).removeprefix(_ADD_WHERE).lstrip(":").strip()
        raise SpecError(f"{_ADD_WHERE}: not YAML ({problem}); expected a mapping such as {_ADD_EXAMPLE}; "
                        f"got {shorten(value_text.strip())!r}") from None
    if not isinstance(model, dict):
        raise SpecError(f"{_ADD_WHERE}: expected a mapping such as {_ADD_EXAMPLE}; got {show(model)}")
    if model.get("kind") not in MODEL_KINDS:
        got = show(model["kind"]) if "kind" in model else "no kind"
        raise SpecError(f"{_ADD_WHERE}: kind: expected one of {quoted(MODEL_KINDS)}; got {got}")
    models = raw.get("models")
    models = [dict(_DEFAULT_MODEL)] if models is None else models
    if not isinstance(models, list):
        raise SpecError(f"{_ADD_WHERE}: the spec's models is {show(models)}, not a list to add to")
    taken = [n for n in _model_names(models) if n is not None]
    name = model.get("name")  # unnamed, it is named after its kind (made unique) like any model of the spec
    if name is not None and name in taken:
        raise SpecError(f"{_ADD_WHERE}: name: '{shorten(str(name))}' is taken (models: {listing(taken)}); "
                        "give the new model another name")
    raw["models"] = [*models, model]
    return raw


def _model_names(models: list) -> list[object]:
    # each model's name, or (unnamed) its kind, which the spec names it after
    return [m.get("name") or m.get("kind") if isinstance(m, dict) else None for m in models]


def _change_kind(model: dict, kind: object, name: object) -> None:
    """A model becomes another kind: the settings the new kind does not take (an MLP's `hidden` for a resmlp)
    are dropped, the ones both take (`activation`, `dropout`, `train`, ...) are kept, and an unnamed model keeps
    the name it was selected by, so its runs, gates and sweep rows stay under one name."""
    if kind == model.get("kind") or kind not in _FIELDS_BY_KIND:
        return  # the same kind, or an unknown one that validation reports with the allowed kinds
    for field in [f for f in model if f not in _FIELDS_BY_KIND[kind]]:
        del model[field]
    if "name" not in model and isinstance(name, str):
        model["name"] = name


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
            if parts[:i] == ["models"] and changes_kind(key) and isinstance(node[index], dict):
                names = _model_names(node)  # an unnamed model keeps its name only where it is its own
                _change_kind(node[index], value, names[index] if names.count(names[index]) == 1 else None)
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
    names = _model_names(items)
    position = model_position(names, part)
    if position is not None:
        return position
    if part.isdigit():
        raise SpecError(f"--set {shorten(where)}: index {shorten(part)} out of range ({len(items)} item(s))")
    names = [n for n in names if n is not None]
    shown = ", ".join(shorten(str(n)) for n in names[:10]) + (", ..." if len(names) > 10 else "")
    raise SpecError(f"--set {shorten(where)}: no model named '{shorten(part)}' (models: {shown or 'none'})")
