"""`nnlab train SPEC --resume RUN`: a run killed (SIGKILL) or interrupted (SIGINT) mid-model and resumed ends
with exactly the numbers of an uninterrupted twin — summary.json's validation and test scores, and every
metrics.csv row apart from its wall-clock `seconds` — in the same folder; finished models are not trained
again. A completed run, another spec or other data are refused with one line, exit 2."""

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

TIMEOUT = 60
EPOCHS = 120


STACKS = [{"name": "a", "kind": "mlp", "hidden": [8]},
          {"name": "b", "kind": "mlp", "hidden": [8], "dropout": 0.2},
          {"name": "c", "kind": "mlp", "hidden": [4, 4], "train": {"batch_size": 16, "epochs": 200}}]
# Batch norm has no stacked form: its two repeats train one after another, dropout from torch's generator.
ONE_AFTER_ANOTHER = [{"name": "r", "kind": "resmlp", "width": 8, "blocks": 1, "norm": "batchnorm", "dropout": 0.1,
                      "train": {"epochs": 60}}]


def _spec(folder: Path, models: list = STACKS) -> Path:
    """Two groups: `a` and `b` stack (they differ in dropout), `c` trains alone (another batch size); each
    model twice (repeats). A plateau schedule and early stopping carry state across epochs."""
    binary_table().to_csv(folder / "data.csv", index=False)
    return write_spec(folder, tiny_spec(
        train={"epochs": EPOCHS, "batch_size": 8, "early_stopping": {"patience": 30},
               "scheduler": {"name": "plateau", "patience": 3}}, models=models, repeats=2))


def _train(*args: str):
    return CliRunner().invoke(app, ["train", *map(str, args), "--no-progress"], catch_exceptions=False)


@pytest.fixture(scope="module")
def twin(tmp_path_factory) -> Path:
    """The uninterrupted run every resumed run is compared with."""
    folder = tmp_path_factory.mktemp("twin")
    assert _train(_spec(folder), "--runs-dir", folder / "runs").exit_code == 0
    (run,) = run_folders(folder / "runs")
    return run


def _rows(folder: Path, model: str) -> int:
    metrics = folder / "metrics.csv"
    return sum(line.startswith(model + ",") for line in metrics.read_text().splitlines()) if metrics.exists() else 0


