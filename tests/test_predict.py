"""Predicting with a finished run: `nnlab predict` and `nnlab.load_run(...).predict(frame)`.

The round trip: the run's own validation rows, fed back through the saved weights and preprocessing, give
the validation scores the run recorded (scikit-learn computes them here as the oracle), for classification
with string labels and for regression in the target's units.
"""

from __future__ import annotations

import io
import os
import re
import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

import nnlab
from conftest import ROOT, binary_table, tiny_spec, write_spec
from nnlab.data import prepare
from nnlab.errors import RunError
from nnlab.spec import load_spec

TOLERANCE = dict(rel=2e-5, abs=2e-6)  # float32 outputs, summed in a different order


def string_labels(n: int = 300) -> pd.DataFrame:
    """Three classes named by strings; features that separate them, a categorical column, and a text id."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(n, 3))
    score = x[:, 0] + 0.7 * x[:, 1]
    label = np.where(score < -0.5, "low", np.where(score > 0.5, "high", "mid"))
    return pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "c": x[:, 2], "shade": rng.choice(["dark", "light"], n),
                         "kind": label})


def regression_table(n: int = 300) -> pd.DataFrame:
    rng = np.random.default_rng(2)
    x = rng.normal(size=(n, 3))
    price = 1000 + 250 * x[:, 0] - 120 * x[:, 1] + rng.normal(scale=30, size=n)  # far from 0 and 1: units show
    return pd.DataFrame({"size": x[:, 0], "age": x[:, 1], "noise": x[:, 2], "price": price})


def train(tmp_path, cli, frame: pd.DataFrame, target: str, **spec):
    frame.to_csv(tmp_path / "data.csv", index=False)
    path = write_spec(tmp_path, tiny_spec(target=target, **{"train": {"epochs": 4, "batch_size": 32}, **spec}))
    result = cli("train", path)
    assert result.exit_code == 0, result.output
    return path


def validation_rows(spec_path, split: str = "val") -> pd.DataFrame:
    """The run's validation (or test) rows, by re-creating its split from the same spec."""
    spec, base = load_spec(spec_path)
    prepared = prepare(spec.data, base, spec.seed)
    return prepared.frame.iloc[prepared.rows[split]]


def predict_cli(cli, runs, tmp_path, rows: pd.DataFrame, *args) -> pd.DataFrame:
    rows.to_csv(tmp_path / "rows.csv", index=False)
    result = cli("predict", "last", tmp_path / "rows.csv", "--runs-dir", runs, *args)
    assert result.exit_code == 0, result.output
    return pd.read_csv(io.StringIO(result.stdout))


@pytest.mark.parametrize("model", ["baseline", "mlp"])
def test_binary_string_labels_reproduce_the_recorded_validation_scores(tmp_path, cli, runs, model):
    table = binary_table(seed=3)
    table["label"] = table["label"].map({0: "ham", 1: "spam"})
    spec = train(tmp_path, cli, table, "label", metrics=["accuracy", "f1", "roc_auc", "log_loss"])
    val = validation_rows(spec)
    out = predict_cli(cli, runs, tmp_path, val, "--model", model)
    assert list(out.columns) == ["prediction", "p_ham", "p_spam"] and len(out) == len(val)
    assert set(out["prediction"]) <= {"ham", "spam"}
    recorded = nnlab.load_run("last", runs).summary.models[model].val
    truth, p_spam = val["label"].to_numpy(), out["p_spam"].to_numpy()
    assert skm.accuracy_score(truth, out["prediction"]) == pytest.approx(recorded["accuracy"], **TOLERANCE)
    assert skm.f1_score(truth, out["prediction"], pos_label="spam") == pytest.approx(recorded["f1"], **TOLERANCE)
    assert skm.roc_auc_score(truth == "spam", p_spam) == pytest.approx(recorded["roc_auc"], **TOLERANCE)
    assert skm.log_loss(truth == "spam", p_spam) == pytest.approx(recorded["loss"], rel=1e-4)
    np.testing.assert_allclose(out["p_ham"] + out["p_spam"], 1.0, atol=1e-6)
    test = validation_rows(spec, "test")  # rows the model never saw, not even for choosing its epoch
    out = predict_cli(cli, runs, tmp_path, test.drop(columns=["label"]), "--model", model)
    recorded = nnlab.load_run("last", runs).summary.models[model].test
    assert skm.accuracy_score(test["label"], out["prediction"]) == pytest.approx(recorded["accuracy"], **TOLERANCE)
    assert skm.roc_auc_score(test["label"] == "spam", out["p_spam"]) == pytest.approx(recorded["roc_auc"],
                                                                                       **TOLERANCE)


