"""Bad specs: exit code 2, one line per problem naming the field and what is allowed, no traceback, no run."""

from __future__ import annotations

import json

import pytest
import yaml

from conftest import binary_table, run_folders, tiny_spec, write_spec
from nnlab.errors import SpecError
from nnlab.spec import MAX_SEED

DATA = {"path": "data.csv", "target": "label"}
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
    ("a CUDA index past any machine's", {"train": {"device": "cuda:99999999999"}},
     "train.device: 'cuda:99999999999' is not available here (CUDA devices: "),
    ("a folder as the data", {"data": {**DATA, "path": "folder"}},
     "data.path: 'folder' is a folder; expected a file: one of .csv, .txt, .tsv, .parquet, .pq, .npz"),
    ("dropout of 1", {"models": [{"kind": "mlp", "dropout": 1.0}]}, "models[0].dropout: must be less than 1"),
    ("an image column without a size", {"data": {**DATA, "image": {"column": "file"}}},
     "data.image.size: needed to read image files ([H, W], e.g. [32, 32]); got column: 'file' without it"),
    ("image shape and size at once", {"data": {**DATA, "image": {"shape": [1, 2, 2], "size": [2, 2]}}},
     "data.image.shape: reads table columns as images; size/column read image files: give one"),
    ("image channels of 2", {"data": {**DATA, "image": {"size": [8, 8], "channels": 2}}},
     "data.image.channels: expected one of 1, 3 or 4; got 2"),
    ("an image size past the limit", {"data": {**DATA, "image": {"size": [8, 100000]}}},
     "data.image.size[1]: must be less than or equal to 4096; got 100000"),
    ("image files from a builtin set", {"data": {"builtin": "iris", "image": {"size": [8, 8]}}},
     "data.image: size/column read image files from data.path; got data.builtin: iris"),
    ("regression metric for a binary task", {"metrics": ["rmse"]},
     "metrics[0]: 'rmse' is not a binary metric; expected one of accuracy, precision, recall, f1, roc_auc, log_loss"),
    ("no data source", {"data": {"target": "label"}}, "give exactly one of data.path"),
    ("model override with a bad value", {"models": [{"kind": "mlp", "train": {"batch_size": 0}}]},
     "models[0].train.batch_size: must be greater than or equal to 1; got 0"),
    # what passes validation must not crash later
    ("a column included twice", {"data": {**DATA, "include": ["a", "b", "a"]}},
     "data.include: column 'a' listed more than once; list each column once"),
    ("a metric listed twice", {"metrics": ["f1", "accuracy", "f1"]},
     "metrics: 'f1' listed more than once; list each metric once"),
    ("a name too long for a file name", {"name": "n" * 300},
     "name: must be at most 100 characters long; got 'nnnnnnnnnnnnnnnnn...nnnnnnnnnnnnnnnnnn' (300 characters)"),
    ("a model name too long for a file name", {"models": [{"kind": "mlp", "name": "m" * 101}]},
     "models[0].name: must be at most 100 characters long; got 'mmmmmmmmmmmmmmmmm...mmmmmmmmmmmmmmmmmm' "
     "(101 characters)"),
    ("a seed beyond 64 bits", {"seed": 2**64},
     "seed: must be less than or equal to 4294967295; got 18446744073709551616"),
    ("repeats that carry the seed past the limit", {"seed": MAX_SEED, "repeats": 2},
     "seed: must be at most 4294967294 with repeats: 2 (repeats use seeds seed .. seed+1, each at most 4294967295); "
     "got 4294967295"),
    ("a split seed beyond the limit", {"data": {**DATA, "split": {"seed": 2**40}}},
     "data.split.seed: must be less than or equal to 4294967295; got 1099511627776"),
    ("class weights for a regression task", {"data": {**DATA, "task": "regression"},
                                             "train": {"class_weights": "balanced"}},
     "models[0].train.class_weights: 'balanced' weights classes, and the task is regression (data.task); remove it"),
    ("a decision threshold given as a number", {"train": {"threshold": 0.3}},
     "train.threshold: expected one of 'val_f1'; got 0.3"),
    ("a decision threshold for a multiclass task", {"data": {"builtin": "iris", "target": "target"},
                                                   "train": {"threshold": "val_f1"}},
     "models[0].train.threshold: 'val_f1' picks a binary decision threshold and the task is multiclass; remove it"),
    # augmentation against data kind
    ("an image augmentation on a table", {"train": {"augment": {"flip": "horizontal"}}},
     "train.augment.flip: augments data.image; the data is read as a plain table"),
    ("a text augmentation in one model's train on a table",
     {"models": [{"name": "mlp", "kind": "mlp", "train": {"augment": {"token_dropout": 0.1}}}]},
     "models[0].train.augment.token_dropout: augments data.text; the data is read as a plain table"),
    ("an unknown flip", {"train": {"augment": {"flip": "diagonal"}}},
     "train.augment.flip: expected one of 'horizontal' or 'vertical'; got 'diagonal'"),
    ("a token dropout of 1", {"train": {"augment": {"token_dropout": 1.0}}},
     "train.augment.token_dropout: must be less than 1; got 1.0"),
    # model kind against data kind
    ("a cnn on a plain table", {"models": [{"kind": "cnn"}]},
     "models[0].kind: 'cnn' needs data.sequence, data.image or data.text; the data is read as a plain table"),
    ("an rnn on a plain table", {"models": [{"kind": "mlp"}, {"kind": "rnn"}]},
     "models[1].kind: 'rnn' needs data.sequence or data.text; the data is read as a plain table"),
    ("a transformer on images", {"data": {**DATA, "image": {"shape": [1, 2, 2]}}, "models": [{"kind": "transformer"}]},
     "models[0].kind: 'transformer' needs data.sequence or data.text; the data is read as data.image"),
    ("text and sequence at once", {"data": {**DATA, "text": {}, "sequence": {"steps": 3}}},
     "data.sequence: cannot be given together with data.text; choose one way to read the features (data.text, "
     "data.sequence or data.image)"),
    ("transformer heads that do not divide d_model",
     {"data": {**DATA, "sequence": {}}, "models": [{"kind": "transformer", "d_model": 64, "heads": 5}]},
     "models[0].heads: must divide d_model (64) so that every head gets d_model / heads features; got 5"),
    ("an image shape of two numbers", {"data": {**DATA, "image": {"shape": [8, 8]}}},
     "data.image.shape: must have at least 3 item(s); got [8, 8]"),
    # sweeps
    ("a sweep key without values", {"sweep": {"grid": {"train.optimizer.lr": []}}},
     "sweep.grid.train.optimizer.lr: must have at least 1 item(s); got []"),
    ("a sweep of too many points", {"sweep": {"grid": {"train.optimizer.lr": [0.1] * 40, "seed": list(range(40))}}},
     "sweep.grid: 1,600 points (40 x 40); at most 1,000"),
    ("a sweep key that is no setting", {"sweep": {"grid": {"train.optimizer.rl": [0.1]}}},
     "sweep.grid: key 'train.optimizer.rl': 'rl' is not a setting of train.optimizer (settings: name, lr, "
     "momentum, weight_decay)"),
    ("a sweep key naming no model", {"sweep": {"grid": {"models.big.dropout": [0.1]}}},
     "sweep.grid: key 'models.big.dropout': no model 'big' in models (models: mlp)"),
    ("a sweep key that is no path", {"sweep": {"grid": {"train optimizer": [0.1]}}},
     "sweep.grid: key 'train optimizer' must be a dotted spec path such as train.optimizer.lr or models.mlp.dropout"),
    # unknown keys keep their own name, even one that reads like a model kind
    ("a model kind as a top-level key", {"mlp": {"hidden": [3]}}, "spec.yaml: mlp: unknown key; allowed: "
     "schema_version, name, seed, data, baseline, train, models, metrics, monitor, repeats, expect, sweep"),
    ("an expect key too long to show", {"expect": {"e" * 300 + ".test.accuracy": ">= 1"}},
     "expect: key 'eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee...' has 314 characters; at most 250"),
]


