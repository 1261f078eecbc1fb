"""Bayesian search (sweeps/optuna_search.py, `sweep --search optuna`): trials are ordinary sweep points with
run folders under one sweep id, told their run's monitored validation metric; seeded; a batch of stackable
trials trains as one stack with the numbers each trial has alone; the pruner reads every epoch; the study
lives in the sweep's folder, so a cut-off search resumes without repeating a finished trial."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from conftest import binary_table, run_folders, tiny_spec, write_spec
from nnlab import runstore
from nnlab.cli import app

optuna = pytest.importorskip("optuna")

LR = "train.optimizer.lr=loguniform(1e-4,1e-1)"
DROPOUT = "models.mlp.dropout=uniform(0,0.5)"
EPOCHS = 3


def sweep(*args, runs):
    return CliRunner().invoke(app, ["sweep", *map(str, args), "--runs-dir", str(runs)], catch_exceptions=False)


def runs_of(runs: Path) -> list[runstore.Run]:
    return [runstore.read_run(f) for f in run_folders(runs) if not f.name.startswith(".")]


def study_of(runs: Path) -> optuna.Study:
    (folder,) = (runs / ".sweeps").iterdir()
    return optuna.load_study(study_name=folder.name, storage=f"sqlite:///{folder / 'study.db'}")


def sweep_id(result) -> str:
    return result.stdout.split()[1].rstrip(":")


@pytest.fixture
def spec(tmp_path: Path) -> Path:
    binary_table().to_csv(tmp_path / "data.csv", index=False)
    return write_spec(tmp_path, tiny_spec(train={"epochs": EPOCHS, "batch_size": 32}))


@pytest.fixture(scope="module")
def alone(tmp_path_factory):
    """Four trials, one at a time (the pruner reading every epoch)."""
    folder = tmp_path_factory.mktemp("optuna")
    binary_table().to_csv(folder / "data.csv", index=False)
    spec = write_spec(folder, tiny_spec(train={"epochs": EPOCHS, "batch_size": 32}))
    runs = folder / "runs"
    result = sweep(spec, "--search", "optuna", "--trials", 4, "--space", LR, "--space", DROPOUT, runs=runs)
    return spec, runs, result


def test_n_trials_make_n_points_with_run_folders_under_one_sweep_id(alone):
    spec, runs, result = alone
    assert result.exit_code == 0, result.output
    swept = runs_of(runs)
    assert len(swept) == 4 and {r.meta.sweep for r in swept} == {sweep_id(result)}
    study = study_of(runs)
    assert study.study_name == sweep_id(result) and study.direction == optuna.study.StudyDirection.MINIMIZE
    trials = study.trials
    assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE] * 4
    by_id = {r.id: r for r in swept}
    for trial in trials:
        run = by_id[trial.user_attrs["run_id"]]
        # each trial trained its own values, and was told its run's best validation loss
        lr, dropout = (float(part.split("=")[1]) for part in run.note.split(", "))
        assert lr == pytest.approx(trial.params["train.optimizer.lr"], rel=1e-3)
        assert dropout == pytest.approx(trial.params["models.mlp.dropout"], rel=1e-3)
        assert 1e-4 <= lr <= 1e-1 and 0 <= dropout <= 0.5
        assert trial.value == pytest.approx(run.summary.models["mlp"].val["loss"], abs=1e-12)
        # the pruner was fed every epoch's validation loss, as metrics.csv has it
        history = pd.read_csv(run.path / "metrics.csv")
        mlp = history[history["model"] == "mlp"]
        assert trial.intermediate_values == pytest.approx(dict(zip(mlp["epoch"], mlp["val_loss"])), abs=1e-6)
        assert trial.value == pytest.approx(mlp["val_loss"].min(), abs=1e-6)
    best = min(trials, key=lambda t: t.value)
    assert f"best trial {best.number}: " in result.stdout and f"run {best.user_attrs['run_id']}" in result.stdout
    listed = CliRunner().invoke(app, ["compare", "--sweep", sweep_id(result), "--runs-dir", str(runs),
                                      "--format", "json"])
    assert listed.exit_code == 0 and len([r for r in json.loads(listed.stdout) if r["model"] == "mlp"]) == 4


def test_the_same_command_asks_the_same_first_trials(alone, tmp_path):
    spec, _, first = alone
    again = sweep(spec, "--search", "optuna", "--trials", 2, "--space", LR, "--space", DROPOUT,
                  runs=tmp_path / "again")
    assert again.exit_code == 0, again.output
    params = lambda runs: [t.params for t in study_of(runs).trials]
    assert params(tmp_path / "again") == params(alone[1])[:2]
    other = write_spec(spec.parent, tiny_spec(seed=1, train={"epochs": EPOCHS, "batch_size": 32}), "seed1.yaml")
    reseeded = sweep(other, "--search", "optuna", "--trials", 2, "--space", LR, "--space", DROPOUT,
                     runs=tmp_path / "reseeded")
    assert reseeded.exit_code == 0, reseeded.output
    assert params(tmp_path / "reseeded") != params(alone[1])[:2]


def test_a_batch_of_stackable_trials_trains_as_one_stack_with_each_trials_own_numbers(alone, tmp_path):
    """--batch 4 asks the same first four trials (the sampler's seeded start) and trains them as one stack;
    each trial's value equals the same trial trained alone."""
    spec, runs_alone, _ = alone
    runs = tmp_path / "runs"
    result = sweep(spec, "--search", "optuna", "--trials", 4, "--batch", 4, "--space", LR, "--space", DROPOUT,
                   runs=runs)
    assert result.exit_code == 0, result.output
    swept = runs_of(runs)
    assert len(swept) == 4 and all(r.summary.models["mlp"].stacked for r in swept)
    stacked, single = study_of(runs).trials, study_of(runs_alone).trials
    assert [t.params for t in stacked] == [t.params for t in single]
    assert [t.value for t in stacked] == pytest.approx([t.value for t in single], abs=1e-6)
    assert all(not r.summary.models["mlp"].stacked for r in runs_of(runs_alone))


def test_a_search_cut_short_resumes_without_repeating_a_finished_trial(spec, runs):
    first = sweep(spec, "--search", "optuna", "--trials", 3, "--space", LR, runs=runs)
    assert first.exit_code == 0, first.output
    before = [(t.number, t.params, t.value, t.user_attrs["run_id"]) for t in study_of(runs).trials]
    resumed = sweep("--resume", sweep_id(first), "--trials", 5, runs=runs)
    assert resumed.exit_code == 0, resumed.output
    assert "5 trials, 3 finished before" in resumed.stdout
    trials = study_of(runs).trials
    assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE] * 5
    assert [(t.number, t.params, t.value, t.user_attrs["run_id"]) for t in trials[:3]] == before
    lrs = [t.params["train.optimizer.lr"] for t in trials]
    assert len(set(lrs)) == 5  # no trial asked again
    swept = runs_of(runs)
    assert len(swept) == 5 and {r.meta.sweep for r in swept} == {sweep_id(first)}
    assert {r.id for r in swept} == {t.user_attrs["run_id"] for t in trials}
    done = sweep("--resume", sweep_id(first), runs=runs)  # nothing left: no trial trains again
    assert done.exit_code == 0 and len(runs_of(runs)) == 5 and len(study_of(runs).trials) == 5
    from nnlab.runstore.liveness import try_lock

    held, _ = try_lock(runs / ".sweeps" / sweep_id(first), sweep_id(first), "searched")  # another process's
    try:
        busy = sweep("--resume", sweep_id(first), "--trials", 6, runs=runs)
    finally:
        held.release()
    assert busy.exit_code == 2 and busy.stderr.strip() == (
        f"error: --resume {sweep_id(first)}: the search is running in PID {os.getpid()}; wait for it to end (or "
        "stop it), then resume it")
    spec.write_text(spec.read_text().replace(f"epochs: {EPOCHS}", "epochs: 9"))  # its trials would not compare
    changed = sweep("--resume", sweep_id(first), "--trials", 6, runs=runs)
    assert changed.exit_code == 2 and changed.stderr.strip() == (
        f"error: --resume {sweep_id(first)}: {spec} changed since the search began (train.epochs 3 → 9); put it "
        "back, or start a new search")
    assert len(study_of(runs).trials) == 5


