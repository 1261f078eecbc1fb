"""Text beside table columns: the `data.text` column becomes token ids, every other feature column goes through
the table encoder (one-hot, imputation, scaling; statistics from the training split), and one row carries both.

A row is float32 [max_len + table width]: the T token ids first (exact in float32: the vocabulary is at most
a million ids, float32 counts exactly to 2**24), then the encoded columns. One array per split, so the loop,
the stack and prediction carry it as they carry any table; `nnlab.models.combiner` splits it again. The
baseline's row is the TF-IDF of the text followed by the same encoded columns, in one sparse row.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from nnlab.core.inputs import SparseRows
from nnlab.data.table import TableEncoder
from nnlab.data.text import TextEncoder
from nnlab.spec import DataSpec


class MixedEncoder:
    """A TextEncoder for the text column and a TableEncoder for the others, both fitted on the training split."""

    def __init__(self, text: TextEncoder, table: TableEncoder):
        self.text, self.table = text, table

    @property
    def columns(self) -> list[str]:
        return self.text.columns + self.table.columns

    @property
    def encoded_names(self) -> list[str]:
        """The table part's values, in the order they follow the token ids."""
        return self.table.encoded_names

    @property
    def categories(self) -> dict[str, list[Any]]:
        return self.table.categories  # what prediction reads to name categories never seen in training

    @property
    def table_width(self) -> int:
        return len(self.table.encoded_names)

    @classmethod
    def fit(cls, train: pd.DataFrame, spec: DataSpec) -> MixedEncoder:
        assert spec.text is not None
        others = [c for c in train.columns if c != spec.text.column]
        return cls(TextEncoder.fit(train, spec.text), TableEncoder.fit(train[others], spec))

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        ids = self.text.transform(frame)
        return np.hstack([ids.astype(np.float32), self.table.transform(frame[self.table.columns])])

    def tfidf(self, frame: pd.DataFrame) -> SparseRows:
        """The text's TF-IDF row and the encoded columns after it: one logistic regression reads both."""
        words = self.text.tfidf(frame)
        columns = self.table.transform(frame[self.table.columns])
        n, width = columns.shape
        lengths = np.diff(words.indptr) + width
        indptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        indices = np.empty(indptr[-1], dtype=np.int64)
        values = np.empty(indptr[-1], dtype=np.float32)
        column_ids = np.arange(width, dtype=np.int64) + words.n_cols
        for row in range(n):  # a row's words, then its columns (indices stay sorted within the row)
            start, middle, end = indptr[row], indptr[row] + lengths[row] - width, indptr[row + 1]
            indices[start:middle] = words.indices[words.indptr[row]:words.indptr[row + 1]]
            values[start:middle] = words.values[words.indptr[row]:words.indptr[row + 1]]
            indices[middle:end], values[middle:end] = column_ids, columns[row]
        return SparseRows(indptr, indices, values, words.n_cols + width)

    def state(self) -> dict[str, Any]:
        return {**self.text.state(), "table": self.table.state()}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> MixedEncoder:
        return cls(TextEncoder.from_state(state), TableEncoder.from_state(state["table"]))
