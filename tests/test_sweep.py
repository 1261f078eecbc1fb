"""`nnlab sweep`: grid values parsed as YAML, grids and one-at-a-time expanded into exact points, every
point checked before anything trains, points trained in worker processes into run folders that share the
sweep id, and the effect table; `changes_since` for `nnlab train`."""

from __future__ import annotations

import json
import math
import os
import re
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
from typer.testing import CliRunner

from conftest import ROOT, binary_table, run_folders, tiny_spec, write_spec
from nnlab import runstore
from nnlab.core.settings import changes_since
from nnlab.cli import app
from nnlab.errors import SpecError
from nnlab.spec import validate_spec
from nnlab.sweeps.grid import Axis, Point, expand_grid, expand_one_at_a_time, merge_axes, parse_grid_option, plan_sweep
from nnlab.views.sweep import short_names, touches


def sweep(*args, runs):
    return CliRunner().invoke(app, ["sweep", *map(str, args), "--runs-dir", str(runs)], catch_exceptions=False)


# --- values -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, key, values", [
    ("train.optimizer.lr=1e-3,1e-2", "train.optimizer.lr", (0.001, 0.01)),
    ("train.epochs=5, 10", "train.epochs", (5, 10)),
    ("models.mlp.hidden=[64],[128,64]", "models.mlp.hidden", ([64], [128, 64])),
    ("models.mlp.activation=relu,tanh", "models.mlp.activation", ("relu", "tanh")),
    ("data.split.stratify=true,false", "data.split.stratify", (True, False)),
    ("note='a,b',c", "note", ("a,b", "c")),
    ("train.scheduler={name: cosine},null", "train.scheduler", ({"name": "cosine"}, None)),
])
def test_grid_values_are_yaml_split_on_top_level_commas(text, key, values):
    axis = parse_grid_option(text)
    assert axis == Axis(key, values)
    assert [type(v) for v in axis.values] == [type(v) for v in values]  # 1e-3 is a float, 5 an int


@pytest.mark.parametrize("text, message", [
    ("train.epochs", "--grid 'train.epochs': expected KEY=V1,V2,..."),
    ("train.epochs=", "--grid 'train.epochs=': expected KEY=V1,V2,..."),
    ("train.epochs=5,,10", "--grid train.epochs: an empty value in '5,,10'"),
    ("models.mlp.hidden=[64],[128,64", "--grid models.mlp.hidden: unclosed bracket in '[64],[128,64'"),
    ("models.mlp.hidden=64]", "--grid models.mlp.hidden: ']' without its opening bracket in '64]'"),
    ("train.epochs=5,5.0", "--grid train.epochs: the value 5 appears twice"),
])
def test_bad_grid_options_name_the_problem(text, message):
    with pytest.raises(SpecError) as error:
        parse_grid_option(text)
    assert str(error.value).startswith(message)


def test_a_cli_grid_replaces_the_same_key_of_the_spec_and_adds_new_keys_after():
    spec_axes = [Axis("train.epochs", (5, 10)), Axis("train.optimizer.lr", (0.1,))]
    cli_axes = [Axis("train.optimizer.lr", (0.01, 0.02)), Axis("seed", (1, 2))]
    assert merge_axes(spec_axes, cli_axes) == [Axis("train.epochs", (5, 10)), Axis("train.optimizer.lr", (0.01, 0.02)),
                                               Axis("seed", (1, 2))]
    with pytest.raises(SpecError, match=r"^--grid seed: given twice"):
        merge_axes([], [Axis("seed", (1,)), Axis("seed", (2,))])


# --- expansion ----------------------------------------------------------------------------------------

def test_grid_is_every_combination_first_key_slowest():
    points = expand_grid([Axis("train.optimizer.lr", (0.001, 0.01)), Axis("models.mlp.hidden", ([8], [16, 8]))])
    assert [p.settings for p in points] == [
        (("train.optimizer.lr", 0.001), ("models.mlp.hidden", [8])),
        (("train.optimizer.lr", 0.001), ("models.mlp.hidden", [16, 8])),
        (("train.optimizer.lr", 0.01), ("models.mlp.hidden", [8])),
        (("train.optimizer.lr", 0.01), ("models.mlp.hidden", [16, 8]))]
    assert points[1].overrides == ["train.optimizer.lr=0.001", "models.mlp.hidden=[16, 8]"]


