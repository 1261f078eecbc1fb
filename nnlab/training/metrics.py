"""Metrics by task, computed in torch on the training device (which direction is better: `nnlab.core.columns`).

Per-epoch metrics stay on the device and are read once per epoch: scikit-learn's metric functions take
1-3 ms a call plus a host copy, over a second for a 50-epoch run. Where torch has the function (the losses)
it is used; the rest are the standard count and rank definitions, checked against `sklearn.metrics` as
an oracle in tests/test_metrics.py. The module imports torch lazily so that `compare` stays light.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Optional

import numpy as np

from nnlab.core.columns import FINAL_METRICS  # noqa: F401 - the names final_metrics computes

if TYPE_CHECKING:
    import torch

def compute(task: str, names: list[str], outputs: "torch.Tensor", target: "torch.Tensor",
            target_std: float = 1.0) -> dict[str, "torch.Tensor"]:
    """One model's metrics as 0-d tensors (no host sync). `outputs` are its raw outputs [N] or [N, O] (logits,
    or standardized predictions for regression); regression metrics come back in the target's units."""
    n = target.shape[-1]
    stacked = compute_stacked(task, names, outputs.reshape(1, n, -1), target.reshape(1, n), target_std)
    return {name: value[0] for name, value in stacked.items()}


def compute_stacked(task: str, names: list[str], outputs: "torch.Tensor", target: "torch.Tensor",
                    target_std: float = 1.0) -> dict[str, "torch.Tensor"]:
    """K members' metrics at once, each a [K] tensor (no host sync): `outputs` [K, N, O], `target` [K, N]
    (each member's own rows, as in a training epoch) or [N] (one split every member saw). One call for a
    stack instead of K: each metric is a handful of batched ops whatever K is."""
    import torch

    outputs = outputs.float()
    k, n = outputs.shape[:2]
    target = target.expand(k, n)
    with torch.no_grad():
        if task == "regression":
            pred, true = outputs.reshape(k, n) * target_std, target.float() * target_std
            return {name: _REGRESSION[name](pred, true) for name in names}
        if task == "binary":
            logits = outputs.reshape(k, n)
            pred = (logits > 0).long()
            return {name: _BINARY[name](pred, target.long(), logits) for name in names}
        pred = outputs.argmax(dim=-1)
        return {name: _MULTICLASS[name](pred, target.long(), outputs) for name in names}


def probabilities(task: str, outputs: "torch.Tensor") -> "torch.Tensor":
    """Binary: P(positive) [N]; multiclass: [N, K]; regression: outputs unchanged."""
    if task == "binary":
        return outputs.float().reshape(-1).sigmoid()
    if task == "multiclass":
        return outputs.float().softmax(dim=1)
    return outputs.float().reshape(-1)


def _ratio(num: "torch.Tensor", den: "torch.Tensor") -> "torch.Tensor":
    # scikit-learn's zero_division=0: an undefined precision/recall/f1 is 0. Counts, so den > 0 means >= 1.
    import torch

    return torch.where(den > 0, num / den.clamp(min=1), torch.zeros_like(num))


# Every function below takes K members' rows, [K, N] (logits of multiclass [K, N, C]), and returns [K].

def _binary_counts(pred, true):
    tp = ((pred == 1) & (true == 1)).sum(-1).float()
    fp = ((pred == 1) & (true == 0)).sum(-1).float()
    fn = ((pred == 0) & (true == 1)).sum(-1).float()
    return tp, fp, fn


def _precision(pred, true, _logits):
    tp, fp, _ = _binary_counts(pred, true)
    return _ratio(tp, tp + fp)


def _recall(pred, true, _logits):
    tp, _, fn = _binary_counts(pred, true)
    return _ratio(tp, tp + fn)


def _f1(pred, true, _logits):
    tp, fp, fn = _binary_counts(pred, true)
    return _ratio(2 * tp, 2 * tp + fp + fn)


def roc_auc(scores: "torch.Tensor", true: "torch.Tensor") -> "torch.Tensor":
    """Area under the ROC curve via the Mann-Whitney U statistic, ties counted half (as scikit-learn).
    `scores`, `true`: [N] -> 0-d, or [K, N] -> [K] (one sort for all members)."""
    if scores.dim() == 1:
        return roc_auc(scores.unsqueeze(0), true.unsqueeze(0))[0]
    return _roc_auc(scores, true)


def _roc_auc(scores: "torch.Tensor", true: "torch.Tensor") -> "torch.Tensor":
    import torch

    order = _argsort_rows(scores)
    sorted_scores, sorted_true = scores.gather(-1, order), true.gather(-1, order).float()
    # A tie group spans sorted positions first..last (0-based); each of its rows gets the group's average
    # 1-based rank (first + last) / 2 + 1. Groups start where the sorted score changes.
    change = sorted_scores[:, 1:] != sorted_scores[:, :-1]
    edge = torch.ones_like(change[:, :1])
    position = torch.arange(scores.shape[-1], device=scores.device).expand_as(scores)
    first = torch.where(torch.cat([edge, change], 1), position, 0).cummax(-1).values
    last = torch.where(torch.cat([change, edge], 1), position, scores.shape[-1]).flip(-1).cummin(-1).values.flip(-1)
    ranks = (first + last).float() / 2 + 1
    n_pos = sorted_true.sum(-1)
    n_neg = sorted_true.shape[-1] - n_pos
    u = (ranks * sorted_true).sum(-1) - n_pos * (n_pos + 1) / 2
    return torch.where((n_pos > 0) & (n_neg > 0), u / (n_pos * n_neg).clamp(min=1), torch.full_like(u, float("nan")))


