"""Per-class results, the end-of-training metrics and the predictions file, against scikit-learn: one tiny
binary run (a model at 0.5 and its twin with `train.threshold: val_f1`) and one tiny multiclass run,
trained once for the module."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import (average_precision_score, brier_score_loss, confusion_matrix, f1_score,
                             precision_recall_fscore_support)
from typer.testing import CliRunner

from conftest import binary_table, tiny_spec, write_spec
from nnlab.cli import app
from nnlab.core.numbers import format_value
from nnlab.runstore import read_run

LABELS = ["ham", "spam"]  # text labels: the matrix and the file must show them, not 0/1
KINDS = ["cat", "dog", "eel"]


def _train(folder: Path, runs: Path, spec: dict, name: str) -> Path:
    result = CliRunner().invoke(app, ["train", str(write_spec(folder, spec, name)), "--runs-dir", str(runs)],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return max((p for p in runs.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime_ns)


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("per_class")
    runs = folder / "runs"
    table = binary_table(300)
    table["label"] = np.array(LABELS, dtype=object)[table["label"]]
    table.to_csv(folder / "bin.csv", index=False)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 3))
    y = np.array(KINDS)[(x[:, 0] > 0.3).astype(int) + (x[:, 1] > 0).astype(int)]
    pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "c": x[:, 2], "label": y}).to_csv(folder / "multi.csv", index=False)
    mlp = {"kind": "mlp", "hidden": [8]}
    binary = _train(folder, runs, tiny_spec("bin.csv", models=[
        {**mlp, "name": "mlp"}, {**mlp, "name": "tuned", "train": {"threshold": "val_f1"}}]), "bin.yaml")
    multi = _train(folder, runs, tiny_spec("multi.csv", name="multi"), "multi.yaml")
    return {"runs": runs, "binary": binary, "multi": multi}


def _summary(path: Path) -> dict:
    return json.loads((path / "summary.json").read_text())


def _check_tables(model: dict, frame: pd.DataFrame, labels: list[str]) -> None:
    for split in ("val", "test"):
        rows = frame[frame["split"] == split]
        table = model["per_class"][split]
        assert table["labels"] == labels
        assert table["confusion"] == confusion_matrix(rows["target"], rows["prediction"], labels=labels).tolist()
        precision, recall, f1, support = precision_recall_fscore_support(
            rows["target"], rows["prediction"], labels=labels, zero_division=0)
        np.testing.assert_allclose(table["precision"], precision, atol=1e-12)
        np.testing.assert_allclose(table["recall"], recall, atol=1e-12)
        np.testing.assert_allclose(table["f1"], f1, atol=1e-12)
        assert table["support"] == support.tolist()


def test_binary_per_class_pr_auc_and_brier_match_scikit_learn(store):
    run = read_run(store["binary"])
    summary = _summary(store["binary"])
    for name in ("baseline", "mlp", "tuned"):
        model, frame = summary["models"][name], run.predictions(name)
        assert list(frame.columns) == ["split", "row", "target", "prediction", "confidence", "p_ham", "p_spam"]
        assert len(frame) == summary["data"]["split"]["val"] + summary["data"]["split"]["test"]
        _check_tables(model, frame, LABELS)
        for split in ("val", "test"):
            rows = frame[frame["split"] == split]
            truth = (rows["target"] == "spam").to_numpy()
            assert model[split]["pr_auc"] == pytest.approx(average_precision_score(truth, rows["p_spam"]), abs=1e-6)
            assert model[split]["brier"] == pytest.approx(brier_score_loss(truth, rows["p_spam"]), abs=1e-6)
    # the file holds the model's own predictions: at 0.5 they score the summary's test accuracy
    test = run.predictions("mlp").query("split == 'test'")
    assert (test["target"] == test["prediction"]).mean() == pytest.approx(summary["models"]["mlp"]["test"]["accuracy"])
    assert run.predictions("no-such-model") is None


def test_threshold_val_f1_is_the_f1_maximising_threshold_on_val_and_scores_test_with_it(store):
    summary = _summary(store["binary"])
    frame = read_run(store["binary"]).predictions("tuned")
    val, test = frame[frame["split"] == "val"], frame[frame["split"] == "test"]
    truth = (val["target"] == "spam").to_numpy()
    # by hand: every distinct probability as the threshold (positive when p >= t); the highest t on a tie
    candidates = np.unique(val["p_spam"].to_numpy())[::-1]
    scores = [f1_score(truth, val["p_spam"].to_numpy() >= t) for t in candidates]
    best = candidates[int(np.argmax(scores))]
    tuned, plain = summary["models"]["tuned"], summary["models"]["mlp"]
    assert tuned["threshold"] == pytest.approx(best, abs=1e-7)
    assert tuned["val"]["f1_threshold"] == pytest.approx(best, abs=1e-7)
    assert plain["threshold"] is None and plain["val"]["f1_threshold"] == pytest.approx(best, abs=1e-7)  # twins
    assert best != pytest.approx(0.5)
    # test predictions are taken at it, and change against the twin scored at 0.5
    assert (test["prediction"] == np.where(test["p_spam"] >= best, "spam", "ham")).all()
    twin = read_run(store["binary"]).predictions("mlp").query("split == 'test'")
    np.testing.assert_allclose(twin["p_spam"], test["p_spam"])
    assert (twin["prediction"] != test["prediction"].to_numpy()).sum() > 0
    assert tuned["test"]["f1"] == pytest.approx(f1_score(test["target"] == "spam", test["prediction"] == "spam"))
    assert tuned["test"]["accuracy"] == pytest.approx((test["target"] == test["prediction"]).mean())
    assert any("decision threshold" in line and "val_f1" in line for line in tuned["diagnosis"])


def test_multiclass_per_class_and_ece_match_scikit_learn_and_a_hand_computation(store):
    run = read_run(store["multi"])
    summary = _summary(store["multi"])
    for name in ("baseline", "mlp"):
        model, frame = summary["models"][name], run.predictions(name)
        assert list(frame.columns) == ["split", "row", "target", "prediction", "confidence",
                                       *[f"p_{k}" for k in KINDS]]
        _check_tables(model, frame, KINDS)
        for split in ("val", "test"):
            rows = frame[frame["split"] == split]
            probs = rows[[f"p_{k}" for k in KINDS]].to_numpy()
            confidence = probs.max(axis=1)
            correct = np.array(KINDS)[probs.argmax(axis=1)] == rows["target"].to_numpy()
            ece = 0.0
            for b in range(15):  # [b/15, (b+1)/15), the last bin closed
                inside = (confidence >= b / 15) & ((confidence < (b + 1) / 15) if b < 14 else True)
                if inside.any():
                    ece += inside.mean() * abs(correct[inside].mean() - confidence[inside].mean())
            assert model[split]["ece"] == pytest.approx(ece, abs=1e-6)
            assert "pr_auc" not in model[split]


def test_compare_accepts_the_new_metrics(store):
    summary = _summary(store["binary"])
    result = CliRunner().invoke(app, ["compare", store["binary"].name, "--metric", "pr_auc", "--runs-dir",
                                      str(store["runs"])], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "pr_auc" in result.output
    assert format_value(summary["models"]["mlp"]["test"]["pr_auc"]) in result.output
    result = CliRunner().invoke(app, ["compare", store["multi"].name, "--metric", "ece", "--runs-dir",
                                      str(store["runs"])], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert format_value(_summary(store["multi"])["models"]["mlp"]["test"]["ece"]) in result.output


def test_show_prints_the_confusion_matrix_with_the_original_labels(store):
    summary = _summary(store["binary"])
    result = CliRunner().invoke(app, ["show", store["binary"].name, "--runs-dir", str(store["runs"])],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    tuned = summary["models"]["tuned"]
    head = next(i for i, line in enumerate(lines) if line.startswith("tuned test:"))
    assert f"pr_auc {format_value(tuned['test']['pr_auc'])}" in lines[head]
    assert f"F1 threshold on val {format_value(tuned['threshold'])} (applied to test)" in lines[head]
    assert lines[head + 1].split()[:5] == ["true", "\\", "predicted", "ham", "spam"]
    for k, label in enumerate(LABELS):  # a row per true class: its counts, then precision, recall, f1, support
        cells = lines[head + 3 + k].split()
        assert cells[0] == label
        assert [int(c) for c in cells[1:3]] == tuned["per_class"]["test"]["confusion"][k]
        assert cells[3:6] == [format_value(tuned["per_class"]["test"][m][k]) for m in ("precision", "recall", "f1")]
        assert int(cells[6]) == tuned["per_class"]["test"]["support"][k]
