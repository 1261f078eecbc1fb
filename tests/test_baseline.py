"""The baseline against scikit-learn's linear models on the same split (the oracle)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression, Ridge

from conftest import SPAMBASE
from nnlab import train
from nnlab.data import prepare
from nnlab.models import build_baseline
from nnlab.spec import BaselineSpec, DataSpec


def fit_ours(prepared, l2=1.0, metrics=("accuracy",)):
    problem = train.Problem.from_arrays(prepared.task, prepared.x, prepared.y, list(metrics), "val_loss",
                                        torch.device("cpu"), prepared.preprocessing.get("target_std", 1.0),
                                        prepared.n_outputs)
    model = build_baseline(prepared.n_features, prepared.n_outputs)
    result = train.fit_baseline("baseline", model, problem, BaselineSpec(l2=l2), lambda record: None)
    return result, model


def test_logistic_baseline_matches_sklearn_on_spambase():
    prepared = prepare(DataSpec(path=str(SPAMBASE), target="spam"), SPAMBASE.parent, 0)
    result, model = fit_ours(prepared)
    oracle = LogisticRegression(C=1.0, max_iter=5000, tol=1e-10).fit(prepared.x["train"], prepared.y["train"])
    sk_accuracy = oracle.score(prepared.x["test"], prepared.y["test"])
    assert abs(result.test["accuracy"] - sk_accuracy) <= 0.005
    # The same convex objective, minimised as far: the same solution, not just a similar score.
    x, y = prepared.x["train"].astype(np.float64), prepared.y["train"]

    def objective(w, b):
        z = x @ w + b
        return np.mean(np.logaddexp(0, z) - y * z) + w @ w / (2 * len(y))

    ours = objective(model.weight.detach().double().numpy().ravel(), model.bias.item())
    assert ours == pytest.approx(objective(oracle.coef_.ravel(), oracle.intercept_[0]), abs=1e-7)
    ours_p = torch.sigmoid(model(torch.from_numpy(prepared.x["test"]))).detach().numpy().ravel()
    np.testing.assert_allclose(ours_p, oracle.predict_proba(prepared.x["test"])[:, 1], atol=1e-3)
    assert result.test["accuracy"] > 0.9


def test_softmax_baseline_matches_sklearn_on_wine(tmp_path):
    prepared = prepare(DataSpec(builtin="wine"), tmp_path, 0)
    result, model = fit_ours(prepared, l2=2.0)
    oracle = LogisticRegression(C=0.5, max_iter=5000, tol=1e-10).fit(prepared.x["train"], prepared.y["train"])
    assert result.test["accuracy"] == pytest.approx(oracle.score(prepared.x["test"], prepared.y["test"]), abs=1e-9)
    ours_p = torch.softmax(model(torch.from_numpy(prepared.x["test"])), dim=1).detach().numpy()
    np.testing.assert_allclose(ours_p, oracle.predict_proba(prepared.x["test"]), atol=1e-3)


def test_ridge_baseline_matches_sklearn_on_diabetes(tmp_path):
    prepared = prepare(DataSpec(builtin="diabetes"), tmp_path, 0)
    result, _ = fit_ours(prepared, l2=1.0, metrics=("rmse", "r2"))
    mean, std = prepared.preprocessing["target_mean"], prepared.preprocessing["target_std"]
    oracle = Ridge(alpha=1.0).fit(prepared.x["train"], prepared.y["train"] * std + mean)
    pred = oracle.predict(prepared.x["test"])
    truth = prepared.y["test"] * std + mean
    assert result.test["rmse"] == pytest.approx(float(np.sqrt(np.mean((pred - truth) ** 2))), rel=1e-4)
    assert result.test["r2"] > 0.3