def _argsort_rows(scores: "torch.Tensor") -> "torch.Tensor":
    """Each row's ascending order (ties in any order: they share a rank). On the CPU numpy's quicksort, which
    sorts a [10, 3221] float tensor 5x quicker than torch's sort (torch 2.13: 0.3 ms against 1.6 ms)."""
    import torch

    if scores.device.type != "cpu":
        return scores.argsort(dim=-1)
    import numpy as np

    return torch.from_numpy(np.argsort(scores.detach().numpy(), axis=-1))


def _binary_log_loss(_pred, true, logits):
    import torch.nn.functional as F

    return F.binary_cross_entropy_with_logits(logits, true.float(), reduction="none").mean(-1)


def _macro_f1(pred, true, logits):
    import torch

    k, c = logits.shape[0], logits.shape[-1]
    member = torch.arange(k, device=pred.device).reshape(-1, 1) * (c * c)
    confusion = torch.bincount((member + true * c + pred).reshape(-1), minlength=k * c * c).reshape(k, c, c).float()
    tp = confusion.diagonal(dim1=1, dim2=2)
    support = confusion.sum(1) + confusion.sum(2)
    f1 = _ratio(2 * tp, support)
    present = support > 0  # scikit-learn averages over labels that occur
    return (f1 * present).sum(-1) / present.sum(-1).clamp(min=1)


def _multiclass_log_loss(_pred, true, logits):
    import torch.nn.functional as F

    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), true.reshape(-1), reduction="none").reshape(
        true.shape).mean(-1)


def _accuracy(pred, true, _logits):
    return (pred == true).float().mean(-1)


def _mse(pred, true):
    return ((pred - true) ** 2).mean(-1)


def _rmse(pred, true):
    return _mse(pred, true).sqrt()


def _mae(pred, true):
    return (pred - true).abs().mean(-1)


def _r2(pred, true):
    residual = ((true - pred) ** 2).sum(-1)
    total = ((true - true.mean(-1, keepdim=True)) ** 2).sum(-1)
    return 1 - residual / total.clamp(min=1e-12)


_BINARY: dict[str, Callable] = {"accuracy": _accuracy, "precision": _precision, "recall": _recall, "f1": _f1,
                                "roc_auc": lambda _p, t, logits: _roc_auc(logits, t),
                                "log_loss": _binary_log_loss}
_MULTICLASS: dict[str, Callable] = {"accuracy": _accuracy, "f1": _macro_f1, "log_loss": _multiclass_log_loss}
_REGRESSION: dict[str, Callable] = {"mse": _mse, "rmse": _rmse, "mae": _mae, "r2": _r2}
METRICS = {"binary": _BINARY, "multiclass": _MULTICLASS, "regression": _REGRESSION}


# --- the final metrics: once per model at the end, on val and test ---------------------------------------
#
# Computed on the chosen member's probabilities (host arrays, as the errors file is written from), in torch on
# the CPU, each split read back in one transfer. Checked against scikit-learn in tests/test_per_class.py.

ECE_BINS = 15
F1_THRESHOLD = "f1_threshold"  # the val score holding the decision threshold that maximises F1 on val
_THRESHOLDED = ("accuracy", "precision", "recall", "f1")  # binary metrics the decision threshold changes


def average_precision(scores: "torch.Tensor", true: "torch.Tensor") -> "torch.Tensor":
    """Average precision [N] -> 0-d, as scikit-learn's average_precision_score: the precision at each distinct
    score, highest first, weighted by the recall it adds (tied scores step together); NaN without positives."""
    import torch

    order = torch.argsort(scores, descending=True, stable=True)
    s, t = scores[order], true[order].float()
    tp = t.cumsum(0)
    # each row's tie group ends at `last`: its precision is the one counted for the row's positives
    change = torch.cat([s[1:] != s[:-1], torch.ones(1, dtype=torch.bool)])
    position = torch.arange(len(s))
    last = torch.where(change, position, len(s)).flip(0).cummin(0).values.flip(0)
    precision = tp[last] / (last + 1).float()
    positives = t.sum()
    return torch.where(positives > 0, (t * precision).sum() / positives.clamp(min=1), torch.tensor(float("nan")))


def brier(p: "torch.Tensor", true: "torch.Tensor") -> "torch.Tensor":
    """Mean squared difference between P(positive) and the 0/1 truth (scikit-learn's brier_score_loss)."""
    return ((p - true.float()) ** 2).mean()


