"""A run's resolved spec as flat settings (`train.optimizer.lr`), and which of them differ between runs:
the one owner of flattening and diffing specs, with one NOT_SET.

`compare` shows a setting as a column only where it differs between the rows; `compare A B` lists what
differs between two specs (`pair_settings`); `nnlab train` (and `--resume`) prints what changed against the
newest earlier run of the same name (`changes_since`), so that "one change at a time" is visible. Both diffs
are `spec_diff`. Specs come from run.json (plain JSON), so this module needs no YAML parser.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, TypeVar

from nnlab.core.keys import model_part
from nnlab.core.messages import show_value
from nnlab.core.jsonvalue import JSONObject, JSONValue

_Run = TypeVar("_Run")  # a runstore.Run (core does not import the store): name, spec, smoke
NOT_SET = "(not set)"  # how a setting one side lacks is shown
_MISSING = object()


def flatten(value: JSONValue, prefix: str = "") -> JSONObject:
    """Nested dicts -> dotted keys (`train.optimizer.lr`); lists and empty dicts stay values."""
    flat: JSONObject = {}
    if isinstance(value, dict) and value:
        _flatten_into(flat, value, f"{prefix}." if prefix else "")
    elif prefix:
        flat[prefix] = value
    return flat


def _flatten_into(flat: JSONObject, mapping: JSONObject, prefix: str) -> None:
    for key, item in mapping.items():
        if type(item) is dict and item:
            _flatten_into(flat, item, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = item


def deep_merge(base: JSONObject, over: JSONObject) -> JSONObject:
    """`over` on top of `base`, nested dicts merged key by key (a model's train settings over the defaults).
    The same rule as the spec's own merge of a model's `train` over the spec's `train`."""
    merged = dict(base)
    for key, value in over.items():
        both = isinstance(value, dict) and isinstance(merged.get(key), dict)
        merged[key] = deep_merge(merged[key], value) if both else value
    return merged


@dataclass
class Settings:
    """A run's spec as flat dicts: what every row shares, the baseline's, and each neural model's
    own fields (`models.*`) with its merged train settings (`train.*`)."""

    shared: JSONObject
    baseline: JSONObject
    models: dict[str, JSONObject]

    @classmethod
    def of(cls, spec: JSONObject) -> Settings:
        shared = flatten({k: v for k, v in spec.items() if k not in ("models", "train", "baseline", "sweep")})
        baseline = spec.get("baseline")
        defaults = spec.get("train") if isinstance(spec.get("train"), dict) else {}
        flat_defaults = flatten(defaults, "train")
        models = {}
        for model in spec.get("models") if isinstance(spec.get("models"), list) else []:
            if isinstance(model, dict):
                own = flatten({k: v for k, v in model.items() if k not in ("name", "train")}, "models")
                override = model.get("train") if isinstance(model.get("train"), dict) else {}
                flat_train = flatten(override, "train")
                if not flat_defaults.keys() <= flat_train.keys():  # the runner writes them merged: rarely taken
                    flat_train = flatten(deep_merge(defaults, override), "train")
                models[str(model.get("name"))] = {**own, **flat_train}
        return cls(shared, flatten(baseline, "baseline") if isinstance(baseline, dict) else {}, models)


def differing(dicts: list[JSONObject]) -> list[str]:
    """Keys whose values differ between the dicts (lists compare as values; a missing key differs from a
    present one), in first-seen order."""
    if len(dicts) < 2:
        return []
    ref = dicts[0]
    order, differ = list(ref), set()
    for other in dicts[1:]:
        if other.keys() != ref.keys():
            new = [k for k in other if k not in ref and k not in differ]
            order.extend(new)
            differ.update(ref.keys() ^ other.keys())
        for key, value in other.items():
            if key not in differ and key in ref and ref[key] != value:
                differ.add(key)
    return [k for k in dict.fromkeys(order) if k in differ]


def spec_diff(flat_a: JSONObject, flat_b: JSONObject) -> list[tuple[str, object, object]]:
    """The one spec diff: (key, a, b) for every flat setting that differs (_MISSING where a side lacks it), in
    first-seen order. A model's resolved spec carries its merged train settings, so a changed `train.*` default
    would also change under every model that inherits it: such a `models.<name>.train.*` line is left out,
    said once at the default."""
    keys = [k for k in dict.fromkeys([*flat_a, *flat_b]) if flat_a.get(k, _MISSING) != flat_b.get(k, _MISSING)]
    changed = {k: (flat_a.get(k, _MISSING), flat_b.get(k, _MISSING)) for k in keys}
    return [(k, a, b) for k, (a, b) in changed.items() if not _inherited(k, changed)]


def _inherited(key: str, changed: dict[str, tuple[object, object]]) -> bool:
    """`models.mlp.train.epochs` changed exactly as the `train.epochs` default did (compared as shown)."""
    if not key.startswith("models.") or ".train." not in key:
        return False
    default = changed.get("train." + key.split(".train.", 1)[1])
    return default is not None and tuple(map(repr, default)) == tuple(map(repr, changed[key]))


def pair_settings(spec_a: JSONObject, spec_b: JSONObject) -> list[dict[str, object]]:
    """What differs between two specs, each model's settings under `models.<name>.`; a changed train
    default shows once, not again under every model that inherits it."""
    return [{"key": k, "a": _or_not_set(a), "b": _or_not_set(b)}
            for k, a, b in spec_diff(all_settings(spec_a), all_settings(spec_b))]


def changes_since(old: JSONObject, new: JSONObject) -> list[str]:
    """Lines `key old → new` for every setting that differs, models by name (`models.mlp.dropout 0 → 0.3`);
    a changed `train.*` default is said once (`spec_diff`). A model that appears or disappears is one line
    (`models.wide added`), not one line per field."""
    names_old, names_new = _model_names(old), _model_names(new)
    added = [n for n in names_new if n not in names_old]
    removed = [n for n in names_old if n not in names_new]
    lines = [f"{k} {_shown(a)} → {_shown(b)}" for k, a, b in spec_diff(flat_settings(old), flat_settings(new))
             if _model_of(k) not in {*added, *removed}]
    return lines + [f"models.{n} added" for n in added] + [f"models.{n} removed" for n in removed]


def previous_of(runs: list[_Run], name: str, smoke: bool) -> Optional[_Run]:
    """The run a new run of `name` is told against: the newest (`runs` newest first, as `list_runs` sorts)
    of that name and kind, a smoke run against smoke runs and a real one against real ones (a smoke run
    caps the epochs: against it every real run would read `epochs 2 → 50`); None when there is none."""
    return next((r for r in runs if r.name == name and r.spec and bool(r.smoke) == smoke), None)


def flat_settings(spec: JSONObject) -> JSONObject:
    """Nested dicts as dotted keys; the models list keyed by model name (its position when it has none);
    other lists stay values."""
    flat: JSONObject = {}
    for key, value in spec.items():
        if key == "models" and isinstance(value, list):
            for i, model in enumerate(value):
                name = model.get("name") if isinstance(model, dict) else None
                own = {k: v for k, v in model.items() if k != "name"} if isinstance(model, dict) else model
                flat.update(flatten(own, f"models.{name or i}"))
        else:
            flat.update(flatten(value, key))
    return flat


def _model_names(spec: JSONObject) -> list[str]:
    models = spec.get("models")
    return [str(m.get("name")) for m in models if isinstance(m, dict)] if isinstance(models, list) else []


def _model_of(key: str) -> str | None:
    inside = model_part(key)
    return inside[0] if inside else None


def _or_not_set(value: object) -> object:
    return NOT_SET if value is _MISSING else value


def _shown(value: object) -> str:
    return NOT_SET if value is _MISSING else show_value(value)


def all_settings(spec: JSONObject) -> JSONObject:
    """Every setting of a spec, flat, each model's under `models.<name>.`."""
    flat = flatten({k: v for k, v in spec.items() if k != "models"})
    settings = Settings.of(spec)
    if settings.models:
        flat["models"] = list(settings.models)
    for name, own in settings.models.items():
        flat.update({f"models.{name}.{k.removeprefix('models.')}": v for k, v in own.items()})
    return flat


def short_keys(keys: list[str]) -> dict[str, str]:
    """Each dotted key's shortest ending that no other key shares: `train.optimizer.lr` -> `lr`."""
    short = {}
    for key in keys:
        parts = key.split(".")
        for n in range(1, len(parts) + 1):
            ending = ".".join(parts[-n:])
            if sum(1 for k in keys if k == ending or k.endswith("." + ending)) == 1:
                break
        short[key] = ending
    return short
