"""Plain tables: numeric columns as they are, small non-numeric columns one-hot encoded, missing values imputed
on request, then scaling; every statistic comes from the training split only."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from nnlab.data.scaling import apply_scaling, fit_scaling
from nnlab.core.messages import plain
from nnlab.errors import DataError
from nnlab.spec import DataSpec

IMPUTE_HINT = "set data.impute: mean|median|most_frequent"


class TableEncoder:
    """One-hot for small categorical columns, imputation and scaling; statistics from the training split."""

    def __init__(self, numeric: list[str], categories: dict[str, list[Any]], fill: dict[str, Any],
                 scale: str, center: np.ndarray, spread: np.ndarray):
        self.numeric, self.categories, self.fill = numeric, categories, fill
        self.scale, self.center, self.spread = scale, center, spread

    @property
    def columns(self) -> list[str]:
        """The input columns a frame must have."""
        return self.numeric + list(self.categories)

    @property
    def encoded_names(self) -> list[str]:
        return self.numeric + [f"{col}={level}" for col, levels in self.categories.items() for level in levels]

    @classmethod
    def fit(cls, train: pd.DataFrame, spec: DataSpec) -> TableEncoder:
        numeric, categorical = column_kinds(train, spec)
        check_missing(train, spec)
        fill = fill_values(train, numeric, categorical, spec.impute) if spec.impute else {}
        categories = {c: sorted(train[c].fillna(fill.get(c)).dropna().unique().tolist(), key=str)
                      for c in categorical}
        encoder = cls(numeric, categories, fill, spec.scale, np.zeros(0), np.ones(0))
        encoder.center, encoder.spread = fit_scaling(encoder._encode(train), spec.scale, encoder.encoded_names)
        return encoder

    def _encode(self, frame: pd.DataFrame) -> np.ndarray:
        frame = frame.fillna(self.fill) if self.fill else frame
        numeric = numeric_block(frame, self.numeric)
        problem = first_non_finite(frame, self.numeric, numeric)
        if problem:
            col, what = problem
            raise DataError(f"data: column '{col}' has {what} values; clean the file"
                            + (f" or {IMPUTE_HINT}" if what == "missing" and not self.fill else ""))
        onehots = [(frame[col].to_numpy()[:, None] == np.array(levels, dtype=object)[None, :]).astype(np.float64)
                   for col, levels in self.categories.items()]
        return np.hstack([numeric, *onehots]) if onehots else numeric

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        return apply_scaling(self._encode(frame), self.center, self.spread, self.encoded_names)

    def state(self) -> dict[str, Any]:
        return {"numeric": self.numeric, "categories": {k: [plain(v) for v in vs] for k, vs in
                                                        self.categories.items()},
                "impute": {k: plain(v) for k, v in self.fill.items()}, "scale": self.scale,
                "center": self.center.tolist(), "spread": self.spread.tolist(), "features": self.encoded_names}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> TableEncoder:
        return cls(list(state["numeric"]), {k: list(v) for k, v in state["categories"].items()},
                   dict(state["impute"]), state["scale"], np.array(state["center"], dtype=np.float64),
                   np.array(state["spread"], dtype=np.float64))


def numeric_block(frame: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """The columns as float64 [N, len(columns)]; a column holding non-numbers is an error naming it."""
    complex_column = next((c for c in columns if pd.api.types.is_complex_dtype(frame[c])), None)
    if complex_column is not None:  # float64 would silently drop the imaginary part
        raise DataError(f"data: column '{complex_column}' holds {frame[complex_column].dtype} values; expected "
                        "real numbers")
    if all(_is_number_dtype(frame[c]) for c in columns):  # the common case, in one conversion
        return frame[columns].to_numpy(dtype=np.float64, na_value=np.nan)
    out = np.empty((len(frame), len(columns)), dtype=np.float64)
    for j, col in enumerate(columns):
        series = frame[col]
        if _is_number_dtype(series):
            out[:, j] = series.to_numpy(dtype=np.float64, na_value=np.nan)
            continue
        numbers = pd.to_numeric(series, errors="coerce")
        junk = series[numbers.isna() & series.notna()]
        if len(junk):
            raise DataError(f"data: column '{col}' must hold numbers; got {series.dtype} values such as "
                            f"{str(junk.iloc[0])[:40]!r}")
        out[:, j] = numbers.to_numpy(dtype=np.float64, na_value=np.nan)
    return out


def first_non_finite(frame: pd.DataFrame, columns: list[str], values: np.ndarray) -> tuple[str, str] | None:
    """The first of `columns` whose `values` (numeric_block's) are not all finite, and whether they are
    `missing` or `infinite`; None when every value is finite."""
    bad = ~np.isfinite(values)
    if not bad.any():
        return None
    col = columns[int(np.flatnonzero(bad.any(axis=0))[0])]
    return col, "missing" if frame[col].isna().any() else "infinite"


def _is_number_dtype(series: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series)


def column_kinds(train: pd.DataFrame, spec: DataSpec) -> tuple[list[str], list[str]]:
    numeric, categorical, too_many = [], [], []
    for col in train.columns:
        series = train[col]
        if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
            numeric.append(col)
        elif not _boolean(series) and _mostly_numeric(series):
            raise DataError(_placeholder_message(col, series))
        elif series.nunique() <= spec.max_categories:
            categorical.append(col)
        else:
            too_many.append(f"'{col}' ({series.nunique()} distinct values)")
    if too_many:
        raise DataError(f"data: non-numeric column(s) {', '.join(too_many[:5])} cannot be features: nnlab one-hot "
                        f"encodes non-numeric columns of at most {spec.max_categories} values "
                        "(data.max_categories); leave them out with data.exclude")
    return numeric, categorical


def _boolean(series: pd.Series) -> bool:
    """True/False values (a bool column, or one with missing values read as objects): a category, not numbers
    written as text."""
    present = series.dropna()
    return pd.api.types.is_bool_dtype(series) or (len(present) > 0 and present.map(
        lambda v: isinstance(v, (bool, np.bool_))).all())


def _mostly_numeric(series: pd.Series) -> bool:
    """A text column whose values are nearly all numbers: a placeholder such as '?' or 'n/a' slipped in."""
    present = series.dropna()
    return len(present) > 0 and pd.to_numeric(present, errors="coerce").notna().mean() >= 0.9


def _placeholder_message(col: str, series: pd.Series) -> str:
    present = series.dropna()
    numbers = pd.to_numeric(present, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    junk = present[~np.isfinite(numbers)]  # text, or numbers beyond float range such as 1e5000
    if len(junk) == 0:
        example = str(present.iloc[0])[:40]
        return (f"data: column '{col}' holds numbers written as text (such as {example!r}) that were not read as "
                "numbers; write them as plain numbers in the file")
    examples = ", ".join(repr(str(v)[:40]) for v in junk.unique()[:3])
    return (f"data: column '{col}' is numeric except for {len(junk)} value(s) such as {examples}; "
            "turn those into empty cells (missing values, see data.impute) or fix them in the file")


def check_missing(train: pd.DataFrame, spec: DataSpec) -> None:
    counts = train.isna().sum()
    counts = counts[counts > 0]
    if len(counts) and spec.impute is None:
        listed = ", ".join(f"'{c}' ({int(n)})" for c, n in counts.head(5).items())
        more = f" and {len(counts) - 5} more columns" if len(counts) > 5 else ""
        raise DataError(f"data: missing values in column(s) {listed}{more} of the training split; "
                        f"{IMPUTE_HINT} or clean the file")


def fill_values(train: pd.DataFrame, numeric: list[str], categorical: list[str], how: str) -> dict[str, Any]:
    empty = [c for c in numeric + categorical if train[c].notna().sum() == 0]
    if empty:
        raise DataError(f"data.impute: column(s) {', '.join(map(repr, empty[:5]))} have no values in the training "
                        f"split ({len(train)} rows), so there is nothing to impute from; leave them out with "
                        "data.exclude")
    fill: dict[str, Any] = {}
    for col in numeric:
        values = train[col].dropna()
        fill[col] = float({"mean": values.mean, "median": values.median}.get(how, lambda: values.mode().iloc[0])())
    for col in categorical:
        fill[col] = train[col].mode().iloc[0]
    return fill