def test_multiclass_string_labels_reproduce_the_recorded_validation_scores(tmp_path, cli, runs):
    spec = train(tmp_path, cli, string_labels(), "kind")
    val = validation_rows(spec)
    out = predict_cli(cli, runs, tmp_path, val)
    run = nnlab.load_run("last", runs)
    assert list(out.columns) == ["prediction", "p_high", "p_low", "p_mid"]
    recorded = run.summary.models[run.best_model].val
    assert skm.accuracy_score(val["kind"], out["prediction"]) == pytest.approx(recorded["accuracy"], **TOLERANCE)
    assert skm.f1_score(val["kind"], out["prediction"], average="macro") == pytest.approx(recorded["f1"],
                                                                                            **TOLERANCE)
    probabilities = out[["p_high", "p_low", "p_mid"]].to_numpy()
    assert (out["prediction"].to_numpy() == np.array(["high", "low", "mid"])[probabilities.argmax(1)]).all()


def test_regression_predicts_in_target_units_and_reproduces_the_recorded_scores(tmp_path, cli, runs):
    spec = train(tmp_path, cli, regression_table(), "price", train={"epochs": 30, "batch_size": 32})
    val = validation_rows(spec)
    run = nnlab.load_run("last", runs)
    for model in ("baseline", "mlp"):
        out = predict_cli(cli, runs, tmp_path, val, "-m", model)
        assert list(out.columns) == ["prediction"]
        recorded = run.summary.models[model].val
        truth, pred = val["price"].to_numpy(), out["prediction"].to_numpy()
        assert np.sqrt(skm.mean_squared_error(truth, pred)) == pytest.approx(recorded["rmse"], **TOLERANCE)
        assert skm.mean_absolute_error(truth, pred) == pytest.approx(recorded["mae"], **TOLERANCE)
        assert skm.r2_score(truth, pred) == pytest.approx(recorded["r2"], **TOLERANCE)
    assert run.summary.models["baseline"].val["r2"] > 0.9 and abs(pred.mean() - 1000) < 100  # units, not z-scores


def test_the_python_api(tmp_path, cli, runs):
    spec = train(tmp_path, cli, string_labels(), "kind", models=[
        {"name": "mlp", "kind": "mlp", "hidden": [8]}, {"name": "wide", "kind": "mlp", "hidden": [32]}])
    run = nnlab.load_run("last", runs_dir=runs)
    summary = run.summary
    scores = {name: summary.models[name].val["loss"] for name in ("baseline", "mlp", "wide")}
    assert run.models == sorted(scores, key=scores.get) and run.best_model == run.models[0]
    epochs = run.metrics()
    assert len(epochs) == sum(m.epochs_run for m in summary.models.values())
    assert set(epochs["model"]) == {"baseline", "mlp", "wide"}
    rows = validation_rows(spec).set_index(pd.Index([f"r{i}" for i in range(len(validation_rows(spec)))]))
    out = run.predict(rows, model="wide")
    assert out.index.equals(rows.index) and list(out.columns) == ["prediction", "p_high", "p_low", "p_mid"]
    default = run.predict(rows)
    assert default.equals(run.predict(rows, model=run.best_model))
    assert run.ignored_columns(rows) == ["kind"]
    with pytest.raises(RunError, match=r"--model: run '.*' has no saved model 'nope' \(models: "):
        run.predict(rows, model="nope")
    with pytest.raises(RunError, match="no such run"):
        nnlab.load_run("nope", runs_dir=runs)


