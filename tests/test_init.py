"""`nnlab init DATA --target COLUMN`: a commented starter spec that validates and trains as written."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import ROOT, binary_table, run_folders
from nnlab import runstore


def mixed_table(n: int = 240) -> pd.DataFrame:
    """Numeric, categorical, an identifier, a placeholder-spoilt numeric column, missing values, string labels."""
    table = binary_table(n)
    table["label"] = table["label"].map({0: "keep", 1: "churn"})
    table["plan"] = np.where(table.index % 3 == 0, "pro", "basic")
    table["customer"] = [f"c{i:04d}" for i in range(n)]
    table["income"] = [str(v) for v in np.round(table["a"] * 10, 2)]
    table.loc[7, "income"] = "?"
    table.loc[[3, 11], "b"] = np.nan
    table.insert(0, "Unnamed: 0", np.arange(n))  # an index saved with the data
    return table


def sms_table(n: int = 240) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    spam, ham = ["win", "cash", "prize", "free", "call", "now"], ["see", "you", "at", "lunch", "home", "later"]
    is_spam = np.arange(n) % 3 == 0
    text = [" ".join(rng.choice(spam if s else ham, rng.integers(5, 12))) for s in is_spam]
    return pd.DataFrame({"message": text, "label": np.where(is_spam, "spam", "ham"), "length": [len(t) for t in text]})


def init_validate_train(cli, runs, data, target, out):
    result = cli("init", data, "--target", target, "-o", out)
    assert result.exit_code == 0, result.output
    assert cli("validate", out).exit_code == 0
    trained = cli("train", out)
    assert trained.exit_code == 0, trained.output
    return runstore.read_run(run_folders(runs)[-1])


def test_a_table_goes_from_csv_to_a_trained_comparison(tmp_path, cli, runs):
    mixed_table().to_csv(tmp_path / "churn.csv", index=False)
    (tmp_path / "specs").mkdir()
    out = tmp_path / "specs" / "churn.yaml"
    run = init_validate_train(cli, runs, tmp_path / "churn.csv", "label", out)
    spec = yaml.safe_load(out.read_text())
    assert spec["name"] == "churn" and spec["data"]["path"] == "../churn.csv"  # relative to the spec file
    assert spec["data"]["exclude"] == ["Unnamed: 0", "customer", "income"] and spec["data"]["impute"] == "median"
    assert [m["kind"] for m in spec["models"]] == ["mlp"] and spec["baseline"] == {"kind": "auto"}
    assert set(run.summary.models) == {"baseline", "mlp"} and run.summary.task == "binary"
    assert all(m.status == "completed" for m in run.summary.models.values())
    text = out.read_text()
    assert "inferred: binary (target with 2 classes; positive class 'keep'" in text
    assert "customer: 240 distinct values" in text and "income: numeric except for '?'" in text
    assert "Unnamed: 0: a row number" in text
    fields = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")
              and line.rstrip() not in ("data:", "train:", "models:")]
    assert all(" # " in line for line in fields), [line for line in fields if " # " not in line]


def test_a_text_table_gets_a_text_model(tmp_path, cli, runs):
    sms_table().to_csv(tmp_path / "sms.csv", index=False)
    run = init_validate_train(cli, runs, tmp_path / "sms.csv", "label", tmp_path / "sms.yaml")
    spec = yaml.safe_load((tmp_path / "sms.yaml").read_text())
    assert spec["data"]["text"] == {"column": "message", "max_len": 16}
    assert "exclude" not in spec["data"]  # the numeric column is read beside the text
    assert spec["models"] == [{"name": "bag", "kind": "mlp", "hidden": [64], "embedding": 32}]
    assert run.summary.models["bag"].status == "completed" and run.summary.models["baseline"].val["accuracy"] == 1.0


@pytest.mark.parametrize("shape, kind, model", [((90, 12, 2), "sequence", "rnn"), ((90, 1, 5, 5), "image", "cnn")])
def test_an_npz_of_sequences_or_images_gets_the_network_for_them(tmp_path, cli, runs, shape, kind, model):
    # A 3-D X can only be read as sequences and a 4-D one as images: the spec must say so, with a model
    # that reads that shape (a table spec would stop on the data).
    rng = np.random.default_rng(0)
    x = rng.normal(size=shape).astype(np.float32)
    np.savez(tmp_path / "arrays.npz", X=x, y=(x.reshape(len(x), -1)[:, 0] > 0).astype(int))
    run = init_validate_train(cli, runs, tmp_path / "arrays.npz", "y", tmp_path / "a.yaml")
    spec = yaml.safe_load((tmp_path / "a.yaml").read_text())
    assert spec["data"][kind] == {} and "scale" not in spec["data"] and "exclude" not in spec["data"]
    assert [m["kind"] for m in spec["models"]] == [model]
    assert "X is [N, " in (tmp_path / "a.yaml").read_text() and f"= {list(shape)}" in (tmp_path / "a.yaml").read_text()
    assert run.summary.models[spec["models"][0]["name"]].status == "completed"
    said = cli("init", tmp_path / "arrays.npz", "-t", "y", "-o", tmp_path / "b.yaml").output
    assert f"X: {kind}s, {list(shape[1:])} each" in said


def test_a_numeric_target_with_many_values_is_regression(tmp_path, cli):
    rng = np.random.default_rng(0)
    table = pd.DataFrame({"x": rng.normal(size=120), "y": rng.normal(size=120) * 50 + 300})
    table.to_parquet(tmp_path / "values.parquet")
    result = cli("init", tmp_path / "values.parquet", "--target", "y", "-o", tmp_path / "s.yaml")
    assert result.exit_code == 0, result.output
    text = (tmp_path / "s.yaml").read_text()
    assert "inferred: regression (numeric target with 120 distinct values)" in text
    assert "ridge regression" in text and "# metrics: [rmse, mae, r2]" in text


def test_it_refuses_to_overwrite_without_force(tmp_path, cli):
    binary_table().to_csv(tmp_path / "d.csv", index=False)
    (tmp_path / "spec.yaml").write_text("mine\n")
    result = cli("init", tmp_path / "d.csv", "--target", "label", "-o", tmp_path / "spec.yaml")
    assert result.exit_code == 2 and "the file exists; choose another name with -o or overwrite it with --force" \
        in result.stderr
    assert (tmp_path / "spec.yaml").read_text() == "mine\n"
    assert cli("init", tmp_path / "d.csv", "--target", "label", "-o", tmp_path / "spec.yaml", "--force"
               ).exit_code == 0
    assert (tmp_path / "spec.yaml").read_text().startswith("# Starter spec")


@pytest.mark.parametrize("target, data, message", [
    ("Label", "d.csv", "--target: column 'Label' not found in d.csv (columns: a, b, noise, label)"),
    ("label", "nope.csv", "file not found"),
    ("a", "d.csv", None),  # a numeric target: fine (regression)
])
def test_bad_targets_and_files_are_one_line_errors(tmp_path, cli, target, data, message):
    binary_table().to_csv(tmp_path / "d.csv", index=False)
    result = cli("init", tmp_path / data, "--target", target, "-o", tmp_path / "s.yaml")
    if message is None:
        assert result.exit_code == 0
        return
    assert result.exit_code == 2 and len(result.stderr.splitlines()) == 1 and message in result.stderr
    assert not (tmp_path / "s.yaml").exists()


def test_a_target_with_missing_values_writes_nothing(tmp_path, cli):
    table = binary_table().astype({"label": float})
    table.loc[4, "label"] = np.nan
    table.to_csv(tmp_path / "d.csv", index=False)
    result = cli("init", tmp_path / "d.csv", "--target", "label", "-o", tmp_path / "s.yaml")
    assert result.exit_code == 2 and "column 'label' has 1 missing values; drop those rows" in result.stderr
    assert not (tmp_path / "s.yaml").exists()


def test_init_does_not_import_torch(tmp_path):
    binary_table().to_csv(tmp_path / "d.csv", index=False)
    code = ("import sys; from nnlab.cli import app\n"
            f"try: app(['init', {str(tmp_path / 'd.csv')!r}, '--target', 'label', '-o', "
            f"{str(tmp_path / 's.yaml')!r}])\nexcept SystemExit as e: print(e.code)\n"
            "print('TORCH' if 'torch' in sys.modules else 'NO TORCH')")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.stdout.strip().splitlines()[-2:] == ["0", "NO TORCH"], done.stdout + done.stderr


def test_data_training_would_stop_on_writes_nothing(tmp_path, cli):
    table = binary_table()
    table.loc[0, "label"] = 7  # a class of one row cannot be split three ways
    table.to_csv(tmp_path / "d.csv", index=False)
    result = cli("init", tmp_path / "d.csv", "--target", "label", "-o", tmp_path / "s.yaml")
    assert result.exit_code == 2 and not (tmp_path / "s.yaml").exists()
    assert result.stderr.strip() == ("error: no spec written: training would stop on the data: data.split: class 7 "
                                     "has only 1 row(s); a train, validation and test split need at least 3 per "
                                     "class (or set data.split.stratify: false)")
