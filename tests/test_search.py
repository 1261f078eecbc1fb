"""Random search (sweeps/space.py): distributions parsed and sampled, seeded points, sampled points trained
like grid points (stacked, compare --sweep), and the sweep table's baseline row (views/sweep.py)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import binary_table, run_folders, tiny_spec, write_spec
from nnlab import runstore
from nnlab.cli import app
from nnlab.errors import SpecError
from nnlab.sweeps import space

LR = "train.optimizer.lr=loguniform(1e-4,1e-2)"
DROPOUT = "models.mlp.dropout=uniform(0,0.5)"


def sweep(*args, runs):
    return CliRunner().invoke(app, ["sweep", *map(str, args), "--runs-dir", str(runs)], catch_exceptions=False)


@pytest.fixture
def spec2(tmp_path: Path) -> Path:
    binary_table().to_csv(tmp_path / "data.csv", index=False)
    return write_spec(tmp_path, tiny_spec(train={"epochs": 2, "batch_size": 32}))


# --- parsing ----------------------------------------------------------------------------------------

def test_distributions_parse_their_arguments_as_yaml():
    assert space.parse_space_option(LR) == space.Distribution("train.optimizer.lr", "loguniform", (1e-4, 1e-2))
    hidden = space.parse_space_option("models.mlp.hidden=choice([64], [128,64])")
    assert hidden.args == ([64], [128, 64])
    assert space.parse_space_option("train.batch_size=choice(32,64,128)").args == (32, 64, 128)
    assert space.parse_space_option("train.epochs=int(2, 5)").integers
    assert space.parse_space_option("models.mlp.hidden.0=loguniform(16,256)").integers
    assert not space.parse_space_option("train.optimizer.lr=loguniform(16.0,256)").integers


@pytest.mark.parametrize("option, message", [
    ("train.optimizer.lr", "--space 'train.optimizer.lr': expected KEY=DIST, DIST one of uniform(lo,hi), "
                           "loguniform(lo,hi), int(lo,hi) or choice(v1,v2,...)"),
    ("train.optimizer.lr=normal(0,1)", "--space train.optimizer.lr: unknown distribution 'normal'; allowed: "
                                       "uniform(lo,hi), loguniform(lo,hi), int(lo,hi) or choice(v1,v2,...)"),
    ("train.optimizer.lr=uniform(0.5,0.1)", "--space train.optimizer.lr: uniform(0.5,0.1): lo must be below hi"),
    ("train.epochs=int(3,3)", "--space train.epochs: int(3,3): lo must be below hi"),
    ("train.epochs=int(1.5,3)", "--space train.epochs: int(lo,hi) takes two integers; given int(1.5,3)"),
    ("train.optimizer.lr=loguniform(0,1)", "--space train.optimizer.lr: loguniform(0,1): lo must be above 0"),
    ("train.optimizer.lr=loguniform(-1,1)", "--space train.optimizer.lr: loguniform(-1,1): lo must be above 0"),
    ("train.optimizer.lr=uniform(1)", "--space train.optimizer.lr: uniform(lo,hi) takes two numbers; given uniform(1)"),
    ("train.optimizer.lr=uniform(a,1)", "--space train.optimizer.lr: uniform(lo,hi) takes two numbers"),
    ("train.batch_size=choice()", "--space train.batch_size: choice() has no values; give at least one"),
    ("train.batch_size=choice(32,64", "--space train.batch_size: 'choice(32,64' is not NAME(ARGS)"),
    ("train.optimizer.rl=uniform(0,1)", "--space: key 'train.optimizer.rl': 'rl' is not a setting of "
                                        "train.optimizer"),
    ("models.big.dropout=uniform(0,1)", "--space: key 'models.big.dropout': no model 'big' in models (models: mlp)"),
])
def test_a_malformed_space_is_one_line_naming_the_key(spec2, runs, option, message):
    result = sweep(spec2, "--sample", 2, "--space", option, runs=runs)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {message}"), result.stderr
    assert "Traceback" not in result.output and not run_folders(runs)


@pytest.mark.parametrize("args, message", [
    (["--sample", 2], "--sample: nothing to sample; give --space KEY=DIST"),
    (["--space", LR], "--space train.optimizer.lr: how many points? give --sample N"),
    (["--sample", 2, "--space", LR, "--grid", "train.optimizer.lr=1e-3,1e-2"],
     "--grid train.optimizer.lr: also given to --space; a key is either a grid or sampled, not both"),
    (["--sample", 2, "--space", LR, "--space", "train.optimizer.lr=uniform(0,1)"],
     "--space train.optimizer.lr: given twice"),
    (["--sample", 2, "--space", LR, "--one-at-a-time"], "--one-at-a-time: varies a grid's keys one by one"),
    (["--sample", 600, "--space", LR, "--grid", "train.epochs=2,3"], "--sample: 1,200 points (600 x 2 grid points)"),
])
def test_options_that_do_not_go_together(spec2, runs, args, message):
    result = sweep(spec2, *args, runs=runs)
    assert result.exit_code == 2, result.output
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert result.stderr.startswith(f"error: {message}"), result.stderr
    assert not run_folders(runs)


@pytest.mark.parametrize("section, message", [
    ({"space": {"train.optimizer.lr": "uniform(0,1)"}}, "space and sample go together"),
    ({"sample": 3}, "nothing to sweep"),
    ({"space": {"train.optimizer.rl": "uniform(0,1)"}, "sample": 2}, "sweep.space: key 'train.optimizer.rl'"),
    ({"space": {"train.optimizer.lr": "uniform(0,1)"}, "sample": 0}, "sweep.sample"),
])
def test_a_bad_sweep_space_section(tmp_path, runs, section, message):
    binary_table().to_csv(tmp_path / "data.csv", index=False)
    spec = write_spec(tmp_path, tiny_spec(sweep=section))
    result = sweep(spec, runs=runs)
    assert result.exit_code == 2 and message in result.stderr, result.output
    assert not run_folders(runs)


def test_a_grid_is_crossed_with_the_samples(tmp_path):
    binary_table().to_csv(tmp_path / "data.csv", index=False)
    spec = write_spec(tmp_path, tiny_spec(sweep={"grid": {"train.epochs": [2, 3]}}))
    plan = space.plan_search(spec, [DROPOUT], 2, [])
    drawn = [p.settings for p in space.plan_search(spec, [DROPOUT], 2, ["train.epochs=2"]).points]
    assert [p.settings[0] for p in plan.points] == [("train.epochs", 2)] * 2 + [("train.epochs", 3)] * 2
    assert [p.settings[1:] for p in plan.points] == [d[1:] for d in drawn] * 2


# --- sampling ---------------------------------------------------------------------------------------

def test_the_same_seed_gives_the_same_points_and_another_seed_others(tmp_path, spec2):
    options = [LR, DROPOUT, "train.batch_size=choice(32,64,128)", "models.mlp.hidden=choice([64],[128,64])"]
    first = space.plan_search(spec2, options, 5, [])
    again = space.plan_search(spec2, options, 5, [])
    assert [p.settings for p in first.points] == [p.settings for p in again.points]
    assert len({json.dumps(p.settings) for p in first.points}) == 5
    assert [k for k, _ in first.points[0].settings] == ["train.optimizer.lr", "models.mlp.dropout",
                                                       "train.batch_size", "models.mlp.hidden"]
    other = write_spec(tmp_path, tiny_spec(seed=1, train={"epochs": 2, "batch_size": 32}), "other.yaml")
    assert [p.settings for p in space.plan_search(other, options, 5, []).points] != \
           [p.settings for p in first.points]
    # the spec's sweep: section gives the very points of the same command line
    section = write_spec(tmp_path, tiny_spec(train={"epochs": 2, "batch_size": 32}, sweep={
        "space": {"train.optimizer.lr": "loguniform(1e-4,1e-2)", "models.mlp.dropout": "uniform(0,0.5)"},
        "sample": 3}), "section.yaml")
    assert [p.settings for p in space.plan_search(section, [], None, []).points] == \
           [p.settings for p in space.plan_search(spec2, [LR, DROPOUT], 3, []).points]


def draws(option: str, n: int = 4000) -> list:
    return [value for point in space.sample_points([space.parse_space_option(option)], n, 7)
            for _, value in point.settings]


def test_every_distribution_stays_in_its_bounds():
    uniform = np.array(draws("k=uniform(0,0.5)"))
    assert uniform.min() >= 0 and uniform.max() < 0.5 and abs(uniform.mean() - 0.25) < 0.01
    assert all(isinstance(v, float) for v in uniform.tolist())

    logs = np.log10(draws("k=loguniform(1e-4,1e-2)"))
    assert logs.min() >= -4 and logs.max() <= -2
    # log-uniform: each decade holds about half the draws (a uniform draw would put ~91% in the top one)
    assert abs((logs < -3).mean() - 0.5) < 0.03

    ints = draws("k=int(2,5)")
    assert set(ints) == {2, 3, 4, 5} and all(type(v) is int for v in ints)

    widths = draws("k=loguniform(16,256)")
    assert all(type(v) is int for v in widths) and min(widths) >= 16 and max(widths) <= 256
    assert 16 in widths and 256 in widths
    assert abs((np.array(widths) < 64).mean() - 0.5) < 0.03  # 16..64 and 64..256 are a factor 4 each

    choices = draws("k=choice(32,[64],[128,64])", 600)
    assert {json.dumps(v) for v in choices} == {"32", "[64]", "[128, 64]"}


# --- a search trained end to end --------------------------------------------------------------------

@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    folder = tmp_path_factory.mktemp("search")
    binary_table().to_csv(folder / "data.csv", index=False)
    spec = write_spec(folder, tiny_spec(train={"epochs": 2, "batch_size": 32}))
    runs = folder / "runs"
    return runs, sweep(spec, "--sample", 4, "--space", LR, "--space", DROPOUT, runs=runs)


def test_a_sampled_search_trains_its_points_as_one_stack(searched):
    runs, result = searched
    assert result.exit_code == 0, result.output
    swept = [runstore.read_run(f) for f in run_folders(runs)]
    assert len(swept) == 4 and all(r.summary.models["mlp"].stacked for r in swept)
    sweep_id = result.stdout.split()[1].rstrip(":")
    assert sweep_id.startswith("tiny-sweep-")
    listed = CliRunner().invoke(app, ["compare", "--sweep", sweep_id, "--runs-dir", str(runs), "--format", "json"])
    assert listed.exit_code == 0, listed.output
    rows = [row for row in json.loads(listed.stdout) if row["model"] == "mlp"]
    assert len(rows) == 4 and {row["run"] for row in rows} == {r.id for r in swept}
    for run in swept:  # each run's note is its drawn settings, in bounds
        lr, dropout = (float(part.split("=")[1]) for part in run.note.split(", "))
        assert 1e-4 <= lr <= 1e-2 and 0 <= dropout < 0.5


def test_the_sweep_table_shows_the_baseline_and_says_when_it_beats_every_point(searched):
    runs, result = searched
    swept = [runstore.read_run(f) for f in run_folders(runs)]
    baseline = swept[0].summary.models["baseline"].val["loss"]
    points = [r.summary.models["mlp"].val["loss"] for r in swept]
    row = next(line for line in result.stdout.splitlines() if "baseline (every point's)" in line)
    assert f"{baseline:.4f}" in row
    beats = "the baseline (baseline, " in result.stdout and "beats every point on val_loss" in result.stdout
    assert beats == (baseline < min(points))
    assert beats  # two epochs of a tiny MLP: the logistic baseline is far ahead on this table


def test_no_beats_line_when_a_point_beats_the_baseline():
    from nnlab.views import sweep as view

    class Plan:
        monitor = "val_accuracy"

    rows = [view.Effect(None, "mlp", "completed", 0.8), view.Effect(None, "mlp", "completed", 0.9)]
    assert not view.baseline_beats_all(Plan, rows, view.Effect(None, "baseline", "completed", 0.85))
    assert view.baseline_beats_all(Plan, rows, view.Effect(None, "baseline", "completed", 0.95))
    assert not view.baseline_beats_all(Plan, rows, view.Effect(None, "baseline", "completed", 0.9))  # a tie
    assert not view.baseline_beats_all(Plan, [view.Effect(None, "mlp", "failed", math.nan)],
                                       view.Effect(None, "baseline", "completed", 0.5))