def expected_calibration_error(probs: "torch.Tensor", true: "torch.Tensor", bins: int = ECE_BINS) -> "torch.Tensor":
    """ECE over `bins` equal-width bins of the top-class confidence ([k/bins, (k+1)/bins), 1.0 in the last):
    the bins' |accuracy - mean confidence| weighted by their share of the rows."""
    import torch

    confidence, pred = probs.max(dim=1)
    index = (confidence * bins).long().clamp(0, bins - 1)
    gap = torch.bincount(index, weights=(pred == true).double() - confidence.double(), minlength=bins)
    return gap.abs().sum() / max(len(true), 1)


def f1_threshold(p: "torch.Tensor", true: "torch.Tensor") -> "torch.Tensor":
    """The threshold t on P(positive) (positive when p >= t) that maximises F1, among the distinct
    probabilities; on a tie the highest such t. NaN without positives."""
    import torch

    order = torch.argsort(p, descending=True, stable=True)
    s, t = p[order], true[order].float()
    tp = t.cumsum(0)
    ends = torch.cat([s[1:] != s[:-1], torch.ones(1, dtype=torch.bool)])  # all rows >= s[i] predicted positive
    f1 = torch.where(ends, 2 * tp / (torch.arange(1, len(s) + 1) + t.sum()), torch.full_like(tp, -1.0))
    best = int(torch.argmax(f1))  # argmax takes the first maximum: the highest threshold
    return s[best] if t.sum() > 0 else torch.tensor(float("nan"))


def class_table(pred: "torch.Tensor", true: "torch.Tensor", n_classes: int) -> dict[str, "torch.Tensor"]:
    """Confusion counts [C, C] (rows true, columns predicted) and per-class precision, recall, F1 and support
    (scikit-learn's precision_recall_fscore_support with zero_division=0)."""
    import torch

    confusion = torch.bincount(true * n_classes + pred, minlength=n_classes * n_classes).reshape(
        n_classes, n_classes)
    c = confusion.double()
    tp, predicted, support = c.diagonal(), c.sum(0), c.sum(1)
    return {"confusion": confusion, "precision": _ratio(tp, predicted), "recall": _ratio(tp, support),
            "f1": _ratio(2 * tp, predicted + support), "support": confusion.sum(1)}


@dataclass
class Final:
    """A member's final numbers: scores to add per split (binary test scores under an applied threshold
    replace the 0.5 ones), the per-class tables by split, and the threshold applied to test (None: 0.5)."""

    scores: dict[str, dict[str, float]]
    per_class: dict[str, dict[str, list]]
    threshold: Optional[float] = None
    predicted: dict[str, "np.ndarray"] = field(default_factory=dict)  # class index per row, by split


def final_metrics(task: str, metrics: list[str], probabilities: dict[str, "np.ndarray"], y: dict[str, "np.ndarray"],
                  n_classes: int, apply_threshold: bool = False) -> Final:
    """The end-of-training numbers of one member from its probabilities (binary: P(positive) [N]; multiclass
    [N, C]) on the splits given ("val", "test"): per-class tables and the task's FINAL_METRICS; binary also
    the F1-maximising threshold on val, applied to test's predictions when `apply_threshold`."""
    import torch

    final = Final({}, {})
    if task == "regression":
        return final
    threshold: Optional[torch.Tensor] = None
    for split in ("val", "test"):
        if probabilities.get(split) is None:
            continue
        p = torch.as_tensor(np.asarray(probabilities[split]), dtype=torch.float32)
        true = torch.as_tensor(np.asarray(y[split])).long()
        values: dict[str, torch.Tensor] = {}
        if task == "binary":
            if split == "val":
                threshold = f1_threshold(p, true)
                values[F1_THRESHOLD] = threshold
            applied = apply_threshold and split == "test" and threshold is not None and not torch.isnan(threshold)
            pred = (p >= threshold).long() if applied else (p > 0.5).long()
            if applied:
                final.threshold = float(threshold)
                values.update({m: _BINARY[m](pred, true, p) for m in metrics if m in _THRESHOLDED})
            values.update(pr_auc=average_precision(p, true), brier=brier(p, true))
            table = class_table(pred, true, 2)
        else:
            pred = p.argmax(dim=1)
            values["ece"] = expected_calibration_error(p, true)
            table = class_table(pred, true, n_classes)
        names = list(values)
        # one host read per split: the scores and the table together
        flat = torch.cat([torch.stack([v.double().reshape(()) for v in values.values()]),
                          *(t.double().reshape(-1) for t in table.values())]).tolist()
        final.scores[split] = dict(zip(names, flat[:len(names)]))
        rest, c = flat[len(names):], table["support"].numel()
        final.per_class[split] = {
            "confusion": [[int(v) for v in rest[i * c:(i + 1) * c]] for i in range(c)],
            "precision": rest[c * c:c * c + c], "recall": rest[c * c + c:c * c + 2 * c],
            "f1": rest[c * c + 2 * c:c * c + 3 * c], "support": [int(v) for v in rest[c * c + 3 * c:]]}
        final.predicted[split] = pred.numpy()
    return final
