"""Text: one column of messages becomes token ids [N, max_len] for the text models, and TF-IDF rows over the
same vocabulary for the bag-of-words baseline.

Tokenizer: after optional lower-casing, a token is a run of word characters (`\\w+`: letters, digits and `_`,
any script) or one other non-space character (so `!`, `£` and `:)` are tokens: `:`, `)`). No stemming, no
stop words. The vocabulary is built on the training split only: PAD_ID (0), OOV_ID (1), then the tokens seen at
least `min_freq` times, most frequent first (ties alphabetical), at most `max_vocab` of them. Ids are cut to
the first `max_len` tokens and padded with PAD_ID at the end; a message with no tokens (or a missing one) becomes
one OOV_ID, so that every row has a real position for the models' padding masks.

Pretrained word vectors (`data.text.vectors`, word2vec/GloVe text format) are read streaming, keeping only the
vocabulary's words, into a `WordVectors` that the models' embedding starts from (`models.embedding`)."""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nnlab.errors import DataError
from nnlab.core.inputs import OOV_ID, PAD_ID, SparseRows, WordVectors
from nnlab.core.jsonvalue import JSONObject
from nnlab.core.messages import excerpt, listing
from nnlab.spec import ModelSpec, TextSpec

TOKEN = re.compile(r"\w+|[^\w\s]")
SPECIAL_TOKENS = ("<pad>", "<unk>")  # ids PAD_ID and OOV_ID
MAX_VECTORS_LINE = 1 << 20  # bytes: 4096 values in text take about 50 KB; a longer line is no vectors file
MAX_VECTORS_DIM = 4096  # the largest embedding a model spec allows


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


@dataclass
class VectorsRead:
    """What `read_vectors` found: the embedding's start, and what the run reports and fingerprints of it."""

    vectors: WordVectors
    name: str  # the file's name, as messages and the run show it
    sha256: str  # of the whole file: part of the data fingerprint
    words: int  # vocabulary words (the special tokens left out)

    @property
    def covered(self) -> int:
        return int(self.vectors.covered.sum())

    def note(self) -> JSONObject:
        """summary.json's `data.vectors` and train's line about them."""
        return {"file": self.name, "dim": self.vectors.dim, "covered": self.covered, "words": self.words,
                "frozen": self.vectors.freeze}