def test_one_at_a_time_varies_each_key_alone_from_the_spec_value_which_is_trained_once():
    resolved = validate_spec(tiny_spec(), "spec.yaml").resolved()  # lr 0.001, hidden [8], dropout 0
    axes = [Axis("train.optimizer.lr", (1e-3, 1e-2, 1e-1)), Axis("models.mlp.hidden", ([8], [32])),
            Axis("models.mlp.dropout", (0.2,)), Axis("train.scheduler", ({"name": "cosine"},))]
    points = expand_one_at_a_time(axes, resolved)
    assert [p.settings for p in points] == [
        (),  # the reference: the spec as written
        (("train.optimizer.lr", 0.01),), (("train.optimizer.lr", 0.1),),
        (("models.mlp.hidden", [32]),),
        (("models.mlp.dropout", 0.2),),
        (("train.scheduler", {"name": "cosine"}),)]  # the spec has none: every value is a change
    assert points[0].label == "reference (the spec's own values)" and points[0].overrides == []
    assert points[2].label == "train.optimizer.lr=0.1"


def test_override_text_round_trips_through_the_spec_loader():
    from nnlab.spec import parse_yaml

    point = Point((("train.optimizer.lr", 1e-5), ("models.mlp.activation", "tanh"), ("train.scheduler", None)))
    parsed = [parse_yaml(o.split("=", 1)[1], "test") for o in point.overrides]
    assert parsed == [1e-5, "tanh", None] and isinstance(parsed[0], float)


# --- the command ----------------------------------------------------------------------------------------

def test_a_bad_grid_key_is_one_line_exit_2_and_no_run(tiny, runs):
    result = sweep(tiny, "--grid", "train.optimizer.lrr=0.01,0.1", "--one-at-a-time", runs=runs)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: spec.yaml: train.optimizer.lrr: unknown key; did you mean 'lr'?")
    assert run_folders(runs) == []


def test_every_bad_point_is_reported_before_anything_trains(tiny, runs):
    result = sweep(tiny, "--grid", "train.optimizer.lr=0.01,-1,0", "--grid", "models.mlp.dropout=0.5,2",
                   runs=runs)
    assert result.exit_code == 2
    errors = result.stderr.strip().splitlines()
    assert any("train.optimizer.lr: must be greater than 0; got -1" in e and "(2 of 6 points)" in e for e in errors)
    assert any("train.optimizer.lr: must be greater than 0; got 0" in e for e in errors)
    assert any("models[0].dropout" in e and "got 2" in e and "(3 of 6 points)" in e for e in errors), errors
    assert len(errors) == 3 and run_folders(runs) == []


def test_nothing_to_sweep_is_an_error(tiny, runs):
    result = sweep(tiny, runs=runs)
    assert result.exit_code == 2
    assert "spec.yaml: nothing to sweep; give --grid KEY=V1,V2,..." in result.stderr


