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
        words_per_row = np.diff(words.indptr)
        indptr = np.concatenate([[0], np.cumsum(words_per_row + width)]).astype(np.int64)
        indices = np.empty(indptr[-1], dtype=np.int64)
        values = np.empty(indptr[-1], dtype=np.float32)
        # Each row: its words where they were (shifted by the columns of the rows before), then its columns.
        row_of_word = np.repeat(np.arange(n), words_per_row)
        at_words = indptr[row_of_word] + np.arange(len(words.indices)) - words.indptr[row_of_word]
        at_columns = (indptr[:-1] + words_per_row)[:, None] + np.arange(width)[None, :]
        indices[at_words], values[at_words] = words.indices, words.values
        indices[at_columns] = words.n_cols + np.arange(width)[None, :]
        values[at_columns] = columns
        return SparseRows(indptr, indices, values, words.n_cols + width)

    def state(self) -> dict[str, Any]:
        return {**self.text.state(), "table": self.table.state()}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> MixedEncoder:
        return cls(TextEncoder.from_state(state), TableEncoder.from_state(state["table"]))
