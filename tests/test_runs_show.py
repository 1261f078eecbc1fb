"""`nnlab runs`, `nnlab show` and run references, on hand-made and damaged run stores."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from typer.testing import CliRunner

from compare_fixtures import as_json, browse, make_spec, patch_meta, patch_summary, result, two_models, write_run
from nnlab import runstore
from nnlab.runstore import reader
from nnlab.cli import app

BASE = (0.40, 0.42, 0.85, 0.84)


@pytest.fixture
def store(tmp_path):
    return tmp_path / "runs"


def interrupted(store, spec, history, minute):
    """A run whose process died mid-training: status `running` in run.json, no summary, a dead pid."""
    path = write_run(store, spec, minute=minute, status="running", history=history, summary=False)
    child = subprocess.Popen(["true"])
    child.wait()
    meta = json.loads((path / "run.json").read_text())
    meta["pid"] = child.pid
    (path / "run.json").write_text(json.dumps(meta))
    return path


@pytest.fixture
def listed(store):
    a = write_run(store, make_spec(name="spam"), two_models(BASE, (0.30, 0.32, 0.90, 0.89)), minute=1, note="first")
    b = write_run(store, make_spec(name="spam", seed=1), two_models(BASE, (0.45, 0.47, 0.80, 0.79)), minute=2)
    c = write_run(store, make_spec(name="digits"), two_models(BASE, (0.20, 0.21, 0.95, 0.96)), minute=3,
                  status="failed", note="a note " * 20)
    return a.name, b.name, c.name


def test_runs_lists_newest_first_with_the_best_model(store, listed):
    records = as_json(browse(store, "runs", "--format", "json"))
    assert [r["id"] for r in records] == [listed[2], listed[1], listed[0]]
    assert list(records[0]) == ["id", "name", "status", "smoke", "sweep", "started_at", "duration_seconds", "models",
                                "best_model", "monitor", "repeats", "best_val", "best_val_sd", "best_test",
                                "best_test_sd", "note", "tags"]
    first = records[2]
    assert first["name"] == "spam" and first["status"] == "completed" and first["note"] == "first"
    assert first["models"] == ["baseline", "mlp"] and first["monitor"] == "val_loss"
    # best on the validation loss, reported with its test loss
    assert (first["best_model"], first["best_val"], first["best_test"]) == ("mlp", 0.30, 0.32)
    assert (records[1]["best_model"], records[1]["best_test"]) == ("baseline", 0.42)
    assert records[0]["status"] == "failed" and records[0]["started_at"] == "2025-01-01T00:03:00+00:00"


def test_runs_table_fits_100_columns(store, listed):
    out = browse(store, "runs")
    assert out.exit_code == 0, out.output
    lines = out.stdout.splitlines()
    assert lines[0].split()[:3] == ["id", "status", "started"] and max(map(len, lines)) <= 100
    row = next(line for line in lines if line.startswith(listed[0]))
    assert "completed" in row and "mlp" in row and "0.3200" in row and row.rstrip().endswith("first")
    failed = next(line for line in lines if line.startswith(listed[2]))
    assert "failed" in failed and failed.endswith("…")  # the long note is cut, not wrapped


def test_runs_filters(store, listed):
    def ids(*args):
        return [r["id"] for r in as_json(browse(store, "runs", "--format", "json", *args))]

    assert ids("--name", "spam") == [listed[1], listed[0]]
    assert ids("--name", "d*") == [listed[2]]
    assert ids("--status", "failed") == [listed[2]]
    assert ids("--last", "1") == [listed[2]]
    assert ids("--name", "spam", "--last", "1") == [listed[1]]
    assert ids("--name", "nothing") == []


def test_runs_csv_reads_back(store, listed):
    out = browse(store, "runs", "--format", "csv")
    frame = pd.read_csv(io.StringIO(out.stdout))
    assert list(frame["id"]) == [listed[2], listed[1], listed[0]]
    assert list(frame["best_test"]) == [0.21, 0.42, 0.32]
    assert json.loads(frame["models"][0]) == ["baseline", "mlp"]


def test_runs_on_an_empty_or_missing_store(store):
    out = browse(store, "runs")
    assert out.exit_code == 0 and "No runs in" in out.stdout
    assert as_json(browse(store, "runs", "--format", "json")) == []
    assert browse(store, "runs", "--format", "csv").stdout.startswith("id,name,status,")


def test_damaged_and_foreign_folders_are_skipped_with_one_warning_each(store, listed):
    (store / "notes").mkdir()
    (store / "notes" / "todo.txt").write_text("not a run")
    newer = write_run(store, make_spec(name="future"), two_models(BASE, BASE), minute=4)
    meta = json.loads((newer / "run.json").read_text())
    (newer / "run.json").write_text(json.dumps({**meta, "format_version": 99}))
    broken = write_run(store, make_spec(name="broken"), two_models(BASE, BASE), minute=5)
    (broken / "run.json").write_text('{"id": "broken-')
    out = browse(store, "runs")
    assert out.exit_code == 0
    warnings = out.stderr.splitlines()
    assert len(warnings) == 3 and all(w.startswith("warning: skipped ") for w in warnings)
    assert any("notes: not a run folder (no run.json)" in w for w in warnings)
    assert any(newer.name in w and "format version 99 is newer than this nnlab reads (1)" in w for w in warnings)
    assert any("broken" in w and "unreadable" in w for w in warnings)
    assert [line.split()[0] for line in out.stdout.splitlines()[2:5]] == [listed[2], listed[1], listed[0]]
    # compare skips them the same way and still compares the rest
    out = browse(store, "compare", "--format", "json")
    assert out.exit_code == 0 and len(json.loads(out.stdout)) == 6 and len(out.stderr.splitlines()) == 3


def test_interrupted_run_with_a_half_written_metrics_file(store, listed):
    path = interrupted(store, make_spec(name="spam"), {"baseline": [0.6], "mlp": [0.9, 0.5, 0.6]}, minute=9)
    with open(path / "metrics.csv", "a") as f:
        f.write("mlp,4,0.1,0.05")  # the line a crash cut short: its val_loss 0.05 must not count
    (run,) = [r for r in as_json(browse(store, "runs", "--format", "json")) if r["id"] == path.name]
    assert run["status"] == "interrupted" and run["best_model"] == "mlp" and run["best_val"] == 0.5
    assert run["best_test"] is None and run["models"] == ["baseline", "mlp"]
    rows = as_json(browse(store, "compare", path.name, "--format", "json"))
    mlp = rows[1]
    assert (mlp["status"], mlp["best_epoch"], mlp["epochs_run"], mlp["val_loss"]) == ("interrupted", 2, 3, 0.5)
    assert mlp["test_loss"] is None and mlp["val_loss_vs_baseline"] == pytest.approx(-0.1)
    text = browse(store, "show", path.name).stdout
    assert "interrupted, no summary yet: stopped at mlp epoch 3 of 3" in text


def test_running_run_is_shown_as_running(store):
    path = write_run(store, make_spec(), minute=1, status="running", history={"baseline": [0.4]}, summary=False)
    (run,) = as_json(browse(store, "runs", "--format", "json"))
    assert run["status"] == "running" and run["duration_seconds"] is None
    text = browse(store, "show", "last").stdout
    assert "running, no summary yet: is at baseline epoch 1 of 1" in text
    assert "mlp" in text and "0/3" in text and "null" not in text  # planned but not started
    assert path.name in browse(store, "runs").stdout


def test_completed_run_without_summary_is_read_from_metrics_with_a_warning(store):
    path = write_run(store, make_spec(), two_models(BASE, (0.3, 0.32, 0.9, 0.89)), minute=1)
    (path / "summary.json").unlink()
    out = browse(store, "compare", "--format", "json")
    assert out.exit_code == 0
    assert "summary.json is missing or unreadable" in out.stderr
    rows = json.loads(out.stdout)
    assert [(r["model"], r["val_loss"], r["test_loss"]) for r in rows] == [("baseline", 0.4, None), ("mlp", 0.3, None)]


@pytest.mark.parametrize("ref", ["full", "prefix", "path", "last~1"])
def test_run_references(store, listed, ref):
    target = listed[1]
    given = {"full": target, "prefix": target[:-2], "path": str(store / target), "last~1": "last~1"}[ref]
    out = browse(store, "show", given)
    assert out.exit_code == 0, out.output
    assert out.stdout.startswith(target)


def test_last_is_the_newest(store, listed):
    assert browse(store, "show", "last").stdout.startswith(listed[2])


def test_ambiguous_prefix_lists_the_candidates(store, listed):
    out = browse(store, "show", "spam-")
    assert out.exit_code == 2
    assert out.stderr.startswith("error: run 'spam-' is ambiguous: it matches 2 runs")
    assert listed[0] in out.stderr and listed[1] in out.stderr


def test_unknown_reference_says_what_exists(store, listed):
    out = browse(store, "compare", "nope", "--format", "csv")
    assert out.exit_code == 2 and out.stdout == ""
    assert "run 'nope': no such run in" in out.stderr and listed[2] in out.stderr
    out = browse(store, "show", "last~7")
    assert out.exit_code == 2 and "has 3 run(s)" in out.stderr


def test_show_tells_the_whole_story(store):
    spec = make_spec(name="spam", models=[{"name": "mlp", "kind": "mlp", "hidden": [64, 32], "dropout": 0.3,
                                           "train": {"optimizer": {"lr": 0.0005}}}])
    results = {"baseline": result(*BASE, kind="logistic"),
               "mlp": result(0.3, 0.32, 0.9, 0.89, best_epoch=2, epochs_run=3,
                             diagnosis=["still improving at the last epoch: train longer"])}
    expect = [{"key": "mlp.test.accuracy", "rule": ">= 0.95", "value": 0.89, "passed": False}]
    path = write_run(store, spec, results, minute=1, note="dropout 0.3", expect=expect)
    out = browse(store, "show", "last")
    assert out.exit_code == 0, out.output
    text = out.stdout
    assert text.startswith(f"{path.name}  completed  started ")
    assert "note: dropout 0.3" in text
    assert "data     data.csv -> y (binary); val 0.15, test 0.15" in text
    assert "baseline kind=logistic l2=1.0" in text
    assert "model    mlp: mlp hidden=[64, 32] dropout=0.3; train.optimizer.lr=0.0005" in text
    row = next(line for line in text.splitlines() if line.startswith("mlp "))
    assert row.split()[:6] == ["mlp", "mlp", "100", "2/3", "0.3000", "0.3200"]
    assert "mlp: still improving at the last epoch: train longer" in text
    assert "MISS  mlp.test.accuracy >= 0.95  (got 0.8900)" in text
    assert f"files in {path}/" in text.replace("\n", "")  # a long path folds onto the next line, whole
    for name in ("run.json", "spec.yaml", "metrics.csv", "summary.json"):
        assert f"\n  {name}\n" in text
    assert max(len(line) for line in text.splitlines() if str(path) not in line) <= 100


def test_show_a_failed_run_gives_its_error(store):
    path = write_run(store, make_spec(), {"baseline": result(*BASE, kind="logistic")}, minute=1, status="failed")
    meta = json.loads((path / "run.json").read_text())
    (path / "run.json").write_text(json.dumps({**meta, "error": "mlp: loss became NaN at epoch 2"}))
    text = browse(store, "show", "last").stdout
    assert "failed" in text.splitlines()[0] and "error: mlp: loss became NaN at epoch 2" in text


def test_reading_is_lazy(store, listed, monkeypatch):
    """`runs` reads no spec.yaml and no metrics.csv of a finished run: run.json and summary.json only."""
    calls = []
    real_read_bytes, real_read_text = Path.read_bytes, Path.read_text
    monkeypatch.setattr(Path, "read_bytes", lambda self: calls.append(self.name) or real_read_bytes(self))
    monkeypatch.setattr(Path, "read_text", lambda self, *a, **k: calls.append(self.name) or real_read_text(self, *a, **k))
    real_read_regular = reader.read_regular  # the store's one file reader (no FIFO, no device, bounded)
    monkeypatch.setattr(reader, "read_regular", lambda path, limit: calls.append(Path(path).name)
                        or real_read_regular(path, limit))
    monkeypatch.setattr(runstore.Run, "metrics", lambda self: calls.append(self))
    assert browse(store, "runs", "--format", "json").exit_code == 0
    assert calls and set(calls) <= {"run.json", "summary.json"}


# ---------------------------------------------------------------- a dead run, a reused PID, another host

def test_a_reused_pid_does_not_keep_a_dead_run_alive(store):
    """This test's process is alive but started long after the run did: the run's own process is gone."""
    path = write_run(store, make_spec(), minute=1, status="running", history={"baseline": [0.4]}, summary=False)
    assert runstore.read_run(path).status == "running"  # its pid is this (older) process
    patch_meta(path, started_at="2025-01-01T00:01:00+00:00")  # the run is older than the process with its pid
    assert runstore.read_run(path).status == "interrupted"
    assert as_json(browse(store, "runs", "--format", "json"))[0]["status"] == "interrupted"


def test_a_run_on_another_host_reads_by_its_heartbeat(store):
    from datetime import datetime, timedelta, timezone

    from nnlab.runstore.liveness import HEARTBEAT_TIMEOUT_SECONDS

    path = write_run(store, make_spec(), minute=1, status="running", history={"baseline": [0.4]}, summary=False)
    now = datetime.now(timezone.utc)
    fresh = (now - timedelta(seconds=30)).isoformat()
    stale = (now - timedelta(seconds=HEARTBEAT_TIMEOUT_SECONDS + 60)).isoformat()
    patch_meta(path, host="another-machine", pid=1, started_at=stale, heartbeat_at=fresh)
    assert runstore.read_run(path).status == "running"
    patch_meta(path, heartbeat_at=stale)
    os.utime(path / "metrics.csv", (0, 0))  # its last row is as old
    assert runstore.read_run(path).status == "interrupted"


def test_a_copied_run_folder_does_not_make_its_id_ambiguous(store, listed):
    original = store / listed[0]
    copy = store / "copy-of-a-run"
    shutil.copytree(original, copy)
    out = browse(store, "show", listed[0])  # the exact folder name wins over the copy's repeated id
    assert out.exit_code == 0 and out.stdout.startswith(listed[0])
    assert browse(store, "show", "copy-of-a-run").stdout.startswith("copy-of-a-run")
    records = as_json(browse(store, "runs", "--format", "json"))
    assert sorted(r["id"] for r in records if r["name"] == "spam") == sorted([listed[0], listed[1], "copy-of-a-run"])
    shutil.move(original, store / "moved-away")  # now two folders share the id and neither is named so
    out = browse(store, "show", listed[0])
    assert out.exit_code == 2 and "is ambiguous: it matches 2 runs" in out.stderr
    assert str(copy) in out.stderr and str(store / "moved-away") in out.stderr


# ---------------------------------------------------------------- what show says

def test_show_says_where_an_interrupted_model_stopped(store):
    results = {"baseline": result(*BASE, kind="softmax"),
               "mlp": result(0.31, 0.33, 0.8810, 0.87, best_epoch=5, epochs_run=7, status="interrupted",
                             epochs_planned=40)}
    write_run(store, make_spec(baseline={"kind": "auto", "l2": 1.0}), results, minute=1, status="interrupted")
    text = browse(store, "show", "last").stdout
    assert "mlp: interrupted at epoch 7 of 40; best epoch 5: val_loss 0.3100, val_accuracy 0.8810" in text
    assert "baseline kind=softmax l2=1.0" in text  # the kind `auto` became, as compare shows it
    row = next(line for line in text.splitlines() if line.startswith("mlp "))
    assert row.split()[3:6] == ["5/7", "0.3100", "0.3300"] and row.split()[-1] == "interrupted"


def test_an_interrupted_model_is_said_once_and_gets_no_fit_verdict(store):
    message = "interrupted at epoch 7 of 40; kept the best epoch so far (5) and its weights; not tested"
    stored = [message, "underfitting: the lowest train loss, 0.69, is no lower than the linear baseline's 0.45; "
                       "try more epochs, a higher learning rate or a larger network."]  # as older runs kept them
    mlp = result(0.31, 0.33, 0.8810, 0.87, best_epoch=5, epochs_run=7, status="interrupted", epochs_planned=40,
                 diagnosis=stored).model_copy(update={"message": message})
    write_run(store, make_spec(), {"baseline": result(*BASE, kind="logistic"), "mlp": mlp}, minute=1,
              status="interrupted")
    text = " ".join(browse(store, "show", "last").stdout.split())
    assert text.count("interrupted at epoch 7") == 1
    assert "val_accuracy 0.8810; cut off, so no verdict on its fit" in text
    assert "underfitting" not in text


def test_a_smoke_run_gets_no_advice(store):
    advice = ["no better than the baseline: validation loss 0.6 vs the baseline's 0.4; the linear model is enough "
              "here, or this network needs different settings.", "early stopping: no gain; restored epoch 2."]
    results = {"baseline": result(*BASE, kind="logistic"),
               "mlp": result(0.6, 0.62, 0.61, 0.6, best_epoch=2, epochs_run=3, diagnosis=advice)}
    smoke = write_run(store, make_spec(), results, minute=1, smoke=True)
    text = " ".join(browse(store, "show", smoke.name).stdout.split())
    assert "the linear model is enough" not in text and "no better than the baseline" not in text
    assert "mlp: early stopping: no gain; restored epoch 2." in text  # what happened is still said
    assert "its numbers are a smoke check only" in text
    full = write_run(store, make_spec(), results, minute=2)
    assert "the linear model is enough" in " ".join(browse(store, "show", full.name).stdout.split())


def test_smoke_runs_are_marked_and_left_out_of_compare(store):
    full = write_run(store, make_spec(name="spam"), two_models(BASE, (0.3, 0.32, 0.9, 0.89)), minute=1)
    smoke = write_run(store, make_spec(name="spam", train={"epochs": 40}),
                      two_models(BASE, (0.6, 0.62, 0.61, 0.6)), minute=2, smoke=True)
    (row,) = [r for r in as_json(browse(store, "runs", "--format", "json")) if r["smoke"]]
    assert row["id"] == smoke.name
    listing = browse(store, "runs").stdout
    assert "completed smoke" in next(line for line in listing.splitlines() if line.startswith(smoke.name))
    text = browse(store, "show", smoke.name).stdout
    assert text.splitlines()[0].startswith(f"{smoke.name}  completed  smoke")
    assert "epochs run: baseline 1 of 1, mlp 3 of 40" in " ".join(text.split())  # a long line may wrap
    assert [r["run"] for r in as_json(browse(store, "compare", "--format", "json"))] == [full.name] * 2
    assert "left out 1 smoke run(s) (--smoke to include)" in browse(store, "compare").stdout
    both = as_json(browse(store, "compare", "--smoke", "--format", "json"))
    assert [r["run"] for r in both] == [full.name] * 2 + [smoke.name] * 2
    assert "smoke run" in browse(store, "compare", "--smoke").stdout


def test_stored_float32_noise_reads_as_the_float32(store):
    noisy = result(0.30000001192092896, 0.32, 0.9130434989929199, 0.8999999761581421)
    write_run(store, make_spec(), {"baseline": result(*BASE, kind="logistic"), "mlp": noisy}, minute=1)
    csv_text = browse(store, "compare", "--format", "csv").stdout
    assert "0.9130435" in csv_text and "0.9130434989929199" not in csv_text and ",0.9," in csv_text
    mlp = as_json(browse(store, "compare", "--format", "json"))[1]
    assert (mlp["val_accuracy"], mlp["val_loss"], mlp["test_accuracy"]) == (0.9130435, 0.3, 0.9)
    assert as_json(browse(store, "runs", "--format", "json"))[0]["best_val"] == 0.3


def test_piped_output_is_never_cut(store, monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)
    long_note = "a long note that says exactly what changed and why, " * 4
    path = write_run(store, make_spec(name="spam-" + "x" * 60), two_models(BASE, (0.123456, 0.2, 0.9, 0.91)),
                     minute=1, note=long_note)
    out = CliRunner().invoke(app, ["runs", "--runs-dir", str(store)])  # stdout is not a terminal
    assert out.exit_code == 0 and path.name in out.stdout and long_note.strip() in out.stdout
    assert "…" not in out.stdout and "left out" not in out.stdout
    out = CliRunner().invoke(app, ["compare", "--runs-dir", str(store)])
    assert "…" not in out.stdout and "0.1235" in out.stdout


def test_show_and_compare_count_the_runs_that_saw_a_test_split_and_notice_changed_data(store):
    def fingerprint(sha: str, seed: int = 0) -> dict:
        return {"sha256": sha, "rows": 240, "split_seed": seed, "val": 0.15, "test": 0.15, "stratify": True}

    for minute in range(3):
        write_run(store, make_spec(name="spam", seed=minute), two_models(BASE, BASE), minute=minute,
                  data_fingerprint=fingerprint("a" * 64))
    write_run(store, make_spec(name="spam"), two_models(BASE, BASE), minute=3, data_fingerprint=fingerprint("a" * 64, 7))
    changed = write_run(store, make_spec(name="spam"), two_models(BASE, BASE), minute=4,
                        data_fingerprint=fingerprint("b" * 64))
    text = browse(store, "show", "last~1").stdout  # the run on split seed 7
    assert "test split seen by 1 run(s)" in text
    text = browse(store, "show", "last~2").stdout
    assert "test split seen by 3 run(s)" in text
    text = browse(store, "show", "last").stdout
    assert f"{changed.name}: data file data.csv changed since run" in text and "aaaaaaaaaaaa → bbbbbbbbbbbb" in text
    assert "test split seen by 1–3 run(s)" in browse(store, "compare").stdout


@pytest.mark.parametrize("args", [["runs"], ["compare"], ["compare", "last", "last~1"], ["show", "last"]])
def test_browsing_never_imports_torch(store, listed, args):
    code = ("import sys; from nnlab.cli import app\n"
            f"try: app({[*args, '--runs-dir', str(store)]!r})\nexcept SystemExit: pass\n"
            "print('TORCH' if 'torch' in sys.modules else 'NO TORCH', file=sys.stderr)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ,
                                                                                            "COLUMNS": "100"})
    assert done.stderr.strip().endswith("NO TORCH"), done.stderr
    assert listed[2] in done.stdout


def test_runs_written_by_an_older_nnlab_still_read(store):
    """format 1 before the typed contract: summary entries without `name`/`repeats`, metrics.csv without `member`."""
    path = write_run(store, make_spec(), two_models(BASE, (0.3, 0.32, 0.9, 0.89)), minute=1,
                     history={"baseline": [0.4], "mlp": [0.5, 0.3, 0.35]})

    def as_before(summary: dict) -> None:
        for key in ("complete",):
            summary.pop(key)
        for entry in summary["models"].values():
            for key in ("name", "repeats", "members", "val_sd", "test_sd", "epochs_planned", "stacked"):
                entry.pop(key)

    patch_summary(path, as_before)
    lines = (path / "metrics.csv").read_text().splitlines()
    header = lines[0].split(",")
    at = header.index("member")
    (path / "metrics.csv").write_text("\n".join(",".join(c for i, c in enumerate(line.split(",")) if i != at)
                                                for line in lines) + "\n")
    out = browse(store, "compare", "--format", "json")
    assert out.exit_code == 0 and out.stderr == ""
    rows = json.loads(out.stdout)
    assert [(r["model"], r["repeats"], r["test_loss"]) for r in rows] == [("baseline", 1, 0.42), ("mlp", 1, 0.32)]
    frame = runstore.read_run(path).metrics()
    assert list(frame["member"]) == [0, 0, 0, 0] and list(frame["epoch"]) == [1, 1, 2, 3]
    (path / "summary.json").unlink()  # and from its metrics alone
    (mlp,) = [r for r in as_json(browse(store, "compare", "--format", "json")) if r["model"] == "mlp"]
    assert (mlp["best_epoch"], mlp["epochs_run"], mlp["val_loss"]) == (2, 3, 0.3)


def test_a_killed_run_keeps_its_finished_models_and_the_one_in_training(store):
    """summary.json is written after each model: a SIGKILL leaves the finished ones there, the rest in metrics.csv."""
    path = write_run(store, make_spec(), {"baseline": result(*BASE, kind="logistic")}, minute=1, status="running",
                     history={"baseline": [0.4], "mlp": [0.9, 0.5, 0.6]}, complete=False)
    child = subprocess.Popen(["true"])
    child.wait()
    patch_meta(path, pid=child.pid)  # its process is gone
    rows = as_json(browse(store, "compare", "--format", "json"))
    assert [(r["model"], r["status"], r["test_loss"]) for r in rows] == [("baseline", "completed", 0.42),
                                                                          ("mlp", "interrupted", None)]
    assert (rows[1]["best_epoch"], rows[1]["epochs_run"], rows[1]["val_loss"]) == (2, 3, 0.5)
    text = browse(store, "show", "last").stdout
    assert "interrupted: stopped at mlp epoch 3 of 3" in text
    (run,) = as_json(browse(store, "runs", "--format", "json"))
    assert run["status"] == "interrupted" and run["models"] == ["baseline", "mlp"] and run["best_model"] == "baseline"


def test_show_says_how_the_features_are_read():
    from nnlab.views.show import spec_lines

    text = {"data": {"path": "sms.csv", "target": "label", "scale": "standard",
                     "text": {"column": "text", "max_len": 48}},
            "models": [{"name": "gru", "kind": "rnn", "hidden": 64, "embedding": 32}]}
    lines = spec_lines(text)
    assert lines[0].endswith("; text column=text max_len=48") and "scale" not in lines[0]
    assert "embedding=32" in next(line for line in lines if line.startswith("model    gru"))
    table = {"data": {"path": "spam.csv", "target": "spam", "scale": "minmax"},
             "models": [{"name": "mlp", "kind": "mlp", "hidden": [8], "embedding": 64}]}
    lines = spec_lines(table)
    assert lines[0].endswith("; scale minmax")
    assert "embedding" not in next(line for line in lines if line.startswith("model    mlp"))
