"""Keeping the store tidy and shareable (issue 19): tags and notes after the fact, filters, rm / restore /
purge, gc, runs --du, archive / import; on hand-made run folders, plus one tiny trained run for predict."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from compare_fixtures import as_json, browse, make_spec, patch_meta, two_models, write_run
from conftest import binary_table, tiny_spec, write_spec
from nnlab import runstore
from nnlab.cli import app
from nnlab.runstore import gc
from nnlab.runstore.liveness import try_lock


def _store(tmp_path: Path) -> tuple[Path, dict[str, Path]]:
    store = tmp_path / "runs"
    runs = {"good": write_run(store, make_spec("a"), two_models((0.5, 0.5, 0.7, 0.7), (0.15, 0.2, 0.9, 0.88)),
                              minute=1, note="wider net"),
            "meh": write_run(store, make_spec("b"), two_models((0.5, 0.5, 0.7, 0.7), (0.3, 0.3, 0.8, 0.8)),
                             minute=2),
            "smoke": write_run(store, make_spec("a"), two_models((0.5, 0.5, 0.7, 0.7), (0.1, 0.1, 0.9, 0.9)),
                               minute=3, smoke=True),
            "failed": write_run(store, make_spec("c"), {}, minute=4, status="failed", summary=False)}
    return store, runs


def _ids(result) -> list[str]:
    return [row["id"] for row in as_json(result)]


def _one_line_error(result, *parts: str) -> None:
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in result.output, result.output
    for part in parts:
        assert part in lines[0], lines[0]


# ---------------------------------------------------------------- tags, notes, filters

def test_tags_and_notes_are_written_into_run_json_and_found_by_the_filters(tmp_path):
    store, runs = _store(tmp_path)
    good, meh = runs["good"].name, runs["meh"].name
    assert browse(store, "tag", good, meh, "keep").exit_code == 0
    assert browse(store, "tag", meh, "keep", "--remove").exit_code == 0
    assert browse(store, "note", good, "beats the baseline").exit_code == 0
    assert browse(store, "note", good, "checked twice").exit_code == 0
    meta = json.loads((runs["good"] / "run.json").read_text())
    assert meta["tags"] == ["keep"] and meta["note"] == "wider net"
    assert [n["text"] for n in meta["notes"]] == ["beats the baseline", "checked twice"]
    assert all(n["time"] for n in meta["notes"])
    assert json.loads((runs["meh"] / "run.json").read_text())["tags"] == []

    assert _ids(browse(store, "runs", "--tag", "keep", "-f", "json")) == [good]
    assert _ids(browse(store, "runs", "--note", "TWICE", "-f", "json")) == [good]
    assert _ids(browse(store, "runs", "--note", "wider", "-f", "json")) == [good]  # the train --note too
    assert _ids(browse(store, "runs", "--where", "val_loss<0.2", "--where", "model=mlp", "-f", "json")) == \
        [runs["smoke"].name, good]
    # both conditions for one model: no baseline has val_loss < 0.2
    assert _ids(browse(store, "runs", "--where", "val_loss<0.2", "--where", "model=base*", "-f", "json")) == []
    assert _ids(browse(store, "runs", "--where", "name=b", "-f", "json")) == [meh]
    assert _ids(browse(store, "runs", "--where", "train.epochs>=3", "--where", "smoke=false", "--where",
                       "status!=failed", "-f", "json")) == [meh, good]
    assert [row["tags"] for row in as_json(browse(store, "runs", "--tag", "keep", "-f", "json"))] == [["keep"]]
    rows = as_json(browse(store, "compare", "--where", "val_accuracy>=0.85", "-f", "json"))
    assert {row["run"] for row in rows} == {good}
    shown = browse(store, "show", good, columns=200).stdout
    assert "note: wider net" in shown and ": beats the baseline" in shown and ": checked twice" in shown
    assert shown.index("beats the baseline") < shown.index("checked twice") and "tags: keep" in shown


@pytest.mark.parametrize("where, expected", [
    ("val_loss<x", "'<' compares numbers; 'x' is not a number"),
    ("val_loss", "expected KEY OP VALUE"),
    ("val_los<0.2", "no run has a field 'val_los'"),
    ("=3", "expected KEY OP VALUE"),
])
def test_a_malformed_filter_is_one_line_naming_it(tmp_path, where, expected):
    store, _ = _store(tmp_path)
    _one_line_error(browse(store, "runs", "--where", where), f"--where {where!r}", expected)
    _one_line_error(browse(store, "compare", "--where", where), f"--where {where!r}")


def test_bad_tags_notes_and_ages_are_one_line(tmp_path):
    store, runs = _store(tmp_path)
    _one_line_error(browse(store, "tag", runs["good"].name, "two words"), "'two words' is not a tag")
    _one_line_error(browse(store, "note", runs["good"].name, "   "), "note: the text is empty")
    _one_line_error(browse(store, "rm", "--older-than", "soon"), "--older-than: 'soon' is not an age")
    _one_line_error(browse(store, "rm"), "rm: name the runs")


def test_a_running_run_cannot_be_tagged_or_removed(tmp_path):
    store, runs = _store(tmp_path)
    live = write_run(store, make_spec("live"), two_models((0.5, 0.5, 0.7, 0.7), (0.2, 0.2, 0.9, 0.9)),
                     status="running")  # this process's PID: alive
    _one_line_error(browse(store, "tag", live.name, "x"), f"run {live.name} is running (PID {os.getpid()}")
    _one_line_error(browse(store, "rm", live.name, runs["meh"].name), f"run {live.name} is running")
    assert live.is_dir() and runs["meh"].is_dir()  # nothing moved


# ---------------------------------------------------------------- rm, restore, purge

def test_rm_moves_into_the_trash_and_restore_brings_back(tmp_path):
    store, runs = _store(tmp_path)
    dry = browse(store, "rm", "--smoke", "--dry-run")
    assert dry.exit_code == 0 and f"would move {runs['smoke'].name}" in dry.stdout and runs["smoke"].is_dir()
    gone = browse(store, "rm", "--status", "failed")
    assert gone.exit_code == 0 and f"moved {runs['failed'].name} -> " in gone.stdout
    assert not runs["failed"].exists() and (store / ".trash" / runs["failed"].name / "run.json").is_file()
    old = browse(store, "rm", "--older-than", "30d", "--where", "name=b")  # started in 2025
    assert old.exit_code == 0 and f"moved {runs['meh'].name}" in old.stdout
    listed = _ids(browse(store, "runs", "-f", "json"))
    assert listed == [runs["smoke"].name, runs["good"].name]  # the readers skip the trash
    back = browse(store, "restore", runs["meh"].name)
    assert back.exit_code == 0 and runs["meh"].is_dir()
    _one_line_error(browse(store, "restore", "nosuch"), "run 'nosuch': no such run")

    piped = browse(store, "rm", "--purge")  # CliRunner's stdin is no terminal
    _one_line_error(piped, "rm --purge", "--yes")
    assert (store / ".trash" / runs["failed"].name).is_dir()
    purged = browse(store, "rm", "--purge", "--yes")
    assert purged.exit_code == 0 and "deleted 1 run(s) from the trash" in purged.stdout
    assert not (store / ".trash").exists() and runs["meh"].is_dir()


def test_a_reader_running_while_runs_are_removed_ends_without_a_traceback(tmp_path):
    store = tmp_path / "runs"
    made = [write_run(store, make_spec(f"r{i}"), two_models((0.5, 0.5, 0.7, 0.7), (0.2, 0.2, 0.9, 0.9)),
                      minute=i) for i in range(12)]
    loop = ("import sys\nfrom typer.testing import CliRunner\nfrom nnlab.cli import app\n"
            "for i in range(40):\n"
            "    r = CliRunner().invoke(app, ['compare', '--last', '20', '-f', 'json', '--runs-dir', sys.argv[1]])\n"
            "    print('EXIT', r.exit_code, 'TRACEBACK' if r.exception and not isinstance(r.exception, SystemExit)"
            " else '', flush=True)\n"
            "    print(r.output, file=sys.stderr)\n")
    reader = subprocess.Popen([sys.executable, "-c", loop, str(store)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        for folder in made:
            assert browse(store, "rm", folder.name).exit_code == 0
            time.sleep(0.02)
            assert browse(store, "restore", folder.name).exit_code == 0
            assert browse(store, "rm", folder.name).exit_code == 0
        out, err = reader.communicate(timeout=240)
    finally:
        reader.kill()
    codes = [line.split() for line in out.splitlines() if line.startswith("EXIT")]
    assert len(codes) == 40 and all(c[1] in ("0", "2") and len(c) == 2 for c in codes), out
    assert "Traceback" not in err and "TRACEBACK" not in out


# ---------------------------------------------------------------- gc, du

def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_gc_removes_dead_staging_and_finished_checkpoints_and_keeps_what_lives(tmp_path):
    store, runs = _store(tmp_path)
    for run in ("good", "failed"):
        (runs[run] / "checkpoints").mkdir()
        (runs[run] / "checkpoints" / "mlp.safetensors").write_bytes(b"\0" * 3000)
    (runs["good"] / "models").mkdir(exist_ok=True)
    (runs["good"] / "models" / "mlp.safetensors").write_bytes(b"\0" * 100)
    dead = store / ".creating-x-20250101-000000-abcd-1234"
    dead.mkdir()
    (dead / "run.json").write_text(json.dumps({"id": "x", "pid": _dead_pid(), "started_at": "2025-01-01T00:00:00"}))
    (dead / ".reserve").write_bytes(b"\0" * 5000)
    alive = store / ".creating-y-20250101-000000-abcd-5678"  # its creator (this test) holds its lock
    alive.mkdir()
    lock, _ = try_lock(alive, "y", "trained")
    (alive / "run.json").write_text(json.dumps({"id": "y", "pid": os.getpid(), "started_at": "2025-01-01"}))
    young = store / ".creating-z-1"  # no run.json yet, just made: its creator may be about to write it
    young.mkdir()

    dead_bytes = sum(p.stat().st_size for p in dead.iterdir())
    du = as_json(browse(store, "runs", "--du", "-f", "json"))
    share = {row["id"]: row for row in du}[runs["good"].name]
    assert share["checkpoint_bytes"] == 3000 and share["checkpoint_share"] == round(3000 / share["bytes"], 4)
    try:
        dry = browse(store, "gc", "--dry-run")
        assert dry.exit_code == 0 and (runs["good"] / "checkpoints").is_dir() and dead.is_dir()
        done = browse(store, "gc")
    finally:
        lock.release()
    assert done.exit_code == 0, done.output
    assert not dead.exists() and alive.is_dir() and young.is_dir()
    assert not (runs["good"] / "checkpoints").exists() and (runs["good"] / "models" / "mlp.safetensors").is_file()
    assert (runs["failed"] / "checkpoints" / "mlp.safetensors").is_file()  # --resume still needs it
    assert "cache: none in this store" in done.stdout
    assert f"reclaimed 7.9 KiB ({3000 + dead_bytes:,} bytes)" in done.stdout, done.stdout


def test_gc_trims_the_cache_oldest_first_to_its_limit(tmp_path):
    store, _ = _store(tmp_path)
    cache = store / ".cache" / "images"
    cache.mkdir(parents=True)
    for i in range(4):
        path = cache / f"{i}.npy"
        path.write_bytes(b"\0" * 1000)
        os.utime(path, (1_700_000_000 + i, 1_700_000_000 + i))
    freed = gc.collect(store, cache_limit=2500)
    assert [f.path.name for f in freed if f.what == "cache"] == ["0.npy", "1.npy"]
    assert sorted(p.name for p in cache.iterdir()) == ["2.npy", "3.npy"]


# ---------------------------------------------------------------- archive, import

def _tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes]]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for info, data in members:
            info.size = len(data) if info.isfile() else 0
            tar.addfile(info, io.BytesIO(data) if info.isfile() else None)
    return path


def _member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    return info


@pytest.mark.parametrize("members, expected", [
    ([(_member("run/../../evil"), b"x")], "leaves its folder: 'run/../../evil'"),
    ([(_member("/etc/evil"), b"x")], "leaves its folder: '/etc/evil'"),
    ([(_member("run", tarfile.DIRTYPE), b""), (_member("run/link", tarfile.SYMTYPE, "/etc/passwd"), b"")],
     "'run/link', which is not a plain file"),
    ([(_member("run/hard", tarfile.LNKTYPE, "run/run.json"), b"")], "'run/hard', which is not a plain file"),
    ([(_member("run/tty", tarfile.CHRTYPE), b"")], "'run/tty', which is not a plain file"),
    ([(_member("run/fifo", tarfile.FIFOTYPE), b"")], "'run/fifo', which is not a plain file"),
    ([(_member("loose.txt"), b"x")], "is a file at the top"),
    ([(_member("run", tarfile.DIRTYPE), b""), (_member("run/notes.txt"), b"x")], "run is not a readable run"),
])
def test_a_hostile_archive_is_refused_in_one_line_and_imports_nothing(tmp_path, members, expected):
    store, _ = _store(tmp_path)
    before = sorted(p.name for p in store.iterdir())
    archive = _tar(tmp_path / "hostile.tar.gz", members)
    _one_line_error(browse(store, "import", str(archive)), f"import: {archive}", expected)
    assert sorted(p.name for p in store.iterdir()) == before  # no run, no staging folder left
    assert not (tmp_path / "evil").exists()


def test_not_an_archive_and_too_large_are_refused(tmp_path):
    store, runs = _store(tmp_path)
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"not a tar at all")
    _one_line_error(browse(store, "import", str(junk)), "not a whole nnlab archive")
    big = tmp_path / "big.tar.gz"
    assert browse(store, "archive", runs["good"].name, "-o", str(big)).exit_code == 0
    from nnlab.errors import RunError
    from nnlab.runstore.archive import import_archive

    with pytest.raises(RunError, match="holds at most 100$"):
        import_archive(big, tmp_path / "other", max_bytes=100)
    limit = big.stat().st_size + 10  # the archive fits; its files, unpacked, do not
    with pytest.raises(RunError, match=f"its files hold more than {limit:,} bytes unpacked; refused"):
        import_archive(big, tmp_path / "other", max_bytes=limit)
    assert not any((tmp_path / "other").iterdir())  # the staging folder is gone too


def test_archive_leaves_checkpoints_out_unless_asked_and_import_refuses_a_known_id(tmp_path):
    store, runs = _store(tmp_path)
    (runs["good"] / "checkpoints").mkdir()
    (runs["good"] / "checkpoints" / "mlp.safetensors").write_bytes(b"\0" * 10)
    plain, full = tmp_path / "plain.tar.gz", tmp_path / "full.tar.gz"
    assert browse(store, "archive", runs["good"].name, runs["meh"].name, "-o", str(plain)).exit_code == 0
    assert browse(store, "archive", runs["good"].name, "--checkpoints", "-o", str(full)).exit_code == 0
    names = tarfile.open(plain).getnames()
    assert f"{runs['good'].name}/run.json" in names and not any("checkpoints" in n or ".lock" in n for n in names)
    assert f"{runs['good'].name}/checkpoints/mlp.safetensors" in tarfile.open(full).getnames()
    _one_line_error(browse(store, "import", str(plain)), f"run {runs['good'].name} exists in {store} already")
    renamed = browse(store, "import", str(plain), "--rename")
    assert renamed.exit_code == 0 and renamed.stdout.count(" as ") == 2
    copies = [r for r in runstore.list_runs(store)[0] if r.folder.startswith(runs["good"].name + "-")]
    assert len(copies) == 1 and copies[0].id == copies[0].folder  # the run's id follows its new folder


# ---------------------------------------------------------------- a real run: tags, resume, import, predict

@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tidy")
    binary_table(160).to_csv(folder / "data.csv", index=False)
    spec = write_spec(folder, tiny_spec(train={"epochs": 2, "batch_size": 32}))
    store = folder / "runs"
    done = CliRunner().invoke(app, ["train", str(spec), "--runs-dir", str(store), "--tag", "first",
                                    "--tag", "tiny", "--no-progress"], catch_exceptions=False)
    assert done.exit_code == 0, done.output
    return folder, store, runstore.list_runs(store)[0][0]


def test_train_tags_its_run_and_the_tags_survive_resume(trained, tmp_path):
    folder, store, run = trained
    assert run.meta.tags == ["first", "tiny"]
    copy = tmp_path / "runs" / run.folder
    shutil.copytree(run.path, copy)
    patch_meta(copy, status="failed")  # as if it had failed: it may be resumed
    again = CliRunner().invoke(app, ["train", "--resume", run.folder, "--runs-dir", str(tmp_path / "runs"),
                                     "--tag", "resumed", "--no-progress"], catch_exceptions=False)
    assert again.exit_code == 0, again.output
    meta = runstore.read_run(copy).meta
    assert meta.status == "completed" and len(meta.resumed_at) == 1
    assert meta.tags == ["first", "tiny", "resumed"]


def test_an_imported_run_compares_and_predicts_as_where_it_was_made(trained, tmp_path):
    folder, store, run = trained
    archive, other = tmp_path / "share.tar.gz", tmp_path / "other"
    assert browse(store, "archive", run.folder, "-o", str(archive)).exit_code == 0
    imported = browse(other, "import", str(archive))
    assert imported.exit_code == 0 and f"imported {run.folder}" in imported.stdout
    assert as_json(browse(other, "compare", run.folder, "-f", "json")) == \
        as_json(browse(store, "compare", run.folder, "-f", "json"))
    assert as_json(browse(other, "runs", "-f", "json")) == as_json(browse(store, "runs", "-f", "json"))
    rows = folder / "data.csv"
    here = browse(store, "predict", run.folder, str(rows), "-f", "json")
    there = browse(other, "predict", run.folder, str(rows), "-f", "json")
    assert here.exit_code == 0 and here.stdout and here.stdout == there.stdout