def test_four_points_in_two_worker_processes(tmp_path, tiny, runs):
    spec = write_spec(tmp_path, tiny_spec(train={"epochs": 2, "batch_size": 32}))
    result = sweep(spec, "--grid", "train.optimizer.lr=1e-3,3e-2", "--grid", "models.mlp.hidden=[8],[4]",
                   "--jobs", "2", "--note", "why not", runs=runs)
    assert result.exit_code == 0, result.output
    sweep_id = re.search(r"sweep (tiny-sweep-\d{8}-\d{6}-[0-9a-f]{4}): 4 points, 2 at a time", result.stdout)[1]
    folders = run_folders(runs)
    assert len(folders) == 4
    runs_read = [runstore.read_run(f) for f in folders]
    assert {r.meta.sweep for r in runs_read} == {sweep_id}
    assert {r.status for r in runs_read} == {"completed"}
    assert sorted(r.note for r in runs_read) == [
        f"train.optimizer.lr={lr}, models.mlp.hidden=[{w}]; why not" for lr in ("0.001", "0.03") for w in (4, 8)]
    for run in runs_read:  # each point trained what its note says
        lr, hidden = re.match(r"train.optimizer.lr=([\d.]+), models.mlp.hidden=(\[\d\])", run.note).groups()
        assert run.spec["models"][0]["train"]["optimizer"]["lr"] == float(lr)
        assert run.spec["models"][0]["hidden"] == json.loads(hidden)
    val_loss = {r.id: r.summary.models["mlp"].val["loss"] for r in runs_read}
    reference = next(r.id for r in runs_read if r.note.startswith("train.optimizer.lr=0.001, models.mlp.hidden=[8]"))
    table = [line for line in result.stdout.splitlines() if line.startswith("│ ") and "baseline (every" not in line]
    order = [re.search(r"(tiny-\d{8}-\d{6}-[0-9a-f]{4}) ", line)[1] for line in table]
    assert order == sorted(val_loss, key=val_loss.get)  # best first by the monitored val_loss
    for line in table:
        run_id = re.search(r"(tiny-\d{8}-\d{6}-[0-9a-f]{4}) ", line)[1]
        cells = [c.strip() for c in line.strip("│ ").split("│")]
        assert cells[2] == f"{val_loss[run_id]:.4f}"
        assert cells[3] == "(reference)" if run_id == reference else \
            cells[3] == f"{val_loss[run_id] - val_loss[reference]:+.4f}"
    assert f"every point's run: nnlab compare --sweep {sweep_id}" in result.stdout
    listed = CliRunner().invoke(app, ["compare", "--sweep", sweep_id, "--runs-dir", str(runs), "--format", "json"])
    assert listed.exit_code == 0, listed.output
    assert {row["run"] for row in json.loads(listed.stdout) if row["model"] == "mlp"} == set(val_loss)


def test_points_that_differ_in_stackable_settings_train_as_one_stack_with_their_own_numbers(tmp_path, runs):
    """lr and dropout points share stacks (two with --jobs 2); every point's run folder holds
    exactly what `nnlab train` of that point alone writes; a point that changes the architecture trains alone."""
    binary_table().to_csv(tmp_path / "data.csv", index=False)
    spec = write_spec(tmp_path, tiny_spec(train={"epochs": 4, "batch_size": 32}))
    result = sweep(spec, "--grid", "train.optimizer.lr=1e-3,1e-2", "--grid", "models.mlp.dropout=0,0.2",
                   "--grid", "models.mlp.hidden=[8],[4]", "--one-at-a-time", "--jobs", "2", runs=runs)
    assert result.exit_code == 0, result.output
    swept = [runstore.read_run(f) for f in run_folders(runs)]
    assert len(swept) == 4  # the reference, lr 0.01, dropout 0.2, hidden [4]
    stacked = {r.note: r.summary.models["mlp"].stacked for r in swept}
    # three stackable points dealt round-robin into 2 stacks: (reference, dropout) and (lr) alone
    assert stacked == {"reference": True, "train.optimizer.lr=0.01": False, "models.mlp.dropout=0.2": True,
                       "models.mlp.hidden=[4]": False}
    alone = tmp_path / "alone"
    for run in swept:
        overrides = [] if run.note == "reference" else ["--set", run.note]
        done = CliRunner().invoke(app, ["train", str(spec), *overrides, "--runs-dir", str(alone)])
        assert done.exit_code == 0, done.output
        twin = runstore.list_runs(alone)[0][0]
        assert {n: (m.val, m.test, m.best_epoch) for n, m in run.summary.models.items()} == \
               {n: (m.val, m.test, m.best_epoch) for n, m in twin.summary.models.items()}
        ours, theirs = run.metrics().drop(columns="seconds"), twin.metrics().drop(columns="seconds")
        assert ours.reset_index(drop=True).equals(theirs.reset_index(drop=True))


def test_stackable_keys():
    from nnlab.training.stacking import stackable_key

    assert all(stackable_key(k) for k in ("train.optimizer.lr", "models.mlp.dropout", "models.0.train.l1",
                                          "train.early_stopping.patience", "train.scheduler"))
    assert not any(stackable_key(k) for k in ("models.mlp.hidden", "seed", "data.split.seed", "train.batch_size",
                                              "train.optimizer.name", "models.mlp.activation"))


# --- changes_since -----------------------------------------------------------------------------------

def _resolved(**overrides) -> dict:
    return validate_spec(tiny_spec(**overrides), "spec.yaml").resolved()


