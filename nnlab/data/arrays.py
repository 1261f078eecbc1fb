"""Sequences and images from numeric columns (or an .npz X, flattened into columns x0, x1, ... in C order).

Sequence, `data.sequence: {steps: T}`: the F = columns / T values of each step are read time-major, i.e. the
columns in file order are t0f0, t0f1, ..., t0f(F-1), t1f0, ... — the order of `X.reshape(N, -1)` for an array
X of shape [N, T, F]. Scaling is fitted per feature F over every step of the training rows.
Image, `data.image: {shape: [C, H, W]}`: columns in file order are the C-order pixels of [C, H, W] (channel,
then row, then column), as `X.reshape(N, -1)` of an [N, C, H, W] array. Scaling is fitted per channel."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from nnlab.data.scaling import apply_scaling, fit_scaling
from nnlab.data.table import first_non_finite, numeric_block
from nnlab.errors import DataError
from nnlab.spec import DataSpec


class ArrayEncoder:
    """Numeric columns -> [N, T, F] or [N, C, H, W] float32, scaled per channel (F for sequences, C for images)."""

    def __init__(self, kind: str, columns: list[str], shape: tuple[int, ...], scale: str,
                 center: np.ndarray, spread: np.ndarray):
        self.kind, self.columns, self.shape, self.scale = kind, columns, shape, scale
        self.center, self.spread = center, spread

    @property
    def channel_axis(self) -> int:
        """Axis of one example that holds the channels: F (last) of a sequence, C (first) of an image."""
        return len(self.shape) - 1 if self.kind == "sequence" else 0

    @property
    def channel_names(self) -> list[str]:
        what = "feature {} of every step" if self.kind == "sequence" else "channel {}"
        return [what.format(c) for c in range(self.shape[self.channel_axis])]

    @classmethod
    def fit(cls, train: pd.DataFrame, spec: DataSpec, array_shape: tuple[int, ...] | None) -> ArrayEncoder:
        columns = list(train.columns)
        kind = spec.input_kind
        shape = sequence_shape(spec, len(columns), array_shape) if kind == "sequence" else \
            image_shape(spec, len(columns), array_shape)
        encoder = cls(kind, columns, shape, spec.scale, np.zeros(0), np.ones(0))
        channels = encoder._channels_last(encoder._values(train))
        encoder.center, encoder.spread = fit_scaling(channels, spec.scale, encoder.channel_names)
        return encoder

    def _values(self, frame: pd.DataFrame) -> np.ndarray:
        values = numeric_block(frame, self.columns)
        problem = first_non_finite(frame, self.columns, values)
        if problem:
            col, what = problem
            raise DataError(f"data: column '{col}' has {what} values; {self.kind} data cannot be imputed: "
                            "clean the file")
        return values.reshape(len(frame), *self.shape)

    def _channels_last(self, values: np.ndarray) -> np.ndarray:
        """[N, *shape] -> [N * positions, channels], the table the per-channel statistics are taken over."""
        return np.moveaxis(values, 1 + self.channel_axis, -1).reshape(-1, self.shape[self.channel_axis])

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        values = self._values(frame)
        moved = np.moveaxis(values, 1 + self.channel_axis, -1)
        flat = apply_scaling(moved.reshape(-1, moved.shape[-1]), self.center, self.spread, self.channel_names)
        return np.ascontiguousarray(np.moveaxis(flat.reshape(moved.shape), -1, 1 + self.channel_axis))

    def state(self) -> dict[str, Any]:
        return {self.kind: {"shape": list(self.shape), "columns": self.columns}, "scale": self.scale,
                "center": self.center.tolist(), "spread": self.spread.tolist()}

    @classmethod
    def from_state(cls, kind: str, state: dict[str, Any]) -> ArrayEncoder:
        return cls(kind, list(state[kind]["columns"]), tuple(state[kind]["shape"]), state["scale"],
                   np.array(state["center"], dtype=np.float64), np.array(state["spread"], dtype=np.float64))


def sequence_shape(spec: DataSpec, n_columns: int, array_shape: tuple[int, ...] | None) -> tuple[int, int]:
    steps = spec.sequence.steps
    if array_shape is not None and len(array_shape) == 2:
        if steps is not None and steps != array_shape[0]:
            raise DataError(f"data.sequence.steps: X has {array_shape[0]} steps ([N, T, F] = [N, "
                            f"{array_shape[0]}, {array_shape[1]}]); got steps: {steps} (or leave steps out)")
        return array_shape[0], array_shape[1]
    if steps is None:
        raise DataError("data.sequence.steps: needed to read table columns as a sequence (steps T: the "
                        f"{n_columns} feature columns are read time-major as [T, columns / T])")
    if n_columns % steps:
        raise DataError(f"data.sequence.steps: {n_columns} feature columns cannot be read as {steps} steps "
                        f"({n_columns} = {steps} x {n_columns // steps} + {n_columns % steps}); columns are read "
                        "time-major (t0f0, t0f1, ..., t1f0, ...), so their count must be steps x features")
    return steps, n_columns // steps


def image_shape(spec: DataSpec, n_columns: int, array_shape: tuple[int, ...] | None) -> tuple[int, int, int]:
    shape = tuple(spec.image.shape) if spec.image.shape is not None else None
    if array_shape is not None and len(array_shape) == 3:
        if shape is not None and shape != array_shape:
            raise DataError(f"data.image.shape: X holds images of shape {list(array_shape)}; got "
                            f"{list(shape)} (or leave shape out)")
        return array_shape  # type: ignore[return-value]
    if shape is None:
        raise DataError(f"data.image.shape: needed to read table columns as images ([C, H, W] with C x H x W = "
                        f"{n_columns}, the number of feature columns)")
    if int(np.prod(shape)) != n_columns:
        raise DataError(f"data.image.shape: {list(shape)} holds {int(np.prod(shape))} values per image; the "
                        f"table has {n_columns} feature columns (C x H x W must equal it)")
    return shape  # type: ignore[return-value]
