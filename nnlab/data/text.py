"""Text: one column of messages becomes token ids [N, max_len] for the text models, and TF-IDF rows over the
same vocabulary for the bag-of-words baseline.

Tokenizer: after optional lower-casing, a token is a run of word characters (`\\w+`: letters, digits and `_`,
any script) or one other non-space character (so `!`, `£` and `:)` are tokens: `:`, `)`). No stemming, no
stop words. The vocabulary is built on the training split only: PAD_ID (0), OOV_ID (1), then the tokens seen at
least `min_freq` times, most frequent first (ties alphabetical), at most `max_vocab` of them. Ids are cut to
the first `max_len` tokens and padded with PAD_ID at the end; a message with no tokens (or a missing one) becomes
one OOV_ID, so that every row has a real position for the models' padding masks."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import numpy as np
import pandas as pd

from nnlab.errors import DataError
from nnlab.core.inputs import OOV_ID, PAD_ID, SparseRows
from nnlab.spec import TextSpec

TOKEN = re.compile(r"\w+|[^\w\s]")
SPECIAL_TOKENS = ("<pad>", "<unk>")  # ids PAD_ID and OOV_ID


def tokenize(text: str, lowercase: bool = True) -> list[str]:
    return TOKEN.findall(text.lower() if lowercase else text)


class TextEncoder:
    """Vocabulary and inverse document frequencies fitted on the training split."""

    def __init__(self, spec: TextSpec, tokens: list[str], idf: np.ndarray):
        self.spec, self.tokens, self.idf = spec, tokens, idf
        self.ids = {token: i for i, token in enumerate(tokens)}

    @property
    def columns(self) -> list[str]:
        return [self.spec.column]

    @property
    def vocab_size(self) -> int:
        return len(self.tokens)

    @classmethod
    def fit(cls, train: pd.DataFrame, spec: TextSpec) -> TextEncoder:
        documents = [tokenize(t, spec.lowercase) for t in texts(train, spec.column)]
        counts = Counter(token for doc in documents for token in doc)
        kept = sorted((t for t, n in counts.items() if n >= spec.min_freq), key=lambda t: (-counts[t], t))
        tokens = list(SPECIAL_TOKENS) + kept[:spec.max_vocab]
        encoder = cls(spec, tokens, np.zeros(0))
        # Smoothed idf as scikit-learn's TfidfVectorizer: ln((1 + n) / (1 + df)) + 1, over the training rows.
        df = np.zeros(len(tokens))
        for doc in documents:
            ids = list({encoder.ids.get(t, OOV_ID) for t in doc})
            df[ids] += 1
        encoder.idf = np.log((1 + len(documents)) / (1 + df[len(SPECIAL_TOKENS):])) + 1
        return encoder

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        out = np.full((len(frame), self.spec.max_len), PAD_ID, dtype=np.int64)
        for row, text in enumerate(texts(frame, self.spec.column)):
            ids = [self.ids.get(t, OOV_ID) for t in tokenize(text, self.spec.lowercase)[:self.spec.max_len]]
            out[row, :len(ids) or 1] = ids or [OOV_ID]
        return out

    def tfidf(self, frame: pd.DataFrame) -> SparseRows:
        """L2-normalized TF-IDF rows over the vocabulary (columns = token ids minus the two special ids), from
        the whole text, not only its first max_len tokens; unknown tokens are not counted."""
        indptr, indices, values = [0], [], []
        first = len(SPECIAL_TOKENS)
        for text in texts(frame, self.spec.column):
            counts = Counter(self.ids[t] for t in tokenize(text, self.spec.lowercase) if t in self.ids)
            cols = np.array(sorted(counts), dtype=np.int64) - first
            weights = np.array([counts[c + first] for c in cols], dtype=np.float64) * self.idf[cols]
            norm = np.sqrt((weights ** 2).sum())
            indices.append(cols)
            values.append(weights / norm if norm > 0 else weights)
            indptr.append(indptr[-1] + len(cols))
        return SparseRows(np.array(indptr, dtype=np.int64), np.concatenate(indices or [np.zeros(0, np.int64)]),
                          np.concatenate(values or [np.zeros(0)]).astype(np.float32), len(self.tokens) - first)

    def state(self) -> dict[str, Any]:
        return {"text": self.spec.model_dump(mode="json"), "vocabulary": self.tokens,
                "idf": [float(v) for v in self.idf]}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> TextEncoder:
        return cls(TextSpec(**state["text"]), list(state["vocabulary"]), np.array(state["idf"], dtype=np.float64))


def texts(frame: pd.DataFrame, column: str) -> list[str]:
    """The column's values as strings; a numeric column or missing text is an error naming the column."""
    series = frame[column]
    if not (pd.api.types.is_string_dtype(series) or pd.api.types.is_object_dtype(series)):
        raise DataError(f"data.text.column: column '{column}' holds {series.dtype} values; expected text")
    values = series.fillna("").tolist()  # an empty CSV field reads as missing: it is an empty message
    odd = next((v for v in values if not isinstance(v, str)), None)
    if odd is not None:
        raise DataError(f"data.text.column: column '{column}' holds a {type(odd).__name__} value "
                        f"({str(odd)[:40]!r}); expected text")
    return values