@pytest.mark.parametrize("case, changes, message", BAD_SPECS, ids=[c[0] for c in BAD_SPECS])
def test_bad_spec_is_one_clear_line_and_exit_2(tmp_path, runs, cli, case, changes, message):
    binary_table().to_csv(tmp_path / "data.csv", index=False)
    (tmp_path / "folder").mkdir()
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


def test_unknown_keys_at_every_level_are_reported_together(tmp_path, cli):
    spec = write_spec(tmp_path, {**tiny_spec(trian={"epochs": 3}, models=[{"kind": "mlp", "hiden": [4]}]),
                                 "data": {"path": "data.csv", "target": "label", "scael": "none"}})
    result = cli("validate", spec)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 3, lines
    assert all(line.startswith("error: spec.yaml: ") for line in lines)
    assert "error: spec.yaml: trian: unknown key; did you mean 'train'? allowed: schema_version, name," in result.stderr
    assert "error: spec.yaml: data.scael: unknown key; did you mean 'scale'? allowed: path, builtin," in result.stderr
    assert ("error: spec.yaml: models[0].hiden: unknown key; did you mean 'hidden'? allowed: name, train, inputs, "
            "table, combiner, kind,") in result.stderr


def test_cross_field_problems_are_reported_together(tmp_path, cli):
    spec = write_spec(tmp_path, tiny_spec(seed=MAX_SEED, repeats=3, models=[{"kind": "cnn"}, {"kind": "rnn"}],
                                          expect={"nope.test.accuracy": ">= 0.5"}))
    lines = cli("validate", spec).stderr.strip().splitlines()
    assert [line.split(": ")[2] for line in lines] == ["expect", "seed", "models[0].kind", "models[1].kind"]


