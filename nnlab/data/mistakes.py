"""The errors file: the validation rows a model gets wrong (regression: every row, largest error first), with
what a person needs to see them — the original columns of a table, the original text of a message, and for
sequences and images only the row number (a thousand pixel columns explain nothing), and for image files the
file."""

from __future__ import annotations

import numpy as np
import pandas as pd

from nnlab.data.images import FILE_COLUMN
from nnlab.data.prepared import Prepared
from nnlab.data.preprocess import Preprocessor

ARRAY_KINDS = ("sequence", "image")


def misclassified(prepared: Prepared, outputs: np.ndarray, split: str = "val", limit: int = 500) -> pd.DataFrame:
    """The examples of a split a model gets wrong, most confident first, with their original values.

    `outputs` are what the model gives: probabilities for classification (binary: of the positive class,
    multiclass: [N, K]) or standardized predictions for regression, converted here to the target's units.
    Regression keeps every row of the split (so its RMSE can be recomputed from the file); classification at
    most `limit` wrong rows."""
    preprocessor = Preprocessor.from_state(prepared.preprocessing)
    rows = prepared.rows[split]
    original = prepared.frame.iloc[rows].reset_index(names="row")
    target = preprocessor.target.column
    outputs = np.asarray(outputs)
    if prepared.task == "regression":
        predicted = preprocessor.decode(outputs)
        truth = original[target].to_numpy(dtype=np.float64)
        error = np.abs(predicted - truth)
        table = pd.DataFrame({"row": original["row"], "true": truth, "predicted": predicted, "abs_error": error})
        order = np.argsort(-error, kind="stable")
    else:
        probs = np.stack([1 - outputs, outputs], axis=1) if prepared.task == "binary" else outputs
        predicted_index = probs.argmax(axis=1)
        truth_index = prepared.y[split].astype(int)
        classes = np.array(prepared.classes, dtype=object)
        table = pd.DataFrame({"row": original["row"], "true": classes[truth_index],
                              "predicted": classes[predicted_index], "confidence": probs.max(axis=1)})
        wrong = np.flatnonzero(predicted_index != truth_index)
        order = wrong[np.argsort(-table["confidence"].to_numpy()[wrong], kind="stable")][:limit]
    shown = _original_columns(prepared, preprocessor, original, target)
    extra = shown.drop(columns=[c for c in shown if c in table])
    return pd.concat([table, extra], axis=1).iloc[order].reset_index(drop=True)


def _original_columns(prepared: Prepared, preprocessor: Preprocessor, original: pd.DataFrame,
                      target: str) -> pd.DataFrame:
    if preprocessor.kind in ARRAY_KINDS:  # image files: the file names the example
        return original[[c for c in (FILE_COLUMN,) if c in original and c != target]]
    if preprocessor.kind == "text":
        return original[preprocessor.columns]
    return original.drop(columns=["row"])
