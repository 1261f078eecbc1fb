"""Architectures and kinds in a sweep: `--grid`/`--space` over `models.<m>.kind` and over whole layer lists,
`--set 'models+={...}'` adding a model (train, validate, sweep), each checked before anything trains; repeated
random draws dropped (sweeps/space.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import binary_table, run_folders, tiny_spec, write_spec
from nnlab import runstore
from nnlab.cli import app
from nnlab.errors import SpecError
from nnlab.spec import apply_overrides, load_spec
from nnlab.sweeps import grid, space

WIDE = "models+={name: wide, kind: mlp, hidden: [16]}"


def invoke(*args: str | Path):
    return CliRunner().invoke(app, list(map(str, args)), catch_exceptions=False)


@pytest.fixture
def spec(tmp_path: Path) -> Path:
    binary_table(120).to_csv(tmp_path / "data.csv", index=False)
    return write_spec(tmp_path, tiny_spec(train={"epochs": 2, "batch_size": 32},
                                          models=[{"name": "net", "kind": "mlp", "hidden": [8], "dropout": 0.1,
                                                   "activation": "tanh"}]))


def _models_of(runs: Path) -> list[dict]:
    return [runstore.read_run(folder).spec["models"] for folder in run_folders(runs)]


# --- a model's kind changed: what the new kind does not take is dropped ---------------------------------

def test_a_kind_change_drops_what_the_new_kind_does_not_take_and_keeps_the_rest():
    raw = {"models": [{"kind": "mlp", "hidden": [8], "dropout": 0.1, "activation": "tanh", "train": {"l1": 0.1}}]}
    out = apply_overrides(raw, ["models.mlp.kind=resmlp"])
    # hidden is an MLP's; dropout, activation and the model's train are resmlp settings too; the unnamed
    # model keeps the name it was selected by, so its rows and gates stay under "mlp"
    assert out["models"] == [{"kind": "resmlp", "dropout": 0.1, "activation": "tanh", "train": {"l1": 0.1},
                              "name": "mlp"}]
    # two unnamed MLPs are mlp and mlp-2: the second changed is named by the spec after its new kind
    two = apply_overrides({"models": [{"kind": "mlp"}, {"kind": "mlp"}]}, ["models.1.kind=resmlp"])
    assert two["models"] == [{"kind": "mlp"}, {"kind": "resmlp"}]
    same = apply_overrides({"models": [{"name": "a", "kind": "mlp", "hidden": [8]}]}, ["models.a.kind=mlp"])
    assert same["models"] == [{"name": "a", "kind": "mlp", "hidden": [8]}]


def test_a_setting_given_beside_the_kind_meets_the_new_kind_in_any_order(spec: Path):
    loaded, _ = load_spec(spec, ["models.net.width=32", "models.net.kind=resmlp"])
    assert (loaded.models[0].kind, loaded.models[0].width, loaded.models[0].dropout) == ("resmlp", 32, 0.1)
    # an MLP setting next to kind=resmlp is not silently dropped: the new kind rejects it
    with pytest.raises(SpecError, match=r"^spec\.yaml: models\[0\]\.hidden: unknown key; allowed: .*width"):
        load_spec(spec, ["models.net.hidden=[4]", "models.net.kind=resmlp"])


def test_validate_shows_the_new_kind_with_its_defaults(spec: Path):
    result = invoke("validate", spec, "--set", "models.net.kind=resmlp")
    assert result.exit_code == 0, result.output
    assert "kind: resmlp" in result.output and "width: 128" in result.output and "hidden" not in result.output


# --- sweeps over kinds and layer lists --------------------------------------------------------------------

def test_a_grid_over_kinds_trains_each_kind_under_the_model_name(spec: Path, tmp_path: Path):
    runs = tmp_path / "runs"
    result = invoke("sweep", spec, "--grid", "models.net.kind=mlp,resmlp", "--runs-dir", runs)
    assert result.exit_code == 0, result.output
    kinds = sorted((m[0]["name"], m[0]["kind"], m[0].get("hidden"), m[0].get("width")) for m in _models_of(runs))
    assert kinds == [("net", "mlp", [8], None), ("net", "resmlp", None, 128)]
    assert "kind=resmlp" in result.output and "kind=mlp" in result.output


def test_an_invalid_combination_is_one_line_per_problem_naming_the_points_before_anything_trains(
        spec: Path, tmp_path: Path):
    runs = tmp_path / "runs"
    result = invoke("sweep", spec, "--grid", "models.net.kind=mlp,resmlp", "--grid", "models.net.hidden=[4],[8]",
                    "--runs-dir", runs)
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, lines
    assert "models[0].hidden: unknown key" in lines[0]
    assert "(2 of 4 points) at models.net.kind=resmlp, models.net.hidden=[4]; models.net.kind=resmlp, " \
           "models.net.hidden=[8]" in lines[0]
    assert run_folders(runs) == []


def test_a_grid_over_whole_layer_lists(spec: Path, tmp_path: Path):
    runs = tmp_path / "runs"
    result = invoke("sweep", spec, "--grid", "models.net.hidden=[4],[8,4]", "--runs-dir", runs)
    assert result.exit_code == 0, result.output
    assert sorted(m[0]["hidden"] for m in _models_of(runs)) == [[4], [8, 4]]


def test_repeated_draws_are_dropped_and_counted():
    points = [grid.Point((("models.net.hidden", [4]),)), grid.Point((("models.net.hidden", [8, 4]),)),
              grid.Point((("models.net.hidden", [4]),)), grid.Point((("models.net.hidden", [4]),))]
    kept, dropped = space.unique_points(points)
    assert kept == points[:2] and dropped == 2


def test_a_choice_of_layer_lists_and_kinds_samples_each_combination_once(spec: Path, tmp_path: Path):
    runs = tmp_path / "runs"
    hidden = "models.net.hidden=choice([4],[8,4])"
    result = invoke("sweep", spec, "--sample", 6, "--space", hidden, "--runs-dir", runs)
    assert result.exit_code == 0, result.output
    assert ": 2 points (4 repeated draw(s) dropped)," in result.output
    assert sorted(m[0]["hidden"] for m in _models_of(runs)) == [[4], [8, 4]]
    # a sampled kind, checked like a grid's: each draw is a valid point
    drawn = space.sample_points([space.parse_space_option("models.net.kind=choice(mlp,resmlp)")], 8, 0)
    kept, dropped = space.unique_points(drawn)
    assert sorted(p.settings[0][1] for p in kept) == ["mlp", "resmlp"] and dropped == 6
    plan = space.plan_search(spec, ["models.net.kind=choice(mlp,resmlp)"], 8, [])
    assert plan.duplicates == 6 and len(plan.points) == 2


# --- models+= ----------------------------------------------------------------------------------------------

def test_models_plus_adds_a_model_to_train(spec: Path, tmp_path: Path):
    runs = tmp_path / "runs"
    result = invoke("train", spec, "--set", WIDE, "--runs-dir", runs)
    assert result.exit_code == 0, result.output
    (folder,) = run_folders(runs)
    summary = runstore.read_run(folder).summary
    assert set(summary.models) == {"baseline", "net", "wide"}
    assert runstore.read_run(folder).spec["models"][1]["hidden"] == [16]


def test_models_plus_on_a_spec_without_models_keeps_the_first_network(tmp_path: Path):
    binary_table(60).to_csv(tmp_path / "data.csv", index=False)
    bare = write_spec(tmp_path, {"name": "bare", "data": {"path": "data.csv", "target": "label"}})
    loaded, _ = load_spec(bare, [WIDE])
    assert [(m.name, m.kind, m.hidden) for m in loaded.models] == [("mlp", "mlp", [64, 32]), ("wide", "mlp", [16])]


def test_a_sweep_over_a_model_added_by_models_plus(spec: Path, tmp_path: Path):
    runs = tmp_path / "runs"
    result = invoke("sweep", spec, "--set", WIDE, "--grid", "models.wide.dropout=0,0.2", "--runs-dir", runs)
    assert result.exit_code == 0, result.output
    models = _models_of(runs)
    assert len(models) == 2 and all([m["name"] for m in ms] == ["net", "wide"] for ms in models)
    assert sorted(ms[1]["dropout"] for ms in models) == [0, 0.2]


ALLOWED_KINDS = "'mlp', 'resmlp', 'cnn', 'rnn', 'transformer'"


@pytest.mark.parametrize("option, message", [
    ("models+={name: net, kind: resmlp}",
     "--set models+=: name: 'net' is taken (models: net); give the new model another name"),
    ("models+={name: w, kind: mpl}", f"--set models+=: kind: expected one of {ALLOWED_KINDS}; got 'mpl'"),
    ("models+={name: w}", f"--set models+=: kind: expected one of {ALLOWED_KINDS}; got no kind"),
    ("models+={name: w, kind: [mlp", "--set models+=: not YAML (line 2, column 1: did not find expected ',' or "
                                    "']'); expected a mapping such as {name: wide, kind: mlp, hidden: [256]}; "
                                    "got '{name: w, kind: [mlp'"),
    ("models+=[1, 2]", "--set models+=: expected a mapping such as {name: wide, kind: mlp, hidden: [256]}; "
                       "got [1, 2]"),
    ("train.epochs+=3", "--set train.epochs+=: only models+= adds (a model, e.g. {name: wide, kind: mlp, "
                        "hidden: [256]}); other keys take KEY.PATH=VALUE"),
    ("models+={name: w, kind: mlp, hidden: [0]}", "spec.yaml: models[1].hidden[0]: "),
])
@pytest.mark.parametrize("command", ["train", "validate", "sweep"])
def test_a_bad_models_plus_is_one_line_exit_2_and_no_run(spec: Path, tmp_path: Path, option: str, message: str,
                                                        command: str):
    runs = tmp_path / "runs"
    extra = {"train": ["--runs-dir", runs], "validate": [], "sweep": ["--grid", "train.epochs=1,2", "--runs-dir", runs]}
    result = invoke(command, spec, "--set", option, *extra[command])
    assert result.exit_code == 2
    assert result.output.startswith(f"error: {message}"), result.output
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output
    assert run_folders(runs) == []


def test_a_key_both_set_and_swept_is_refused(spec: Path, tmp_path: Path):
    runs = tmp_path / "runs"
    result = invoke("sweep", spec, "--set", "train.epochs=3", "--grid", "train.epochs=1,2", "--runs-dir", runs)
    assert result.exit_code == 2
    assert result.output == "error: --set train.epochs: also swept (--grid/--space); a key is set for every point " \
                            "or swept, not both\n"
    assert run_folders(runs) == []