def test_changes_since_names_each_changed_setting_old_to_new():
    old = _resolved()
    assert changes_since(old, old) == []
    assert changes_since(old, _resolved(train={"epochs": 3, "batch_size": 32, "optimizer": {"lr": 0.01}})) == [
        "train.optimizer.lr 0.001 → 0.01"]  # said once, not again under every model that inherits it
    new = _resolved(models=[{"name": "mlp", "kind": "mlp", "hidden": [16, 8], "dropout": 0.3}])
    assert changes_since(old, new) == ["models.mlp.hidden [8] → [16, 8]", "models.mlp.dropout 0 → 0.3"]


def test_changes_since_a_model_own_train_setting_models_added_and_removed():
    old = _resolved(models=[{"name": "mlp", "kind": "mlp", "hidden": [8]}, {"name": "deep", "kind": "mlp"}])
    new = _resolved(models=[{"name": "mlp", "kind": "mlp", "hidden": [8], "train": {"epochs": 9}},
                            {"name": "wide", "kind": "mlp", "hidden": [256]}], seed=3)
    assert changes_since(old, new) == ["seed 0 → 3", "models.mlp.train.epochs 3 → 9", "models.wide added",
                                       "models.deep removed"]


def test_changes_since_a_default_changed_where_a_model_overrides_it_is_said_once():
    models = [{"name": "mlp", "kind": "mlp", "train": {"epochs": 7}}, {"name": "b", "kind": "mlp"}]
    old, new = _resolved(models=models), _resolved(models=models, train={"epochs": 5, "batch_size": 32})
    assert changes_since(old, new) == ["train.epochs 3 → 5"]  # mlp keeps its own 7; b inherits the change
    assert changes_since({"data": {"scale": "standard"}}, {"data": {"scale": None}}) == ["data.scale standard → null"]
    assert changes_since({"a": {"b": 1}}, {"a": {"b": 1, "c": True}}) == ["a.c (not set) → true"]


# --- repeats, failures, Ctrl-C ------------------------------------------------------------------------

def test_one_at_a_time_with_repeats_shows_mean_sd_and_the_change_with_its_spread(tmp_path, tiny, runs):
    result = sweep(tiny, "--grid", "train.optimizer.lr=1e-3,3e-2", "--grid", "models.mlp.dropout=0.3",
                   "--one-at-a-time", "--repeats", "2", runs=runs)
    assert result.exit_code == 0, result.output
    by_note = {r.note: r for r in map(runstore.read_run, run_folders(runs))}
    assert sorted(by_note) == ["models.mlp.dropout=0.3", "reference", "train.optimizer.lr=0.03"]
    results = {note: run.summary.models["mlp"] for note, run in by_note.items()}
    assert {m.repeats for m in results.values()} == {2}
    ref = results["reference"]
    for note, short in (("train.optimizer.lr=0.03", "lr=0.03"), ("models.mlp.dropout=0.3", "dropout=0.3")):
        point = results[note]
        line = next(line for line in result.stdout.splitlines() if line.startswith(f"│ {short} "))
        cells = [c.strip() for c in line.strip("│ ").split("│")]
        assert cells[2] == f"{point.val['loss']:.4f} ± {point.val_sd['loss']:.4f}"
        delta, spread = point.val["loss"] - ref.val["loss"], math.hypot(point.val_sd["loss"], ref.val_sd["loss"])
        assert cells[3] == f"{delta:+.4f} ± {spread:.4f}"
        assert cells[4] == ("within noise" if abs(delta) < spread else "better" if delta < 0 else "worse")
    assert "lr = train.optimizer.lr · dropout = models.mlp.dropout" in result.stdout


def test_a_point_that_diverges_is_reported_and_the_sweep_goes_on_then_exits_1(tiny, runs):
    result = sweep(tiny, "--grid", "train.optimizer={name: sgd, lr: 1e30},{name: sgd, lr: 0.01}", runs=runs)
    assert result.exit_code == 1
    assert re.search(r"\[1/2\] train.optimizer=\{name: sgd, lr: 1e\+30\}: failed \(mlp diverged\) · run tiny-",
                     result.stdout)
    assert "[2/2] train.optimizer={name: sgd, lr: 0.01}: completed" in result.stdout
    assert [r.status for r in map(runstore.read_run, run_folders(runs))] == ["completed", "completed"]
    rows = [line for line in result.stdout.splitlines() if line.startswith("│ optimizer=")]
    assert "lr: 0.01}" in rows[0] and "diverged" in rows[1]  # the finished point first


