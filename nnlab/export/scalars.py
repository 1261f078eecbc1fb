"""What a run folder exports, read once and torch-free: per model, its result and each member's epochs.

The numbers are metrics.csv's and summary.json's as they are; an empty cell (the baseline's `lr`) is
left out, never sent as NaN.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

from nnlab.core.columns import metric_column, SD_SUFFIX
from nnlab.core.records import ModelResult
from nnlab.core.settings import Settings
from nnlab.errors import RunError
from nnlab.runstore import Run

NOT_SCALARS = ("model", "member", "epoch")
SUMMARY_PREFIX = "summary/"  # a model's recorded val/test scores, beside the per-epoch series of metrics.csv


@dataclass
class Member:
    member: int
    epochs: dict[int, dict[str, float]] = field(default_factory=dict)  # epoch -> column -> value


@dataclass
class ModelScalars:
    """One model of a run: its settings, its recorded result (None while it trains) and its members."""

    name: str
    params: dict[str, object]
    result: Optional[ModelResult]
    members: dict[int, Member]

    def summary_scores(self) -> dict[str, float]:
        """`summary/val_accuracy`, ... (and `_sd` with repeats): the scores summary.json records."""
        if self.result is None:
            return {}
        scores: dict[str, float] = {}
        for split in ("val", "test"):
            for suffix, values in (("", getattr(self.result, split)), (SD_SUFFIX, getattr(self.result, f"{split}_sd"))):
                for metric, value in values.items():
                    if value is not None and math.isfinite(value):
                        scores[f"{SUMMARY_PREFIX}{metric_column(split, metric)}{suffix}"] = float(value)
        return scores


def model_scalars(run: Run, only: Optional[list[str]] = None) -> list[ModelScalars]:
    """Every model of the run (or those in `only`) with what metrics.csv and summary.json hold for it."""
    frame = run.metrics()
    summary = run.summary
    settings = Settings.of(run.spec)
    names = list(summary.models) if summary else []
    names += [n for n in dict.fromkeys(frame["model"]) if n not in names]
    if only:
        unknown = [n for n in only if n not in names]
        if unknown:
            raise RunError(f"--model: run '{run.id}' has no model '{unknown[0]}' (models: {', '.join(names) or 'none'})")
        names = [n for n in names if n in only]
    found = []
    for name in names:
        own = settings.baseline if name == "baseline" else settings.models.get(name, {})
        members: dict[int, Member] = {}
        for row in frame[frame["model"] == name].to_dict("records"):
            member = members.setdefault(int(row["member"]), Member(int(row["member"])))
            member.epochs[int(row["epoch"])] = {
                k: float(v) for k, v in row.items()
                if k not in NOT_SCALARS and isinstance(v, (int, float)) and math.isfinite(v)}
        found.append(ModelScalars(name, {**settings.shared, **own}, summary.models.get(name) if summary else None,
                                  members))
    return found
