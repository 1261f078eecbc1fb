"""The learning-rate range test (Smith 2017, "Cyclical Learning Rates"; Lightning's `Tuner.lr_find`, fastai's
`lr_find`), as a stack: K copies of one model, built from the same seed, each trained with its own fixed rate
from K log-spaced ones, side by side in one loop (`fit.fit_stack`: the per-member learning rates a stacked
sweep uses) for the same few hundred steps. Each copy's loss at the end, against its rate, is the curve.

Where Smith's test raises one model's rate step by step, here every rate trains from the start for the whole
budget, so a rate's loss is what that rate does in that many steps (not a mix of every smaller rate before
it); the cost is one stack, about one model's time for a stackable MLP. Models that cannot stack (batch norm)
train one after another through the same loop.

`suggest_lr` (pure) reads the curve. This module never prints or writes files.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

import numpy as np

if TYPE_CHECKING:
    from nnlab.data.prepared import InputInfo
    from nnlab.spec import ModelSpec
    from nnlab.training.state import FitResult, OnEpoch, Problem

DIVERGED_FACTOR = 4.0  # a loss above this many times the lowest one at a smaller rate has diverged (fastai's)
MIN_DROP = 0.01  # the smoothed loss must fall by at least this share of its first value to suggest a rate
TAIL = 0.25  # a rate's loss is its training loss averaged over this last share of its epochs


@dataclass(frozen=True)
class LRCurve:
    """The test's outcome for one model: per rate (ascending), the smoothed final training loss (nan where
    the copy diverged), the last validation loss, the loop's status; the steps each trained; the suggestion
    (None: the curve has no descent before divergence)."""

    model: str
    rates: list[float]
    losses: list[float]
    val_losses: list[float]
    statuses: list[str]
    epochs: int
    steps: int  # training steps each rate took: epochs x batches per epoch
    stacked: bool
    suggested: Optional[float]


def log_rates(low: float, high: float, count: int) -> list[float]:
    """`count` rates from `low` to `high`, evenly spaced in log space, each to three significant digits (the
    rate shown is the rate trained)."""
    return [float(f"{rate:.3g}") for rate in np.geomspace(low, high, count)]


def batches_per_epoch(n_rows: int, batch_size: int) -> int:
    """The loop's batches of an epoch: a last batch of one row is folded into the one before (loop.py)."""
    return max(1, n_rows // batch_size + (1 if n_rows % batch_size > 1 else 0))


def epochs_for(steps: int, n_rows: int, batch_size: int) -> int:
    """The whole epochs that give at least `steps` steps (the loop trains in epochs)."""
    return max(1, math.ceil(steps / batches_per_epoch(n_rows, batch_size)))


def smoothed_loss(train_losses: Sequence[float]) -> float:
    """A copy's final training loss: the mean of its epochs' training losses over the last TAIL of them (at
    least one), so one noisy epoch does not decide; nan when any of them is not finite."""
    tail = list(train_losses)[-max(1, round(TAIL * len(train_losses))):]
    return float(np.mean(tail)) if tail and all(math.isfinite(v) for v in tail) else math.nan


def suggest_lr(rates: Sequence[float], losses: Sequence[float]) -> Optional[float]:
    """The rate where the loss falls fastest as the rate grows, before divergence; None when it never falls.

    `losses` are each rate's smoothed final loss (`smoothed_loss`). The curve is read in ascending rate up to
    its first loss that is not finite or is above DIVERGED_FACTOR times the lowest loss before it, and then
    only up to its lowest loss (the descent); the suggestion is the rate with the most negative slope
    d(loss)/d(log10 rate) there (np.gradient: central differences). Not smoothed across rates: with a coarse
    grid a moving average flattens the one drop that matters. None with fewer than three rates before
    divergence, or when the loss never falls by MIN_DROP of its first value (a flat or rising curve: the
    range holds no better rate)."""
    if len(rates) != len(losses):
        raise ValueError(f"suggest_lr: {len(rates)} rates and {len(losses)} losses; expected one loss per rate")
    order = np.argsort(np.asarray(rates, dtype=float), kind="stable")
    x = np.log10(np.asarray(rates, dtype=float)[order])
    y = np.asarray(losses, dtype=float)[order]
    kept, lowest = 0, math.inf
    for loss in y:
        if not math.isfinite(loss) or loss > DIVERGED_FACTOR * lowest:
            break
        lowest, kept = min(lowest, loss), kept + 1
    if kept < 3 or y[0] - lowest < MIN_DROP * abs(y[0]):
        return None
    slopes = np.gradient(y[:kept], x[:kept])
    descent = int(np.argmin(y[:kept])) + 1  # up to and with the lowest loss
    steepest = int(np.argmin(slopes[:descent]))
    return float(10 ** x[steepest]) if slopes[steepest] < 0 else None


def range_test(spec: ModelSpec, info: InputInfo, problem: Problem, rates: Sequence[float], steps: int, seed: int,
               on_epoch: OnEpoch) -> LRCurve:
    """Train one copy of `spec` per rate (member k: rates[k]), every copy from the same seed's weights and
    batches, with the spec's optimizer at that fixed rate for the epochs that give `steps` steps: no
    scheduler, no early stopping (the loop still stops a copy that diverges). `on_epoch` gets each copy's
    epochs (member k, its rate in the record's lr). Raises FitInterrupted on an interrupt, as every fit."""
    import torch

    from nnlab.models import build_model
    from nnlab.training import fit

    train = spec.train
    epochs = epochs_for(steps, len(problem.x["train"]), train.batch_size)
    members = []
    for k, rate in enumerate(rates):
        settings = train.model_copy(update={"optimizer": train.optimizer.model_copy(update={"lr": rate}),
                                            "epochs": epochs, "scheduler": None, "early_stopping": None})
        torch.manual_seed(seed)  # every copy starts from the same weights: only the rate differs
        module = build_model(spec, info)
        cuda_rng = torch.cuda.get_rng_state_all() if problem.device.type == "cuda" else None
        members.append(fit.BuiltMember(spec.name, module, settings, seed, k, torch.get_rng_state(), cuda_rng))
    stacked, _ = fit.can_stack_members(members)
    results = (fit.fit_stack(members, problem, on_epoch) if stacked
               else fit.fit_one_after_another(members, problem, on_epoch))
    by_member = sorted(results, key=lambda r: r.member)
    return _curve(spec.name, list(rates), by_member, epochs,
                  epochs * batches_per_epoch(len(problem.x["train"]), train.batch_size), stacked)


def _curve(model: str, rates: list[float], results: list[FitResult], epochs: int, steps: int,
           stacked: bool) -> LRCurve:
    losses = [smoothed_loss([r.values["train_loss"] for r in result.history]) if result.status != "diverged"
              else math.nan for result in results]
    val_losses = [result.history[-1].values["val_loss"] if result.history else math.nan for result in results]
    return LRCurve(model, rates, losses, val_losses, [r.status for r in results], epochs, steps, stacked,
                   suggest_lr(rates, losses))
