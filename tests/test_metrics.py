"""Metrics in torch against scikit-learn as the oracle, and the registries against the spec's names."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn import metrics as sk

from nnlab.training import metrics
from nnlab.core.columns import FINAL_METRICS, HIGHER_IS_BETTER, higher_is_better
from nnlab.models import MODELS
from nnlab.training.optim import OPTIMIZERS, SCHEDULERS
from nnlab.spec import METRICS_BY_TASK, MODEL_KINDS, OptimizerSpec

rng = np.random.default_rng(0)


def test_metric_names_agree_with_the_spec():
    assert {task: set(fns) for task, fns in metrics.METRICS.items()} == {
        task: set(names) for task, names in METRICS_BY_TASK.items()}
    assert set(HIGHER_IS_BETTER) == {"loss", *[m for names in METRICS_BY_TASK.values() for m in names],
                                     *[m for names in FINAL_METRICS.values() for m in names]}
    assert set(MODELS) == set(MODEL_KINDS)
    assert set(OPTIMIZERS) == set(OptimizerSpec.model_fields["name"].annotation.__args__)
    assert set(SCHEDULERS) == {"step", "cosine", "plateau"}


@pytest.mark.parametrize("ties", [False, True])
def test_binary_metrics_match_sklearn(ties):
    y = rng.integers(0, 2, 500)
    logits = rng.normal(size=500) + y
    if ties:
        logits = np.round(logits)  # many equal scores: roc_auc must count ties as half
    out = metrics.compute("binary", list(METRICS_BY_TASK["binary"]), torch.tensor(logits, dtype=torch.float32),
                          torch.tensor(y, dtype=torch.float32))
    prob, pred = 1 / (1 + np.exp(-logits)), (logits > 0).astype(int)
    expected = {"accuracy": sk.accuracy_score(y, pred), "precision": sk.precision_score(y, pred),
                "recall": sk.recall_score(y, pred), "f1": sk.f1_score(y, pred),
                "roc_auc": sk.roc_auc_score(y, prob), "log_loss": sk.log_loss(y, prob)}
    for name, value in expected.items():
        assert out[name].item() == pytest.approx(value, abs=1e-5), name


def test_precision_is_zero_when_nothing_is_predicted_positive():
    out = metrics.compute("binary", ["precision", "f1"], torch.full((4,), -1.0), torch.tensor([0.0, 1, 0, 1]))
    assert out["precision"].item() == 0 == sk.precision_score([0, 1, 0, 1], [0, 0, 0, 0], zero_division=0)


def test_multiclass_metrics_match_sklearn():
    y = rng.integers(0, 4, 400)
    y[y == 3] = 2  # class 3 never occurs in the truth, as in a small validation split
    logits = rng.normal(size=(400, 4))
    logits[np.arange(400), y] += 1.0
    out = metrics.compute("multiclass", ["accuracy", "f1", "log_loss"], torch.tensor(logits, dtype=torch.float32),
                          torch.tensor(y))
    prob = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    pred = logits.argmax(axis=1)
    assert out["accuracy"].item() == pytest.approx(sk.accuracy_score(y, pred), abs=1e-6)
    assert out["f1"].item() == pytest.approx(sk.f1_score(y, pred, average="macro"), abs=1e-6)
    assert out["log_loss"].item() == pytest.approx(sk.log_loss(y, prob, labels=[0, 1, 2, 3]), abs=1e-5)


def test_regression_metrics_match_sklearn_in_target_units():
    y = rng.normal(50, 10, 300)
    pred = y + rng.normal(0, 3, 300)
    std = 10.0
    out = metrics.compute("regression", ["mse", "rmse", "mae", "r2"], torch.tensor(pred / std).float(),
                          torch.tensor(y / std).float(), target_std=std)
    assert out["mse"].item() == pytest.approx(sk.mean_squared_error(y, pred), rel=1e-5)
    assert out["rmse"].item() == pytest.approx(np.sqrt(sk.mean_squared_error(y, pred)), rel=1e-5)
    assert out["mae"].item() == pytest.approx(sk.mean_absolute_error(y, pred), rel=1e-5)
    assert out["r2"].item() == pytest.approx(sk.r2_score(y, pred), abs=1e-5)


def test_directions():
    # one rule: True or False for a metric or metric column, None (never an error) for anything else
    assert higher_is_better("val_accuracy") is True and higher_is_better("r2") is True
    assert higher_is_better("val_loss") is False and higher_is_better("test_rmse") is False
    assert higher_is_better("train_seconds") is None and higher_is_better("val_accuracy_sd") is None


def _members_binary(k=4, n=300, ties=False):
    """K members' logits [K, N, 1] on their own targets [K, N]; member 3 predicts one class only."""
    y = rng.integers(0, 2, (k, n))
    logits = rng.normal(size=(k, n)) + y * np.linspace(0.2, 2.0, k)[:, None]
    logits[-1] = -np.abs(logits[-1])  # nothing predicted positive: precision's zero_division
    return (np.round(logits) if ties else logits), y


