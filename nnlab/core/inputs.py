"""What a model needs to know about its input, shared by `data` (which produces it) and `models` (which are
built from it). Torch-free and pandas-free, so that spec checks and the run store can use it too."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Optional, get_args

import numpy as np

InputKind = Literal["table", "text", "sequence", "image"]
INPUT_KINDS: tuple[str, ...] = get_args(InputKind)
PAD_ID = 0  # text: padding token id; models mask positions where the id is PAD_ID
OOV_ID = 1  # text: out-of-vocabulary token id


@dataclass(frozen=True)
class WordVectors:
    """Pretrained word vectors for a text vocabulary (data.text.vectors), as the embedding starts: token id i
    gets row i of `values` where `covered[i]`; every other id keeps the model's own seeded random row, scaled by
    `scale` (the spread of the file's values) so that both kinds of rows start alike in size."""

    values: np.ndarray  # float32 [vocab_size, dim]; zero where not covered
    covered: np.ndarray  # bool [vocab_size]
    scale: float
    freeze: bool  # data.text.freeze: the embedding gets no updates

    @property
    def dim(self) -> int:
        return int(self.values.shape[1])


@dataclass(frozen=True)
class InputInfo:
    """One example's shape and kind: table (F,), text (T,) token ids, sequence (T, F), image (C, H, W)."""

    kind: InputKind
    shape: tuple[int, ...]
    n_outputs: int
    vocab_size: int = 0  # text only: ids are 0..vocab_size-1, PAD_ID and OOV_ID included
    # Text beside table columns: this many encoded column values follow the T token ids of each row (the row
    # is then float32 [T + table_width]; ids are exact in float32 up to 2**24, far above any vocabulary).
    table_width: int = 0
    vectors: Optional[WordVectors] = field(default=None, compare=False, repr=False)  # text: data.text.vectors

    @property
    def n_features(self) -> int:
        """Values per example when flattened (what a table model or the baseline sees)."""
        return int(np.prod(self.shape)) + self.table_width

    @property
    def mixed(self) -> bool:
        """Text and table columns in one row (`nnlab.models.combiner` splits them again)."""
        return self.table_width > 0


@dataclass(frozen=True)
class SparseRows:
    """A CSR matrix in numpy (rows x n_cols), e.g. the text baseline's TF-IDF features, without scipy."""

    indptr: np.ndarray  # int64 [N + 1]
    indices: np.ndarray  # int64 [nnz]
    values: np.ndarray  # float32 [nnz]
    n_cols: int

    def __len__(self) -> int:
        return len(self.indptr) - 1

    @property
    def shape(self) -> tuple[int, int]:
        return len(self), self.n_cols

    def take(self, rows: np.ndarray) -> SparseRows:
        """The given rows, in that order."""
        starts, ends = self.indptr[rows], self.indptr[rows + 1]
        lengths = ends - starts
        indptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        picks = np.concatenate([np.arange(s, e) for s, e in zip(starts, ends)]) if len(rows) else np.zeros(0, int)
        return SparseRows(indptr, self.indices[picks].astype(np.int64), self.values[picks], self.n_cols)

    def to_dense(self) -> np.ndarray:
        out = np.zeros(self.shape, dtype=np.float32)
        row_of = np.repeat(np.arange(len(self)), np.diff(self.indptr))
        np.add.at(out, (row_of, self.indices), self.values)
        return out
