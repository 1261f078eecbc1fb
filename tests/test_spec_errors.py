"""Bad specs: exit code 2, one line per problem naming the field and what is allowed, no traceback, no run."""

from __future__ import annotations

import pytest

from conftest import binary_table, run_folders, tiny_spec, write_spec

BAD_SPECS = [
    # (what is wrong, spec changes, text the error must contain)
    ("misspelled model kind", {"models": [{"kind": "mpl"}]},
     "models[0].kind: expected one of 'mlp', 'resmlp', 'cnn', 'rnn', 'transformer'; got 'mpl'"),
    ("hidden given as a number", {"models": [{"kind": "mlp", "hidden": 64}]}, "models[0].hidden: expected a valid list"),
    ("unknown key with a close match", {"models": [{"kind": "mlp", "hiden": [4]}]},
     "models[0].hiden: unknown key; did you mean 'hidden'?"),
    ("yes for an integer", {"train": {"epochs": True}}, "train.epochs: expected a valid integer; got True"),
    ("negative learning rate", {"train": {"optimizer": {"lr": -0.1}}},
     "train.optimizer.lr: must be greater than 0; got -0.1"),
    ("NaN learning rate", {"train": {"optimizer": {"lr": float("nan")}}}, "train.optimizer.lr: must be a finite number"),
    ("unknown optimizer", {"train": {"optimizer": {"name": "adagrad"}}},
     "train.optimizer.name: expected one of 'sgd', 'adam' or 'adamw'; got 'adagrad'"),
    ("split leaves nothing to train on", {"data": {"path": "data.csv", "target": "label",
                                                   "split": {"val": 0.5, "test": 0.45}}},
     "data.split: val + test must leave at least 10% for training"),
    ("monitor that is not logged", {"monitor": "val_acc"}, "monitor: expected one of val_loss"),
    ("unknown metric", {"metrics": ["auc"]}, "metrics[0]: expected one of"),
    ("expect gate on a model that does not exist", {"expect": {"cnn.test.accuracy": ">= 0.9"}},
     "expect: key 'cnn.test.accuracy': no model 'cnn' (models: baseline, mlp)"),
    ("expect rule that is not a comparison", {"expect": {"mlp.test.accuracy": "at least 0.9"}},
     "rule must read '<op> <number>'"),
    ("duplicate model names", {"models": [{"kind": "mlp", "name": "a"}, {"kind": "mlp", "name": "a"}]},
     "models: names must be unique; 'a' appears twice"),
    ("unknown scheduler", {"train": {"scheduler": {"name": "cos"}}},
     "train.scheduler.name: expected one of 'step', 'cosine', 'plateau'; got 'cos'"),
    ("unknown top-level key", {"epochs": 5}, "epochs: unknown key"),
    ("device pattern", {"train": {"device": "gpu"}}, "train.device: must match"),
    ("dropout of 1", {"models": [{"kind": "mlp", "dropout": 1.0}]}, "models[0].dropout: must be less than 1"),
    ("regression metric for a binary task", {"metrics": ["rmse"]},
     "metrics[0]: 'rmse' is not a binary metric; expected one of accuracy, precision, recall, f1, roc_auc, log_loss"),
    ("no data source", {"data": {"target": "label"}}, "give exactly one of data.path"),
    ("model override with a bad value", {"models": [{"kind": "mlp", "train": {"batch_size": 0}}]},
     "models[0].train.batch_size: must be greater than or equal to 1; got 0"),
]


@pytest.mark.parametrize("case, changes, message", BAD_SPECS, ids=[c[0] for c in BAD_SPECS])
def test_bad_spec_is_one_clear_line_and_exit_2(tmp_path, runs, cli, case, changes, message):
    binary_table().to_csv(tmp_path / "data.csv", index=False)
    spec = write_spec(tmp_path, tiny_spec(**changes))
    result = cli("train", spec)
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert result.stderr.startswith("error: spec.yaml: ") or result.stderr.startswith("error: ")
    assert "Traceback" not in result.output + result.stderr
    assert result.stdout == ""
    assert run_folders(runs) == []


def test_every_problem_of_a_spec_is_reported_on_its_own_line(tmp_path, cli):
    spec = write_spec(tmp_path, tiny_spec(train={"epochs": 0, "batch_size": "big"}))
    result = cli("validate", spec)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2
    assert any("train.epochs: must be greater than or equal to 1; got 0" in line for line in lines)
    assert any("train.batch_size: expected a valid integer; got 'big'" in line for line in lines)


def test_a_bad_default_is_reported_once_not_once_per_model(tmp_path, cli):
    spec = write_spec(tmp_path, tiny_spec(train={"optimizer": {"lr": 0}},
                                          models=[{"kind": "mlp"}, {"kind": "resmlp"}]))
    result = cli("validate", spec)
    assert result.exit_code == 2
    assert result.stderr.count("optimizer.lr") == 1


def test_yaml_syntax_error_names_line_and_column(tmp_path, cli):
    path = tmp_path / "spec.yaml"
    path.write_text("name: x\ndata:\n  path: [a.csv\n  target: y\n")
    result = cli("validate", path)
    assert result.exit_code == 2
    assert "spec.yaml: line 4, column 9" in result.stderr


def test_duplicate_keys_are_errors_with_their_line(tmp_path, cli):
    path = tmp_path / "spec.yaml"
    path.write_text("name: x\nseed: 1\nseed: 2\ndata: {path: d.csv, target: y}\n")
    result = cli("validate", path)
    assert result.exit_code == 2
    assert "spec.yaml: line 3, column 1: duplicate key 'seed'" in result.stderr


def test_missing_and_empty_spec_files(tmp_path, cli):
    assert "spec file not found" in cli("validate", tmp_path / "nope.yaml").stderr
    (tmp_path / "empty.yaml").write_text("")
    result = cli("validate", tmp_path / "empty.yaml")
    assert result.exit_code == 2 and "the spec is empty" in result.stderr
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    assert "must be a mapping" in cli("validate", tmp_path / "list.yaml").stderr


def test_scientific_notation_is_a_float(tmp_path, cli):
    spec = write_spec(tmp_path, tiny_spec())
    spec.write_text(spec.read_text() + "")
    text = spec.read_text().replace("epochs: 3", "epochs: 3\n  optimizer: {lr: 1e-3}")
    spec.write_text(text)
    result = cli("validate", spec)
    assert result.exit_code == 0, result.stderr
    assert "lr: 0.001" in result.stdout