def test_a_killed_search_marks_its_running_trial_failed_and_asks_a_fresh_one(spec, runs):
    """SIGKILL while the second trial trains: the study keeps it RUNNING; --resume marks it failed (its run
    folder reads interrupted) and ends with the asked number of complete trials."""
    slow = write_spec(spec.parent, tiny_spec(train={"epochs": 40, "batch_size": 8, "early_stopping": None}),
                      "slow.yaml")
    args = [sys.executable, "-m", "nnlab.cli", "sweep", str(slow), "--search", "optuna", "--trials", "2",
            "--space", LR, "--runs-dir", str(runs)]
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while len([f for f in run_folders(runs) if not f.name.startswith(".")]) < 2:
            assert process.poll() is None and time.monotonic() < deadline, process.communicate()
            time.sleep(0.05)
        time.sleep(0.3)
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
        process.communicate()
    states = [t.state for t in study_of(runs).trials]
    assert states == [optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.RUNNING]
    resumed = sweep("--resume", study_of(runs).study_name, runs=runs)
    assert resumed.exit_code == 0, resumed.output
    assert "1 cut off then (marked failed; asked afresh)" in resumed.stdout
    trials = study_of(runs).trials
    assert [t.state.name for t in trials] == ["COMPLETE", "FAIL", "COMPLETE"]
    assert trials[2].params != trials[1].params  # asked afresh, from a seed moved on by the earlier trials
    cut = next(r for r in runs_of(runs) if r.id not in {t.user_attrs.get("run_id") for t in trials})
    assert cut.status == "interrupted"


