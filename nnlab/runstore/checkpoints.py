"""Checkpoints: the latest `LoopState` of the model (stack group) in training, in the run folder, so that
`nnlab train --resume` continues a cut-off run from its last complete epoch (see layout.py for the place).

One file per stack group, `checkpoints/<first model>.safetensors`: the tensors (weights, best weights,
optimizer moments, buffers, every generator state) as safetensors, and the plain data (epoch, step count,
schedules, early stopping, each member's progress and epoch history) as JSON in the same file's metadata
header. Members that train one after another save a `SequenceState` the same way (the finished members'
results, their weights and validation predictions among the tensors). One file, replaced atomically, so that
the tensors and the data always belong to the same epoch — a `.safetensors` + `.json` pair could be cut
between its two writes. Nothing is pickled; reading runs no code. This module knows the file; turning a
loop's state into the header and tensors and back is training's (`nnlab.training.statecodec`), handed to
`Checkpoints` as `encode`, so that the run store imports nothing above core.

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
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Generic, Optional, TypeVar

from nnlab.core.interrupts import deferred
from nnlab.runstore.layout import CHECKPOINTS_DIR, write_atomic

if TYPE_CHECKING:
    from torch import Tensor

State = TypeVar("State")
Encode = Callable[[State], tuple[dict[str, object], dict[str, "Tensor"]]]

WRITE_SECONDS = 2.0
WRITE_SHARE = 0.02  # the most of the training time that checkpoint writes may take
_STATE_KEY = "nnlab.loop_state"


def checkpoint_path(run_path: Path, group: str) -> Path:
    return run_path / CHECKPOINTS_DIR / f"{group}.safetensors"


class Checkpoints(Generic[State]):
    """The run's checkpoints: `keep` is the loop's `on_state` (one group at a time); `flush` writes what is
    kept and not yet written, as `encode` turns it into a header and tensors; `remove` deletes a finished
    group's file."""

    def __init__(self, run_path: Path, encode: Encode[State], every: float = WRITE_SECONDS):
        self.run_path, self.encode, self.every = run_path, encode, every
        self.pending: Optional[tuple[str, State]] = None
        self.written: dict[str, float] = {}  # group -> monotonic time of its last write
        self.wait = every  # seconds until the next write: `every`, or longer after a slow write
        for stale in (run_path / CHECKPOINTS_DIR).glob(".*.tmp"):  # a write that a SIGKILL cut (resume)
            stale.unlink(missing_ok=True)

    def keep(self, group: str, state: State) -> None:
        self.pending = (group, state)
        last = self.written.get(group)
        if last is None or time.monotonic() - last >= self.wait:
            self.flush()

    def flush(self) -> None:
        if self.pending is None:
            return
        group, state = self.pending
        started = time.monotonic()
        with deferred():  # an interrupt during the write waits for it: never a torn or missing file
            write_checkpoint(checkpoint_path(self.run_path, group), *self.encode(state))
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


def write_checkpoint(path: Path, header: dict[str, object], tensors: dict[str, Tensor]) -> None:
    """One safetensors file: the tensors, and the plain data as JSON in its metadata header; atomic."""
    from safetensors.torch import save

    data = save(tensors, metadata={_STATE_KEY: json.dumps(header, allow_nan=False)})
    path.parent.mkdir(exist_ok=True)
    write_atomic(path, data)


def read_checkpoint(path: Path) -> tuple[dict[str, object], dict[str, Tensor]]:
    """The plain data and the tensors (on the CPU) `write_checkpoint` wrote; reading runs no code."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        header = json.loads((f.metadata() or {})[_STATE_KEY])
        tensors = {key: f.get_tensor(key) for key in f.keys()}
    return header, tensors
