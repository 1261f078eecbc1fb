"""When a member stops: early stopping, and the blow-up rule that calls a model diverged."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch

from nnlab.core.columns import higher_is_better
from nnlab.training.state import EpochRecord, Problem
from nnlab.training.optim import LossFn
from nnlab.spec import TrainSpec


# The blow-up rule. A member has diverged when, at the end of an epoch, (a) a step's loss or the validation
# loss is NaN or infinite, or (b) the train or validation loss is over BLOWUP_VS_PRIOR times the loss of
# predicting the training split's prior (class frequencies; the mean for regression) — a thousand times worse
# than knowing nothing — or (c) it is over BLOWUP_VS_FIRST times the first epoch's and worse than the prior's.
# Training stops there; the best epoch before it is kept.
BLOWUP_VS_PRIOR = 1000.0
BLOWUP_VS_FIRST = 100.0


@dataclass
class EarlyStopping:
    monitor: str
    patience: int
    min_delta: float
    best: Optional[float] = None
    stale: int = 0

    def should_stop(self, values: dict[str, float], epoch: int) -> Optional[str]:
        """Record an epoch; say why training stops, or None to go on."""
        current = values[self.monitor]
        if improved(current, self.best, higher_is_better(self.monitor), self.min_delta):
            self.best, self.stale = current, 0
            return None
        self.stale += 1
        if self.stale < self.patience:
            return None
        return (f"{self.monitor} did not improve for {self.stale} epochs (best {self.best:.4g} at epoch "
                f"{epoch - self.stale}); stopped at epoch {epoch}")


def prior_loss(problem: Problem, loss_fn: LossFn) -> float:
    """The loss of a model that ignores its input and predicts the training split's prior."""
    y = problem.y["train"]
    with torch.inference_mode():
        if problem.task == "binary":
            p = y.float().mean().clamp(1e-6, 1 - 1e-6)
            out = torch.log(p / (1 - p)).expand(len(y), 1)
        elif problem.task == "multiclass":
            freq = torch.bincount(y, minlength=problem.n_outputs).float() / len(y)
            out = freq.clamp(min=1e-6).log().expand(len(y), problem.n_outputs)
        else:
            out = y.float().mean().expand(len(y), 1)
        return float(loss_fn(out, y.to(out.dtype) if y.is_floating_point() else y))


def divergence(epoch: int, bad_step: int, step_losses: torch.Tensor, values: dict[str, float],
                history: list[EpochRecord], prior_loss: float, train: TrainSpec) -> Optional[str]:
    """Why this epoch counts as a blow-up, or None. `history` holds the epochs before this one;
    `step_losses` this member's losses of this epoch's steps."""
    fix = f"try a lower learning rate (train.optimizer.lr is {train.optimizer.lr:g}) or set train.grad_clip"
    if bad_step >= 0 or not math.isfinite(values["val_loss"]):
        where = f"epoch {epoch}, step {bad_step + 1}" if bad_step >= 0 else f"epoch {epoch}"
        kind = "NaN" if bad_step < 0 or math.isnan(step_losses[bad_step].item()) else "infinite"
        return f"loss became {kind} at {where}: {fix}"
    for split in ("train", "val"):
        loss = values[f"{split}_loss"]
        first = history[0].values[f"{split}_loss"] if history else loss
        if loss > BLOWUP_VS_PRIOR * prior_loss or (loss > BLOWUP_VS_FIRST * first and loss > prior_loss):
            versus = (f"{BLOWUP_VS_PRIOR:g}x the {prior_loss:.4g} of predicting the prior"
                      if loss > BLOWUP_VS_PRIOR * prior_loss else f"{BLOWUP_VS_FIRST:g}x epoch 1's {first:.4g}")
            return f"loss blew up at epoch {epoch}: {split} loss {loss:.4g} is over {versus}; {fix}"
    return None


def improved(score: float, best: Optional[float], higher: bool, min_delta: float) -> bool:
    if math.isnan(score):
        return False
    if best is None:
        return True
    return score > best + min_delta if higher else score < best - min_delta
