"""The within-noise rule: when a difference between two results is smaller than their spread.

With repeats, a result is the mean over N members (seeds seed … seed+N-1 on one split) and its spread the
members' standard deviation (ddof=1). The difference B − A is **within noise** when

    |mean_B − mean_A| < sqrt(sd_A² + sd_B²)

that is, smaller than the spread one would expect between a single member of A and a single member of B.
A result without repeats counts with sd 0; when neither side has a spread the rule cannot say (no label).
It is deliberately cautious: a change called real moved the metric by more than one run's typical scatter.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from nnlab.numbers import format_value, higher_is_better, stored_float

SINGLE_RUNS = ("single runs: a difference between them may be one lucky seed; train with --repeats 5 (or "
               "nnlab sweep --repeats 5) to measure the spread that tells a real change from noise")


@dataclass(frozen=True)
class Difference:
    """B − A on one metric column, with the combined spread (NaN when neither side has one)."""

    column: str
    delta: float
    spread: float

    @property
    def within_noise(self) -> bool:
        return not math.isnan(self.spread) and abs(self.delta) < self.spread

    @property
    def verdict(self) -> str:
        """`within noise`, `better`, `worse`, `same`, or "" when the column has no direction or a value is missing."""
        higher = higher_is_better(self.column)
        if higher is None or math.isnan(self.delta):
            return ""
        if self.within_noise:
            return "within noise"
        if self.delta == 0:
            return "same"
        return "better" if (self.delta > 0) == higher else "worse"

    def text(self, digits: int = 4) -> str:
        """`+0.0040 ± 0.0060`, or `+0.0040` without a spread."""
        delta = format_value(self.delta, digits, signed=True)
        return delta if math.isnan(self.spread) or not delta else f"{delta} ± {format_value(self.spread, digits)}"


def difference(column: str, a: dict[str, Any], b: dict[str, Any]) -> Difference:
    """B − A on `column` of two rows (see rows.py), each with its `<column>_sd` where it was repeated."""
    va, vb = stored_float(a.get(column)), stored_float(b.get(column))
    sa, sb = stored_float(a.get(column + "_sd")), stored_float(b.get(column + "_sd"))
    spread = math.nan if math.isnan(sa) and math.isnan(sb) else math.hypot(
        0.0 if math.isnan(sa) else sa, 0.0 if math.isnan(sb) else sb)
    return Difference(column, vb - va, spread)
