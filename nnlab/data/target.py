"""The target column: which task it is, how labels become class indices (or values become standardized
numbers), and the way back from a model's outputs to labels or the target's units."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from nnlab.core.messages import plain, shown
from nnlab.errors import DataError
from nnlab.spec import DataSpec

FLOAT32_SAFE = 1e30  # targets below this magnitude are standardized in float32 (their squares stay finite)
MAX_CLASS_LEVELS = 20  # a numeric target with at most this many integer levels is a classification target


@dataclass
class TargetCoder:
    """Labels <-> class indices, or target units <-> standardized values (statistics from the training split)."""

    column: str
    task: str
    classes: list[Any] = field(default_factory=list)
    mean: float = 0.0
    std: float = 1.0

    def state(self) -> dict[str, Any]:
        state = {"target": self.column, "task": self.task, "classes": self.classes}
        if self.task == "regression":
            state.update(target_mean=self.mean, target_std=self.std)
        return state

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> TargetCoder:
        return cls(state["target"], state["task"], list(state.get("classes", [])),
                   float(state.get("target_mean", 0.0)), float(state.get("target_std", 1.0)))

    def fit_scale(self, train_values: np.ndarray) -> None:
        """Regression: the target's mean and spread on the training split. Ordinary targets are computed in
        float32 as nnlab 0.1 did (same numbers); huge ones are divided by their largest value first, so the
        square does not overflow."""
        magnitude = float(np.abs(train_values).max()) or 1.0
        if magnitude < FLOAT32_SAFE:
            values32 = train_values.astype(np.float32)
            self.mean, self.std = float(values32.mean()), float(values32.std()) or 1.0
            return
        scaled = train_values.astype(np.float64) / magnitude
        self.mean, self.std = float(scaled.mean() * magnitude), float(scaled.std() * magnitude) or 1.0
        if not np.isfinite([self.mean, self.std]).all():
            raise DataError(f"data.target: column '{self.column}' has values too large to standardize "
                            f"(up to {magnitude:.3g}); rescale them in the file")

    def standardize(self, values: np.ndarray) -> np.ndarray:
        if abs(self.mean) < FLOAT32_SAFE and self.std < FLOAT32_SAFE:
            return (values.astype(np.float32) - self.mean) / np.float32(self.std)
        return ((values.astype(np.float64) - self.mean) / self.std).astype(np.float32)

    def encode(self, values: pd.Series) -> np.ndarray:
        """Labels of new rows -> class indices (binary: 0/1 float32), or units -> standardized values, as the
        training targets were encoded; an unknown label is an error naming it."""
        if self.task == "regression":
            return self.standardize(values.to_numpy(dtype=np.float64))
        index = {str(c): i for i, c in enumerate(self.classes)}
        keys = values.map(lambda v: str(plain(v)))
        unknown = values[~keys.isin(list(index))]
        if len(unknown):
            raise DataError(f"data.target: column '{self.column}' has label {shown(unknown.iloc[0])}, which the "
                            f"model was not trained on (labels: {', '.join(map(repr, self.classes[:20]))})")
        return keys.map(index).to_numpy().astype(np.float32 if self.task == "binary" else np.int64)

    def to_units(self, standardized: np.ndarray) -> np.ndarray:
        return np.asarray(standardized, dtype=np.float64) * self.std + self.mean

    def decode(self, outputs: np.ndarray) -> np.ndarray:
        """Model outputs -> labels (from probabilities: binary [N] of the positive class, multiclass [N, K])
        or target units (from standardized predictions)."""
        outputs = np.asarray(outputs)
        if self.task == "regression":
            return self.to_units(outputs.reshape(len(outputs)))
        index = (outputs.reshape(len(outputs)) > 0.5).astype(int) if self.task == "binary" else outputs.argmax(1)
        return np.array(self.classes, dtype=object)[index]


def fit_target(spec: DataSpec, target: pd.Series) -> tuple[TargetCoder, np.ndarray, str]:
    """The coder, every row's encoded target (regression: still in units) and why the task is what it is."""
    if target.isna().any():
        raise DataError(f"data.target: column '{spec.target}' has {int(target.isna().sum())} missing values; "
                        "drop those rows from the file")
    task, why = infer_task(spec, target)
    if task == "regression":
        values = target.to_numpy(dtype=np.float64)
        if not np.isfinite(values).all():
            raise DataError(f"data.target: column '{spec.target}' has infinite values")
        return TargetCoder(spec.target, task), values, why
    classes = sorted(target.unique().tolist(), key=lambda v: (str(type(v)), v))
    if task == "binary":
        positive = _positive_class(spec, classes)
        classes = [c for c in classes if c != positive] + [positive]
    index = {c: i for i, c in enumerate(classes)}
    codes = target.map(index).to_numpy().astype(np.float32 if task == "binary" else np.int64)
    return TargetCoder(spec.target, task, [plain(c) for c in classes]), codes, why


def infer_task(spec: DataSpec, target: pd.Series) -> tuple[str, str]:
    levels = target.nunique()
    numeric = pd.api.types.is_numeric_dtype(target) and not pd.api.types.is_bool_dtype(target)
    if spec.task == "regression":
        if not numeric:
            raise DataError(f"data.task: regression needs a numeric target; column '{spec.target}' "
                            f"holds {target.dtype} values such as {shown(target.iloc[0])}")
        return "regression", "set in the spec"
    if spec.task == "auto" and numeric and (levels > MAX_CLASS_LEVELS or not _integer_valued(target)):
        return "regression", f"numeric target with {levels} distinct values"
    if levels < 2:
        raise DataError(f"data.target: column '{spec.target}' has a single class "
                        f"({shown(target.iloc[0])}); a classifier needs at least two")
    if spec.task == "binary" and levels != 2:
        raise DataError(f"data.task: binary needs exactly 2 classes; column '{spec.target}' has {levels}")
    task = spec.task if spec.task != "auto" else ("binary" if levels == 2 else "multiclass")
    return task, "set in the spec" if spec.task != "auto" else f"target with {levels} classes"


def _integer_valued(values: pd.Series) -> bool:
    numbers = values.to_numpy(dtype=float)
    return bool(np.all(np.isfinite(numbers)) and np.all(np.mod(numbers, 1) == 0))


def _positive_class(spec: DataSpec, classes: list[Any]) -> Any:
    if spec.positive is not None:
        for c in classes:
            if str(c) == str(spec.positive):
                return c
        raise DataError(f"data.positive: expected one of {', '.join(map(repr, classes[:20]))}; "
                        f"got {spec.positive!r}")
    for c in classes:
        if c is True or (isinstance(c, (int, np.integer)) and c == 1):
            return c
    return classes[1]