def test_ctrl_c_marks_the_training_trials_failed_and_says_how_to_resume(spec, runs):
    """SIGINT while a stack of two trials trains: exit 130, the study holds no running trial (the cut-off ones
    are failed and marked cut_off, their runs interrupted), and the last line says how to resume."""
    slow = write_spec(spec.parent, tiny_spec(train={"epochs": 5000, "batch_size": 8, "early_stopping": None}),
                      "slow.yaml")
    args = [sys.executable, "-m", "nnlab.cli", "sweep", str(slow), "--search", "optuna", "--trials", "4",
            "--space", LR, "--runs-dir", str(runs), "--batch", "2"]
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not [f for f in run_folders(runs) if not f.name.startswith(".")]:
            assert process.poll() is None and time.monotonic() < deadline, process.communicate()
            time.sleep(0.05)
        time.sleep(0.5)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=90)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 130, err
    name = study_of(runs).study_name
    assert err.strip().endswith(f"continue it with nnlab sweep --resume {name}"), err
    trials = study_of(runs).trials
    assert trials and all(t.state == optuna.trial.TrialState.FAIL and t.user_attrs.get("cut_off")
                          for t in trials)
    assert {r.status for r in runs_of(runs)} == {"interrupted"}


def test_the_pruner_stops_a_trial_after_an_epoch_and_the_run_says_so(spec, runs):
    """Through the search's API with a pruner that prunes every trial: its run stops after epoch 1 (interrupted,
    run.json naming the pruner), it keeps that epoch, and the trial is told pruned."""
    from nnlab.sweeps import optuna_search

    search = optuna_search.plan_optuna(spec, [LR], 2, 1)
    search = optuna_search.OptunaSearch(search.record, pruner=optuna.pruners.ThresholdPruner(upper=0.0))
    search.open(runs)
    from nnlab.sweeps.executors.local import LocalExecutor

    results = list(search.run(LocalExecutor(1), 1, runs))
    assert [r.status for r in results] == ["interrupted", "interrupted"]
    assert all(r.message == "pruned at epoch 1" for r in results)
    trials = study_of(runs).trials
    assert [t.state for t in trials] == [optuna.trial.TrialState.PRUNED] * 2
    for trial, result in zip(trials, results):
        run = runstore.read_run(Path(result.path))
        assert run.status == "interrupted"
        assert run.meta.error.startswith("interrupted by Optuna's ThresholdPruner at epoch 1 (val_loss ")
        history = pd.read_csv(run.path / "metrics.csv")
        assert history[history["model"] == "mlp"]["epoch"].tolist() == [1]
        assert list(trial.intermediate_values) == [1]


