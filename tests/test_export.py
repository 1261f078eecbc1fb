"""`nnlab export`: a run read back by the tool it went to. MLflow's own client reads every metrics.csv value
back (members as nested runs, params, tags, artifacts), a second export adds nothing; TensorBoard's
EventAccumulator reads the same scalars. The run is trained once for the module."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import ROOT, binary_table, tiny_spec, write_spec
from nnlab.cli import app

mlflow = pytest.importorskip("mlflow", reason="the mlflow extra is not installed")


def invoke(*args: object):
    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """One tiny run: the baseline and an mlp with two repeats (so members nest); returns its folder."""
    folder = tmp_path_factory.mktemp("export")
    binary_table().to_csv(folder / "data.csv", index=False)
    spec = write_spec(folder, tiny_spec(repeats=2))
    result = invoke("train", spec, "--runs-dir", folder / "runs", "--note", "first 'try'", "--no-progress")
    assert result.exit_code == 0, result.output
    (run,) = (folder / "runs").iterdir()
    return run


def csv_rows(run: Path) -> dict[tuple[str, int], dict[int, dict[str, float]]]:
    """metrics.csv read with the csv module (not nnlab's reader): (model, member) -> epoch -> column -> value."""
    found: dict[tuple[str, int], dict[int, dict[str, float]]] = {}
    with open(run / "metrics.csv", newline="") as f:
        for row in csv.DictReader(f):
            values = {k: float(v) for k, v in row.items() if k not in ("model", "member", "epoch") and v != ""}
            found.setdefault((row["model"], int(row["member"])), {})[int(row["epoch"])] = values
    return found


@pytest.fixture(scope="module")
def exported(trained: Path):
    """The run exported to a SQLite store; returns (client, its uri, the export's output)."""
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{trained.parent.parent / 'mlflow.db'}"
    result = invoke("export", trained, "--to", "mlflow", "--tracking-uri", uri)
    assert result.exit_code == 0, result.output
    return MlflowClient(uri), uri, result.output


def runs_of(client, nnlab_id: str):
    experiment = client.get_experiment_by_name("tiny")
    return client.search_runs([experiment.experiment_id], f"tags.`nnlab.run_id` = '{nnlab_id}'")


def test_mlflow_reads_back_every_metric_of_metrics_csv(trained, exported):
    client, _, output = exported
    meta = json.loads((trained / "run.json").read_text())
    summary = json.loads((trained / "summary.json").read_text())
    found = {(r.data.tags["nnlab.model"], r.data.tags.get("nnlab.member")): r for r in runs_of(client, meta["id"])}
    # one MLflow run per model, the mlp's two members nested under it
    assert sorted(found, key=str) == sorted([("baseline", None), ("mlp", None), ("mlp", "0"), ("mlp", "1")], key=str)
    parent = found[("mlp", None)].info.run_id
    assert found[("mlp", "0")].data.tags["mlflow.parentRunId"] == parent
    assert found[("mlp", "1")].data.tags["mlflow.parentRunId"] == parent
    expected = csv_rows(trained)
    checked = 0
    for (model, member), epochs in expected.items():
        target = found[(model, None)] if model == "baseline" else found[(model, str(member))]
        for column in {c for values in epochs.values() for c in values}:
            history = {m.step: m.value for m in client.get_metric_history(target.info.run_id, column)}
            assert history == {e: v[column] for e, v in epochs.items() if column in v}, (model, member, column)
            checked += len(history)
    assert checked == sum(len(v) for epochs in expected.values() for v in epochs.values())
    # the recorded scores, at the best epoch; the mlp's are its members' means
    mlp = summary["models"]["mlp"]
    scores = {m.key: m for m in client.get_metric_history(parent, "summary/val_loss")}
    assert scores["summary/val_loss"].value == mlp["val"]["loss"]
    assert scores["summary/val_loss"].step == mlp["best_epoch"]
    assert client.get_run(parent).data.metrics["summary/test_accuracy_sd"] == mlp["test_sd"]["accuracy"]
    assert "2 members nested" in output


def test_mlflow_params_tags_and_artifacts(trained, exported):
    client, _, _ = exported
    meta = json.loads((trained / "run.json").read_text())
    found = {(r.data.tags["nnlab.model"], r.data.tags.get("nnlab.member")): r for r in runs_of(client, meta["id"])}
    mlp = found[("mlp", None)]
    params = mlp.data.params
    assert params["models.hidden"] == "[8]"
    assert params["train.epochs"] == "3" and params["train.batch_size"] == "32"
    assert params["train.optimizer.lr"] == str(meta["spec"]["train"]["optimizer"]["lr"])
    assert params["data.target"] == "label" and params["seed"] == "0"
    assert found[("baseline", None)].data.params["baseline.kind"] == meta["spec"]["baseline"]["kind"]
    tags = mlp.data.tags
    assert tags["nnlab.status"] == "completed" and tags["nnlab.run_status"] == "completed"
    assert tags["nnlab.note"] == "first 'try'" == tags["mlflow.note.content"]
    assert json.loads(tags["nnlab.data_fingerprint"]) == meta["data_fingerprint"]
    assert mlp.info.status == "FINISHED"
    artifacts = {a.path for folder in ("models", "errors") for a in client.list_artifacts(mlp.info.run_id, folder)}
    assert artifacts == {"models/mlp.safetensors", "models/mlp.json", "errors/mlp.csv"}
    assert (trained.parent.parent / "mlartifacts").is_dir()  # beside the SQLite store, not in the current folder
    local = Path(client.download_artifacts(mlp.info.run_id, "models/mlp.safetensors", str(trained.parent / "dl")))
    assert local.read_bytes() == (trained / "models" / "mlp.safetensors").read_bytes()


def test_exporting_again_duplicates_nothing(trained, exported):
    client, uri, _ = exported
    meta = json.loads((trained / "run.json").read_text())
    before = {r.info.run_id: len(client.get_metric_history(r.info.run_id, "val_loss")) for r in runs_of(client, meta["id"])}
    result = invoke("export", trained.name, "--to", "mlflow", "--tracking-uri", uri, "--runs-dir", trained.parent)
    assert result.exit_code == 0, result.output
    assert result.output.count("already there; 0 metric value(s) logged") == 2
    after = {r.info.run_id: len(client.get_metric_history(r.info.run_id, "val_loss")) for r in runs_of(client, meta["id"])}
    assert after == before and len(after) == 4


def test_tensorboard_reads_the_same_scalars(trained, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    for _ in range(2):  # again: the same files rewritten, never a second copy TensorBoard would read twice
        result = invoke("export", trained, "--to", "tensorboard", tmp_path / "tb")
        assert result.exit_code == 0, result.output
    expected = csv_rows(trained)
    base = tmp_path / "tb" / trained.name
    for (model, member), epochs in expected.items():
        folder = base / model if model == "baseline" else base / model / f"member-{member}"
        assert [p.name for p in folder.iterdir() if p.is_file()] == ["events.out.tfevents.0.nnlab"]
        events = EventAccumulator(str(folder))
        events.Reload()
        columns = {c for values in epochs.values() for c in values}
        assert set(events.Tags()["scalars"]) >= columns
        for column in columns:
            got = {s.step: s.value for s in events.Scalars(column)}
            assert got == {e: float(np.float32(v[column])) for e, v in epochs.items() if column in v}, column
    summary = json.loads((trained / "summary.json").read_text())["models"]["mlp"]
    events = EventAccumulator(str(base / "mlp"))
    events.Reload()
    (score,) = events.Scalars("summary/val_loss")
    assert (score.step, score.value) == (summary["best_epoch"], float(np.float32(summary["val"]["loss"])))


def test_bad_export_requests_say_what_is_missing(trained):
    result = invoke("export", trained, "--to", "tensorboard")
    assert result.exit_code == 2
    assert result.output.strip() == ("error: --to tensorboard: give the log folder: nnlab export RUN --to "
                                     "tensorboard DIR")
    result = invoke("export", trained, "--to", "tensorboard", trained.parent / "tb", "--model", "cnn")
    assert result.exit_code == 2
    assert "--model: run" in result.output and "has no model 'cnn' (models: baseline, mlp)" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_export_to_mlflow_and_tensorboard_does_not_import_torch(trained, exported):
    _, uri, _ = exported
    code = ("import sys\nfrom typer.testing import CliRunner\nfrom nnlab.cli import app\n"
            f"for args in (['--to', 'mlflow', '--tracking-uri', {uri!r}], ['--to', 'tensorboard', {str(trained.parent / 'tb2')!r}]):\n"
            f"    r = CliRunner().invoke(app, ['export', {str(trained)!r}, *args])\n"
            "    assert r.exit_code == 0, r.output\n"
            "print('TORCH' if 'torch' in sys.modules else 'NO TORCH')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "NO TORCH"


# --- nnlab train --log-to mlflow ---------------------------------------------------------------------------

def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def epochs_in_csv(run: Path) -> int:
    return sum(len(epochs) for epochs in csv_rows(run).values())


def test_log_to_a_server_nobody_answers_trains_on_with_one_warning(trained, tmp_path):
    spec = trained.parent.parent / "spec.yaml"
    result = invoke("train", spec, "--runs-dir", tmp_path / "runs", "--no-progress",
                    "--log-to", f"mlflow:http://127.0.0.1:{free_port()}")
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.output.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1, result.output
    assert "--log-to mlflow" in warnings[0] and "cannot reach the tracking server" in warnings[0]
    (run,) = (tmp_path / "runs").iterdir()
    assert epochs_in_csv(run) == epochs_in_csv(trained) == 7  # the baseline's epoch and 2 members x 3 epochs
    assert json.loads((run / "run.json").read_text())["status"] == "completed"


def test_log_to_streams_epochs_and_a_store_failing_mid_run_costs_one_warning(trained, exported, tmp_path,
                                                                             monkeypatch):
    """The store fails after the first epochs went through: training completes, one warning, metrics.csv
    whole; what was streamed is in MLflow, and `nnlab export` adds the rest, no value twice."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client, uri, _ = exported
    real, calls = MlflowClient.log_batch, []

    def failing(self, run_id, metrics=(), params=(), tags=(), **kw):
        if metrics:
            calls.append(len(metrics))
            if len(calls) > 3:  # three epochs streamed, then the store goes away
                raise MlflowException("the tracking server went away")
        return real(self, run_id, metrics, params, tags, **kw)

    monkeypatch.setattr(MlflowClient, "log_batch", failing)
    spec = trained.parent.parent / "spec.yaml"
    result = invoke("train", spec, "--runs-dir", tmp_path / "runs", "--no-progress", "--log-to", f"mlflow:{uri}")
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.output.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "the tracking server went away" in warnings[0], result.output
    (run,) = (tmp_path / "runs").iterdir()
    assert epochs_in_csv(run) == 7 and f"nnlab export {run.name} --to mlflow --tracking-uri {uri}" in warnings[0]
    nnlab_id = json.loads((run / "run.json").read_text())["id"]
    streamed = sum(len(client.get_metric_history(r.info.run_id, "val_loss")) for r in runs_of(client, nnlab_id))
    assert streamed == 3  # the epochs logged before the failure, while training ran
    monkeypatch.setattr(MlflowClient, "log_batch", real)
    again = invoke("export", run, "--to", "mlflow", "--tracking-uri", uri)
    assert again.exit_code == 0, again.output
    found = {(r.data.tags["nnlab.model"], r.data.tags.get("nnlab.member")): r for r in runs_of(client, nnlab_id)}
    for (model, member), epochs in csv_rows(run).items():
        target = found[(model, None)] if model == "baseline" else found[(model, str(member))]
        history = [(m.step, m.value) for m in client.get_metric_history(target.info.run_id, "val_loss")]
        assert sorted(history) == sorted((e, v["val_loss"]) for e, v in epochs.items()), (model, member)


def test_log_to_names_what_it_takes(trained):
    result = invoke("train", trained.parent.parent / "spec.yaml", "--runs-dir", trained.parent, "--log-to", "wandb")
    assert result.exit_code == 2
    assert result.output.strip() == ("error: --log-to: expected mlflow or mlflow:URI (mlflow:http://127.0.0.1:5000, "
                                     "mlflow:sqlite:///mlflow.db); got 'wandb'")


def test_log_to_a_real_server_killed_mid_run(trained, tmp_path, monkeypatch):
    """A real `mlflow server` on 127.0.0.1, killed (SIGKILL, its whole process group) right after the third
    epoch reached it: training completes, one warning, metrics.csv whole; the server's store holds the
    epochs streamed before the kill, and `nnlab export` into that store adds the rest."""
    import os
    import signal
    import time
    import urllib.request

    from mlflow.tracking import MlflowClient

    port, db, artifacts = free_port(), tmp_path / "server.db", tmp_path / "artifacts"
    server = subprocess.Popen([sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
                               "--backend-store-uri", f"sqlite:///{db}", "--default-artifact-root", str(artifacts),
                               "--no-serve-artifacts", "--workers", "1"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        while True:  # bounded: the server answers /health within seconds, or the test fails
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, "mlflow server did not start"
            time.sleep(0.3)
        real, streamed_calls = MlflowClient.log_batch, []

        def kill_after_three(self, run_id, metrics=(), params=(), tags=(), **kw):
            done = real(self, run_id, metrics, params, tags, **kw)
            if metrics:
                streamed_calls.append(len(metrics))
                if len(streamed_calls) == 3 and server.poll() is None:
                    os.killpg(server.pid, signal.SIGKILL)  # the server goes away mid-run, for real
                    server.wait(timeout=30)
            return done

        monkeypatch.setattr(MlflowClient, "log_batch", kill_after_three)
        spec = trained.parent.parent / "spec.yaml"
        uri = f"http://127.0.0.1:{port}"
        result = invoke("train", spec, "--runs-dir", tmp_path / "runs", "--no-progress", "--log-to", f"mlflow:{uri}")
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=30)
    monkeypatch.setattr(MlflowClient, "log_batch", real)
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.output.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "cannot reach the tracking server" in warnings[0], result.output
    (run,) = (tmp_path / "runs").iterdir()
    assert epochs_in_csv(run) == 7 and json.loads((run / "run.json").read_text())["status"] == "completed"
    assert f"nnlab export {run.name} --to mlflow --tracking-uri {uri}" in warnings[0]
    store = f"sqlite:///{db}"
    client, nnlab_id = MlflowClient(store), json.loads((run / "run.json").read_text())["id"]
    streamed = sum(len(client.get_metric_history(r.info.run_id, "val_loss")) for r in runs_of(client, nnlab_id))
    assert streamed == 3  # what reached the server before it died
    again = invoke("export", run, "--to", "mlflow", "--tracking-uri", store)
    assert again.exit_code == 0, again.output
    total = sum(len(client.get_metric_history(r.info.run_id, "val_loss")) for r in runs_of(client, nnlab_id))
    assert total == epochs_in_csv(run)  # every epoch once: the streamed three are not written twice
