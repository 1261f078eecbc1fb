"""What changed between two resolved specs, one line per setting: `train.optimizer.lr 0.001 → 0.01`.

`nnlab train` prints these against the newest earlier run of the same name, so that "one change at a
time" is visible; sweeps use `show_value` to label their points the same way. Torch-free; it sits below the runner.
"""

from __future__ import annotations

from typing import Any

from nnlab.core.messages import show_value
from nnlab.core.settings import flatten

NOT_SET = "(not set)"
_MISSING = object()


def changes_since(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Lines `key old → new` for every setting that differs, models by name (`models.mlp.dropout 0 → 0.3`).

    Each model's resolved spec carries its merged train settings, so a changed `train.*` default would
    also change under every model that inherits it: it is said once, at `train.*`. A model that appears
    or disappears is one line (`models.wide added`), not one line per field.
    """
    flat_old, flat_new = flat_settings(old), flat_settings(new)
    names_old, names_new = _model_names(old), _model_names(new)
    added = [n for n in names_new if n not in names_old]
    removed = [n for n in names_old if n not in names_new]
    keys = [k for k in dict.fromkeys([*flat_old, *flat_new])
            if flat_old.get(k, _MISSING) != flat_new.get(k, _MISSING) and _model_of(k) not in {*added, *removed}]
    pairs = {k: (flat_old.get(k, _MISSING), flat_new.get(k, _MISSING)) for k in keys}
    lines = [f"{k} {_shown(a)} → {_shown(b)}" for k, (a, b) in pairs.items() if not _inherited(k, pairs)]
    return lines + [f"models.{n} added" for n in added] + [f"models.{n} removed" for n in removed]


def previous_of(runs: list[Any], name: str, smoke: bool) -> Any:
    """The run a new run of `name` is told against: the newest (`runs` newest first, as `list_runs` sorts)
    of that name and kind, a smoke run against smoke runs and a real one against real ones (a smoke run
    caps the epochs: against it every real run would read `epochs 2 → 50`); None when there is none."""
    return next((r for r in runs if r.name == name and r.spec and bool(r.smoke) == smoke), None)


def flat_settings(spec: dict[str, Any]) -> dict[str, Any]:
    """Nested dicts as dotted keys; the models list keyed by model name; other lists stay values."""
    flat: dict[str, Any] = {}
    for key, value in spec.items():
        if key == "models" and isinstance(value, list):
            for i, model in enumerate(value):
                name = model.get("name") if isinstance(model, dict) else None
                own = {k: v for k, v in model.items() if k != "name"} if isinstance(model, dict) else model
                flat.update(flatten(own, f"models.{name or i}"))
        else:
            flat.update(flatten(value, key))
    return flat


def _model_names(spec: dict[str, Any]) -> list[str]:
    models = spec.get("models")
    return [str(m.get("name")) for m in models if isinstance(m, dict)] if isinstance(models, list) else []


def _model_of(key: str) -> str | None:
    parts = key.split(".")
    return parts[1] if parts[0] == "models" and len(parts) > 2 else None


def _inherited(key: str, pairs: dict[str, tuple[Any, Any]]) -> bool:
    """`models.mlp.train.epochs` changed exactly as the `train.epochs` default did: said once, at the default."""
    if _model_of(key) is None or ".train." not in key:
        return False
    default = "train." + key.split(".train.", 1)[1]
    return default in pairs and pairs[default] == pairs[key]


def _shown(value: Any) -> str:
    return NOT_SET if value is _MISSING else show_value(value)