def test_ctrl_c_stops_the_running_points_as_interrupted_and_starts_no_more(tmp_path, runs):
    binary_table().to_csv(tmp_path / "data.csv", index=False)
    spec = write_spec(tmp_path, tiny_spec(train={"epochs": 100_000, "batch_size": 32, "early_stopping": None}))
    driver = subprocess.Popen([sys.executable, "-m", "nnlab.cli", "sweep", str(spec), "--grid", "seed=0,1,2,3",
                               "--jobs", "2", "--runs-dir", str(runs)], cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        while len([f for f in run_folders(runs) if _epochs_logged(f) > 0]) < 2:
            assert driver.poll() is None and time.monotonic() < deadline, driver.communicate()
            time.sleep(0.2)
        driver.send_signal(signal.SIGINT)  # to the driver alone: it must stop its workers itself
        out, err = driver.communicate(timeout=60)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
    assert driver.returncode == 130, err
    assert "interrupted by SIGINT: sweep tiny-sweep-" in err and "with 0 of 4 points finished" in err
    folders = run_folders(runs)
    assert len(folders) == 2  # the two points waiting never started
    assert [runstore.read_run(f).meta.status for f in folders] == ["interrupted", "interrupted"]


def test_a_signal_storm_ends_a_sweep_as_it_ends_train_one_line_and_130(tmp_path, runs):
    # As `train`: once interrupted, the nnlab process ignores later signals until it exits, so a storm cannot
    # cut its shutdown short or add a second line (sweep once restored the start-up handler as it ended).
    binary_table().to_csv(tmp_path / "data.csv", index=False)
    spec = write_spec(tmp_path, tiny_spec(train={"epochs": 100_000, "batch_size": 32, "early_stopping": None}))
    driver = _start_sweep(spec, runs, "--grid", "seed=0,1")
    try:
        _wait_for(driver, lambda: [f for f in run_folders(runs) if _epochs_logged(f) > 0])
        deadline = time.monotonic() + 60
        while driver.poll() is None and time.monotonic() < deadline:  # signals until it has exited
            driver.send_signal(signal.SIGINT)
            time.sleep(0.001)
        out, err = driver.communicate(timeout=60)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
    assert driver.returncode == 130, err
    sweep_id = re.search(r"sweep (tiny-sweep-\S+): 2 points", out)[1]
    assert [line for line in err.splitlines() if "interrupted" in line] == [
        f"interrupted by SIGINT: sweep {sweep_id} stopped with 0 of 2 points finished; the running ones are marked "
        "interrupted"], err
    assert "Traceback" not in err
    assert [runstore.read_run(f).meta.status for f in run_folders(runs)] == ["interrupted"]


def _epochs_logged(folder) -> int:
    metrics = folder / "metrics.csv"
    return max(0, len(metrics.read_text().splitlines()) - 1) if metrics.exists() else 0


def test_the_spec_sweep_section_with_a_cli_grid_added(tmp_path, tiny):
    spec = write_spec(tmp_path, tiny_spec(sweep={"grid": {"train.optimizer.lr": [0.001, 0.01], "train.epochs": [3]},
                                                 "one_at_a_time": True}), "swept.yaml")
    plan = plan_sweep(spec, ["train.epochs=2,4", "models.mlp.dropout=0.3"], repeats=2, note="n")
    assert [p.label for p in plan.points] == ["reference (the spec's own values)", "train.optimizer.lr=0.01",
                                              "train.epochs=2", "train.epochs=4", "models.mlp.dropout=0.3"]
    assert plan.one_at_a_time and plan.reference == 0 and plan.reference_is_spec
    units = plan.units(tmp_path / "runs")
    assert units[2].overrides == ("train.epochs=2", "repeats=2") and units[2].note == "train.epochs=2; n"
    assert {u.sweep for u in units} == {plan.id} and plan.id.startswith("tiny-sweep-")


def test_a_grid_too_large_is_refused_before_expanding(tiny):
    values = ",".join(str(i) for i in range(1, 40))
    with pytest.raises(SpecError, match=r"^--grid: 1,521 points \(39 x 39\); at most 1,000"):
        plan_sweep(tiny, [f"train.epochs={values}", f"train.batch_size={values}"])


@pytest.mark.parametrize("settings, touched", [
    ((("models.wide.dropout", 0.3),), ["wide"]),
    ((("models.1.hidden", [8]),), ["wide"]),
    ((("train.optimizer.lr", 0.01),), ["mlp", "wide"]),
    ((("models.mlp.dropout", 0.1), ("seed", 2)), ["mlp", "wide"]),
    ((("models", []),), ["mlp", "wide"]),
])
def test_a_point_touches_only_the_models_its_keys_name(settings, touched):
    assert [m for m in ("mlp", "wide") if touches(Point(settings), m, ["mlp", "wide"])] == touched


def test_short_names_are_the_shortest_suffix_that_tells_keys_apart():
    keys = ["train.optimizer.lr", "models.mlp.hidden", "models.wide.hidden", "seed", "data.split.seed"]
    assert short_names(keys) == {
        "train.optimizer.lr": "lr", "models.mlp.hidden": "mlp.hidden", "models.wide.hidden": "wide.hidden",
        "seed": "seed", "data.split.seed": "split.seed"}


# --- the executor seam ---------------------------------------------------------------------------------

def test_executor_ray_is_handed_the_ray_options_and_the_same_units(tiny, runs, monkeypatch):
    import nnlab.sweeps.executors.ray as executors_ray
    from nnlab.sweeps.executors.units import run_unit

    given = {}

    class InProcess:  # stands in for RayExecutor: this test checks the command's wiring, test_ray.py Ray itself
        def __init__(self, **options):
            given.update(options)

        def run(self, units):
            return (run_unit(unit) for unit in units)

    monkeypatch.setattr(executors_ray, "RayExecutor", InProcess)
    result = sweep(tiny, "--grid", "train.epochs=1,2", "--executor", "ray", "--address", "auto",
                   "--cpus-per-trial", "2", "--max-retries", "3", runs=runs)
    assert result.exit_code == 0, result.output
    assert given == {"address": "auto", "cpus_per_trial": 2.0, "max_retries": 3}
    assert re.search(r"sweep tiny-sweep-\S+: 2 points, on Ray", result.stdout)
    assert {runstore.read_run(f).note for f in run_folders(runs)} == {"train.epochs=1", "train.epochs=2"}


@pytest.mark.parametrize("args, message", [
    (["--address", "auto"], "error: --address: only with --executor ray"),
    (["--gpus-per-trial", "1"], "error: --gpus-per-trial: only with --executor ray"),
    (["--executor", "ray", "--jobs", "2"], "error: --jobs: only with --executor local; Ray runs as many points"),
])
def test_options_of_the_other_executor_are_refused(tiny, runs, args, message):
    result = sweep(tiny, "--grid", "train.epochs=1,2", *args, runs=runs)
    assert result.exit_code == 2 and result.stderr.startswith(message) and run_folders(runs) == []


# --- faults: a worker killed, Ctrl-C during stacked points (subprocesses, bounded) -------------------------

def _start_sweep(spec, runs, *args):
    return subprocess.Popen([sys.executable, "-m", "nnlab.cli", "sweep", str(spec), *args, "--runs-dir", str(runs)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def _wait_for(driver, ready, seconds=120):
    deadline = time.monotonic() + seconds
    while not (found := ready()):
        assert driver.poll() is None and time.monotonic() < deadline, driver.communicate()
        time.sleep(0.02)
    return found


def _compare_rows(sweep_id, runs, model="mlp"):
    listed = CliRunner().invoke(app, ["compare", "--sweep", sweep_id, "--runs-dir", str(runs), "--format", "json"])
    assert listed.exit_code == 0, listed.output
    return [row for row in json.loads(listed.stdout) if model is None or row["model"] == model]


def test_a_worker_killed_mid_point_fails_that_point_and_the_sweep_goes_on(tmp_path, runs):
    binary_table(n=160).to_csv(tmp_path / "data.csv", index=False)
    spec = write_spec(tmp_path, tiny_spec(train={"epochs": 1500, "batch_size": 32, "early_stopping": None}))
    # architectures: never stacked, so each point is its own unit in a worker
    driver = _start_sweep(spec, runs, "--grid", "models.mlp.hidden=[8],[4],[6]", "--jobs", "2")
    try:
        def training():  # a point's run folder with an epoch logged, still training
            return [f for f in run_folders(runs) if _epochs_logged(f) > 0
                    and json.loads((f / "run.json").read_text())["status"] == "running"]
        victim = _wait_for(driver, training)[0]
        pid = json.loads((victim / "run.json").read_text())["pid"]  # the worker that writes it
        assert pid != driver.pid
        os.kill(pid, signal.SIGKILL)
        out, err = driver.communicate(timeout=120)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
    assert driver.returncode == 1, err
    hidden = runstore.read_run(victim).spec["models"][0]["hidden"]
    lines = [line for line in out.splitlines() if re.match(r"\[\d/3\] ", line)]
    assert len(lines) == 3, out
    (failed,) = [line for line in lines if ": failed" in line]
    assert f"models.mlp.hidden={hidden}: failed (its worker process was killed by SIGKILL; its run folder, if " \
           "made, reads interrupted)" in failed, failed
    assert sum(": completed · run " in line for line in lines) == 2
    folders = run_folders(runs)
    assert len(folders) == 3
    statuses = {f.name: runstore.read_run(f).status for f in folders}
    assert statuses == {f.name: "interrupted" if f == victim else "completed" for f in folders}
    kept = _epochs_logged(victim)
    assert 0 < kept < 1500  # the epochs it finished before it was killed stay
    sweep_id = re.search(r"sweep (tiny-sweep-\S+): 3 points", out)[1]
    rows = _compare_rows(sweep_id, runs, model=None)
    # the killed run is listed by what it finished: its baseline, and its network by the epochs it logged
    # before it was killed (read from metrics.csv, as compare reads any unfinished run)
    logged = set(pd.read_csv(victim / "metrics.csv")["model"])
    assert "baseline" in logged
    assert {(row["run"], row["model"]) for row in rows} == \
           {(f.name, m) for f in folders for m in (sorted(logged) if f == victim else ["baseline", "mlp"])}


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_ctrl_c_during_stacked_points_ends_every_point_interrupted_with_its_finished_epochs(tmp_path, runs, jobs):
    """lr points train as stacks (one in this process with --jobs 1, two in workers with --jobs 2); SIGINT
    to the driver ends each point's run folder as interrupted, readable by compare."""
    binary_table(n=160).to_csv(tmp_path / "data.csv", index=False)
    spec = write_spec(tmp_path, tiny_spec(train={"epochs": 100_000, "batch_size": 32, "early_stopping": None}))
    driver = _start_sweep(spec, runs, "--grid", "train.optimizer.lr=1e-3,3e-3,1e-2,3e-2", "--jobs", jobs)
    try:
        _wait_for(driver, lambda: len(run_folders(runs)) == 4 and all(_epochs_logged(f) >= 2 for f in run_folders(runs)))
        driver.send_signal(signal.SIGINT)  # to the driver alone: it stops its workers itself
        out, err = driver.communicate(timeout=60)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
    assert driver.returncode == 130, err
    assert "with 0 of 4 points finished" in err
    folders = run_folders(runs)
    assert len(folders) == 4
    for folder in folders:
        run = runstore.read_run(folder)
        assert run.meta.status == "interrupted", run.meta.status
        assert run.summary.models["mlp"].stacked
        logged = _epochs_logged(folder)
        assert logged >= 2
        assert 1 <= run.summary.models["mlp"].best_epoch <= logged
    sweep_id = re.search(r"sweep (tiny-sweep-\S+): 4 points", out)[1]
    rows = _compare_rows(sweep_id, runs)
    assert {row["run"] for row in rows} == {f.name for f in folders}
    assert {row["status"] for row in rows} == {"interrupted"}
    for row in rows:  # what compare reads is the run folder's own best epoch
        assert row["best_epoch"] == runstore.read_run(runs / row["run"]).summary.models["mlp"].best_epoch
