"""Dotted keys such as `models.<name|index>.dropout` or `train.optimizer.lr`: the one resolver, used by
`--set` (spec/load), sweep keys (spec/checks, sweeps/grid), one-at-a-time, the sweep table (views/sweep), the
sweep's stacking decision (training/stacking) and the change lines (core/settings).

The rule for the models list: a model's NAME wins over an index. `models.1.dropout` names the model called
"1" when there is one, else the model at position 1. So with models named "1" and "0" (in that order),
`--set models.1.dropout=0.3`, a sweep over `models.1.dropout`, and the sweep table all mean the model named
"1". Torch-free; may import nothing of nnlab.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING = _Missing()  # what `value_at` gives for a key that names nothing
ADD_MODEL = "models+"  # `--set models+={name: wide, kind: mlp}` adds a model to the list


def model_part(key: str) -> Optional[tuple[str, str]]:
    """(selector, rest) of a key inside one model, `models.<name|index>.<rest>`; None for any other key
    (`train.optimizer.lr`, or `models.mlp` itself). The selector is read with `model_position`."""
    parts = key.split(".", 2)
    return (parts[1], parts[2]) if parts[0] == "models" and len(parts) == 3 else None


def changes_kind(key: str) -> bool:
    """Whether `key` sets a model's kind (`models.<name|index>.kind`), which changes what else it takes."""
    inside = model_part(key)
    return inside is not None and inside[1] == "kind"


def model_position(names: Sequence[object], part: str) -> Optional[int]:
    """The position `part` names in a list of models with these `names`: a name first, else an index in
    range; None when it names none."""
    if part in names:
        return list(names).index(part)
    if part.isdigit() and int(part) < len(names):
        return int(part)
    return None


def model_names(models: Sequence[object]) -> list[object]:
    """Each model's name (None where an item is not a mapping or has none)."""
    return [m.get("name") if isinstance(m, dict) else None for m in models]


def value_at(tree: object, key: str) -> object:
    """The value of a dotted key in a resolved spec (models by name, else position); MISSING if absent."""
    node = tree
    for part in key.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list):
            position = model_position(model_names(node), part)
            if position is None:
                return MISSING
            node = node[position]
        else:
            return MISSING
    return node
