"""Metrics by task, computed in torch on the training device, and which direction is better.

Per-epoch metrics stay on the device and are read once per epoch: scikit-learn's metric functions take
1-3 ms a call plus a host copy, over a second for a 50-epoch run. Where torch has the function (the losses)
it is used; the rest are the standard count and rank definitions, checked against `sklearn.metrics` as
an oracle in tests/test_metrics.py. The module imports torch lazily so that `compare` stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    import torch

HIGHER_IS_BETTER: dict[str, bool] = {
    "loss": False, "log_loss": False, "mse": False, "rmse": False, "mae": False,
    "accuracy": True, "precision": True, "recall": True, "f1": True, "roc_auc": True, "r2": True,
}


def metric_name(column: str) -> str:
    """`val_accuracy` -> `accuracy`: a metric column without its split prefix."""
    for prefix in ("train_", "val_", "test_"):
        if column.startswith(prefix):
            return column[len(prefix):]
    return column


def higher_is_better(metric: str) -> bool:
    """Direction of a metric name, with or without a split prefix (`val_accuracy`)."""
    return HIGHER_IS_BETTER[metric_name(metric)]


def compute(task: str, names: list[str], outputs: "torch.Tensor", target: "torch.Tensor",
            target_std: float = 1.0) -> dict[str, "torch.Tensor"]:
    """Metrics as 0-d tensors (no host sync). `outputs` are the model's raw outputs (logits, or
    standardized predictions for regression); regression metrics come back in the target's units."""
    import torch

    outputs = outputs.float()
    if task == "regression":
        pred, true = outputs.reshape(-1) * target_std, target.float() * target_std
        return {name: _REGRESSION[name](pred, true) for name in names}
    if task == "binary":
        logits = outputs.reshape(-1)
        pred = (logits > 0).long()
        true = target.long()
        return {name: _BINARY[name](pred, true, logits) for name in names}
    pred = outputs.argmax(dim=1)
    with torch.no_grad():
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


def _binary_counts(pred, true):
    tp = ((pred == 1) & (true == 1)).sum().float()
    fp = ((pred == 1) & (true == 0)).sum().float()
    fn = ((pred == 0) & (true == 1)).sum().float()
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
    """Area under the ROC curve via the Mann-Whitney U statistic, ties counted half (as scikit-learn)."""
    import torch

    order = scores.argsort()
    sorted_scores, sorted_true = scores[order], true[order].float()
    _, inverse, counts = torch.unique_consecutive(sorted_scores, return_inverse=True, return_counts=True)
    ends = counts.cumsum(0).float()
    ranks = (ends - (counts.float() - 1) / 2)[inverse]  # average 1-based rank of each tie group
    n_pos = sorted_true.sum()
    n_neg = sorted_true.numel() - n_pos
    u = (ranks * sorted_true).sum() - n_pos * (n_pos + 1) / 2
    return torch.where((n_pos > 0) & (n_neg > 0), u / (n_pos * n_neg).clamp(min=1), torch.full_like(u, float("nan")))


def _binary_log_loss(_pred, true, logits):
    import torch.nn.functional as F

    return F.binary_cross_entropy_with_logits(logits, true.float())


def _macro_f1(pred, true, logits):
    import torch

    k = logits.shape[1]
    confusion = torch.bincount(true * k + pred, minlength=k * k).reshape(k, k).float()
    tp = confusion.diag()
    f1 = _ratio(2 * tp, confusion.sum(0) + confusion.sum(1))
    present = (confusion.sum(0) + confusion.sum(1)) > 0  # scikit-learn averages over labels that occur
    return (f1 * present).sum() / present.sum().clamp(min=1)


def _multiclass_log_loss(_pred, true, logits):
    import torch.nn.functional as F

    return F.cross_entropy(logits, true)


def _accuracy(pred, true, _logits):
    return (pred == true).float().mean()


def _mse(pred, true):
    import torch.nn.functional as F

    return F.mse_loss(pred, true)


def _rmse(pred, true):
    return _mse(pred, true).sqrt()


def _mae(pred, true):
    import torch.nn.functional as F

    return F.l1_loss(pred, true)


def _r2(pred, true):
    residual = ((true - pred) ** 2).sum()
    total = ((true - true.mean()) ** 2).sum()
    return 1 - residual / total.clamp(min=1e-12)


_BINARY: dict[str, Callable] = {"accuracy": _accuracy, "precision": _precision, "recall": _recall, "f1": _f1,
                                "roc_auc": lambda _p, t, logits: roc_auc(logits, t),
                                "log_loss": _binary_log_loss}
_MULTICLASS: dict[str, Callable] = {"accuracy": _accuracy, "f1": _macro_f1, "log_loss": _multiclass_log_loss}
_REGRESSION: dict[str, Callable] = {"mse": _mse, "rmse": _rmse, "mae": _mae, "r2": _r2}
METRICS = {"binary": _BINARY, "multiclass": _MULTICLASS, "regression": _REGRESSION}
