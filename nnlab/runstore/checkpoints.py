"""Checkpoints: the latest `LoopState` of the model (stack group) in training, in the run folder, so that
`nnlab train --resume` continues a cut-off run from its last complete epoch (see layout.py for the place).

One file per stack group, `checkpoints/<first model>.safetensors`: the tensors (weights, best weights,
optimizer moments, buffers, every generator state) as safetensors, and the plain data (epoch, step count,
schedules, early stopping, each member's progress and epoch history) as JSON in the same file's metadata
header. Members that train one after another save a `sequential.SequenceState` the same way (the
finished members' results, their weights and validation predictions among the tensors). One file, replaced atomically, so that the tensors and the data always belong to the same epoch —
a `.safetensors` + `.json` pair could be cut between its two writes. Nothing is pickled; reading runs no
code. Non-finite floats (a plateau scheduler's `inf`) and tuples are tagged so that they come back exact.

When they are written (`Checkpoints`): the state is kept in memory after every epoch (the loop hands over
a CPU copy anyway) and written at the end of the group's first epoch, then at most every `WRITE_SECONDS`
— or every `WRITE_SHARE`⁻¹ times the last write's duration, when that is longer, so that writing a large
model's checkpoint never takes more than 2% of the training time — and always when the run is interrupted
(`flush`, with signals deferred). A SIGKILL therefore loses the epochs after the last write (on the spam
example 2 s at most); resume truncates metrics.csv to the checkpoint and trains them again.
A group's checkpoint is deleted once its models' results are in summary.json: a finished model is never
resumed, and a checkpoint holds about four copies of the weights.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import MISSING, fields, is_dataclass
from pathlib import Path
from typing import Any, Optional

from nnlab.runstore.layout import CHECKPOINTS_DIR, write_atomic

WRITE_SECONDS = 2.0
WRITE_SHARE = 0.02  # the most of the training time that checkpoint writes may take
_STATE_KEY = "nnlab.loop_state"


def checkpoint_path(run_path: Path, group: str) -> Path:
    return run_path / CHECKPOINTS_DIR / f"{group}.safetensors"


class Checkpoints:
    """The run's checkpoints: `keep` is the loop's `on_state` (one group at a time); `flush` writes what is
    kept and not yet written; `remove` deletes a finished group's file."""

    def __init__(self, run_path: Path, every: float = WRITE_SECONDS):
        self.run_path, self.every = run_path, every
        self.pending: Optional[tuple[str, Any]] = None
        self.written: dict[str, float] = {}  # group -> monotonic time of its last write
        self.wait = every  # seconds until the next write: `every`, or longer after a slow write
        for stale in (run_path / CHECKPOINTS_DIR).glob(".*.tmp"):  # a write that a SIGKILL cut (resume)
            stale.unlink(missing_ok=True)

    def keep(self, group: str, state: Any) -> None:
        self.pending = (group, state)
        last = self.written.get(group)
        if last is None or time.monotonic() - last >= self.wait:
            self.flush()

    def flush(self) -> None:
        from nnlab.core.interrupts import deferred

        if self.pending is None:
            return
        group, state = self.pending
        started = time.monotonic()
        with deferred():  # an interrupt during the write waits for it: never a torn or missing file
            save_state(checkpoint_path(self.run_path, group), state)
            self.pending = None
            self.written[group] = time.monotonic()
        self.wait = max(self.every, (self.written[group] - started) / WRITE_SHARE)

    def remove(self, group: str) -> None:
        if self.pending is not None and self.pending[0] == group:
            self.pending = None
        path = checkpoint_path(self.run_path, group)
        path.unlink(missing_ok=True)
        try:
            path.parent.rmdir()  # the last one gone: no empty folder left in a finished run
        except OSError:
            pass  # other groups' checkpoints, or none was ever written


def save_state(path: Path, state: Any) -> None:
    """A LoopState as one safetensors file (tensors) with its plain data as JSON metadata; atomic."""
    from safetensors.torch import save

    tensors: dict[str, Any] = {}
    plain = _encode(state, tensors, "s")
    data = save(tensors, metadata={_STATE_KEY: json.dumps(plain, allow_nan=False)})
    path.parent.mkdir(exist_ok=True)
    write_atomic(path, data)


class CheckpointFieldError(ValueError):
    """A checkpoint whose plain data does not fit its state (edited by hand, or from another version): `field`
    is its dotted place (`epoch`, `members.0.best_epoch`)."""

    def __init__(self, field: str, problem: str):
        super().__init__(f"{field}: {problem}")
        self.field, self.problem = field, problem


def load_state(path: Path) -> Any:
    """The LoopState saved at `path` (tensors on the CPU). CheckpointFieldError when a field has the wrong type."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        plain = json.loads((f.metadata() or {})[_STATE_KEY])
        tensors = {key: f.get_tensor(key) for key in f.keys()}
    return _decode(plain, tensors)


# --- encoding: JSON with tagged values; tensors by reference -------------------------------------------

def _types() -> dict[str, type]:
    from nnlab.training.state import EpochRecord, FitResult, LoopState, MemberProgress
    from nnlab.training.sequential import SequenceState

    return {"LoopState": LoopState, "MemberProgress": MemberProgress, "EpochRecord": EpochRecord,
            "SequenceState": SequenceState, "FitResult": FitResult}


def _encode(value: Any, tensors: dict[str, Any], where: str) -> Any:
    import numpy as np
    import torch

    if isinstance(value, np.ndarray):  # a finished member's validation predictions
        tensors[where] = torch.from_numpy(np.array(value))
        return {"$ndarray": where}
    if isinstance(value, torch.Tensor):
        tensors[where] = value.detach().to("cpu").contiguous().clone()  # never shares storage with another
        return {"$tensor": where}
    if is_dataclass(value) and type(value).__name__ in _types():
        return {f"${type(value).__name__}": {f.name: _encode(getattr(value, f.name), tensors, f"{where}.{f.name}")
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


def _decode(value: Any, tensors: dict[str, Any], where: str = "") -> Any:
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
        if tag.startswith("$") and tag[1:] in _types():
            return _build(_types()[tag[1:]], inner, tensors, where)
    return {k: _decode(v, tensors, f"{at}{k}") for k, v in value.items()}


def _build(kind: type, inner: Any, tensors: dict[str, Any], where: str) -> Any:
    """One dataclass of the state, each field checked against its annotation (a hand-edited `epoch: "x"`
    must be named here, not fail later as a TypeError deep in the loop)."""
    import typing

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
    import types
    import typing

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
