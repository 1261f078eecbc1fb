"""The baseline against scikit-learn's linear models on the same split (the oracle)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression, Ridge

from conftest import SPAMBASE
from nnlab.training import fit as train
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


def sparse_rows(n=150, d=40, density=0.15, seed=0):
    from nnlab.core.inputs import SparseRows

    rng = np.random.default_rng(seed)
    dense = (rng.random((n, d)) < density) * rng.exponential(size=(n, d))
    indptr = np.concatenate([[0], np.cumsum((dense != 0).sum(1))]).astype(np.int64)
    rows, cols = np.nonzero(dense)
    return SparseRows(indptr, cols.astype(np.int64), dense[rows, cols].astype(np.float32), d), rng


@pytest.mark.parametrize("task", ["binary", "multiclass"])
def test_sparse_rows_fit_the_same_baseline_as_dense_rows_and_sklearn(task):
    x_sparse, rng = sparse_rows()
    x_dense = x_sparse.to_dense()
    score = x_dense[:, :3] @ np.array([1.5, -1.0, 0.8]) + rng.normal(scale=0.5, size=len(x_dense))
    y = (score > np.median(score)).astype(np.float32) if task == "binary" else np.digitize(
        score, np.quantile(score, [1 / 3, 2 / 3])).astype(np.int64)
    n_outputs = 1 if task == "binary" else 3
    parts = {"train": np.arange(0, 100), "val": np.arange(100, 125), "test": np.arange(125, 150)}
    fitted = {}
    for kind, x in (("sparse", x_sparse), ("dense", x_dense)):
        inputs = {k: (x.take(r) if kind == "sparse" else x[r]) for k, r in parts.items()}
        problem = train.Problem.from_arrays(task, inputs, {k: y[r] for k, r in parts.items()}, ["accuracy"],
                                            "val_loss", torch.device("cpu"), n_outputs=n_outputs)
        assert (problem.x["train"].layout == torch.sparse_csr) == (kind == "sparse")
        model = build_baseline(40, n_outputs)
        fitted[kind] = (train.fit_baseline("baseline", model, problem, BaselineSpec(l2=2.0), lambda r: None), model)
    (sparse_result, sparse_model), (dense_result, _) = fitted["sparse"], fitted["dense"]
    for name in ("weight", "bias"):
        np.testing.assert_allclose(sparse_result.state[name], dense_result.state[name], atol=1e-6)
    assert sparse_result.val["loss"] == pytest.approx(dense_result.val["loss"], abs=1e-6)
    assert sparse_result.test == pytest.approx(dense_result.test, abs=1e-6)
    np.testing.assert_allclose(sparse_result.val_probabilities, dense_result.val_probabilities, atol=1e-6)
    # The oracle: scikit-learn's LogisticRegression(C=1/l2) reaches the same objective value.
    xt, yt = x_dense[parts["train"]].astype(np.float64), y[parts["train"]]
    oracle = LogisticRegression(C=0.5, max_iter=10000, tol=1e-12).fit(xt, yt)

    def objective(w, b):
        z = xt @ w.T + b
        if task == "binary":
            z = z.ravel()
            data = np.mean(np.logaddexp(0, z) - yt * z)
        else:
            data = np.mean(np.logaddexp.reduce(z, axis=1) - z[np.arange(len(yt)), yt])
        return data + 2.0 * (w * w).sum() / (2 * len(yt))

    ours = objective(sparse_model.weight.detach().double().numpy(), sparse_model.bias.detach().double().numpy())
    assert ours == pytest.approx(objective(oracle.coef_, oracle.intercept_), abs=1e-7)
