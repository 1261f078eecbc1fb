"""ROC, precision-recall and calibration curves from a run's recorded predictions, in numpy (the read side
imports no scikit-learn: the tests check these against it)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CALIBRATION_BINS = 10


@dataclass
class XY:
    x: list[float]
    y: list[float]
    area: float  # ROC AUC, average precision; for calibration the expected calibration error


def _ranked(truth: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """True and false positives counted down the distinct scores, highest first (ties step together)."""
    order = np.argsort(-score, kind="stable")
    score, truth = score[order], truth[order].astype(float)
    last_of_tie = np.r_[np.flatnonzero(np.diff(score)), truth.size - 1]
    tps = np.cumsum(truth)[last_of_tie]
    return tps, (last_of_tie + 1) - tps


def roc(truth: np.ndarray, score: np.ndarray) -> XY:
    """False and true positive rates at every threshold, and the area under them (the trapezoid rule)."""
    tps, fps = _ranked(np.asarray(truth, bool), np.asarray(score, float))
    tpr = np.r_[0.0, tps / max(tps[-1], 1)]
    fpr = np.r_[0.0, fps / max(fps[-1], 1)]
    return XY(fpr.tolist(), tpr.tolist(), float(np.trapezoid(tpr, fpr)))


def precision_recall(truth: np.ndarray, score: np.ndarray) -> XY:
    """Precision against recall at every threshold, and the average precision (sum of precision times
    each recall step, as scikit-learn's average_precision_score)."""
    tps, fps = _ranked(np.asarray(truth, bool), np.asarray(score, float))
    precision = tps / (tps + fps)
    recall = tps / max(tps[-1], 1)
    steps = np.diff(np.r_[0.0, recall])
    return XY(np.r_[0.0, recall].tolist(), np.r_[1.0, precision].tolist(), float(np.sum(steps * precision)))


def calibration(correct: np.ndarray, confidence: np.ndarray, bins: int = CALIBRATION_BINS) -> XY:
    """Mean confidence against the fraction right in equal-width confidence bins (empty bins left out),
    and the expected calibration error: the bins' |fraction - confidence| weighted by their share."""
    correct, confidence = np.asarray(correct, float), np.clip(np.asarray(confidence, float), 0, 1)
    index = np.minimum((confidence * bins).astype(int), bins - 1)
    counts = np.bincount(index, minlength=bins)
    used = counts > 0
    mean_conf = np.bincount(index, confidence, bins)[used] / counts[used]
    fraction = np.bincount(index, correct, bins)[used] / counts[used]
    error = float(np.sum(counts[used] * np.abs(fraction - mean_conf)) / max(counts.sum(), 1))
    return XY(mean_conf.tolist(), fraction.tolist(), error)
