"""Data: read a table, check it, infer the task, split it, and fit preprocessing on the training split only.

Everything here is pandas and numpy, no torch: the result is float32 arrays that `train` moves to the device
once. The split and the scaler are a few lines of numpy rather than scikit-learn's, because importing
scikit-learn costs 1.5-2.5 s on a 2-core machine, most of nnlab's time budget for a whole run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nnlab.errors import DataError
from nnlab.spec import DataSpec

MAX_CLASS_LEVELS = 20  # a numeric target with at most this many integer levels is a classification target
READERS = {".csv": pd.read_csv, ".txt": pd.read_csv, ".tsv": lambda p: pd.read_csv(p, sep="\t"),
           ".parquet": pd.read_parquet, ".pq": pd.read_parquet}


@dataclass
class Prepared:
    """The splits as float32 arrays, plus what is needed to explain and repeat the preprocessing."""

    task: str
    x: dict[str, np.ndarray]  # split name -> features [N, F]
    y: dict[str, np.ndarray]  # split name -> targets [N] (class index, 0/1, or standardized value)
    rows: dict[str, np.ndarray]  # split name -> row numbers in the original table
    frame: pd.DataFrame  # the original table, for showing misclassified examples
    feature_names: list[str]
    classes: list[Any] = field(default_factory=list)
    preprocessing: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def n_features(self) -> int:
        return self.x["train"].shape[1]

    @property
    def n_outputs(self) -> int:
        return len(self.classes) if self.task == "multiclass" else 1


def prepare(spec: DataSpec, base_dir: Path, seed: int) -> Prepared:
    """Load, check, split and preprocess the data a spec names. Raises DataError with the fix."""
    frame, source = read_table(spec, base_dir, seed)
    if frame.empty or len(frame.columns) == 0:
        raise DataError(f"{source}: the table is empty")
    if spec.target not in frame.columns:
        hint = ""
        if len(frame.columns) == 1 and any(sep in str(frame.columns[0]) for sep in ";\t|"):
            hint = ("; the file looks separated by something other than commas (nnlab reads .csv as "
                    "comma-separated and .tsv as tab-separated)")
        raise DataError(f"data.target: column '{spec.target}' not found in {source} "
                        f"(columns: {_names(frame.columns)}){hint}")
    features = _feature_columns(spec, frame, source)
    target = frame[spec.target]
    if target.isna().any():
        raise DataError(f"data.target: column '{spec.target}' has {int(target.isna().sum())} missing values; "
                        "drop those rows from the file")
    task, why = _infer_task(spec, target)
    classes, y_all = _encode_target(spec, task, target)
    # Strata by label value, not by class index, so that choosing data.positive leaves the split unchanged.
    strata, labels = pd.factorize(target, sort=True) if task != "regression" else (None, [])
    splits = _split(len(frame), strata if spec.split.stratify else None, spec.split.val, spec.split.test, seed,
                    [_plain(v) for v in labels])
    encoder = TableEncoder.fit(frame.iloc[splits["train"]][features], spec)
    x = {name: encoder.transform(frame.iloc[rows][features]) for name, rows in splits.items()}
    y = {name: y_all[rows] for name, rows in splits.items()}
    preprocessing = {"target": spec.target, "task": task, "classes": classes, **encoder.state()}
    if task == "regression":
        mean, std = float(y["train"].mean()), float(y["train"].std()) or 1.0
        y = {name: ((v - mean) / std).astype(np.float32) for name, v in y.items()}
        preprocessing.update(target_mean=mean, target_std=std)
    summary = {"source": source, "rows": len(frame), "features": len(encoder.encoded_names),
               "columns": len(features), "task": task, "task_reason": why,
               "split": {name: len(rows) for name, rows in splits.items()}}
    if task != "regression":
        summary["classes"] = {str(c): int((y_all == i).sum()) for i, c in enumerate(classes)}
        if task == "binary":
            summary["positive"] = str(classes[1])
    return Prepared(task, x, y, splits, frame, encoder.encoded_names, classes, preprocessing, summary)


def read_table(spec: DataSpec, base_dir: Path, seed: int) -> tuple[pd.DataFrame, str]:
    if spec.builtin:
        return builtin_table(spec.builtin, seed), f"builtin:{spec.builtin}"
    path = Path(spec.path)
    path = path if path.is_absolute() else base_dir / path
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        raise DataError(f"data.path: cannot read '{path.name}': expected one of {', '.join(READERS)} files")
    if path.is_dir():
        raise DataError(f"data.path: {path} is a folder; expected a {'/'.join(READERS)} file")
    if not path.is_file():
        raise DataError(f"data.path: file not found: {path}")
    try:
        return reader(path), path.name
    except ImportError as e:
        raise DataError(f"data.path: reading {path.name} needs an extra package: {e}") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError, ValueError) as e:
        first_line = str(e).strip().splitlines()[0] if str(e).strip() else e.__class__.__name__
        raise DataError(f"data.path: cannot parse {path.name}: {first_line}") from None


def builtin_table(name: str, seed: int) -> pd.DataFrame:
    """Small sets that ship with scikit-learn, or are generated (moons, xor) for non-linear checks."""
    rng = np.random.default_rng(seed)
    if name in ("moons", "xor"):
        n = 600
        if name == "moons":
            t = rng.uniform(0, np.pi, n)
            label = rng.integers(0, 2, n)
            x1 = np.where(label == 0, np.cos(t), 1 - np.cos(t))
            x2 = np.where(label == 0, np.sin(t), 0.5 - np.sin(t))
        else:
            x1, x2 = rng.uniform(-1, 1, n), rng.uniform(-1, 1, n)
            label = ((x1 > 0) ^ (x2 > 0)).astype(int)
        noise = rng.normal(0, 0.1, (2, n))
        return pd.DataFrame({"x1": x1 + noise[0], "x2": x2 + noise[1], "target": label})
    try:
        from sklearn import datasets
    except ImportError:
        raise DataError(f"data.builtin: '{name}' ships with scikit-learn: pip install scikit-learn") from None
    bunch = getattr(datasets, f"load_{name}")(as_frame=True)
    return bunch.frame


def _names(columns: Any, limit: int = 12) -> str:
    names = [str(c) for c in columns]
    return ", ".join(names if len(names) <= limit else names[:limit - 1] + ["...", names[-1]])


def _feature_columns(spec: DataSpec, frame: pd.DataFrame, source: str) -> list[str]:
    for field_name in ("include", "exclude"):
        missing = [c for c in getattr(spec, field_name) or [] if c not in frame.columns]
        if missing:
            raise DataError(f"data.{field_name}: column(s) {', '.join(map(repr, missing))} not found in {source} "
                            f"(columns: {_names(frame.columns)})")
    chosen = spec.include if spec.include is not None else list(frame.columns)
    features = [c for c in chosen if c != spec.target and c not in spec.exclude]
    if not features:
        raise DataError(f"data: no feature columns left in {source} after the target, include and exclude")
    return features


def _infer_task(spec: DataSpec, target: pd.Series) -> tuple[str, str]:
    levels = target.nunique()
    numeric = pd.api.types.is_numeric_dtype(target) and not pd.api.types.is_bool_dtype(target)
    if spec.task == "regression":
        if not numeric:
            raise DataError(f"data.task: regression needs a numeric target; column '{spec.target}' "
                            f"holds {target.dtype} values such as {_plain(target.iloc[0])!r}")
        return "regression", "set in the spec"
    if spec.task == "auto" and numeric and (levels > MAX_CLASS_LEVELS or not _integer_valued(target)):
        return "regression", f"numeric target with {levels} distinct values"
    if levels < 2:
        raise DataError(f"data.target: column '{spec.target}' has a single class ({_plain(target.iloc[0])!r}); "
                        "a classifier needs at least two")
    if spec.task == "binary" and levels != 2:
        raise DataError(f"data.task: binary needs exactly 2 classes; column '{spec.target}' has {levels}")
    task = spec.task if spec.task != "auto" else ("binary" if levels == 2 else "multiclass")
    return task, "set in the spec" if spec.task != "auto" else f"target with {levels} classes"


def _integer_valued(values: pd.Series) -> bool:
    return bool(np.all(np.mod(values.to_numpy(dtype=float), 1) == 0))


def _encode_target(spec: DataSpec, task: str, target: pd.Series) -> tuple[list[Any], np.ndarray]:
    if task == "regression":
        if not np.isfinite(target.to_numpy(dtype=float)).all():
            raise DataError(f"data.target: column '{spec.target}' has infinite values")
        return [], target.to_numpy(dtype=np.float32)
    classes = sorted(target.unique().tolist(), key=lambda v: (str(type(v)), v))
    if task == "binary":
        positive = _positive_class(spec, classes)
        classes = [c for c in classes if c != positive] + [positive]
    index = {c: i for i, c in enumerate(classes)}
    codes = target.map(index).to_numpy()
    return [_plain(c) for c in classes], codes.astype(np.float32 if task == "binary" else np.int64)


def _positive_class(spec: DataSpec, classes: list[Any]) -> Any:
    if spec.positive is not None:
        for c in classes:
            if str(c) == str(spec.positive):
                return c
        raise DataError(f"data.positive: expected one of {', '.join(map(repr, classes))}; got {spec.positive!r}")
    for c in classes:
        if c is True or (isinstance(c, (int, np.integer)) and c == 1):
            return c
    return classes[1]


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def _split(n: int, labels: np.ndarray | None, val: float, test: float, seed: int,
           classes: list[Any]) -> dict[str, np.ndarray]:
    """Seeded train/val/test row numbers; stratified (each class in every split, in proportion) if labels."""
    rng = np.random.default_rng(seed)
    groups = [np.flatnonzero(labels == k) for k in range(len(classes))] if labels is not None else [np.arange(n)]
    parts: dict[str, list[np.ndarray]] = {"train": [], "val": [], "test": []}
    for k, rows in enumerate(groups):
        rows = rng.permutation(rows)
        n_test, n_val = max(1, round(len(rows) * test)), max(1, round(len(rows) * val))
        if len(rows) - n_test - n_val < 1:
            what = f"class {classes[k]!r} has" if labels is not None else "the table has"
            raise DataError(f"data.split: {what} only {len(rows)} row(s); a train, validation and test split "
                            "need at least 3" + (" per class (or set data.split.stratify: false)"
                                                 if labels is not None else ""))
        parts["test"].append(rows[:n_test])
        parts["val"].append(rows[n_test:n_test + n_val])
        parts["train"].append(rows[n_test + n_val:])
    return {name: np.sort(np.concatenate(chunks)) for name, chunks in parts.items()}


class TableEncoder:
    """One-hot for small categorical columns, imputation and scaling; statistics from the training split."""

    def __init__(self, numeric: list[str], categories: dict[str, list[Any]], fill: dict[str, Any],
                 scale: str, center: np.ndarray, spread: np.ndarray):
        self.numeric, self.categories, self.fill = numeric, categories, fill
        self.scale, self.center, self.spread = scale, center, spread

    @property
    def encoded_names(self) -> list[str]:
        return self.numeric + [f"{col}={level}" for col, levels in self.categories.items() for level in levels]

    @classmethod
    def fit(cls, train: pd.DataFrame, spec: DataSpec) -> TableEncoder:
        numeric, categorical = _column_kinds(train, spec)
        _check_missing(train, spec)
        fill = _fill_values(train, numeric, categorical, spec.impute) if spec.impute else {}
        categories = {c: sorted(train[c].fillna(fill.get(c)).dropna().unique().tolist(), key=str)
                      for c in categorical}
        encoder = cls(numeric, categories, fill, spec.scale, np.zeros(0), np.ones(0))
        raw = encoder._encode(train)
        if spec.scale == "standard":
            center, spread = raw.mean(axis=0), raw.std(axis=0)
        elif spec.scale == "minmax":
            center, spread = raw.min(axis=0), raw.max(axis=0) - raw.min(axis=0)
        else:
            center, spread = np.zeros(raw.shape[1]), np.ones(raw.shape[1])
        encoder.center, encoder.spread = center, np.where(spread > 0, spread, 1.0)  # constant columns stay 0
        return encoder

    def _encode(self, frame: pd.DataFrame) -> np.ndarray:
        frame = frame.fillna(self.fill) if self.fill else frame
        numeric = frame[self.numeric].to_numpy(dtype=np.float64)
        bad = ~np.isfinite(numeric)
        if bad.any():
            col = self.numeric[int(np.flatnonzero(bad.any(axis=0))[0])]
            what = "missing" if frame[col].isna().any() else "infinite"
            raise DataError(f"data: column '{col}' has {what} values; clean the file"
                            + (" or set data.impute: mean|median|most_frequent" if what == "missing" else ""))
        onehots = [(frame[col].to_numpy()[:, None] == np.array(levels, dtype=object)[None, :]).astype(np.float64)
                   for col, levels in self.categories.items()]
        return np.hstack([numeric, *onehots]) if onehots else numeric

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        return ((self._encode(frame) - self.center) / self.spread).astype(np.float32)

    def state(self) -> dict[str, Any]:
        return {"numeric": self.numeric, "categories": {k: [_plain(v) for v in vs] for k, vs in
                                                        self.categories.items()},
                "impute": {k: _plain(v) for k, v in self.fill.items()}, "scale": self.scale,
                "center": self.center.tolist(), "spread": self.spread.tolist(), "features": self.encoded_names}


def _column_kinds(train: pd.DataFrame, spec: DataSpec) -> tuple[list[str], list[str]]:
    numeric, categorical, too_many = [], [], []
    for col in train.columns:
        series = train[col]
        if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
            numeric.append(col)
        elif _mostly_numeric(series):
            junk = series[pd.to_numeric(series, errors="coerce").isna() & series.notna()]
            examples = ", ".join(repr(v) for v in junk.unique()[:3])
            raise DataError(f"data: column '{col}' is numeric except for {len(junk)} value(s) such as {examples}; "
                            "turn those into empty cells (missing values, see data.impute) or fix them in the file")
        elif series.nunique() <= spec.max_categories:
            categorical.append(col)
        else:
            too_many.append(f"'{col}' ({series.nunique()} distinct values)")
    if too_many:
        raise DataError(f"data: non-numeric column(s) {', '.join(too_many)} cannot be features: nnlab one-hot "
                        f"encodes non-numeric columns of at most {spec.max_categories} values "
                        "(data.max_categories); leave them out with data.exclude")
    return numeric, categorical


def _mostly_numeric(series: pd.Series) -> bool:
    """A text column whose values are nearly all numbers: a placeholder such as '?' or 'n/a' slipped in."""
    present = series.dropna()
    return len(present) > 0 and pd.to_numeric(present, errors="coerce").notna().mean() >= 0.9


def _check_missing(train: pd.DataFrame, spec: DataSpec) -> None:
    counts = train.isna().sum()
    counts = counts[counts > 0]
    if len(counts) and spec.impute is None:
        listed = ", ".join(f"'{c}' ({int(n)})" for c, n in counts.head(5).items())
        more = f" and {len(counts) - 5} more columns" if len(counts) > 5 else ""
        raise DataError(f"data: missing values in column(s) {listed}{more} of the training split; "
                        "set data.impute: mean|median|most_frequent or clean the file")


def _fill_values(train: pd.DataFrame, numeric: list[str], categorical: list[str], how: str) -> dict[str, Any]:
    fill: dict[str, Any] = {}
    for col in numeric:
        values = train[col].dropna()
        fill[col] = float({"mean": values.mean, "median": values.median}.get(how, lambda: values.mode().iloc[0])())
    for col in categorical:
        fill[col] = train[col].mode().iloc[0]
    return fill


def misclassified(prepared: Prepared, outputs: np.ndarray, split: str = "val", limit: int = 500) -> pd.DataFrame:
    """The examples of a split a model gets wrong, most confident first, with their original columns.

    `outputs` are probabilities (binary: of the positive class; multiclass: [N, K]) or, for regression,
    predictions in the target's units (then the largest errors come first).
    """
    rows = prepared.rows[split]
    original = prepared.frame.iloc[rows].reset_index(names="row")
    target = prepared.preprocessing["target"]
    if prepared.task == "regression":
        pred = pd.Series(outputs, name="predicted")
        error = (pred - original[target].to_numpy()).abs()
        table = pd.concat([original[["row"]], pred, error.rename("abs_error")], axis=1)
        order = error.sort_values(ascending=False).index
    else:
        probs = np.stack([1 - outputs, outputs], axis=1) if prepared.task == "binary" else outputs
        predicted = probs.argmax(axis=1)
        truth = prepared.y[split].astype(int)
        classes = np.array(prepared.classes, dtype=object)
        table = pd.DataFrame({"row": original["row"], "true": classes[truth], "predicted": classes[predicted],
                              "confidence": probs.max(axis=1)})
        wrong = np.flatnonzero(predicted != truth)
        order = table.iloc[wrong].sort_values("confidence", ascending=False).index
    features = original.drop(columns=["row"])
    return pd.concat([table, features.drop(columns=[c for c in features if c in table])], axis=1).loc[
        order[:limit]].reset_index(drop=True)


def shrink_train(prepared: Prepared, rows: int, seed: int) -> None:
    """Keep a seeded random `rows` of the (stratified) training split, for `--smoke` runs."""
    n = len(prepared.rows["train"])
    if n <= rows:
        return
    keep = np.sort(np.random.default_rng(seed).choice(n, rows, replace=False))
    for arrays in (prepared.x, prepared.y, prepared.rows):
        arrays["train"] = arrays["train"][keep]
    prepared.summary["split"]["train"] = rows
