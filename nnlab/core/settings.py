"""A run's resolved spec as flat settings (`train.optimizer.lr`), and which of them differ between runs.

`compare` shows a setting as a column only where it differs between the rows; `compare A B` lists what
differs between two specs. Specs come from run.json (plain JSON), so this module needs no YAML parser.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

NOT_SET = "(not set)"


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts -> dotted keys (`train.optimizer.lr`); lists and empty dicts stay values."""
    flat: dict[str, Any] = {}
    if isinstance(value, dict) and value:
        _flatten_into(flat, value, f"{prefix}." if prefix else "")
    elif prefix:
        flat[prefix] = value
    return flat


def _flatten_into(flat: dict[str, Any], mapping: dict[Any, Any], prefix: str) -> None:
    for key, item in mapping.items():
        if type(item) is dict and item:
            _flatten_into(flat, item, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = item


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
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

    shared: dict[str, Any]
    baseline: dict[str, Any]
    models: dict[str, dict[str, Any]]

    @classmethod
    def of(cls, spec: dict[str, Any]) -> Settings:
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


def differing(dicts: list[dict[str, Any]]) -> list[str]:
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


def pair_settings(spec_a: dict[str, Any], spec_b: dict[str, Any]) -> list[dict[str, Any]]:
    """What differs between two specs, each model's settings under `models.<name>.`; a changed train
    default shows once, not again under every model that inherits it."""
    fa, fb = all_settings(spec_a), all_settings(spec_b)
    missing = object()
    keys = [k for k in dict.fromkeys([*fa, *fb]) if fa.get(k, missing) != fb.get(k, missing)]
    changed = {k: (repr(fa.get(k, NOT_SET)), repr(fb.get(k, NOT_SET))) for k in keys}
    inherited = [k for k in keys if k.startswith("models.") and ".train." in k
                 and changed.get("train." + k.split(".train.", 1)[1]) == changed[k]]
    return [{"key": k, "a": fa.get(k, NOT_SET), "b": fb.get(k, NOT_SET)} for k in keys if k not in inherited]


def all_settings(spec: dict[str, Any]) -> dict[str, Any]:
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
