"""The words a model's stored verdicts begin with, shared by the side that writes them (run.diagnosis) and
the side that shows them (views): which lines are advice on the fit, and which says a model was cut off."""

from __future__ import annotations

from typing import Optional

CUT_OFF = "cut off at epoch"
# verdicts on how a model fits and what to change: none for a model cut off before its end, none for a
# smoke run (a few epochs on a small sample say nothing about the settings)
ADVICE = ("still improving:", "underfitting:", "overfitting:", "unstable:", "no better than the baseline:")


def without_advice(notes: list[str], message: Optional[str] = None) -> list[str]:
    """A model's stored verdicts less the fit verdicts and advice (ADVICE), the cut-off line and the
    model's `message` (said once elsewhere): for a smoke run, or a model cut off before its end."""
    return [n for n in notes if not n.startswith(ADVICE) and not n.startswith(CUT_OFF) and n != message]