@pytest.mark.parametrize("kind, setting", [("sequence", {"steps": 4}), ("image", {"shape": [1, 2, 4]})])
def test_sequences_and_images_reuse_their_scaling(tmp_path, cli, runs, kind, setting):
    rng = np.random.default_rng(4)
    x = rng.normal(size=(240, 8)) * np.arange(1, 9) + 5  # channels with different scales: scaling matters
    table = pd.DataFrame(x, columns=[f"v{i}" for i in range(8)]).assign(
        label=np.where(x[:, 0] - 5 + (x[:, 5] - 5) / 6 > 0, "up", "down"))
    spec = train(tmp_path, cli, table, "label", data={"path": "data.csv", "target": "label", kind: setting},
                 models=[{"name": "cnn", "kind": "cnn", "channels": [4], "kernel": 3}])
    val = validation_rows(spec)
    run = nnlab.load_run("last", runs)
    for model in ("baseline", "cnn"):
        out = run.predict(val, model=model)
        recorded = run.summary.models[model].val
        assert skm.accuracy_score(val["label"], out["prediction"]) == pytest.approx(recorded["accuracy"], **TOLERANCE)
        assert skm.roc_auc_score(val["label"] == "up", out["p_up"]) == pytest.approx(recorded["roc_auc"],
                                                                                      **TOLERANCE)


@pytest.fixture
def trained(tmp_path, cli, runs):
    table = binary_table()
    table["label"] = table["label"].map({0: "no", 1: "yes"})
    train(tmp_path, cli, table.assign(color=np.where(table.index % 2 == 0, "red", "blue")), "label")
    return table.assign(color=np.where(table.index % 2 == 0, "red", "blue"))


def test_missing_and_mistyped_columns_are_one_line_errors(trained, tmp_path, cli, runs):
    trained.drop(columns=["b", "color"]).to_csv(tmp_path / "missing.csv", index=False)
    result = cli("predict", "last", tmp_path / "missing.csv", "--runs-dir", runs)
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.strip() == ("error: missing.csv: column(s) b, color missing from the rows to predict "
                                     "(expected columns: a, b, noise, color)")
    trained.assign(a=["x"] + list(trained["a"][1:])).to_csv(tmp_path / "typed.csv", index=False)
    result = cli("predict", "last", tmp_path / "typed.csv", "--runs-dir", runs)
    assert result.exit_code == 2
    assert re.fullmatch(r"error: typed.csv: column 'a' must hold numbers; got \w+ values such as 'x'",
                        result.stderr.strip()), result.stderr
    result = cli("predict", "last", tmp_path / "none.csv", "--runs-dir", runs)
    assert result.exit_code == 2 and "file not found" in result.stderr and len(result.stderr.splitlines()) == 1


def test_extra_columns_are_ignored_and_said_so(trained, tmp_path, cli, runs):
    rows = trained.drop(columns=["label"]).assign(comment="anything")
    rows.to_csv(tmp_path / "rows.csv", index=False)
    plain = cli("predict", "last", tmp_path / "rows.csv", "--runs-dir", runs)
    assert plain.exit_code == 0
    assert "note: ignored column(s) the model does not read: comment" in plain.stderr
    reordered = rows[["comment", "color", "noise", "b", "a"]]
    reordered.to_csv(tmp_path / "reordered.csv", index=False)
    again = cli("predict", "last", tmp_path / "reordered.csv", "--runs-dir", runs)
    assert again.stdout == plain.stdout  # columns are found by name, not position


def test_categories_never_seen_in_training(trained, tmp_path, cli, runs):
    rows = trained.assign(color=["green"] + list(trained["color"][1:]))
    rows.to_csv(tmp_path / "rows.csv", index=False)
    result = cli("predict", "last", tmp_path / "rows.csv", "--runs-dir", runs)
    assert result.exit_code == 0 and len(pd.read_csv(io.StringIO(result.stdout))) == len(rows)
    assert ("note: column 'color': 1 value(s) not seen in training ('green') are encoded as none of the known "
            "categories") in result.stderr
    trained.assign(color=3).to_csv(tmp_path / "numbers.csv", index=False)
    result = cli("predict", "last", tmp_path / "numbers.csv", "--runs-dir", runs)
    assert result.exit_code == 2
    assert result.stderr.strip() == ("error: numbers.csv: column 'color' holds none of the values it had in "
                                     "training (blue, red); got values such as '3'")


