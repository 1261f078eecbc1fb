"""Plain-words verdicts on a model's training history: what a practitioner would say looking at the curves."""

from __future__ import annotations

import math
from typing import Optional

from nnlab.core.columns import higher_is_better
from nnlab.core.verdicts import CUT_OFF

OVERFIT_RISE = 0.10  # validation loss this far above its best, while train loss keeps falling
SPIKE_FACTOR = 2.0  # validation loss this many times its best so far counts as a jump
MIN_EPOCHS_FOR_TRENDS = 4
FIRST_EPOCH_FACTOR = 10.0  # a first epoch averaging this many times the validation loss it ended at
AT_LIMIT = 1e-3  # a monitored value this close to its floor (a loss, an error: 0) or ceiling (a score: 1)
# has nothing left to gain: no "more epochs may help"


def diagnose(history: list[dict[str, float]], *, best_epoch: int, max_epochs: int, monitor: str,
             status: str, message: Optional[str], stop_reason: Optional[str],
             val: dict[str, float], baseline_val: Optional[dict[str, float]],
             baseline_train_loss: Optional[float] = None, repeats: int = 1,
             member: Optional[int] = None) -> list[str]:
    """`history` is one dict per epoch with train_loss, val_loss and val_<metric> keys; the baseline's numbers
    are None for the baseline itself. With `repeats`, `val` is the mean over the members and `history` the
    curve of member `member` (the best on validation): the words say which is which."""
    notes: list[str] = []
    if status != "completed":
        notes.append(message or status)
    if status == "interrupted":  # stopped from outside: how it would have fitted is unknown
        return notes + [f"{CUT_OFF} {len(history)} of {max_epochs}: no verdict on its fit"]
    if stop_reason:
        notes.append(f"early stopping: {stop_reason}; restored epoch {best_epoch}.")
    elif (status == "completed" and best_epoch == len(history) == max_epochs and max_epochs >= MIN_EPOCHS_FOR_TRENDS
          and not at_limit(monitor, val.get(monitor.removeprefix("val_")))):
        notes.append(f"still improving: the best {monitor} came at the last epoch ({best_epoch}); "
                     "more epochs may help.")
    history = [h for h in history if math.isfinite(h["train_loss"]) and math.isfinite(h["val_loss"])]
    curve = [] if repeats == 1 or member is None else [f" (member {member}'s curve)"]
    notes += [n[:-1] + curve[0] + "." if curve and n.endswith(".") else n
              for n in [*(_underfitting(history, baseline_train_loss) if status != "diverged" else []),
                        *_overfitting(history, best_epoch), *_instability(history)]]
    notes += _versus_baseline(monitor, val, baseline_val, repeats)
    return notes


def at_limit(monitor: str, value: Optional[float]) -> bool:
    """Whether a monitored value is within AT_LIMIT of the best it can be: 0 for a loss or an error, 1 for
    a score (accuracy, f1, roc_auc, r2)."""
    if value is None or not math.isfinite(value):
        return False
    return value >= 1 - AT_LIMIT if higher_is_better(monitor) else abs(value) <= AT_LIMIT


def _overfitting(history: list[dict[str, float]], best_epoch: int) -> list[str]:
    if len(history) < MIN_EPOCHS_FOR_TRENDS or best_epoch < 1 or best_epoch > len(history) - 2:
        return []
    best_val = min(h["val_loss"] for h in history)
    at_best, last = history[best_epoch - 1], history[-1]
    if last["train_loss"] < at_best["train_loss"] and last["val_loss"] > best_val * (1 + OVERFIT_RISE):
        return [f"overfitting: after epoch {best_epoch} train loss fell from {at_best['train_loss']:.4g} to "
                f"{last['train_loss']:.4g} while validation loss rose from {best_val:.4g} to {last['val_loss']:.4g}; "
                "try dropout, weight decay, a smaller network or more data."]
    return []


def _underfitting(history: list[dict[str, float]], baseline_train_loss: Optional[float]) -> list[str]:
    """A higher learning rate is suggested only when the loss never jumped: a loss that reached SPIKE_FACTOR
    times its lowest value says the steps are already too large."""
    if not history or baseline_train_loss is None:
        return []
    lowest = min(h["train_loss"] for h in history)
    if lowest < baseline_train_loss:
        return []
    said = (f"underfitting: the lowest train loss, {lowest:.4g}, is no lower than the linear baseline's "
            f"{baseline_train_loss:.4g}; ")
    jumps = _train_loss_jumps(history)
    if jumps:
        epoch, loss = max(jumps, key=lambda jump: jump[1])
        return [said + f"the train loss reached {loss:.4g} at epoch {epoch}, so the steps are too large: try a "
                "lower learning rate or train.grad_clip."]
    return [said + "try more epochs, a higher learning rate or a larger network."]


def _train_loss_jumps(history: list[dict[str, float]]) -> list[tuple[int, float]]:
    """Epochs whose train loss says the steps were too large: a rise to SPIKE_FACTOR times the lowest train
    loss before it, or a first epoch whose average is FIRST_EPOCH_FACTOR times the validation loss it ended
    at (a first epoch's average is normally at most a few times its end: the descent itself)."""
    jumps = []
    if history[0]["train_loss"] > FIRST_EPOCH_FACTOR * history[0]["val_loss"]:
        jumps.append((1, history[0]["train_loss"]))
    lowest = history[0]["train_loss"]
    for epoch, record in enumerate(history[1:], start=2):
        if record["train_loss"] > SPIKE_FACTOR * lowest:
            jumps.append((epoch, record["train_loss"]))
        lowest = min(lowest, record["train_loss"])
    return jumps


def _instability(history: list[dict[str, float]]) -> list[str]:
    best = float("inf")
    for record in history:
        loss = record["val_loss"]
        if best < float("inf") and loss > SPIKE_FACTOR * best:
            return [f"unstable: validation loss jumped to {loss:.4g} at epoch {history.index(record) + 1} "
                    f"(best so far {best:.4g}); try a lower learning rate or train.grad_clip."]
        best = min(best, loss)
    return []


def _versus_baseline(monitor: str, val: dict[str, float], baseline_val: Optional[dict[str, float]],
                     repeats: int = 1) -> list[str]:
    metric = monitor.removeprefix("val_")
    if not baseline_val or val.get(metric) is None or baseline_val.get(metric) is None:
        return []
    ours, theirs = val[metric], baseline_val[metric]
    better = ours > theirs if higher_is_better(metric) else ours < theirs
    if not better:
        mean = f" (mean of {repeats} members)" if repeats > 1 else ""
        return [f"no better than the baseline: validation {metric} {ours:.4g}{mean} vs the baseline's {theirs:.4g}; "
                "the linear model is enough here, or this network needs different settings."]
    return []
