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
from typing import Mapping

from nnlab.core.numbers import exact_difference, format_spread, stored_float
from nnlab.core.columns import higher_is_better

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
        """`+0.0040 ± 0.0060`, or `+0.0040` without a spread (numbers.format_spread: one way to write both)."""
        return format_spread(self.delta, self.spread, digits, signed=True)


def combined_spread(sd_a: object, sd_b: object) -> float:
    """sqrt(sd_a² + sd_b²), a side without repeats counting as 0; NaN when neither side has a spread."""
    sa, sb = stored_float(sd_a), stored_float(sd_b)
    if math.isnan(sa) and math.isnan(sb):
        return math.nan
    return math.hypot(0.0 if math.isnan(sa) else sa, 0.0 if math.isnan(sb) else sb)


def difference(column: str, a: Mapping[str, object], b: Mapping[str, object]) -> Difference:
    """B − A on `column` of two rows (see rows.py), each with its `<column>_sd` where it was repeated."""
    return Difference(column, exact_difference(b.get(column), a.get(column)),
                      combined_spread(a.get(column + "_sd"), b.get(column + "_sd")))
