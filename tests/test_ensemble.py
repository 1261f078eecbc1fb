"""Ensembles as a model (`ensemble: {method: greedy, size: N}`, `train --ensemble`): Caruana's greedy
selection with replacement against a hand computation, and end to end — the ensemble's own row and
records, its validation score against its members', its predictions against the weighted average of its
members' own predictions (scikit-learn's log loss as the oracle of its recorded score), predict by CLI and
API, and bad specs."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import log_loss, roc_auc_score

from conftest import binary_table, run_folders, tiny_spec, write_spec
from nnlab import api, load_run, runstore
from nnlab.run.ensemble import greedy_selection

Y = np.array([1, 1, 0, 0])


def brier(p: np.ndarray) -> float:
    return float(np.mean((p - Y) ** 2))


def test_selection_is_caruanas_by_hand_with_replacement():
    # A alone 0.07; B alone 0.13. Step 1: A (0.07). Step 2: A+A 0.07, (A+B)/2 = [.6,.7,.1,.1] -> 0.0675: B.
    # Step 3: (2A+B)/3 = [.7,.6333,.1,.1] -> 0.061111, (A+2B)/3 = [.5,.7667,.1,.1] -> 0.081111: A again.
    a, b = np.array([0.9, 0.5, 0.1, 0.1]), np.array([0.3, 0.9, 0.1, 0.1])
    chosen = greedy_selection([a, b], brier, 3, higher=False)
    assert chosen.trajectory == pytest.approx([0.07, 0.0675, 0.061111111], abs=1e-9)
    assert chosen.counts == [2, 1] and chosen.steps == 3
    assert chosen.weights == pytest.approx([2 / 3, 1 / 3]) and sum(chosen.weights) == pytest.approx(1.0)


def test_selection_keeps_the_best_prefix_and_breaks_ties_to_the_first():
    # A and B tie alone (0.0975): A. Step 2: (A+B)/2 = [.65,.65,.1,.1] -> 0.06625 beats A+A (0.0975) and
    # (A+C)/2 (0.109375). Step 3: (2A+B)/3 -> 0.069722 (A+2B ties it: A) is worse, so 2 steps are kept.
    a, b, c = np.array([0.9, 0.4, 0.1, 0.1]), np.array([0.4, 0.9, 0.1, 0.1]), np.array([0.6, 0.6, 0.4, 0.4])
    chosen = greedy_selection([a, b, c], brier, 3, higher=False)
    assert chosen.trajectory == pytest.approx([0.0975, 0.06625, 0.0697222222], abs=1e-9)
    assert chosen.counts == [1, 1, 0] and chosen.steps == 2 and chosen.weights == [0.5, 0.5, 0.0]
    # higher is better: the score negated chooses the same members
    assert greedy_selection([a, b, c], lambda p: -brier(p), 3, higher=True).counts == [1, 1, 0]
    # a member whose average scores NaN never wins
    nan = np.full(4, np.nan)
    assert greedy_selection([nan, b], brier, 2, higher=False).counts == [0, 1]  # b twice ties b: one step


MODELS = [{"name": "mlp", "kind": "mlp", "hidden": [8]}, {"name": "wide", "kind": "mlp", "hidden": [32]}]


@pytest.fixture(scope="module")
def ensembled(tmp_path_factory):
    """Two models × 3 repeats and `--ensemble` (size 8 in the spec): the selection keeps two members here."""
    from typer.testing import CliRunner

    from nnlab.cli import app

    folder = tmp_path_factory.mktemp("ensemble")
    binary_table().to_csv(folder / "data.csv", index=False)
    spec = write_spec(folder, tiny_spec(models=MODELS, baseline=False, ensemble={"size": 8},
                                        train={"epochs": 20, "batch_size": 32, "optimizer": {"lr": 0.01}}))
    runs = folder / "runs"
    runner = CliRunner()
    result = runner.invoke(app, ["train", str(spec), "--repeats", "3", "--ensemble", "--runs-dir", str(runs),
                                 "--no-progress"])
    assert result.exit_code == 0, result.output
    return folder, runs, result.output, runstore.read_run(run_folders(runs)[-1])


def test_the_ensemble_is_a_model_of_the_run(ensembled):
    folder, runs, output, run = ensembled
    model = run.summary.models["ensemble"]
    assert model.kind == "ensemble" and model.status == "completed"
    assert any(line.startswith("ensemble ") for line in output.splitlines())  # its row in train's table
    assert "ensemble: greedy selection on val_loss over 6 member(s)" in output
    info = run.ensemble_info("ensemble")
    assert info.size == 8 and info.method == "greedy"  # --ensemble keeps the spec's own size
    assert [m.model_dump() for m in info.members] == [m.model_dump() for m in model.ensemble]
    assert len(info.members) >= 2 and sum(m.weight for m in info.members) == pytest.approx(1.0, abs=1e-12)
    assert all(m.weight * info.steps == pytest.approx(round(m.weight * info.steps)) for m in info.members)
    # never worse on validation than its best member (each repeat's own val loss)
    members = [m.val["loss"] for name in ("mlp", "wide") for m in run.summary.models[name].members]
    assert model.val["loss"] <= min(members) + 1e-6
    assert info.trajectory[info.steps - 1] == pytest.approx(model.val["loss"], rel=1e-9)
    assert set(model.test) >= {"loss", "accuracy", "f1", "roc_auc"}  # evaluated once on test
    # every chosen member's weights are a saved model: the model's own file, or <model>@<member>
    saved = {name: run.model_info(name).member for name in ("mlp", "wide")}
    for member in info.members:
        assert member.weights == (member.model if saved[member.model] == member.member
                                  else f"{member.model}@{member.member}")
        assert run.model_info(member.weights).member == member.member


def _val_rows(folder, run) -> tuple[pd.DataFrame, pd.DataFrame]:
    recorded = run.predictions("ensemble")
    val = recorded[recorded["split"] == "val"]
    return pd.read_csv(folder / "data.csv").iloc[val["row"].to_numpy()], val


def test_predictions_are_the_weighted_average_of_its_members_own(ensembled):
    folder, runs, _, run = ensembled
    rows, recorded = _val_rows(folder, run)
    info = run.ensemble_info("ensemble")
    by_hand = sum(m.weight * api._rebuild(run, m.weights).predict(rows)["p_1"].to_numpy(np.float64)
                  for m in info.members)
    loaded = load_run(str(run.path)).predict(rows, model="ensemble")
    assert loaded["p_1"].to_numpy() == pytest.approx(by_hand, abs=1e-12)
    assert recorded["p_1"].to_numpy() == pytest.approx(by_hand, abs=1e-6)  # what training averaged
    assert (loaded["prediction"].to_numpy() == (by_hand > 0.5).astype(int)).all()
    # its recorded validation scores are those of the average (scikit-learn as the oracle)
    y = rows["label"].to_numpy()
    val = run.summary.models["ensemble"].val
    assert val["loss"] == pytest.approx(log_loss(y, by_hand, labels=[0, 1]), rel=1e-5)
    assert val["roc_auc"] == pytest.approx(roc_auc_score(y, by_hand), rel=1e-6)  # read as float32


def test_predict_cli_with_model_ensemble(ensembled):
    from typer.testing import CliRunner

    from nnlab.cli import app

    folder, runs, _, run = ensembled
    rows, _ = _val_rows(folder, run)
    rows.to_csv(folder / "rows.csv", index=False)
    result = CliRunner().invoke(app, ["predict", run.id, str(folder / "rows.csv"), "--model", "ensemble",
                                      "--out", str(folder / "out.csv"), "--runs-dir", str(runs)])
    assert result.exit_code == 0, result.output
    assert "note: the ensemble averages " in result.output
    out = pd.read_csv(folder / "out.csv")
    expected = load_run(run.id, runs).predict(rows, model="ensemble")
    assert out["p_1"].to_numpy() == pytest.approx(expected["p_1"].to_numpy(), abs=1e-12)
    assert "ensemble" in load_run(run.id, runs).models


def test_show_and_compare_list_the_ensemble(ensembled):
    from typer.testing import CliRunner

    from nnlab.cli import app

    _, runs, _, run = ensembled
    shown = CliRunner().invoke(app, ["show", run.id, "--runs-dir", str(runs)])
    assert shown.exit_code == 0 and "ensemble: greedy selection on val_loss" in shown.output
    compared = CliRunner().invoke(app, ["compare", run.id, "--runs-dir", str(runs), "--format", "csv"])
    assert compared.exit_code == 0 and "ensemble" in compared.output


@pytest.mark.parametrize("ensemble, field", [({"method": "foo"}, "ensemble.method"), ({"size": 0}, "ensemble.size"),
                                             ("greedy", "ensemble")])
def test_bad_ensemble_spec_is_one_line_exit_2_and_no_run(tmp_path, cli, runs, ensemble, field):
    binary_table().to_csv(tmp_path / "data.csv", index=False)
    result = cli("train", write_spec(tmp_path, tiny_spec(ensemble=ensemble)))
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and f"{field}:" in lines[0] and "Traceback" not in result.output
    assert run_folders(runs) == []


def test_a_model_named_ensemble_is_refused_when_the_ensemble_is_on(tmp_path, cli, runs):
    binary_table().to_csv(tmp_path / "data.csv", index=False)
    spec = tiny_spec(models=[{"name": "ensemble", "kind": "mlp", "hidden": [8]}])
    assert cli("validate", write_spec(tmp_path, spec)).exit_code == 0  # a name like any other without it
    result = cli("train", write_spec(tmp_path, spec), "--ensemble")
    assert result.exit_code == 2 and "reserved for the ensemble" in result.output
    assert run_folders(runs) == []


def test_a_spec_without_the_section_resolves_as_before(tmp_path):
    from nnlab.spec import load_spec

    binary_table().to_csv(tmp_path / "data.csv", index=False)
    spec, _ = load_spec(write_spec(tmp_path, tiny_spec()))
    assert "ensemble" not in spec.resolved()  # older runs resume and compare without an `ensemble` change
    spec, _ = load_spec(write_spec(tmp_path, tiny_spec(ensemble={})))
    assert spec.resolved()["ensemble"] == {"method": "greedy", "size": 5}
    assert json.dumps(spec.resolved())


def test_onnx_export_of_the_ensemble_is_refused_in_one_line(ensembled):
    from typer.testing import CliRunner

    from nnlab.cli import app

    folder, runs, _, run = ensembled
    result = CliRunner().invoke(app, ["export", run.id, "--to", "onnx", "--model", "ensemble", "--runs-dir",
                                      str(runs), "--out", str(folder / "e.onnx")])
    assert result.exit_code == 2 and "is an ensemble of" in result.output and "Traceback" not in result.output
    assert not (folder / "e.onnx").exists()


def test_sweep_ensemble_is_a_run_of_the_sweep_over_its_points_best_models(tmp_path, cli, runs):
    binary_table().to_csv(tmp_path / "data.csv", index=False)
    spec = write_spec(tmp_path, tiny_spec(baseline=False, train={"epochs": 8, "batch_size": 32,
                                                                 "optimizer": {"lr": 0.01}}))
    result = cli("sweep", spec, "--grid", "models.mlp.hidden=[4],[16],[32]", "--ensemble", "--runs-dir", str(runs))
    assert result.exit_code == 0, result.output
    folders = {p.name: runstore.read_run(p) for p in run_folders(runs)}
    made, = [r for name, r in folders.items() if name.startswith("tiny-ensemble-")]
    points = [r for r in folders.values() if r is not made]
    assert len(points) == 3 and {r.meta.sweep for r in points} == {made.meta.sweep}  # one sweep
    assert f"ensemble run: {runs / made.folder}" in result.output
    ensemble = made.summary.models["ensemble"]
    assert ensemble.val["loss"] <= min(r.summary.models["mlp"].val["loss"] for r in points) + 1e-6
    info = made.ensemble_info("ensemble")
    assert sum(m.weight for m in info.members) == pytest.approx(1.0) and info.candidates == 3
    # each member is a copy of its point's model: same predictions; the ensemble averages them as recorded
    rows = pd.read_csv(tmp_path / "data.csv").head(20)
    by_hand = 0.0
    for member in info.members:
        index = int(member.model.split("-")[0].removeprefix("p"))
        point = next(r for r in points if r.spec["models"][0]["hidden"] == [[4], [16], [32]][index])
        own = load_run(str(point.path)).predict(rows, model="mlp")["p_1"].to_numpy(np.float64)
        copy = load_run(str(made.path)).predict(rows, model=member.model)["p_1"].to_numpy(np.float64)
        assert copy == pytest.approx(own, abs=0)
        by_hand = by_hand + member.weight * own
    got = load_run(str(made.path)).predict(rows, model="ensemble")["p_1"].to_numpy()
    assert got == pytest.approx(by_hand, abs=1e-12)


def test_a_regression_ensemble_averages_predictions_in_the_targets_units(tmp_path, cli, runs):
    from sklearn.metrics import mean_squared_error

    rng = np.random.default_rng(0)
    x = rng.normal(size=(240, 3))
    frame = pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "c": x[:, 2],
                          "y": 3 * x[:, 0] - x[:, 1] + rng.normal(scale=0.3, size=240)})
    frame.to_csv(tmp_path / "reg.csv", index=False)
    spec = tiny_spec("reg.csv", "y", models=[{"name": "mlp", "kind": "mlp", "hidden": [16]}], ensemble={"size": 6},
                     train={"epochs": 10, "batch_size": 32, "optimizer": {"lr": 0.01}})
    assert cli("train", write_spec(tmp_path, spec), "--repeats", "3").exit_code == 0
    run = runstore.read_run(run_folders(runs)[-1])
    recorded = run.predictions("ensemble")
    rows = frame.iloc[recorded[recorded["split"] == "val"]["row"].to_numpy()]
    info = run.ensemble_info("ensemble")
    by_hand = sum(m.weight * api._rebuild(run, m.weights).predict(rows)["prediction"].to_numpy(np.float64)
                  for m in info.members)
    got = load_run(str(run.path)).predict(rows, model="ensemble")["prediction"].to_numpy()
    assert got == pytest.approx(by_hand, rel=1e-9, abs=1e-9)
    rmse = mean_squared_error(rows["y"], by_hand) ** 0.5
    assert run.summary.models["ensemble"].val["rmse"] == pytest.approx(rmse, rel=1e-5)
    members = [m.val["rmse"] for m in run.summary.models["mlp"].members] + [run.summary.models["baseline"].val["rmse"]]
    assert run.summary.models["ensemble"].val["rmse"] <= min(members) * (1 + 1e-6)  # monitor val_loss: MSE, same order


def test_the_report_says_the_ensemble_is_one(ensembled):
    from typer.testing import CliRunner

    from nnlab.cli import app

    folder, runs, _, run = ensembled
    result = CliRunner().invoke(app, ["report", run.id, "--runs-dir", str(runs), "--out", str(folder / "r.html")])
    assert result.exit_code == 0, result.output
    page = (folder / "r.html").read_text()
    model = run.summary.models["ensemble"]
    assert (f"ensemble · {model.params:,} parameters · completed · ensemble of {len(model.ensemble)} member(s)"
            in page)


def test_sweep_ensemble_is_refused_with_a_bayesian_search(tmp_path, cli, runs):
    binary_table().to_csv(tmp_path / "data.csv", index=False)
    result = cli("sweep", write_spec(tmp_path, tiny_spec()), "--search", "optuna", "--trials", "2", "--space",
                 "train.optimizer.lr=loguniform(1e-4,1e-2)", "--ensemble", "--runs-dir", str(runs))
    assert result.exit_code == 2 and "--ensemble: ensembles a grid or random sweep's points" in result.output
    assert run_folders(runs) == []
