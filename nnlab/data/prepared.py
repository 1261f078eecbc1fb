"""Data: read a source, check it, infer the task, split it, and fit preprocessing on the training split only.

Everything here is pandas and numpy, no torch: the result is arrays that `train` moves to the device once. The
split and the scaler are a few lines of numpy rather than scikit-learn's, because importing scikit-learn costs
1.5-2.5 s on a 2-core machine, most of nnlab's time budget for a whole run.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd

from nnlab.data.arrays import ArrayEncoder
from nnlab.data.preprocess import FeatureEncoder, Preprocessor
from nnlab.data.images import is_image_source, read_images
from nnlab.data.mixed import MixedEncoder
from nnlab.data.read import Source, read_source, unusable_column_message
from nnlab.core.messages import names_list, plain
from nnlab.data.split import fingerprint, split_rows, split_seed
from nnlab.data.table import TableEncoder
from nnlab.data.target import fit_target
from nnlab.data.text import TextEncoder, VectorsRead, read_vectors
from nnlab.errors import DataError
from nnlab.core.inputs import InputInfo, SparseRows
from nnlab.core.jsonvalue import JSONObject, JSONValue
from nnlab.core.records import DataSummary, InputSummary
from nnlab.spec import DataSpec


@dataclass
class Prepared:
    """The splits as arrays, plus what is needed to explain and repeat the preprocessing."""

    task: str
    x: dict[str, np.ndarray]  # split name -> model input: [N, F], text ids [N, T], [N, T, F] or [N, C, H, W]
    y: dict[str, np.ndarray]  # split name -> targets [N] (class index, 0/1, or standardized value)
    rows: dict[str, np.ndarray]  # split name -> row numbers in the original table
    frame: pd.DataFrame  # the original table, for showing misclassified examples
    feature_names: list[str]
    classes: list[JSONValue] = field(default_factory=list)  # labels as read from the table (str, int, ...)
    preprocessing: JSONObject = field(default_factory=dict)  # Preprocessor.state(): JSON for the run folder
    summary: Optional[DataSummary] = None
    info: Optional[InputInfo] = None
    baseline_x: dict[str, np.ndarray | SparseRows] = field(default_factory=dict)  # the baseline's input per split
    vectors: Optional[VectorsRead] = None  # data.text.vectors: the embedding's start (also in info.vectors)

    @property
    def n_features(self) -> int:
        """Values per example, flattened (text: token positions)."""
        return self.info.n_features if self.info else int(np.prod(self.x["train"].shape[1:]))

    @property
    def n_outputs(self) -> int:
        return len(self.classes) if self.task == "multiclass" else 1

    @property
    def fingerprint(self) -> Optional[JSONObject]:
        """Which data and split these are (DataSummary.fingerprint)."""
        return self.summary.fingerprint if self.summary is not None else None

    @property
    def preprocessor(self) -> Preprocessor:
        return Preprocessor.from_state(self.preprocessing)


def prepare(spec: DataSpec, base_dir: Path, seed: int, cache_dir: Optional[Path] = None) -> Prepared:
    """Load, check, split and preprocess the data a spec names. Raises DataError with the fix.

    `seed` is the spec's seed; the split uses `spec.split.seed` when it is set. `cache_dir`: where decoded
    image files are kept between runs (the run store's image cache; None: decode every time)."""
    source = read_images(spec, base_dir, cache_dir) if is_image_source(spec) else read_source(spec, base_dir, seed)
    frame = source.frame
    if frame.empty or len(frame.columns) == 0:
        raise DataError(f"{source.name}: the table is empty")
    _check_target_column(spec, frame, source.name)
    features = _feature_columns(spec, frame, source)
    target, y_all, why = fit_target(spec, frame[spec.target])
    # Strata by label value, not by class index, so that choosing data.positive leaves the split unchanged.
    stratified = spec.split.stratify and target.task != "regression"
    strata, labels = pd.factorize(frame[spec.target], sort=True) if stratified else (None, [])
    seed_of_split = split_seed(spec.split, seed)
    splits = split_rows(len(frame), strata, spec.split.val, spec.split.test, seed_of_split,
                        [plain(v) for v in labels])
    encoder = _fit_features(spec, frame.iloc[splits["train"]][features], source)
    preprocessor = Preprocessor(spec.input_kind, target, encoder)
    vectors = _word_vectors(spec, base_dir, encoder)
    x = {name: encoder.transform(frame.iloc[rows][features]) for name, rows in splits.items()}
    baseline_x = _baseline_inputs(preprocessor, frame, features, splits, x)
    if target.task == "regression":
        target.fit_scale(y_all[splits["train"]])
        y = {name: target.standardize(y_all[rows]) for name, rows in splits.items()}
    else:
        y = {name: y_all[rows] for name, rows in splits.items()}
    summary = _summary(source, frame, features, preprocessor, why, splits, y_all)
    summary.images = source.notes.get("images")  # image files: how many were read, resized, skipped
    summary.vectors = vectors.note() if vectors else None
    summary.fingerprint = fingerprint(source.sha256, len(frame), len(frame.columns), spec.split, seed_of_split,
                                         stratified, _reading_facts(spec, vectors))
    names = encoder.encoded_names if isinstance(encoder, TableEncoder) else list(features)
    if isinstance(encoder, MixedEncoder):  # the text column, then the table part's values
        names = [spec.text.column, *encoder.encoded_names]
    info = replace(preprocessor.info(), vectors=vectors.vectors) if vectors else preprocessor.info()
    return Prepared(target.task, x, y, splits, frame, names, target.classes, preprocessor.state(), summary,
                    info, baseline_x, vectors)


def _word_vectors(spec: DataSpec, base_dir: Path, encoder: FeatureEncoder) -> Optional[VectorsRead]:
    """data.text.vectors for the vocabulary just fitted (a text column beside others: its text part's)."""
    if spec.text is None or spec.text.vectors is None:
        return None
    text = encoder.text if isinstance(encoder, MixedEncoder) else encoder
    assert isinstance(text, TextEncoder)
    return read_vectors(spec.text, base_dir, text.tokens)


def _reading_facts(spec: DataSpec, vectors: Optional[VectorsRead]) -> JSONObject:
    """What else decides the model's input besides the file: image files' reading, and the word vectors' file
    (the data fingerprint holds them, so runs that differ in them are not the same data)."""
    facts: JSONObject = {}
    if spec.image is not None and spec.image.from_files:
        facts["image"] = {"size": list(spec.image.size or []), "channels": spec.image.channels,
                          "skip_bad": spec.image.skip_bad}
    if vectors is not None:
        facts["vectors"] = vectors.sha256
    return facts


def _summary(source: Source, frame: pd.DataFrame, features: list[str], preprocessor: Preprocessor, why: str,
             splits: dict[str, np.ndarray], y_all: np.ndarray) -> DataSummary:
    """What `train` prints and summary.json keeps about the data."""
    info, target = preprocessor.info(), preprocessor.target
    summary = DataSummary(source.name, len(frame), info.n_features, len(features), target.task, why,
                          InputSummary(info.kind, list(info.shape), info.vocab_size),
                          {name: len(rows) for name, rows in splits.items()})
    if target.task != "regression":
        summary.classes = {str(c): int((y_all == i).sum()) for i, c in enumerate(target.classes)}
        if target.task == "binary":
            summary.positive = str(target.classes[1])
    return summary


def _check_target_column(spec: DataSpec, frame: pd.DataFrame, source: str) -> None:
    if spec.target in frame.columns:
        return
    hint = ""
    if len(frame.columns) == 1 and any(sep in str(frame.columns[0]) for sep in ";\t|"):
        hint = ("; the file looks separated by something other than commas (nnlab reads .csv as "
                "comma-separated and .tsv as tab-separated)")
    raise DataError(f"data.target: column '{spec.target}' not found in {source} "
                    f"(columns: {names_list(frame.columns)}){hint}")


def _feature_columns(spec: DataSpec, frame: pd.DataFrame, source: Source) -> list[str]:
    for field_name in ("include", "exclude"):
        missing = [c for c in getattr(spec, field_name) or [] if c not in frame.columns]
        if missing:
            raise DataError(f"data.{field_name}: column(s) {', '.join(map(repr, missing[:5]))} not found in "
                            f"{source.name} (columns: {names_list(frame.columns)})")
    chosen = spec.include if spec.include is not None else list(frame.columns)
    features = [c for c in chosen if c != spec.target and c not in spec.exclude and c not in source.shown]
    for column in [spec.target, *features]:
        if column in source.unusable:
            raise DataError(unusable_column_message(column, source.unusable[column], source.name,
                                                    column == spec.target))
    if spec.text is not None:
        return _text_columns(spec, frame, features, source.name)
    if not features:
        raise DataError(f"data: no feature columns left in {source.name} after the target, include and exclude")
    _check_array_kind(spec, source)
    return features


def _text_columns(spec: DataSpec, frame: pd.DataFrame, features: list[str], source: str) -> list[str]:
    column = spec.text.column
    if column in spec.exclude:
        raise DataError(f"data.text.column: column '{column}' is also in data.exclude; the text column is the "
                        "feature of a text model")
    if column == spec.target or column not in frame.columns:
        raise DataError(f"data.text.column: column '{column}' not found in {source} among the feature columns "
                        f"(columns: {names_list(frame.columns)})")
    # Other feature columns are read beside the text (nnlab.data.mixed); data.include: [column] leaves them out.
    return [column, *(c for c in features if c != column)]


def _check_array_kind(spec: DataSpec, source: Source) -> None:
    """A 3-D or 4-D .npz X says how it must be read; the spec must say the same."""
    dims = len(source.array_shape or ()) + 1
    needs = {3: ("sequence", "[N, T, F]"), 4: ("image", "[N, C, H, W]")}.get(dims)
    if needs and spec.input_kind != needs[0]:
        raise DataError(f"data.{needs[0]}: X in {source.name} is {dims}-D {needs[1]} = "
                        f"{[len(source.frame), *source.array_shape]}; add data.{needs[0]}: {{}} to read it")


def _fit_features(spec: DataSpec, train: pd.DataFrame, source: Source) -> FeatureEncoder:
    if spec.text is not None and len(train.columns) > 1:
        return MixedEncoder.fit(train, spec)
    if spec.text is not None:
        return TextEncoder.fit(train, spec.text)
    if spec.input_kind in ("sequence", "image"):
        return ArrayEncoder.fit(train, spec, source.array_shape)
    return TableEncoder.fit(train, spec)


def _baseline_inputs(preprocessor: Preprocessor, frame: pd.DataFrame, features: list[str],
                     splits: dict[str, np.ndarray], x: dict[str, np.ndarray]) -> dict[str, np.ndarray | SparseRows]:
    if preprocessor.kind == "table":
        return dict(x)  # the same arrays: no copy
    if preprocessor.kind == "text":
        return {name: preprocessor.baseline_transform(frame.iloc[rows][features]) for name, rows in splits.items()}
    return {name: values.reshape(len(values), -1) for name, values in x.items()}


def shrink_train(prepared: Prepared, rows: int, seed: int) -> None:
    """Keep a seeded random `rows` of the (stratified) training split, for `--smoke` runs."""
    n = len(prepared.rows["train"])
    if n <= rows:
        return
    keep = np.sort(np.random.default_rng(seed).choice(n, rows, replace=False))
    for arrays in (prepared.x, prepared.y, prepared.rows):
        arrays["train"] = arrays["train"][keep]
    baseline = prepared.baseline_x.get("train")
    if isinstance(baseline, SparseRows):
        prepared.baseline_x["train"] = baseline.take(keep)
    elif baseline is not None:
        prepared.baseline_x["train"] = baseline[keep]
    if prepared.summary is not None:
        prepared.summary.split["train"] = rows