def test_text_runs_reuse_their_vocabulary(tmp_path, cli, runs):
    """The baseline (TF-IDF rows) and a text model (token ids) both reproduce their validation scores."""
    rng = np.random.default_rng(0)
    spam, ham = ["win", "cash", "prize", "free", "call", "now", "see"], ["see", "you", "at", "lunch", "home", "now"]
    is_spam = rng.random(240) < 0.4
    text = [" ".join(rng.choice(spam if s else ham, rng.integers(3, 9))) for s in is_spam]
    table = pd.DataFrame({"message": text, "label": np.where(is_spam, "spam", "ham")})
    spec = train(tmp_path, cli, table, "label", data={"path": "data.csv", "target": "label",
                                                      "text": {"column": "message", "max_len": 12}},
                 models=[{"name": "bag", "kind": "mlp", "hidden": [8], "embedding": 8}])
    val = validation_rows(spec)
    run = nnlab.load_run("last", runs)
    for model in ("baseline", "bag"):
        out = run.predict(val.drop(columns=["label"]), model=model)
        recorded = run.summary.models[model].val
        assert skm.accuracy_score(val["label"], out["prediction"]) == pytest.approx(recorded["accuracy"], **TOLERANCE)
        assert skm.roc_auc_score(val["label"] == "spam", out["p_spam"]) == pytest.approx(recorded["roc_auc"],
                                                                                          **TOLERANCE)
    unknown = run.predict(pd.DataFrame({"message": ["zzz qqq", ""]}), model="bag")
    assert len(unknown) == 2  # words never seen (and an empty message) are out-of-vocabulary, not errors


@pytest.mark.parametrize("suffix, fmt, reader", [
    (".csv", None, pd.read_csv), (".parquet", None, pd.read_parquet),
    (".json", None, lambda p: pd.read_json(p, lines=True)), (".out", "json", lambda p: pd.read_json(p, lines=True))])
def test_one_output_row_per_input_row_in_each_format(trained, tmp_path, cli, runs, suffix, fmt, reader):
    trained.to_csv(tmp_path / "rows.csv", index=False)
    out = tmp_path / f"pred{suffix}"
    result = cli("predict", "last", tmp_path / "rows.csv", "--runs-dir", runs, "-o", out,
                 *(["--format", fmt] if fmt else []))
    assert result.exit_code == 0 and result.stdout == ""
    frame = reader(out)
    assert len(frame) == len(trained) and list(frame.columns) == ["prediction", "p_no", "p_yes"]
    expected = nnlab.load_run("last", runs).predict(trained)
    assert list(frame["prediction"]) == list(expected["prediction"])
    np.testing.assert_allclose(frame["p_yes"], expected["p_yes"], rtol=1e-6)


def test_parquet_to_a_terminal_is_refused(trained, tmp_path, cli, runs):
    trained.to_csv(tmp_path / "rows.csv", index=False)
    result = cli("predict", "last", tmp_path / "rows.csv", "--runs-dir", runs, "--format", "parquet")
    assert result.exit_code == 2 and "--format parquet needs --out FILE" in result.stderr


