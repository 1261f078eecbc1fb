"""The predictions file: every val and test row with its target, the model's prediction and, for
classification, its confidence and each class's probability, in the data's own labels and units (the HTML
report draws its curves from it; `Run.predictions` reads it back)."""

from __future__ import annotations

from typing import Optional

import numpy as np
import pandas as pd

from nnlab.data.prepared import Prepared
from nnlab.data.preprocess import Preprocessor

SPLITS = ("val", "test")


def predictions_table(prepared: Prepared, outputs: dict[str, Optional[np.ndarray]],
                      predicted: Optional[dict[str, np.ndarray]] = None) -> pd.DataFrame:
    """Columns `split,row,target,prediction,confidence,p_<label>...` (regression: `split,row,target,
    prediction`) for the splits `outputs` holds. `outputs`: the model's probabilities (binary: P(positive)
    [N]; multiclass [N, K]) or standardized regression predictions; `predicted`: the class index per row
    where a decision threshold other than 0.5 made it (else the most probable class). `row` is the row's
    number in the original table, as in the errors file."""
    preprocessor = Preprocessor.from_state(prepared.preprocessing)
    column = preprocessor.target.column
    parts = []
    for split in SPLITS:
        out = outputs.get(split)
        if out is None:
            continue
        rows = prepared.rows[split]
        part = pd.DataFrame({"split": split, "row": prepared.frame.index[rows]})
        if prepared.task == "regression":
            part["target"] = prepared.frame[column].to_numpy()[rows]
            part["prediction"] = preprocessor.decode(np.asarray(out))
        else:
            probs = np.asarray(out, dtype=np.float64)
            probs = np.stack([1 - probs, probs], axis=1) if prepared.task == "binary" else probs
            index = predicted[split] if predicted and split in predicted else probs.argmax(axis=1)
            labels = np.array([str(c) for c in prepared.classes], dtype=object)
            part["target"] = labels[prepared.y[split].astype(int)]
            part["prediction"] = labels[index]
            part["confidence"] = probs[np.arange(len(index)), index]
            for k, label in enumerate(labels):
                part[f"p_{label}"] = probs[:, k]
        parts.append(part)
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
