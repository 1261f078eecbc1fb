"""The fault suite: SIGKILL at random moments, signal storms, a signal right after the folder appears, a full
disk, a store that cannot be written, a model too large for memory, a closed stdout. Whatever happens, the
store stays readable by every reader, finished epochs and models are kept, and nothing half-written is left.

Faults that need a real process (signals) run `python -m nnlab.cli train` as a subprocess, bounded in time.
"""

from __future__ import annotations

import errno
import json
import os
import random
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import pytest

from conftest import binary_table, run_folders, tiny_spec, write_spec
from nnlab import runstore

TIMEOUT = 60


def _long_spec(folder: Path, epochs: int = 100_000) -> Path:
    binary_table().to_csv(folder / "data.csv", index=False)
    spec = tiny_spec(train={"epochs": epochs, "batch_size": 8, "early_stopping": None},
                     models=[{"name": "mlp", "kind": "mlp", "hidden": [8]},
                             {"name": "second", "kind": "mlp", "hidden": [4]}])
    return write_spec(folder, spec)


def _start(spec: Path, runs: Path, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "nnlab.cli", "train", str(spec), "--runs-dir", str(runs)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, **kwargs)


def _wait_for(predicate, proc: subprocess.Popen, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc.poll() is not None:
            raise AssertionError(f"nnlab ended early ({proc.returncode}): {proc.stderr.read()[-2000:]}")
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for the run to get there")
        time.sleep(0.002)


def _epochs_of(runs: Path, model: str) -> int:
    folders = run_folders(runs)
    try:  # the folder may be renamed from its .creating- name between listing and reading: look again
        lines = (folders[0] / "metrics.csv").read_text().splitlines() if folders else []
    except FileNotFoundError:
        return 0
    return sum(1 for line in lines if line.startswith(model + ","))


def _leftovers(runs: Path) -> list[str]:
    """Temporary or half-made files: staging folders, .tmp files, empty files."""
    found = [p.name for p in runs.iterdir() if p.name.startswith(".creating-")] if runs.exists() else []
    for folder in run_folders(runs):
        for path in folder.rglob("*"):
            if path.name.endswith(".tmp") or (path.is_file() and path.stat().st_size == 0):
                found.append(str(path.relative_to(runs)))
    return found


def _readers_work(runs: Path) -> None:
    """Every reader exits 0 on the store, without a traceback."""
    from typer.testing import CliRunner

    from nnlab.cli import app

    runner = CliRunner()
    for args in (["runs"], ["compare"], ["show", "last"], ["runs", "--format", "json"],
                 ["compare", "--format", "csv"]):
        if args[0] == "show" and not run_folders(runs):
            continue
        result = runner.invoke(app, [*args, "--runs-dir", str(runs)])
        assert result.exit_code == 0, (args, result.output)
        assert "Traceback" not in result.output


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_storm_mid_model_keeps_the_model_in_training(tmp_path, signum):
    spec, runs = _long_spec(tmp_path), tmp_path / "runs"
    proc = _start(spec, runs)
    try:
        _wait_for(lambda: _epochs_of(runs, "mlp") >= 5, proc)
        for _ in range(30):  # a storm, 0.5 ms apart: the final writes must not be cut
            proc.send_signal(signum)
            time.sleep(0.0005)
        out, err = proc.communicate(timeout=TIMEOUT)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    name = signal.Signals(signum).name
    assert f"interrupted by {name}" in err and "Traceback" not in err
    (folder,) = run_folders(runs)
    assert str(folder) in err  # the run's path is printed
    run = runstore.read_run(folder)
    assert run.meta.status == "interrupted" and run.meta.error == f"interrupted by {name}"
    mlp = run.summary.models["mlp"]
    epochs_logged = _epochs_of(runs, "mlp")
    assert mlp.status == "interrupted" and mlp.epochs_run == epochs_logged >= 5
    assert 1 <= mlp.best_epoch <= mlp.epochs_run and mlp.val["loss"] is not None and mlp.test == {}
    assert f"interrupted at epoch {epochs_logged} of 100000" in mlp.message
    assert set(run.load_weights("mlp"))  # the best weights so far were saved
    assert run.summary.models["baseline"].status == "completed" and "second" not in run.summary.models
    assert _leftovers(runs) == []
    _readers_work(runs)


def test_signal_right_after_the_folder_appears(tmp_path):
    spec, runs = _long_spec(tmp_path), tmp_path / "runs"
    proc = _start(spec, runs)
    try:
        _wait_for(lambda: bool(run_folders(runs)), proc)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=TIMEOUT)
    finally:
        proc.kill()
    assert proc.returncode == 130 and "Traceback" not in err
    (folder,) = run_folders(runs)
    assert runstore.read_run(folder).meta.status == "interrupted"
    assert _leftovers(runs) == []
    _readers_work(runs)