@pytest.mark.parametrize("args, message", [
    (["--search", "foo", "--trials", 2, "--space", LR], "--search foo: allowed: optuna"),
    (["--search", "optuna", "--trials", 0, "--space", LR], "--trials 0: at least 1"),
    (["--search", "optuna", "--trials", 2, "--batch", 0, "--space", LR], "--batch 0: at least 1"),
    (["--search", "optuna", "--trials", 2], "--search optuna: nothing to search; give --space KEY=DIST"),
    (["--search", "optuna", "--space", LR], "--search optuna: how many trials? give --trials N"),
    (["--trials", 2, "--space", LR], "--trials: only with --search optuna"),
    (["--search", "optuna", "--trials", 2, "--space", LR, "--halving"], "--halving: halves a grid's"),
    (["--search", "optuna", "--trials", 2, "--space", LR, "--sample", 3], "--sample: draws a random search"),
    (["--search", "optuna", "--trials", 2, "--space", LR, "--grid", "train.epochs=2,3"],
     "--grid: not with --search optuna"),
    (["--search", "optuna", "--trials", 2, "--space", "train.optimizer.rl=uniform(0,1)"],
     "--space: key 'train.optimizer.rl': 'rl' is not a setting of train.optimizer"),
    (["--search", "optuna", "--trials", 2, "--space", "train.batch_size=choice(0,32)"],
     "spec.yaml: train.batch_size: must be greater than or equal to 1; got 0 (point train.batch_size=0)"),
])
def test_bad_options_are_one_line_errors(spec, runs, args, message):
    result = sweep(spec, *args, runs=runs)
    assert result.exit_code == 2, result.output
    assert result.stderr.strip().splitlines() == [result.stderr.strip()], result.stderr
    assert result.stderr.startswith(f"error: {message}"), result.stderr
    assert "Traceback" not in result.output and not run_folders(runs)


@pytest.mark.parametrize("args, message", [
    (["--resume", "nope"], "--resume nope: no search of that id in "),
    (["--resume", "../x"], "--resume ../x: no search of that id in "),
    (["--resume", "nope", "--space", LR], "--space: not with --resume"),
    ([], "sweep: give SPEC, the experiment spec"),
])
def test_bad_resumes_are_one_line_errors(runs, args, message):
    result = sweep(*args, runs=runs)
    assert result.exit_code == 2, result.output
    assert result.stderr.strip().splitlines() == [result.stderr.strip()], result.stderr
    assert result.stderr.startswith(f"error: {message}"), result.stderr


def test_without_optuna_one_line_says_how_to_install_it(spec, runs, monkeypatch):
    monkeypatch.setitem(sys.modules, "optuna", None)  # find_spec then reports it missing
    result = sweep(spec, "--search", "optuna", "--trials", 2, "--space", LR, runs=runs)
    assert result.exit_code == 2
    assert result.stderr.strip() == "error: --search optuna: Optuna is not installed; pip install -e '.[search]' " \
                                    "in the nnlab checkout"
    assert not run_folders(runs)


def test_optuna_is_imported_only_when_a_search_asks_for_it(spec, runs):
    code = ("import sys; from typer.testing import CliRunner; from nnlab.cli import app; "
            "r = CliRunner(); r.invoke(app, ['sweep', '--help']); "
            f"r.invoke(app, ['sweep', {str(spec)!r}, '--grid', 'train.epochs=1', '--runs-dir', {str(runs)!r}]); "
            "print('optuna' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "False", out.stderr