def _cut(tmp_path: Path, model: str, rows: int, signum: int, models: list = STACKS) -> tuple[Path, Path]:
    """Start `nnlab train` as a process; once metrics.csv holds `rows` rows of `model`, send it `signum`."""
    spec, runs = _spec(tmp_path, models), tmp_path / "runs"
    proc = subprocess.Popen([sys.executable, "-m", "nnlab.cli", "train", str(spec), "--runs-dir", str(runs),
                             "--no-progress"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        deadline = time.monotonic() + TIMEOUT
        while not (run_folders(runs) and _rows(run_folders(runs)[0], model) >= rows):
            assert proc.poll() is None, f"nnlab ended early ({proc.returncode}): {proc.stderr.read()[-2000:]}"
            assert time.monotonic() < deadline, "timed out waiting for the run to get there"
            time.sleep(0.002)
        proc.send_signal(signum)
        proc.communicate(timeout=TIMEOUT)
    finally:
        proc.kill()
    assert proc.returncode == (-9 if signum == signal.SIGKILL else 130)
    (folder,) = run_folders(runs)
    return spec, folder


def _assert_same_numbers(resumed: Path, twin: Path, models: tuple = ("baseline", "a", "b", "c")) -> None:
    ours, theirs = (json.loads((f / "summary.json").read_text()) for f in (resumed, twin))
    assert list(ours["models"]) == list(theirs["models"]) == list(models)
    for name, model in theirs["models"].items():
        mine = ours["models"][name]
        assert (mine["status"], mine["epochs_run"], mine["best_epoch"]) == \
               (model["status"], model["epochs_run"], model["best_epoch"]), name
        assert mine["val"] == model["val"] and mine["test"] == model["test"], name
        assert mine["members"] == model["members"], name
    assert ours["complete"] and ours["expect"] == theirs["expect"]
    ours_rows, twin_rows = (pd.read_csv(f / "metrics.csv", dtype=str).drop(columns="seconds") for f in (resumed, twin))
    pd.testing.assert_frame_equal(ours_rows, twin_rows)  # no row missing, none twice, every number equal


def test_sigkill_in_the_second_group_keeps_the_first_and_resumes_to_the_twins_numbers(tmp_path, twin):
    spec, folder = _cut(tmp_path, "c", 2 * 25, signal.SIGKILL)
    runs = folder.parent
    assert json.loads((folder / "run.json").read_text())["status"] == "running"  # SIGKILL writes no end
    assert (folder / "checkpoints" / "c.safetensors").is_file()
    kept_weights = (folder / "models" / "a.safetensors").stat().st_mtime_ns

    data = tmp_path / "data.csv"
    original = data.read_text()
    data.write_text(original + original.splitlines()[1] + "\n")  # one row more: other data
    other_data = _train(spec, "--runs-dir", runs, "--resume", "last")
    assert other_data.exit_code == 2 and "trained on other data" in other_data.output
    assert len(other_data.output.strip().splitlines()) == 1 and "Traceback" not in other_data.output
    data.write_text(original)

    result = _train(spec, "--runs-dir", runs, "--resume", folder.name[:-2])  # a unique prefix names it
    assert result.exit_code == 0, result.output
    assert f"resuming run {folder.name}: kept baseline, a, b; continues c from epoch " in result.output
    assert "from the start" not in result.output
    _assert_same_numbers(folder, twin)
    assert (folder / "models" / "a.safetensors").stat().st_mtime_ns == kept_weights  # not trained again
    assert run_folders(runs) == [folder] and not (folder / "checkpoints").exists()
    run = runstore.read_run(folder)
    assert run.status == "completed" and len(run.meta.resumed_at) == 1 and run.meta.first_started_at


def test_sigint_in_a_stack_resumes_from_its_flushed_checkpoint(tmp_path, twin):
    spec, folder = _cut(tmp_path, "a", 2 * 30, signal.SIGINT)
    assert runstore.read_run(folder).meta.status == "interrupted"
    assert json.loads((folder / "summary.json").read_text())["models"]["a"]["status"] == "interrupted"
    result = _train(spec, "--runs-dir", folder.parent, "--resume", "last")
    assert result.exit_code == 0, result.output
    line = next(s for s in result.output.splitlines() if s.startswith("resuming run"))
    assert "kept baseline;" in line and line.endswith("; trains c from the start")
    assert int(line.split("continues a+b from epoch ")[1].split(";")[0]) >= 29  # the interrupt wrote it
    _assert_same_numbers(folder, twin)


def test_members_trained_one_after_another_resume_inside_the_second(tmp_path, tmp_path_factory):
    twin_folder = tmp_path_factory.mktemp("twin_r")
    assert _train(_spec(twin_folder, ONE_AFTER_ANOTHER), "--runs-dir", twin_folder / "runs").exit_code == 0
    (twin,) = run_folders(twin_folder / "runs")
    assert _rows(twin, "r") > 60 + 20
    assert json.loads((twin / "summary.json").read_text())["models"]["r"]["stacked"] is False
    spec, folder = _cut(tmp_path, "r", 60 + 15, signal.SIGINT, ONE_AFTER_ANOTHER)  # member 2, epoch 15
    result = _train(spec, "--runs-dir", folder.parent, "--resume", "last")
    assert result.exit_code == 0, result.output
    assert "continues r from member 2 of 2, epoch " in result.output  # member 1's result came from the checkpoint
    _assert_same_numbers(folder, twin, ("baseline", "r"))


def test_a_completed_run_and_a_changed_spec_are_refused(twin):
    spec = twin.parent.parent / "spec.yaml"
    done = _train(spec, "--runs-dir", twin.parent, "--resume", "last")
    assert done.exit_code == 2 and f"run {twin.name} is completed" in done.output
    run = json.loads((twin / "run.json").read_text())
    (twin / "run.json").write_text(json.dumps({**run, "status": "failed"}))  # as if it had failed
    try:
        changed = _train(spec, "--runs-dir", twin.parent, "--resume", twin.name, "--set", "models.c.dropout=0.1")
    finally:
        (twin / "run.json").write_text(json.dumps(run))
    assert changed.exit_code == 2, changed.output
    assert "ran another spec: models.c.dropout 0 → 0.1" in changed.output
    assert len(changed.output.strip().splitlines()) == 1 and "Traceback" not in changed.output


def test_a_checkpoint_round_trips_every_field_exactly(tmp_path):
    """Tensors (bool, uint8 generator states, empty), non-finite floats, tuples and the epoch history come back
    equal; the file is plain safetensors (JSON header, raw tensors), nothing pickled."""
    import math

    import torch

    from nnlab.training.state import EpochRecord, LoopState, MemberProgress
    from nnlab.training.statecodec import decode_state, encode_state
    from nnlab.runstore.checkpoints import read_checkpoint, write_checkpoint

    history = [EpochRecord("a", 1, {"train_loss": 0.7, "val_loss": 0.1 + 0.2}, 1e-3, 0.01, member=1)]
    state = LoopState(
        names=["a", "a"], epoch=3, params=torch.randn(2, 5), best_params=torch.randn(2, 5),
        buffers={"0.running_mean": torch.zeros(4), "0.num_batches_tracked": torch.tensor(7)},
        optimizer={"steps": 7, "lrs": [0.1, 0.2], "active": torch.tensor([[True], [False]]),
                   "exp_avg": torch.randn(2, 5), "exp_avg_sq": None},
        schedules=[{"lr": 0.1, "scheduler": {"best": math.inf, "mode_worse": -math.inf, "pair": (1, 2.5)}},
                   {"lr": 0.2, "scheduler": None}],
        members=[MemberProgress(best_score=0.3, best_epoch=2, best_values={"loss": 0.3}, history=history,
                                best_buffers={"x": torch.zeros(0)}, stopping_best=math.nan, stopping_stale=2),
                 MemberProgress(status="completed", stop_reason="early stopping")],
        order_rng=[torch.Generator().manual_seed(1).get_state()] * 2, dropout_rng=[],
        torch_rng=torch.get_rng_state())
    path = tmp_path / "checkpoints" / "a.safetensors"
    write_checkpoint(path, *encode_state(state))
    assert not path.read_bytes().startswith(b"\x80")  # no pickle protocol header
    back = decode_state(*read_checkpoint(path))

    def same(x, y):
        if isinstance(x, torch.Tensor):
            return isinstance(y, torch.Tensor) and x.dtype == y.dtype and torch.equal(x, y)
        if isinstance(x, float) and math.isnan(x):
            return isinstance(y, float) and math.isnan(y)
        if isinstance(x, (list, tuple)):
            return type(x) is type(y) and len(x) == len(y) and all(map(same, x, y))
        if isinstance(x, dict):
            return list(x) == list(y) and all(same(x[k], y[k]) for k in x)
        if hasattr(x, "__dataclass_fields__"):
            return type(x) is type(y) and all(same(getattr(x, f), getattr(y, f)) for f in x.__dataclass_fields__)
        return type(x) is type(y) and x == y

    assert same(state, back)
    state.members[1].best_buffers = {"bad": object()}
    with pytest.raises(TypeError, match="members.1.best_buffers.bad"):
        write_checkpoint(path, *encode_state(state))
    assert same(decode_state(*read_checkpoint(path)), back)  # a failed save leaves the previous checkpoint whole


def test_a_cut_between_two_members_continues_with_the_generator_the_first_left(tmp_path):
    """The state saved between members (no member in training) restores torch's global generator, which the
    second member's dropout draws from; saved and loaded, it continues to the same results."""
    import numpy as np
    import torch

    from nnlab.run import session as runner
    from nnlab.training import fit as train
    from nnlab.run.members import ModelToTrain, Repeat, build_and_fit
    from nnlab.runstore.checkpoints import read_checkpoint, write_checkpoint
    from nnlab.training.state import SequenceState
    from nnlab.training.statecodec import decode_state, encode_state

    plan = runner.plan(_spec(tmp_path, ONE_AFTER_ANOTHER), [])
    p, spec = plan.prepared, plan.spec.models[0]
    problem = train.Problem.from_arrays(p.task, p.x, p.y, plan.metrics, plan.spec.monitor, torch.device("cpu"),
                                        p.preprocessing.get("target_std", 1.0), p.n_outputs)
    runs = [ModelToTrain("r", "resmlp", spec, [Repeat(0, 0), Repeat(1, 1)], spec.train.epochs)]

    def fit(on_state=None, resume=None):
        fits = build_and_fit(runs, p.info, problem, lambda r: None, lambda r, n: None, on_state, resume)
        return [(f.result.val, f.result.test, f.result.history[-1].values, f.result.val_probabilities)
                for f in fits["r"]]

    states = []
    uninterrupted = fit(states.append)
    between = next(s for s in states if isinstance(s, SequenceState) and s.current is None and s.done)
    write_checkpoint(tmp_path / "r.safetensors", *encode_state(between))
    resumed = fit(resume=decode_state(*read_checkpoint(tmp_path / "r.safetensors")))
    for ours, theirs in zip(resumed, uninterrupted):
        assert ours[:3] == theirs[:3] and np.array_equal(ours[3], theirs[3])


def _nnlab(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "nnlab.cli", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})


def _until(predicate, procs: list, what: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not predicate():
        for proc in procs:
            assert proc.poll() is None, f"nnlab ended early ({proc.returncode}): {proc.stderr.read()[-2000:]}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.002)


def _interrupted(tmp_path: Path, epochs: int, rows: int = 12) -> tuple[Path, Path]:
    """One small model, SIGINT once metrics.csv holds `rows` of its epochs: an interrupted run with a checkpoint."""
    binary_table().to_csv(tmp_path / "data.csv", index=False)
    spec = write_spec(tmp_path, tiny_spec(train={"epochs": epochs, "batch_size": 8, "early_stopping": None}))
    runs = tmp_path / "runs"
    proc = _nnlab("train", spec, "--runs-dir", runs, "--no-progress")
    try:
        _until(lambda: bool(run_folders(runs)) and _rows(run_folders(runs)[0], "mlp") >= rows, [proc], "epochs")
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=TIMEOUT)
    finally:
        proc.kill()
    assert proc.returncode == 130
    (folder,) = run_folders(runs)
    assert (folder / "checkpoints" / "mlp.safetensors").is_file()
    return spec, folder


def _one_line_refusal(result, *parts: str) -> None:
    assert result.exit_code == 2, result.output
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output, result.output
    for part in parts:
        assert part in result.output, result.output


def test_resume_without_spec_reads_the_run_folder_and_names_a_changed_smoke(tmp_path, monkeypatch):
    spec, folder = _interrupted(tmp_path, epochs=40)
    runs = folder.parent
    monkeypatch.chdir(tmp_path.parent)  # the data path is relative to the spec's folder, not to here
    smoke = _train("--runs-dir", runs, "--resume", "last", "--smoke")
    _one_line_refusal(smoke, f"run {folder.name} was not a smoke run; resume it without --smoke")
    with_spec = _train(spec, "--runs-dir", runs, "--resume", "last", "--smoke")
    _one_line_refusal(with_spec, "was not a smoke run; resume it without --smoke")  # not "epochs 40 → 2"
    other = _train("--runs-dir", runs, "--resume", "last", "--set", "train.epochs=41")
    _one_line_refusal(other, "ran another spec: ")
    done = _train("--runs-dir", runs, "--resume", "last")
    assert done.exit_code == 0, done.output
    assert f"resuming run {folder.name}: kept baseline; continues mlp from epoch " in done.output
    run = runstore.read_run(folder)
    assert run.status == "completed" and run.summary.models["mlp"].epochs_run == 40
    assert list(run.metrics().query("model == 'mlp'")["epoch"]) == list(range(1, 41))


def test_train_without_spec_or_resume_is_one_line(tmp_path):
    result = CliRunner().invoke(app, ["train", "--runs-dir", str(tmp_path / "runs")])
    _one_line_refusal(result, "error: train: give SPEC", "--resume RUN")
    assert not (tmp_path / "runs").exists()


def _damaged_copy(folder: Path, where: Path, damage) -> Path:
    import shutil

    copy = where / "runs" / folder.name
    shutil.copytree(folder, copy)
    damage(copy)
    return copy


def _checkpoint_with_epoch(value):
    def damage(copy: Path) -> None:
        from safetensors import safe_open
        from safetensors.torch import save_file

        path = copy / "checkpoints" / "mlp.safetensors"
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata()
            tensors = {key: f.get_tensor(key) for key in f.keys()}
        key = next(iter(metadata))
        plain = json.loads(metadata[key])
        plain["$LoopState"]["epoch"] = value
        save_file(tensors, str(path), metadata={key: json.dumps(plain)})
    return damage


def _cut_metrics(copy: Path) -> None:
    metrics = copy / "metrics.csv"
    metrics.write_text("".join(metrics.read_text().splitlines(keepends=True)[:10]))  # header, baseline, 8 epochs


def _checkpoint_folder(copy: Path) -> None:
    path = copy / "checkpoints" / "mlp.safetensors"
    path.unlink()
    path.mkdir()


@pytest.mark.parametrize("damage, expected", [
    (_cut_metrics, "metrics.csv lacks "),
    (lambda copy: (copy / "metrics.csv").unlink(), "metrics.csv is missing"),
    (_checkpoint_with_epoch("x"), "checkpoints/mlp.safetensors: field epoch: expected int; got \"x\""),
    (_checkpoint_folder, "checkpoints/mlp.safetensors is not a file"),
], ids=["metrics-cut", "metrics-deleted", "checkpoint-field", "checkpoint-folder"])
def test_a_damaged_run_folder_is_refused_in_one_line(tmp_path_factory, damage, expected):
    source = tmp_path_factory.getbasetemp() / "damaged-source"
    if not source.exists():  # one interrupted run for every kind of damage, copied for each
        source.mkdir()
        _interrupted(source, epochs=100_000)
    (folder,) = run_folders(source / "runs")
    copy = _damaged_copy(folder, tmp_path_factory.mktemp("damaged"), damage)
    before = (copy / "run.json").read_text()
    result = _train("--runs-dir", copy.parent, "--resume", copy.name)
    _one_line_refusal(result, f"--resume: run {copy.name}", expected)
    assert (copy / "run.json").read_text() == before  # refused before anything was written


def test_two_resumes_at_once_one_is_refused_naming_the_other(tmp_path):
    spec, folder = _interrupted(tmp_path, epochs=100_000)
    runs = folder.parent
    rows_before = _rows(folder, "mlp")
    procs = [_nnlab("train", "--resume", folder.name, "--runs-dir", runs, "--no-progress") for _ in range(2)]
    try:
        deadline = time.monotonic() + TIMEOUT
        while all(p.poll() is None for p in procs):  # the refused one ends; the other trains on
            assert time.monotonic() < deadline, "timed out: neither resume was refused"
            time.sleep(0.01)
        refused = next(p for p in procs if p.poll() is not None)
        going = next(p for p in procs if p is not refused)
        _, err = refused.communicate(timeout=TIMEOUT)
        assert refused.returncode == 2, err
        assert err.strip() == (f"error: --resume: run {folder.name} is being resumed by PID {going.pid}; wait for "
                               f"it to end (or stop it), then resume it")
        _until(lambda: _rows(folder, "mlp") > rows_before + 5, [going], "the resume to train")
        later = _train("--resume", folder.name, "--runs-dir", runs)  # in-process too: refused, nothing changed
        _one_line_refusal(later, f"is being resumed by PID {going.pid}")
        going.send_signal(signal.SIGINT)
        going.communicate(timeout=TIMEOUT)
        assert going.returncode == 130
    finally:
        for proc in procs:
            proc.kill()
    run = runstore.read_run(folder)
    mlp = run.summary.models["mlp"]
    assert run.status == "interrupted" and mlp.status == "interrupted"
    epochs = list(run.metrics().query("model == 'mlp'")["epoch"])
    assert epochs == list(range(1, len(epochs) + 1)) and mlp.epochs_run == len(epochs)
    assert 1 <= mlp.best_epoch <= mlp.epochs_run and set(run.load_weights("mlp"))
    assert (folder / "checkpoints" / "mlp.safetensors").is_file()