def test_sigkill_at_random_moments_leaves_a_readable_store(tmp_path):
    """20 runs killed at seeded random moments (start-up, folder creation, baseline, mid-model): every reader
    still works on the store, and each run that got a summary keeps its finished models' test scores."""
    spec, runs = _long_spec(tmp_path, epochs=60), tmp_path / "runs"
    moments = random.Random(0).sample([i / 100 for i in range(50, 450, 5)], 20)

    def kill_after(delay: float) -> None:
        proc = _start(spec, runs)
        time.sleep(delay)
        proc.kill()
        proc.communicate(timeout=TIMEOUT)

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(kill_after, moments))
    _readers_work(runs)
    for folder in run_folders(runs):
        run = runstore.read_run(folder)
        assert run.status in ("interrupted", "completed"), folder  # a dead pid reads as interrupted
        metrics = run.metrics()
        for name, result in (run.summary.models.items() if run.summary else []):
            if result.status == "completed" and name != "baseline":
                assert result.test  # a finished model's test scores survive the kill
                assert len(metrics[metrics["model"] == name]) == result.epochs_run


def test_full_disk_mid_run_ends_failed_and_keeps_what_finished(tiny, cli, runs, monkeypatch):
    from nnlab.runstore import writer

    real_append = writer.RunWriter.append_epoch
    calls = {"n": 0}

    def append_until_full(self, row):
        calls["n"] += 1
        if calls["n"] == 3:  # the baseline's row and the mlp's first epoch made it to disk
            raise OSError(errno.ENOSPC, "No space left on device", str(self.path / "metrics.csv"))
        real_append(self, row)

    monkeypatch.setattr(writer.RunWriter, "append_epoch", append_until_full)
    result = cli("train", tiny)
    assert result.exit_code == 1
    assert "the disk is full" in result.stderr and "Traceback" not in result.output
    (folder,) = run_folders(runs)
    run = runstore.read_run(folder)
    assert run.meta.status == "failed" and "the disk is full" in run.meta.error
    assert list(pd.read_csv(folder / "metrics.csv")["model"]) == ["baseline", "mlp"]
    assert run.summary.models["baseline"].test and set(run.load_weights("baseline"))
    assert _leftovers(runs) == [] and not (folder / ".reserve").exists()


def test_full_disk_at_the_final_status_still_ends_the_run(tiny, cli, runs, monkeypatch):
    """The reserve file is freed before the final status is written, so that write has room."""
    from nnlab.runstore import layout, writer

    real_write = layout.write_atomic

    def write_unless_reserve_held(path, text):
        if path.name == "run.json" and (path.parent / layout.RESERVE_FILE).exists() and "completed" in str(text):
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real_write(path, text)

    monkeypatch.setattr(writer, "write_atomic", write_unless_reserve_held)
    assert cli("train", tiny).exit_code == 0
    assert runstore.read_run(run_folders(runs)[0]).meta.status == "completed"


@pytest.mark.parametrize("make_store, expected", [
    (lambda tmp: (tmp / "file").write_text("x") and tmp / "file", "is a file; expected a folder"),
    (lambda tmp: Path("/proc/nnlab-store"), "cannot write run folders in /proc/nnlab-store"),
])
def test_unusable_store_is_refused_before_training(tiny, tmp_path, make_store, expected):
    from typer.testing import CliRunner

    from nnlab.cli import app

    store = make_store(tmp_path)
    result = CliRunner().invoke(app, ["train", str(tiny), "--runs-dir", str(store)])
    assert result.exit_code == 2
    assert result.stderr.startswith("error: --runs-dir: ") and expected in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_full_store_is_refused_before_training(tiny, cli, runs, monkeypatch):
    import shutil

    monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**9, 10**9 - 5000, 5000))
    result = cli("train", tiny)
    assert result.exit_code == 2 and "MiB free; a run needs at least 16 MiB" in result.stderr
    assert run_folders(runs) == []