def test_class_weights_on_an_inferred_regression_task_is_an_error_naming_the_model():
    from nnlab.spec import check_for_task, validate_spec

    spec = validate_spec(tiny_spec(models=[{"kind": "mlp"}, {"kind": "mlp", "name": "w", "train": {
        "class_weights": "balanced"}}], metrics=["rmse"]), "spec.yaml")
    with pytest.raises(SpecError) as raised:
        check_for_task(spec, "regression")
    assert str(raised.value) == ("models[1].train.class_weights: 'balanced' weights classes, and the task is "
                                 "regression (inferred from the target); remove it")
    spec.models[1].train.class_weights = None
    assert check_for_task(spec, "regression") == ["rmse"]


def test_check_for_task_keeps_the_messages_of_the_runner():
    from nnlab.spec import check_for_task, validate_spec

    spec = validate_spec(tiny_spec(metrics=["rmse"]), "spec.yaml")
    with pytest.raises(SpecError, match=r"^metrics\[0\]: 'rmse' is not a binary metric; expected one of accuracy, "):
        check_for_task(spec, "binary")
    spec = validate_spec(tiny_spec(baseline={"kind": "linear"}), "spec.yaml")
    with pytest.raises(SpecError, match="^baseline.kind: 'linear' does not fit a binary task; expected auto or "):
        check_for_task(spec, "binary")
    spec = validate_spec(tiny_spec(train={"loss": "mae"}), "spec.yaml")
    with pytest.raises(SpecError, match=r"^models\[0\].train.loss: 'mae' is a regression loss and the task is binary"):
        check_for_task(spec, "binary")
    assert check_for_task(validate_spec(tiny_spec(), "spec.yaml"), "multiclass") == ["accuracy", "f1"]


def test_set_reaches_dotted_keys_of_expect_and_sweep(tmp_path, cli):
    spec = write_spec(tmp_path, tiny_spec())
    result = cli("validate", spec, "--set", "expect.mlp.test.accuracy='>= 0.5'",
                 "--set", "sweep.grid.train.optimizer.lr=[0.01, 0.1]", "--set", "models.mlp.dropout=0.25")
    assert result.exit_code == 0, result.stderr
    resolved = yaml.safe_load(result.stdout)
    assert resolved["expect"] == {"mlp.test.accuracy": ">= 0.5"}
    assert resolved["sweep"] == {"grid": {"train.optimizer.lr": [0.01, 0.1]}, "one_at_a_time": False}
    assert resolved["models"][0]["dropout"] == 0.25


def test_one_deep_merge_and_one_gate_parser():
    from nnlab.spec import deep_merge, parse_expect_rule

    base = {"optimizer": {"name": "adam", "lr": 0.1}, "epochs": 3}
    assert deep_merge(base, {"optimizer": {"lr": 0.5}, "loss": "mse"}) == {
        "optimizer": {"name": "adam", "lr": 0.5}, "epochs": 3, "loss": "mse"}
    assert base["optimizer"]["lr"] == 0.1  # neither input changes
    assert parse_expect_rule(" >= 1e-2 ") == (">=", 0.01)
    with pytest.raises(ValueError, match="rule must read '<op> <number>'"):
        parse_expect_rule("about 3")


def test_an_npz_path_and_a_sweep_section_validate(tmp_path, cli):
    spec = write_spec(tmp_path, tiny_spec(data={"path": "arrays.npz", "target": "y", "sequence": {}},
                                          models=[{"kind": "rnn"}, {"kind": "transformer", "heads": 8}],
                                          sweep={"grid": {"models.rnn.hidden": [8, 16]}, "one_at_a_time": True}))
    result = cli("validate", spec)
    assert result.exit_code == 0, result.stderr
    assert yaml.safe_load(result.stdout)["sweep"]["grid"] == {"models.rnn.hidden": [8, 16]}
    schema = json.loads(cli("schema").stdout)
    assert {"grid", "one_at_a_time"} <= set(schema["$defs"]["SweepSpec"]["properties"])


@pytest.mark.parametrize("device", ["cuda:99999999999", "cuda:200", "cuda:" + "9" * 5000])
def test_a_device_flag_past_the_devices_here_is_one_line(tmp_path, runs, cli, device):
    binary_table().to_csv(tmp_path / "data.csv", index=False)
    result = cli("train", write_spec(tmp_path, tiny_spec()), "--device", device)
    assert result.exit_code == 2, result.output
    [line] = result.stderr.splitlines()
    assert line.startswith(f"error: train.device: '{device[:37]}") and "is not available here (CUDA devices: " in line
    assert len(line) < 200 and "Traceback" not in result.output
    assert run_folders(runs) == []


def test_a_cuda_index_is_checked_before_torch_wraps_it(monkeypatch):
    # torch.device("cuda:200") is cuda:-56 (an 8-bit index): the count is compared first, on any machine.
    import torch

    from nnlab.training.fit import resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    for name in ("cuda:2", "cuda:200", "cuda:99999999999"):
        with pytest.raises(SpecError, match=rf"^train.device: '{name}' is not available here \(CUDA devices: 2\); "
                                            r"expected auto, cpu, cuda or cuda:N with N < 2$"):
            resolve_device(name)
