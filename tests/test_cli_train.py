"""`nnlab train`, `validate`, `schema` through the CLI, and the run-folder contract scripts rely on."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest
import yaml

from conftest import ROOT, binary_table, run_folders, write_spec
from nnlab import runstore


def test_run_folder_contract(tiny, cli, runs):
    result = cli("train", tiny, "--note", "first try")
    assert result.exit_code == 0, result.output
    (folder,) = run_folders(runs)
    assert folder.name.startswith("tiny-")
    meta = json.loads((folder / "run.json").read_text())
    assert meta["status"] == "completed" and meta["format_version"] == 1 and meta["note"] == "first try"
    assert meta["seed"] == 0 and meta["device"] == "cpu" and "torch" in meta["versions"]
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["format_version"] == 1 and summary["task"] == "binary" and summary["baseline"] == "baseline"
    assert summary["monitor"] == "val_loss" and list(summary["models"]) == ["baseline", "mlp"]
    for name, entry in summary["models"].items():
        assert {"kind", "params", "best_epoch", "epochs_run", "val", "test", "train_seconds", "status"} <= set(entry)
        assert isinstance(entry["params"], int) and entry["status"] == "completed"
        # the spec's metrics, plus the binary final metrics; the F1 threshold is chosen on validation only
        assert set(entry["test"]) == {"loss", "accuracy", "f1", "roc_auc", "pr_auc", "brier"}
        assert set(entry["val"]) == set(entry["test"]) | {"f1_threshold"}
    assert summary["models"]["baseline"]["kind"] == "logistic" and summary["models"]["baseline"]["params"] == 4
    assert summary["models"]["mlp"]["params"] == 3 * 8 + 8 + 8 + 1
    metrics = pd.read_csv(folder / "metrics.csv")
    assert list(metrics.columns) == ["model", "member", "epoch", "train_loss", "val_loss", "train_accuracy", "train_f1",
                                     "train_roc_auc", "val_accuracy", "val_f1", "val_roc_auc", "lr", "seconds"]
    assert list(zip(metrics.model, metrics.epoch)) == [("baseline", 1), ("mlp", 1), ("mlp", 2), ("mlp", 3)]
    assert set(metrics.member) == {0}
    assert summary["complete"] is True and summary["models"]["mlp"]["name"] == "mlp"
    spec = yaml.safe_load((folder / "spec.yaml").read_text())
    assert spec["models"][0]["train"]["epochs"] == 3 and spec["train"]["optimizer"]["lr"] == 0.001
    assert spec["metrics"] == ["accuracy", "f1", "roc_auc"]
    run = runstore.read_run(folder)
    assert set(run.load_weights("mlp")) == {"0.weight", "0.bias", "2.weight", "2.bias"}
    assert run.model_info("mlp").preprocessing["classes"] == [0, 1]
    errors = pd.read_csv(folder / "errors" / "mlp.csv")
    assert (errors["true"] != errors["predicted"]).all()
    assert errors["confidence"].is_monotonic_decreasing
    assert {"row", "a", "b", "noise", "label"} <= set(errors.columns)
    assert f"run: {folder}" in result.stdout


def test_output_shows_data_summary_table_and_run(tiny, cli):
    result = cli("train", tiny)
    out = result.stdout
    assert "tiny: data.csv · 240 rows · 3 features · binary (target with 2 classes)" in out
    assert "split train 168 / val 36 / test 36 · device cpu" in out
    assert "best epoch by val_loss; test set evaluated once" in out
    row = next(line for line in out.splitlines() if line.startswith("mlp "))
    cells = row.split()
    assert cells[1] == "41" and cells[2].endswith("/3")  # params, best epoch / epochs run
    assert len(cells) == 9  # model, params, epoch, val loss, 3 test metrics, delta vs baseline, seconds


def test_set_overrides_by_model_name_and_index(tiny, cli, runs):
    result = cli("train", tiny, "--set", "models.mlp.hidden=[4, 2]", "--set", "train.epochs=2",
                 "--set", "models.0.dropout=0.1")
    assert result.exit_code == 0, result.output
    run = runstore.read_run(run_folders(runs)[0])
    model = run.spec["models"][0]
    assert model["hidden"] == [4, 2] and model["dropout"] == 0.1 and model["train"]["epochs"] == 2
    assert run.summary.models["mlp"].params == 3 * 4 + 4 + 4 * 2 + 2 + 2 + 1
    bad = cli("train", tiny, "--set", "models.big.hidden=[4]")
    assert bad.exit_code == 2 and "--set models.big: no model named 'big' (models: mlp)" in bad.stderr
    assert cli("train", tiny, "--set", "nonsense").exit_code == 2


def test_expect_gate_miss_exits_1(tiny, cli):
    spec = yaml.safe_load(tiny.read_text())
    spec["expect"] = {"mlp.test.accuracy": ">= 0.999", "baseline.val.loss": "< 5"}
    tiny.write_text(yaml.safe_dump(spec))
    result = cli("train", tiny)
    assert result.exit_code == 1
    assert "expect mlp.test.accuracy >= 0.999:" in result.stdout and "-> MISSED" in result.stdout
    assert "expect baseline.val.loss < 5:" in result.stdout and "-> pass" in result.stdout


def test_no_models_trains_the_baseline_and_a_first_network(tmp_path, cli, runs):
    binary_table().to_csv(tmp_path / "data.csv", index=False)
    spec = write_spec(tmp_path, {"name": "first", "data": {"path": "data.csv", "target": "label"},
                                 "train": {"epochs": 2}})
    result = cli("train", spec)
    assert result.exit_code == 0
    assert "no models in the spec: training the baseline and a first network" in result.stdout
    run = runstore.read_run(run_folders(runs)[0])
    assert run.spec["models"][0]["hidden"] == [64, 32] and run.spec["models"][0]["activation"] == "relu"


def test_no_baseline(tiny, cli, runs):
    result = cli("train", tiny, "--set", "baseline=false")
    assert result.exit_code == 0
    summary = runstore.read_run(run_folders(runs)[0]).summary
    assert summary.baseline is None and list(summary.models) == ["mlp"]


def test_smoke_run_on_spambase(tmp_path, cli, runs):
    # The example's gates are for a full run: a smoke run says so instead of failing on them.
    result = cli("train", ROOT / "experiments" / "spam.yaml", "--smoke")
    assert result.exit_code == 0, result.output
    assert "expect: not checked in a smoke run" in result.stdout and "MISSED" not in result.stdout
    run = runstore.read_run(run_folders(runs)[0])
    assert run.meta.smoke is True and run.summary.expect == []
    assert run.summary.data["split"]["train"] == 512
    assert all(m.epochs_run <= 2 for m in run.summary.models.values())


def test_runs_dir_from_the_environment(tiny, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from nnlab.cli import app
    monkeypatch.setenv("NNLAB_RUNS_DIR", str(tmp_path / "elsewhere"))
    assert CliRunner().invoke(app, ["train", str(tiny)]).exit_code == 0
    assert len(run_folders(tmp_path / "elsewhere")) == 1


def test_run_ids_never_collide(tmp_path, monkeypatch):
    # Same name, same second and the same random suffix: the second run must still get a folder of its own.
    import datetime as dt
    import secrets

    suffixes, real_token_hex = iter(["abcd", "abcd", "beef"]), secrets.token_hex
    monkeypatch.setattr(runstore.writer.secrets, "token_hex", lambda n: next(suffixes) if n == 2 else real_token_hex(n))

    class FrozenClock(dt.datetime):
        @classmethod
        def now(cls, tz=None):
            return dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=tz)

    monkeypatch.setattr(runstore.writer, "datetime", FrozenClock)
    from nnlab.core.records import RunMeta

    with runstore.RunWriter(tmp_path, RunMeta(id="-", name="x"), ["model"]) as first:
        with runstore.RunWriter(tmp_path, RunMeta(id="-", name="x"), ["model"]) as second:
            pass
    assert first.id == "x-20260102-030405-abcd" and second.id == "x-20260102-030405-beef"
    assert sorted(p.name for p in tmp_path.iterdir()) == [first.id, second.id]
    assert runstore.read_run(tmp_path / first.id).meta.status == "completed"


def test_validate_prints_the_resolved_spec(tiny, cli):
    result = cli("validate", tiny, "--set", "train.epochs=7")
    assert result.exit_code == 0
    resolved = yaml.safe_load(result.stdout)
    assert resolved["train"]["epochs"] == 7 and resolved["models"][0]["train"]["epochs"] == 7
    assert resolved["train"]["early_stopping"] == {"monitor": None, "patience": 8, "min_delta": 0.0}
    assert resolved["baseline"] == {"kind": "auto", "l2": 1.0, "max_iter": 500}


def test_schema_is_json_schema_with_descriptions(cli):
    schema = json.loads(cli("schema").stdout)
    assert schema["title"] == "nnlab experiment spec"
    assert {"name", "data", "train", "models", "expect"} <= set(schema["properties"])
    assert "relative to the spec file" in json.dumps(schema)


@pytest.mark.parametrize("args", [["--help"], ["validate", "experiments/spam.yaml"], ["schema"], ["runs"],
                                  ["compare"], ["compare", "last", "last~1"], ["show", "last"]])
def test_commands_that_do_not_train_do_not_import_torch(args, tiny, cli, runs, monkeypatch):
    for _ in range(2):
        assert cli("train", tiny).exit_code == 0
    monkeypatch.setenv("NNLAB_RUNS_DIR", str(runs))
    code = ("import sys; from nnlab.cli import app\n"
            f"try: app({args!r})\nexcept SystemExit: pass\n"
            "print('TORCH' if 'torch' in sys.modules else 'NO TORCH', file=sys.stderr)")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.stderr.strip().endswith("NO TORCH"), done.stderr
    assert "Traceback" not in done.stderr


def test_curves_are_drawn_on_request(tiny, cli, runs):
    assert cli("train", tiny, "--curves").exit_code == 0
    (folder,) = run_folders(runs)
    png = (folder / "curves.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000
    (folder / "curves.png").unlink()
    result = cli("curves", "last", "--runs-dir", runs)
    assert result.exit_code == 0 and (folder / "curves.png").exists()
    assert cli("curves", "nope", "--runs-dir", runs).exit_code == 2


def test_the_spambase_example_clears_its_bar(cli, runs):
    result = cli("train", ROOT / "experiments" / "spam.yaml")
    assert result.exit_code == 0, result.output
    models = runstore.read_run(run_folders(runs)[0]).summary.models
    assert models["baseline"].test["accuracy"] >= 0.90
    assert max(m.test["accuracy"] for name, m in models.items() if name != "baseline") >= 0.93
    assert all(m.status == "completed" for m in models.values())


def test_a_baseline_only_run_and_an_empty_one(tiny, cli, runs):
    result = cli("train", tiny, "--set", "models=[]")
    assert result.exit_code == 0, result.output
    assert list(runstore.read_run(run_folders(runs)[0]).summary.models) == ["baseline"]
    nothing = cli("train", tiny, "--set", "models=[]", "--set", "baseline=false")
    assert nothing.exit_code == 2
    assert "models: nothing to train: the baseline is off and the model list is empty" in nothing.stderr