def test_a_model_too_large_for_memory_fails_alone(tmp_path, cli, runs, monkeypatch):
    from nnlab import models

    real_build, built = models.build_model, []

    def build(spec, info):
        model = real_build(spec, info)
        built.append((spec.name, next(model.parameters()).device.type))
        return model

    # Refused from its estimate (a dry pass on the meta device), before its weights exist anywhere real.
    monkeypatch.setattr(models, "build_model", build)
    monkeypatch.setattr(models.registry, "build_model", build)  # the memory estimate builds through the registry
    binary_table().to_csv(tmp_path / "data.csv", index=False)
    spec = write_spec(tmp_path, tiny_spec(models=[{"name": "huge", "kind": "mlp", "hidden": [100_000_000, 100_000_000]},
                                                  {"name": "small", "kind": "mlp", "hidden": [8]}]))
    result = cli("train", spec)
    assert ("huge", "meta") in built and [name for name, device in built if device != "meta"] == ["small"]
    assert result.exit_code == 1  # a failed model is something CI must see
    summary = runstore.read_run(run_folders(runs)[0]).summary
    huge = summary.models["huge"]
    assert huge.status == "failed" and "free: make the model or the batch smaller" in huge.message
    assert summary.models["small"].status == "completed" and summary.models["small"].test
    assert "huge: needs about" in result.stdout


def test_closed_stdout_does_not_stop_training(tmp_path):
    binary_table().to_csv(tmp_path / "data.csv", index=False)
    spec = write_spec(tmp_path, tiny_spec(train={"epochs": 30, "batch_size": 8}))
    runs = tmp_path / "runs"
    command = f"{sys.executable} -m nnlab.cli train {spec} --runs-dir {runs} | head -c 10"
    done = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=TIMEOUT)
    assert "Traceback" not in done.stderr, done.stderr
    run = runstore.read_run(run_folders(runs)[0])
    assert run.meta.status == "completed" and run.summary.complete


def test_signal_handlers_are_restored_after_train(tiny, cli):
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    assert cli("train", tiny).exit_code == 0
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before


def test_no_json_nnlab_writes_holds_nan_or_infinity(tmp_path, cli, runs):
    """A model that diverges has NaN losses; the JSON files still parse with a strict reader."""
    binary_table().to_csv(tmp_path / "data.csv", index=False)
    spec = write_spec(tmp_path, tiny_spec(train={"epochs": 5, "optimizer": {"name": "sgd", "lr": 1e30}}))
    cli("train", spec)
    (folder,) = run_folders(runs)

    def strict(text):
        return json.loads(text, parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))

    for path in [folder / "run.json", folder / "summary.json", *(folder / "models").glob("*.json")]:
        strict(path.read_text())


def _catches_sigterm(proc: subprocess.Popen) -> bool:
    """Whether the process has a handler for SIGTERM yet (/proc's SigCgt): nnlab's own code has started."""
    try:
        status = Path(f"/proc/{proc.pid}/status").read_text()
    except OSError:
        return False
    caught = next((line.split()[1] for line in status.splitlines() if line.startswith("SigCgt:")), "0")
    return bool(int(caught, 16) >> (signal.SIGTERM - 1) & 1)


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc")
@pytest.mark.parametrize("signum, count", [(signal.SIGTERM, 1), (signal.SIGINT, 100)], ids=["sigterm", "sigint-storm"])
def test_a_signal_during_start_up_ends_in_one_line_and_writes_nothing(tmp_path, signum, count):
    spec, runs = _long_spec(tmp_path), tmp_path / "runs"
    proc = _start(spec, runs)
    try:
        _wait_for(lambda: _catches_sigterm(proc), proc)  # from nnlab's first import on, not only in `train`
        for _ in range(count):
            proc.send_signal(signum)
        _, err = proc.communicate(timeout=TIMEOUT)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert err.startswith(f"interrupted by {signal.Signals(signum).name}"), err
    assert run_folders(runs) == [] and _leftovers(runs) == []


def test_sighup_ends_the_run_as_interrupted(tmp_path):
    spec, runs = _long_spec(tmp_path), tmp_path / "runs"
    proc = _start(spec, runs)
    try:
        _wait_for(lambda: _epochs_of(runs, "mlp") >= 3, proc)
        proc.send_signal(signal.SIGHUP)  # the terminal closed
        _, err = proc.communicate(timeout=TIMEOUT)
    finally:
        proc.kill()
    assert proc.returncode == 130 and "interrupted by SIGHUP" in err and "Traceback" not in err
    (folder,) = run_folders(runs)
    run = runstore.read_run(folder)
    assert run.meta.status == "interrupted" and run.meta.error == "interrupted by SIGHUP"
    assert run.summary.models["mlp"].status == "interrupted" and _leftovers(runs) == []


def test_ctrl_c_before_the_run_folder_exists_says_nothing_was_written(tiny, cli, runs, monkeypatch):
    from nnlab.run import session as runner

    def stopped(*args, **kwargs):
        raise KeyboardInterrupt  # Ctrl-C while the spec and the data are read

    monkeypatch.setattr(runner, "plan", stopped)
    result = cli("train", tiny)
    assert result.exit_code == 130
    assert result.stderr.strip() == "interrupted by SIGINT before the run began; nothing was written"
    assert run_folders(runs) == []
