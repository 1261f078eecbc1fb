"""The preprocessing of a run as one object that prediction can rebuild from JSON: the target's coding and the
features' encoder (table, text, sequence or image), with the same checks for new rows as for the training file."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Union

import numpy as np
import pandas as pd

from nnlab.data.arrays import ArrayEncoder
from nnlab.core.messages import names_list
from nnlab.data.mixed import MixedEncoder
from nnlab.data.table import TableEncoder
from nnlab.data.target import TargetCoder
from nnlab.data.text import SPECIAL_TOKENS, TextEncoder
from nnlab.errors import DataError
from nnlab.core.inputs import InputInfo, SparseRows
from nnlab.spec.base import TASKS

FeatureEncoder = Union[TableEncoder, TextEncoder, ArrayEncoder, MixedEncoder]
TRAINED_TASKS = tuple(t for t in TASKS if t != "auto")  # what a saved model's `task` may be


@dataclass
class Preprocessor:
    """Rows of a table -> model input (and the baseline's input); model outputs -> labels or target units."""

    kind: str  # table, text, sequence or image
    target: TargetCoder
    features: FeatureEncoder

    @property
    def columns(self) -> list[str]:
        """The input columns a frame must have (others are ignored)."""
        return self.features.columns

    @property
    def n_outputs(self) -> int:
        return len(self.target.classes) if self.target.task == "multiclass" else 1

    def info(self) -> InputInfo:
        if isinstance(self.features, MixedEncoder):
            text = self.features.text
            return InputInfo("text", (text.spec.max_len,), self.n_outputs, text.vocab_size, self.features.table_width)
        if isinstance(self.features, TextEncoder):
            return InputInfo("text", (self.features.spec.max_len,), self.n_outputs, self.features.vocab_size)
        if isinstance(self.features, ArrayEncoder):
            return InputInfo(self.kind, tuple(self.features.shape), self.n_outputs)  # type: ignore[arg-type]
        return InputInfo("table", (len(self.features.encoded_names),), self.n_outputs)

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        """Model input for the rows of `frame`: float32 [N, F], [N, T, F], [N, C, H, W] or int64 ids [N, T]."""
        return self.features.transform(self._checked(frame))

    def baseline_transform(self, frame: pd.DataFrame) -> np.ndarray | SparseRows:
        """The baseline's input: TF-IDF rows for text, the flattened model input otherwise."""
        frame = self._checked(frame)
        if isinstance(self.features, (TextEncoder, MixedEncoder)):
            return self.features.tfidf(frame)
        x = self.features.transform(frame)
        return x.reshape(len(x), int(np.prod(x.shape[1:])))  # not -1: zero rows have no width to infer

    def encode_target(self, frame: pd.DataFrame) -> np.ndarray:
        """The target column of labelled new rows, encoded as the training targets were (to score them)."""
        if self.target.column not in frame.columns:
            raise DataError(f"data.target: column '{self.target.column}' missing from the rows to score")
        return self.target.encode(frame[self.target.column])

    def decode(self, outputs: np.ndarray) -> np.ndarray:
        """Probabilities -> labels; standardized regression outputs -> the target's units."""
        return self.target.decode(outputs)

    def _checked(self, frame: pd.DataFrame) -> pd.DataFrame:
        missing = [c for c in self.columns if c not in frame.columns]
        if missing:
            raise DataError(f"data: column(s) {names_list(missing, 6)} missing from the rows to predict "
                            f"(expected columns: {names_list(self.columns)})")
        return frame

    def state(self) -> dict[str, Any]:
        """JSON-able (no NaN or infinity): what `from_state` needs, vocabulary included."""
        state = {"input_kind": self.kind, **self.target.state(), **self.features.state()}
        _check_finite(state, "preprocessing")
        return state

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Preprocessor:
        kind = state.get("input_kind", "table")
        if kind == "text" and "table" in state:  # text beside table columns
            features: FeatureEncoder = MixedEncoder.from_state(state)
        elif kind == "text":
            features = TextEncoder.from_state(state)
        elif kind in ("sequence", "image"):
            features = ArrayEncoder.from_state(kind, state)
        else:
            features = TableEncoder.from_state(state)
        preprocessor = cls(kind, TargetCoder.from_state(state), features)
        preprocessor.check()
        return preprocessor

    def check(self) -> None:
        """That saved preprocessing is whole: ValueError (one line) for a task nnlab has not, classes that do
        not fit it, or scaling statistics of another width than the features (a damaged or edited file)."""
        target = self.target
        if target.task not in TRAINED_TASKS:
            raise ValueError(f"task {str(target.task)[:40]!r}: expected one of {', '.join(TRAINED_TASKS)}")
        if target.task == "binary" and len(target.classes) != 2:
            raise ValueError(f"a binary model needs 2 classes; got {len(target.classes)}")
        if target.task == "multiclass" and len(target.classes) < 2:
            raise ValueError(f"a multiclass model needs at least 2 classes; got {len(target.classes)}")
        features = self.features
        if isinstance(features, MixedEncoder):
            features = features.text  # its table part is checked like any table's, below
            table = self.features.table  # type: ignore[union-attr]
            if len(table.center) != len(table.encoded_names) or len(table.spread) != len(table.encoded_names):
                raise ValueError(f"table scaling has {len(table.center)} values for {len(table.encoded_names)} "
                                 "features")
        if isinstance(features, TextEncoder):
            width, what = features.vocab_size - len(SPECIAL_TOKENS), "idf"
            sizes = {"idf": len(features.idf)}
        else:
            width = len(features.encoded_names) if isinstance(features, TableEncoder) else \
                features.shape[features.channel_axis]
            what = "features" if isinstance(features, TableEncoder) else "channels"
            sizes = {"center": len(features.center), "spread": len(features.spread)}
            if isinstance(features, ArrayEncoder) and math.prod(features.shape) != len(features.columns):
                raise ValueError(f"shape {list(features.shape)} holds {math.prod(features.shape)} values; "
                                 f"got {len(features.columns)} columns")
        for name, size in sizes.items():
            if size != width:
                raise ValueError(f"{name} has {size} values for {width} {what}")


def _check_finite(value: Any, where: str) -> None:
    """A programmer's guard: every statistic is checked where it is computed, so this never fires for users."""
    if isinstance(value, float) and not math.isfinite(value):
        raise DataError(f"{where}: a statistic is {value}; the data has values out of range")
    if isinstance(value, dict):
        for key, item in value.items():
            _check_finite(item, f"{where}.{key}")
    elif isinstance(value, list) and value and isinstance(value[0], (float, list, dict)):
        for item in value:
            _check_finite(item, where)
