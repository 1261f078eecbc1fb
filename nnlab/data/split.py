"""Seeded train/validation/test split, stratified by label, and the fingerprint that says which split a run
evaluated. The split's seed is `data.split.seed` when set, else the spec's seed, so that repeats (which vary
the training seed) share one split."""

from __future__ import annotations

import hashlib
import json
from typing import Any, Optional

import numpy as np

from nnlab.core.messages import shown
from nnlab.errors import DataError
from nnlab.spec import SplitSpec

SPLITS = ("train", "val", "test")


def split_seed(spec: SplitSpec, seed: int) -> int:
    return spec.seed if spec.seed is not None else seed


def split_rows(n: int, labels: np.ndarray | None, val: float, test: float, seed: int,
               classes: list[Any]) -> dict[str, np.ndarray]:
    """Seeded train/val/test row numbers; stratified (each class in every split, in proportion) if labels."""
    rng = np.random.default_rng(seed)
    groups = [np.flatnonzero(labels == k) for k in range(len(classes))] if labels is not None else [np.arange(n)]
    parts: dict[str, list[np.ndarray]] = {name: [] for name in SPLITS}
    for k, rows in enumerate(groups):
        rows = rng.permutation(rows)
        n_test, n_val = max(1, round(len(rows) * test)), max(1, round(len(rows) * val))
        if len(rows) - n_test - n_val < 1:
            what = f"class {shown(classes[k])} has" if labels is not None else "the table has"
            raise DataError(f"data.split: {what} only {len(rows)} row(s); a train, validation and test split "
                            "need at least 3" + (" per class (or set data.split.stratify: false)"
                                                 if labels is not None else ""))
        parts["test"].append(rows[:n_test])
        parts["val"].append(rows[n_test:n_test + n_val])
        parts["train"].append(rows[n_test + n_val:])
    return {name: np.sort(np.concatenate(chunks)) for name, chunks in parts.items()}


def fingerprint(sha256: str, rows: int, columns: int, spec: SplitSpec, seed: int,
                stratified: bool, reading: Optional[dict[str, Any]] = None) -> dict[str, Any]:
    """What identifies the data and its split: equal `split` values mean the same test rows were evaluated.
    `reading`: settings besides the file that decide the input (image size, word vectors), kept beside it."""
    facts = {"sha256": sha256, "rows": rows, "columns": columns, "split_seed": seed, "val": spec.val,
             "test": spec.test, "stratify": stratified, **(reading or {})}
    facts["split"] = hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()[:16]
    return facts
