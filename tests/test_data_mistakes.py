"""The errors file: regression predictions in the target's units (RMSE recomputed from the file equals the
summary's), the original text of misclassified messages, and no pixel columns for images and sequences."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from conftest import run_folders, tiny_spec, write_spec
from nnlab.data import misclassified, prepare
from nnlab.spec import DataSpec


def regression_table(n: int = 200, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2))
    return pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "price": 200 + 30 * x[:, 0] - 10 * x[:, 1]
                         + rng.normal(0, 5, n)})


def test_regression_errors_are_in_target_units_for_every_row(tmp_path):
    regression_table().to_csv(tmp_path / "data.csv", index=False)
    prepared = prepare(DataSpec(path="data.csv", target="price"), tmp_path, 0)
    rng = np.random.default_rng(1)
    standardized = prepared.y["val"] + rng.normal(0, 0.1, len(prepared.y["val"]))  # what a model gives
    table = misclassified(prepared, standardized)
    assert list(table.columns[:4]) == ["row", "true", "predicted", "abs_error"]
    assert sorted(table["row"]) == sorted(prepared.rows["val"])  # every validation row
    assert table["abs_error"].is_monotonic_decreasing
    truth = prepared.frame["price"].to_numpy()[table["row"]]
    np.testing.assert_allclose(table["true"], truth)
    mean, std = prepared.preprocessing["target_mean"], prepared.preprocessing["target_std"]
    expected = dict(zip(prepared.rows["val"], standardized * std + mean))
    np.testing.assert_allclose(table["predicted"], [expected[r] for r in table["row"]], rtol=1e-6)
    assert abs(table["predicted"].mean() - 200) < 20  # in the target's units: the mean is not lost


def test_regression_rmse_from_the_errors_file_matches_the_summary(tmp_path, cli, runs):
    regression_table().to_csv(tmp_path / "data.csv", index=False)
    spec = tiny_spec(target="price", metrics=["rmse"], train={"epochs": 5, "batch_size": 32})
    result = cli("train", write_spec(tmp_path, spec))
    assert result.exit_code in (0, 1), result.output
    folder = run_folders(runs)[-1]
    summary = json.loads((folder / "summary.json").read_text())
    for model in ("baseline", "mlp"):
        errors = pd.read_csv(folder / "errors" / f"{model}.csv")
        assert len(errors) == summary["data"]["split"]["val"]
        rmse = float(np.sqrt(((errors["predicted"] - errors["true"]) ** 2).mean()))
        assert rmse == pytest.approx(summary["models"][model]["val"]["rmse"], rel=1e-4)


def test_text_mistakes_show_the_original_message(tmp_path):
    rng = np.random.default_rng(0)
    texts = [f"message number {i} " + ("win cash now" if i % 3 == 0 else "see you at lunch") for i in range(90)]
    frame = pd.DataFrame({"text": texts, "label": ["spam" if i % 3 == 0 else "ham" for i in range(90)]})
    frame.to_csv(tmp_path / "data.csv", index=False)
    prepared = prepare(DataSpec(path="data.csv", target="label", text={"max_len": 8}), tmp_path, 0)
    probabilities = rng.uniform(size=len(prepared.rows["val"]))  # of spam
    table = misclassified(prepared, probabilities)
    assert list(table.columns) == ["row", "true", "predicted", "confidence", "text"]
    wrong = (probabilities > 0.5) != (prepared.y["val"] == 1)
    assert len(table) == wrong.sum() > 0
    assert table["confidence"].is_monotonic_decreasing
    assert (table["text"] == frame["text"].to_numpy()[table["row"]]).all()
    assert (table["true"] == frame["label"].to_numpy()[table["row"]]).all()


@pytest.mark.parametrize("kind", [{"sequence": {"steps": 4}}, {"image": {"shape": [1, 2, 4]}}])
def test_array_mistakes_have_no_value_columns(tmp_path, kind):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(90, 8))).add_prefix("v").assign(label=np.arange(90) % 3)
    frame.to_csv(tmp_path / "data.csv", index=False)
    prepared = prepare(DataSpec(path="data.csv", target="label", **kind), tmp_path, 0)
    probabilities = rng.dirichlet(np.ones(3), len(prepared.rows["val"]))
    table = misclassified(prepared, probabilities)
    assert list(table.columns) == ["row", "true", "predicted", "confidence"]
    assert len(table) == (probabilities.argmax(1) != prepared.y["val"]).sum()
    np.testing.assert_allclose(table["confidence"], np.sort(probabilities.max(1)[probabilities.argmax(1)
                                                                                 != prepared.y["val"]])[::-1])