def test_predicting_never_imports_scikit_learn_and_never_unpickles(trained, tmp_path, runs):
    trained.to_csv(tmp_path / "rows.csv", index=False)
    code = (
        "import sys, pickle, pandas as pd, nnlab\n"
        f"run = nnlab.load_run('last', {str(runs)!r}); run.models, run.summary, run.metrics()\n"
        "print('torch' in sys.modules)\n"  # reading results is light; only rebuilding a model needs torch
        "import torch\n"
        "def refuse(*a, **k): raise AssertionError('unpickling')\n"
        "pickle.load = pickle.loads = pickle.Unpickler = torch.load = refuse\n"
        f"out = run.predict(pd.read_csv({str(tmp_path / 'rows.csv')!r}))\n"
        "print(len(out), 'sklearn' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.stdout.split() == ["False", str(len(trained)), "False"], done.stderr


def test_the_weights_file_is_what_predicts(trained, tmp_path, cli, runs):
    """Zeroing the saved weights changes the predictions: nothing else (a cache, a pickle) carries the model."""
    from safetensors.numpy import load_file, save_file

    run = nnlab.load_run("last", runs)
    before = run.predict(trained, model="mlp")
    path = run.path / "models" / "mlp.safetensors"
    save_file({k: np.zeros_like(v) for k, v in load_file(str(path)).items()}, str(path))
    after = nnlab.load_run("last", runs).predict(trained, model="mlp")
    np.testing.assert_allclose(after["p_yes"], 0.5)
    assert not np.allclose(before["p_yes"], 0.5)
    json.loads((run.path / "models" / "mlp.json").read_text())  # what predicting reads besides the weights


def test_a_run_without_completed_models_needs_a_named_model(trained, tmp_path, cli, runs):
    """The best weights of a cut-off model are kept; nnlab uses them only when asked by name."""
    run = nnlab.load_run("last", runs)
    summary = json.loads((run.path / "summary.json").read_text())
    for entry in summary["models"].values():
        entry["status"] = "interrupted"
    (run.path / "summary.json").write_text(json.dumps(summary))
    trained.to_csv(tmp_path / "rows.csv", index=False)
    result = cli("predict", "last", tmp_path / "rows.csv", "--runs-dir", runs)
    assert result.exit_code == 2 and result.stderr.strip().endswith(
        "no completed model with saved weights to choose by default; name one with --model (saved: baseline, mlp)")
    assert cli("predict", "last", tmp_path / "rows.csv", "--runs-dir", runs, "-m", "mlp").exit_code == 0


@pytest.mark.parametrize("damage, message", [
    (lambda models: (models / "mlp.safetensors").write_bytes(b"\x00" * 20), "(Error while deserializing"),
    (lambda models: (models / "mlp.json").write_text('{"kind": "mlp"}'), "(no 'preprocessing' in mlp.json)"),
    (lambda models: (models / "mlp.json").write_text("{not json"), "(mlp.json: unreadable (Expecting property name"),
])
def test_damaged_model_files_are_one_line_errors(trained, tmp_path, cli, runs, damage, message):
    run = nnlab.load_run("last", runs)
    damage(run.path / "models")
    trained.to_csv(tmp_path / "rows.csv", index=False)
    result = cli("predict", "last", tmp_path / "rows.csv", "--runs-dir", runs, "-m", "mlp")
    assert result.exit_code == 2 and len(result.stderr.splitlines()) == 1
    assert f"model 'mlp' cannot be rebuilt from its saved files {message}" in result.stderr, result.stderr


# --- arrays and hostile input: one tiny table run and one tiny image run on .npz files, trained once ----------

@pytest.fixture(scope="module")
def npz_runs(tmp_path_factory):
    """Two runs in one store: `table` on a 2-D X [N, 4], `image` on a 4-D X [N, 1, 2, 3]; and their data."""
    from typer.testing import CliRunner

    from nnlab.cli import app

    folder = tmp_path_factory.mktemp("npz")
    rng = np.random.default_rng(5)
    x, images = rng.normal(size=(160, 4)), rng.normal(size=(160, 1, 2, 3))
    np.savez(folder / "table.npz", X=x, y=(x[:, 0] + x[:, 1] > 0).astype(int))
    np.savez(folder / "image.npz", X=images, y=(images[:, 0, 0, 0] > 0).astype(int))
    ids = {}
    for name, extra in (("table", {}), ("image", {"image": {}})):
        spec = write_spec(folder, tiny_spec(f"{name}.npz", "y", name=name, data={"path": f"{name}.npz",
                                                                                 "target": "y", **extra}),
                          f"{name}.yaml")
        result = CliRunner().invoke(app, ["train", str(spec), "--runs-dir", str(folder / "runs")])
        assert result.exit_code == 0, result.output
        ids[name] = nnlab.load_run("last", folder / "runs").id
    return folder, ids


def predict_npz(cli, npz_runs, name: str, rows, *args):
    folder, ids = npz_runs
    return cli("predict", ids[name], rows, "--runs-dir", folder / "runs", *args)


def one_line_error(result) -> str:
    assert result.exit_code == 2 and result.stdout == "" and "Traceback" not in result.stderr, result.output
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    return result.stderr.strip()


def test_an_npz_with_only_x_and_an_array_predict_like_the_training_file(npz_runs, tmp_path, cli):
    folder, ids = npz_runs
    with np.load(folder / "table.npz") as data:
        x = data["X"]
    np.savez(tmp_path / "x_only.npz", X=x)
    with_y, x_only = predict_npz(cli, npz_runs, "table", folder / "table.npz"), \
        predict_npz(cli, npz_runs, "table", tmp_path / "x_only.npz")
    assert with_y.exit_code == 0 and x_only.exit_code == 0, x_only.output
    assert x_only.stdout == with_y.stdout and "ignored column" not in with_y.stderr  # y is not a feature
    out = pd.read_csv(io.StringIO(x_only.stdout))
    run = nnlab.load_run(ids["table"], folder / "runs")
    from_array = run.predict(x)
    assert list(from_array["prediction"]) == list(out["prediction"]) and len(out) == len(x)
    np.testing.assert_allclose(from_array["p_1"], out["p_1"], rtol=1e-6)
    frame = pd.DataFrame(x, columns=["x0", "x1", "x2", "x3"])
    np.testing.assert_allclose(run.predict(frame)["p_1"], from_array["p_1"])  # the columns an array becomes
    assert run.model().array_shape == (4,)
    with pytest.raises(nnlab.errors.DataError, match=r"^data: X has shape \[160, 3\]; model '.*' reads examples "
                                                     r"of shape \[4\] \(X of shape \[N, 4\]\)$"):
        run.predict(x[:, :3])


def test_an_image_of_another_shape_is_refused_naming_both(npz_runs, tmp_path, cli):
    folder, ids = npz_runs
    rng = np.random.default_rng(6)
    np.savez(tmp_path / "wrong.npz", X=rng.normal(size=(5, 1, 3, 2)))
    message = one_line_error(predict_npz(cli, npz_runs, "image", tmp_path / "wrong.npz"))
    assert re.fullmatch(r"error: wrong\.npz: X has shape \[5, 1, 3, 2\]; model '\S+' reads examples of shape "
                        r"\[1, 2, 3\] \(X of shape \[N, 1, 2, 3\] or \[N, 6\]\)", message), message
    right = rng.normal(size=(5, 1, 2, 3))
    np.savez(tmp_path / "right.npz", X=right)
    np.savez(tmp_path / "flat.npz", X=right.reshape(5, 6))
    shaped, flat = (predict_npz(cli, npz_runs, "image", tmp_path / f) for f in ("right.npz", "flat.npz"))
    assert shaped.exit_code == 0 and shaped.stdout == flat.stdout and len(shaped.stdout.splitlines()) == 6


def test_out_naming_the_input_file_is_refused_and_the_input_kept(npz_runs, tmp_path, cli):
    folder, _ = npz_runs
    frame = pd.DataFrame(np.random.default_rng(7).normal(size=(6, 4)), columns=["x0", "x1", "x2", "x3"])
    frame.to_csv(tmp_path / "rows.csv", index=False)
    before = (tmp_path / "rows.csv").read_bytes()
    os.link(tmp_path / "rows.csv", tmp_path / "hard.csv")
    os.symlink(tmp_path / "rows.csv", tmp_path / "soft.csv")
    for out in (tmp_path / "rows.csv", tmp_path / "." / "rows.csv", tmp_path / "hard.csv", tmp_path / "soft.csv"):
        message = one_line_error(predict_npz(cli, npz_runs, "table", tmp_path / "rows.csv", "--out", out))
        assert message == (f"error: --out {out}: this is the file the rows were read from ({tmp_path / 'rows.csv'}); "
                           "writing there would replace the data: choose another file"), message
    assert (tmp_path / "rows.csv").read_bytes() == before
    assert predict_npz(cli, npz_runs, "table", tmp_path / "rows.csv", "--out", tmp_path / "p.csv").exit_code == 0


def test_out_replaces_a_symlink_and_leaves_its_target_as_it_was(npz_runs, tmp_path, cli):
    frame = pd.DataFrame(np.random.default_rng(7).normal(size=(6, 4)), columns=["x0", "x1", "x2", "x3"])
    frame.to_csv(tmp_path / "rows.csv", index=False)
    (tmp_path / "target.csv").write_text("keep me\n")
    os.symlink(tmp_path / "target.csv", tmp_path / "p.csv")
    assert predict_npz(cli, npz_runs, "table", tmp_path / "rows.csv", "--out", tmp_path / "p.csv").exit_code == 0
    assert (tmp_path / "target.csv").read_text() == "keep me\n"
    assert not (tmp_path / "p.csv").is_symlink() and len((tmp_path / "p.csv").read_text().splitlines()) == 7


def test_rows_that_cannot_be_predicted_are_one_line_errors(npz_runs, tmp_path, cli):
    (tmp_path / "header.csv").write_text("x0,x1,x2,x3\n")
    assert one_line_error(predict_npz(cli, npz_runs, "table", tmp_path / "header.csv")) == (
        "error: DATA: header.csv has no rows to predict")
    np.savez(tmp_path / "complex.npz", X=np.ones((3, 4)) + 2j)
    assert one_line_error(predict_npz(cli, npz_runs, "table", tmp_path / "complex.npz")) == (
        "error: DATA: X in complex.npz holds complex128 values; expected real numbers")
    empty = nnlab.load_run(npz_runs[1]["table"], npz_runs[0] / "runs").predict(np.zeros((0, 4)))
    assert len(empty) == 0 and list(empty.columns) == ["prediction", "p_0", "p_1"]


def copied_run(npz_runs, tmp_path):
    """A copy of the table run in its own store, to damage."""
    import shutil

    folder, ids = npz_runs
    source = nnlab.load_run(ids["table"], folder / "runs").path
    shutil.copytree(source, tmp_path / "runs" / source.name, symlinks=True)
    return tmp_path / "runs" / source.name


@pytest.mark.parametrize("edit, problem", [
    (lambda info: info["preprocessing"].update(center=info["preprocessing"]["center"][:2]),
     "center has 2 values for 4 features"),
    (lambda info: info["preprocessing"].update(classes=[0, 1, 2]), "a binary model needs 2 classes; got 3"),
    (lambda info: info["preprocessing"].update(task="ranking"),
     "task 'ranking': expected one of binary, multiclass, regression"),
])
def test_an_edited_model_json_is_a_one_line_error(npz_runs, tmp_path, cli, edit, problem):
    run = copied_run(npz_runs, tmp_path)
    for model in ("baseline", "mlp"):
        info = json.loads((run / "models" / f"{model}.json").read_text())
        edit(info)
        (run / "models" / f"{model}.json").write_text(json.dumps(info))
        message = one_line_error(cli("predict", run, npz_runs[0] / "table.npz", "-m", model))
        assert message.endswith(f"model '{model}' cannot be rebuilt from its saved files ({problem})"), message


@pytest.mark.parametrize("file", ["mlp.json", "mlp.safetensors"])
@pytest.mark.parametrize("kind", ["fifo", "dev-zero"])
def test_a_model_file_that_is_a_fifo_or_a_device_is_refused_without_reading(npz_runs, tmp_path, file, kind):
    """In a subprocess with a timeout: were the file opened for reading as it is, this would wait forever
    (a FIFO) or fill the memory (/dev/zero)."""
    run = copied_run(npz_runs, tmp_path)
    (run / "models" / file).unlink()
    if kind == "fifo":
        os.mkfifo(run / "models" / file)
    else:
        os.symlink("/dev/zero", run / "models" / file)
    done = subprocess.run([sys.executable, "-m", "nnlab.cli", "predict", str(run), str(npz_runs[0] / "table.npz"),
                           "-m", "mlp"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stdout == "" and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert done.stderr.strip().endswith(f"model 'mlp' cannot be rebuilt from its saved files ({file}: not a "
                                        "regular file)"), done.stderr
