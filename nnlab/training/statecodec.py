"""A fit's saved state (`LoopState`, or `SequenceState` for members one after another) as what a checkpoint
file holds: plain JSON-able data with tagged values, and the tensors it refers to by name. The run store
writes and reads the file (`nnlab.runstore.checkpoints`); this module alone knows the state's classes.
Non-finite floats (a plateau scheduler's `inf`) and tuples are tagged so that they come back exact; a
dataclass is tagged by its name in the file format, and its fields are checked against their annotations
when it is read back."""

from __future__ import annotations

import json
import math
import types
import typing
from dataclasses import MISSING, fields, is_dataclass
from typing import Any, Optional, Union

import numpy as np
import torch

from nnlab.training.state import EpochRecord, FitResult, FitState, LoopState, MemberProgress, SequenceState

Plain = Union[None, bool, int, float, str, list["Plain"], dict[str, "Plain"]]  # JSON


def encode_state(state: FitState) -> tuple[dict[str, object], dict[str, torch.Tensor]]:
    """The state as a checkpoint's plain header and its tensors (CPU copies that share no storage)."""
    tensors: dict[str, torch.Tensor] = {}
    plain = _encode(state, tensors, "s")
    assert isinstance(plain, dict)
    return plain, tensors


def decode_state(plain: dict[str, object], tensors: dict[str, torch.Tensor]) -> FitState:
    """The state `encode_state` gave. CheckpointFieldError when a field has the wrong type."""
    state = _decode(plain, tensors)  # type: ignore[arg-type]  # a header is JSON
    if not isinstance(state, (LoopState, SequenceState)):
        raise ValueError(f"a checkpoint holds a LoopState or a SequenceState, not {_shown(state)}")
    return state


class CheckpointFieldError(ValueError):
    """A checkpoint whose plain data does not fit its state (edited by hand, or from another version): `field`
    is its dotted place (`epoch`, `members.0.best_epoch`)."""

    def __init__(self, field: str, problem: str):
        super().__init__(f"{field}: {problem}")
        self.field, self.problem = field, problem


# --- encoding: JSON with tagged values; tensors by reference -------------------------------------------

# The tags of the file format: a class's tag stays when the class is renamed.
_TYPES: dict[str, type] = {"LoopState": LoopState, "MemberProgress": MemberProgress, "EpochRecord": EpochRecord,
                           "SequenceState": SequenceState, "FitResult": FitResult}
_TAGS = {kind: tag for tag, kind in _TYPES.items()}


def _encode(value: object, tensors: dict[str, torch.Tensor], where: str) -> Plain:
    if isinstance(value, np.ndarray):  # a finished member's validation predictions
        tensors[where] = torch.from_numpy(np.array(value))
        return {"$ndarray": where}
    if isinstance(value, torch.Tensor):
        tensors[where] = value.detach().to("cpu").contiguous().clone()  # never shares storage with another
        return {"$tensor": where}
    if is_dataclass(value) and type(value) in _TAGS:
        return {f"${_TAGS[type(value)]}": {f.name: _encode(getattr(value, f.name), tensors, f"{where}.{f.name}")
                                           for f in fields(value)}}
    if isinstance(value, float) and not math.isfinite(value):
        return {"$float": repr(value)}
    if isinstance(value, tuple):
        return {"$tuple": [_encode(v, tensors, f"{where}.{i}") for i, v in enumerate(value)]}
    if isinstance(value, list):
        return [_encode(v, tensors, f"{where}.{i}") for i, v in enumerate(value)]
    if isinstance(value, dict):
        if not all(isinstance(k, str) and not k.startswith("$") for k in value):
            raise TypeError(f"checkpoint: cannot save a dict with keys {list(value)[:5]} at {where}")
        return {k: _encode(v, tensors, f"{where}.{k}") for k, v in value.items()}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"checkpoint: cannot save a {type(value).__name__} at {where}")


def _decode(value: Plain, tensors: dict[str, torch.Tensor], where: str = "") -> Any:
    at = f"{where}." if where else ""
    if isinstance(value, list):
        return [_decode(v, tensors, f"{at}{i}") for i, v in enumerate(value)]
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        (tag, inner), = value.items()
        if tag == "$tensor":
            return tensors[inner]
        if tag == "$ndarray":
            return tensors[inner].numpy()
        if tag == "$float":
            return float(inner)
        if tag == "$tuple":
            return tuple(_decode(v, tensors, f"{at}{i}") for i, v in enumerate(inner))
        if tag.startswith("$") and tag[1:] in _TYPES:
            return _build(_TYPES[tag[1:]], inner, tensors, where)
    return {k: _decode(v, tensors, f"{at}{k}") for k, v in value.items()}


def _build(kind: type, inner: Plain, tensors: dict[str, torch.Tensor], where: str) -> object:
    """One dataclass of the state, each field checked against its annotation (a hand-edited `epoch: "x"`
    must be named here, not fail later as a TypeError deep in the loop)."""
    at = f"{where}." if where else ""
    if not isinstance(inner, dict):
        raise CheckpointFieldError(where or kind.__name__, f"expected a {kind.__name__} record; got {_shown(inner)}")
    known = {f.name: f for f in fields(kind)}
    for name in inner:
        if name not in known:
            raise CheckpointFieldError(f"{at}{name}", f"not a field of {kind.__name__}")
    hints = typing.get_type_hints(kind)
    values = {}
    for name, raw in inner.items():
        value = _decode(raw, tensors, f"{at}{name}")
        allowed = _allowed(hints.get(name))
        if allowed is not None and not _fits(value, allowed):
            raise CheckpointFieldError(f"{at}{name}", f"expected {' or '.join(t.__name__ for t in allowed)}; "
                                                       f"got {_shown(value)}")
        values[name] = value
    try:
        return kind(**values)
    except TypeError:
        missing = [name for name, f in known.items() if name not in values and f.default is MISSING
                   and f.default_factory is MISSING]
        raise CheckpointFieldError(f"{at}{missing[0] if missing else kind.__name__}", "missing") from None


def _allowed(hint: Any) -> Optional[tuple[type, ...]]:
    """The classes a field may hold (None in it for Optional); None when the annotation says nothing checkable."""
    if hint is None or hint is Any:
        return None
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        parts = [_allowed(arg) for arg in typing.get_args(hint)]
        return None if any(p is None for p in parts) else tuple(t for p in parts for t in p)
    if hint is type(None):
        return (type(None),)
    kind = origin or hint
    return (kind,) if isinstance(kind, type) else None


def _fits(value: Any, allowed: tuple[type, ...]) -> bool:
    if isinstance(value, bool):  # a bool is an int to Python, never to a checkpoint
        return bool in allowed
    if isinstance(value, int) and float in allowed:
        return True
    return isinstance(value, allowed)


def _shown(value: Any) -> str:
    text = json.dumps(value) if isinstance(value, (str, int, float, bool, type(None))) else type(value).__name__
    return text if len(text) <= 40 else text[:37] + "..."