def read_vectors(spec: TextSpec, base_dir: Path, tokens: list[str]) -> VectorsRead:
    """The vectors of `tokens` (the vocabulary) in the file `spec.vectors` (relative to `base_dir`): lines
    `word v1 v2 ...`, after an optional word2vec header `count dim`. Read line by line, keeping only vocabulary
    words, so a GloVe file of gigabytes costs its reading time, not its size in memory. A word matches its
    token as written, else (lowercase on) lower-cased; the first line for a token wins. Every line's count of
    values is checked, the values themselves where a word is kept. Raises DataError naming the file and line."""
    assert spec.vectors is not None
    path = Path(spec.vectors)
    path = path if path.is_absolute() else base_dir / path
    where = f"data.text.vectors: {path.name}"
    ids = {token: i for i, token in enumerate(tokens) if i >= len(SPECIAL_TOKENS)}
    exact = np.zeros(len(tokens), dtype=bool)  # a token matched as written: a lower-cased match cannot replace it
    covered = np.zeros(len(tokens), dtype=bool)
    values, dim, dim_line, header, digest, number = None, 0, 0, False, hashlib.sha256(), 0
    try:
        handle = open(path, "rb")
    except FileNotFoundError:
        raise DataError(f"data.text.vectors: file not found: {path}") from None
    except OSError as e:  # a folder, no permission
        raise DataError(f"data.text.vectors: cannot read {path}: {e.strerror or e.__class__.__name__}") from None
    with handle:
        while line := handle.readline(MAX_VECTORS_LINE + 1):
            number += 1
            digest.update(line)
            if len(line) > MAX_VECTORS_LINE:
                raise DataError(f"{where} line {number}: longer than {MAX_VECTORS_LINE >> 20} MiB; expected a "
                                "word and its values per line (word2vec/GloVe text format)")
            try:
                parts = line.decode("utf-8").rstrip("\r\n").rstrip(" ").split(" ")
            except UnicodeDecodeError:
                raise DataError(f"{where} line {number}: not UTF-8 text; expected the word2vec/GloVe text format "
                                "(a binary word2vec file must be saved as text first)") from None
            if parts == [""]:
                continue  # a blank line (the end of some files)
            if number == 1 and len(parts) == 2 and parts[0].isdigit() and parts[1].isdigit():
                dim, header = int(parts[1]), True  # word2vec's header: count dim
                if not 1 <= dim <= MAX_VECTORS_DIM:
                    raise DataError(f"{where} line 1: the header gives {dim} dimensions; expected 1 to "
                                    f"{MAX_VECTORS_DIM}")
                continue
            if not dim:
                dim, dim_line = len(parts) - 1, number
                if not 1 <= dim <= MAX_VECTORS_DIM:
                    raise DataError(f"{where} line {number}: {dim} values after the word; expected a word and "
                                    f"1 to {MAX_VECTORS_DIM} values ('word v1 v2 ...')")
            if len(parts) - 1 != dim:
                raise DataError(f"{where} line {number}: {len(parts) - 1} values after the word "
                                f"'{excerpt(parts[0])}'; expected {dim}, as "
                                f"{'the header says' if header else f'line {dim_line} has'}")
            token = parts[0] if parts[0] in ids else parts[0].lower() if spec.lowercase else parts[0]
            i = ids.get(token)
            if i is None or exact[i] or (covered[i] and token != parts[0]):
                continue
            if values is None:
                values = np.zeros((len(tokens), dim), dtype=np.float32)
            values[i] = _vector(parts[1:], where, number)
            covered[i], exact[i] = True, token == parts[0]
    if not dim:
        raise DataError(f"{where}: holds no vectors; expected a word and its values per line ('word v1 v2 ...')")
    words = len(tokens) - len(SPECIAL_TOKENS)
    if values is None:
        raise DataError(f"{where}: none of the {words:,} vocabulary words is in the file (the most frequent: "
                        f"{listing(tokens[len(SPECIAL_TOKENS):], 5)}); check the file's language and "
                        "data.text.lowercase")
    spread = float(values[covered].std())
    return VectorsRead(WordVectors(values, covered, spread if spread > 0 else 1.0, spec.freeze), path.name,
                       digest.hexdigest(), words)


def _vector(fields: list[str], where: str, number: int) -> np.ndarray:
    try:
        row = np.array(fields, dtype=np.float32)
    except ValueError:
        bad = next(f for f in fields if not _is_number(f))
        raise DataError(f"{where} line {number}: '{excerpt(bad)}' is not a number; expected the word, then "
                        "its values") from None
    if not np.isfinite(row).all():
        bad = fields[int(np.argmin(np.isfinite(row)))]
        raise DataError(f"{where} line {number}: '{excerpt(bad)}' is not a finite number")
    return row


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def size_models_to_vectors(models: list[ModelSpec], read: VectorsRead) -> None:
    """The text models' embedding size from the vectors: a model that leaves `embedding` (a transformer:
    `d_model`) out takes the file's dimension; one that gives another size is a DataError naming both."""
    dim = read.vectors.dim
    for i, model in enumerate(models):
        field = "d_model" if "d_model" in type(model).model_fields else "embedding"
        if field not in type(model).model_fields:
            continue
        given = getattr(model, field)
        if field in model.model_fields_set and given != dim:
            raise DataError(f"models[{i}].{field}: {given} does not fit data.text.vectors ({read.name} holds "
                            f"{dim}-dimensional vectors); set {field}: {dim} or leave it out to take the file's")
        heads = getattr(model, "heads", 1)
        if dim % heads:
            raise DataError(f"models[{i}].heads: must divide d_model, which data.text.vectors ({read.name}) "
                            f"makes {dim}; got {heads}")
        setattr(model, field, dim)