@pytest.mark.parametrize("ties", [False, True])
def test_stacked_binary_metrics_match_sklearn_member_by_member(ties):
    logits, y = _members_binary(ties=ties)
    out = metrics.compute_stacked("binary", list(METRICS_BY_TASK["binary"]),
                                  torch.tensor(logits, dtype=torch.float32)[..., None], torch.tensor(y).float())
    for k in range(len(y)):
        prob, pred = 1 / (1 + np.exp(-logits[k])), (logits[k] > 0).astype(int)
        expected = {"accuracy": sk.accuracy_score(y[k], pred),
                    "precision": sk.precision_score(y[k], pred, zero_division=0),
                    "recall": sk.recall_score(y[k], pred), "f1": sk.f1_score(y[k], pred, zero_division=0),
                    "roc_auc": sk.roc_auc_score(y[k], prob), "log_loss": sk.log_loss(y[k], prob)}
        for name, value in expected.items():
            assert out[name].shape == (len(y),)
            assert out[name][k].item() == pytest.approx(value, abs=1e-5), (k, name)


def test_stacked_metrics_with_one_target_for_all_members_equal_one_call_per_member():
    logits, y = _members_binary()
    shared = torch.tensor(y[0]).float()  # [N]: a validation split every member saw
    out = metrics.compute_stacked("binary", ["accuracy", "f1", "roc_auc", "log_loss"],
                                  torch.tensor(logits, dtype=torch.float32)[..., None], shared)
    for k in range(len(logits)):
        alone = metrics.compute("binary", ["accuracy", "f1", "roc_auc", "log_loss"],
                                torch.tensor(logits[k], dtype=torch.float32), shared)
        assert {n: v[k].item() for n, v in out.items()} == pytest.approx({n: v.item() for n, v in alone.items()},
                                                                          abs=1e-6)
    assert out["roc_auc"][0].item() != pytest.approx(out["roc_auc"][2].item(), abs=1e-3)  # members differ


def test_stacked_roc_auc_is_nan_for_a_member_whose_rows_have_one_class():
    logits = torch.tensor([[0.1, 0.4, 0.35, 0.8], [0.1, 0.4, 0.35, 0.8]])
    y = torch.tensor([[0.0, 0, 1, 1], [1.0, 1, 1, 1]])
    auc = metrics.roc_auc(logits, y)
    assert auc[0].item() == pytest.approx(sk.roc_auc_score(y[0], logits[0]))
    assert torch.isnan(auc[1])


def test_stacked_multiclass_metrics_match_sklearn_member_by_member():
    k, n, c = 3, 200, 4
    y = rng.integers(0, c, (k, n))
    y[1][y[1] == 3] = 2  # one member's rows lack class 3: macro f1 averages over the labels that occur
    logits = rng.normal(size=(k, n, c))
    logits[np.arange(k)[:, None], np.arange(n), y] += np.array([0.5, 1.0, 2.0])[:, None]
    out = metrics.compute_stacked("multiclass", ["accuracy", "f1", "log_loss"],
                                  torch.tensor(logits, dtype=torch.float32), torch.tensor(y))
    for m in range(k):
        prob = np.exp(logits[m]) / np.exp(logits[m]).sum(axis=1, keepdims=True)
        pred = logits[m].argmax(axis=1)
        assert out["accuracy"][m].item() == pytest.approx(sk.accuracy_score(y[m], pred), abs=1e-6)
        assert out["f1"][m].item() == pytest.approx(sk.f1_score(y[m], pred, average="macro"), abs=1e-6)
        assert out["log_loss"][m].item() == pytest.approx(sk.log_loss(y[m], prob, labels=list(range(c))), abs=1e-5)


def test_stacked_regression_metrics_match_sklearn_member_by_member():
    k, n, std = 3, 150, 10.0
    y = rng.normal(50, 10, (k, n))
    pred = y + rng.normal(0, 1, (k, n)) * np.array([1.0, 3.0, 9.0])[:, None]
    out = metrics.compute_stacked("regression", ["mse", "rmse", "mae", "r2"],
                                  torch.tensor(pred / std).float()[..., None], torch.tensor(y / std).float(),
                                  target_std=std)
    for m in range(k):
        assert out["mse"][m].item() == pytest.approx(sk.mean_squared_error(y[m], pred[m]), rel=1e-5)
        assert out["rmse"][m].item() == pytest.approx(np.sqrt(sk.mean_squared_error(y[m], pred[m])), rel=1e-5)
        assert out["mae"][m].item() == pytest.approx(sk.mean_absolute_error(y[m], pred[m]), rel=1e-5)
        assert out["r2"][m].item() == pytest.approx(sk.r2_score(y[m], pred[m]), abs=1e-5)
