"""One bad entry never breaks the store: a corpus of damaged run folders × `runs`, `compare`, `show`, `curves`.

Every command warns (one line each, `warning: ...` on stderr) and skips what it cannot read, exits 0 and
still shows the good run; no traceback, ever."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable, Optional

import pytest

from compare_fixtures import browse, make_spec, patch_meta, patch_summary, two_models, write_run

BASE = (0.40, 0.42, 0.85, 0.84)


def _broken_run(store: Path) -> Path:
    """A second, complete run: the one the corpus damages when the damage makes a run unreadable."""
    return write_run(store, make_spec(name="victim"), two_models(BASE, BASE), minute=1)


def symlink_to_itself(store: Path, good: Path) -> str:
    (store / "loop").symlink_to(store / "loop")
    return "loop"


def symlink_pair_loop(store: Path, good: Path) -> str:
    (store / "a-loop").symlink_to(store / "b-loop")
    (store / "b-loop").symlink_to(store / "a-loop")
    return "a-loop"


def loop_inside_a_run(store: Path, good: Path) -> Optional[str]:
    (good / "models").symlink_to(good / "models")  # a folder the run lists that loops
    (good / "errors").symlink_to(good)  # a folder that leads back to the run itself
    return None


def dangling_symlink(store: Path, good: Path) -> str:
    (store / "gone").symlink_to(store / "nowhere")
    return "gone"


def started_at_a_number(store: Path, good: Path) -> str:
    patch_meta(_broken_run(store), started_at=3)
    return "started_at"


def id_a_list(store: Path, good: Path) -> str:
    patch_meta(_broken_run(store), id=[])
    return "id"


def pid_text(store: Path, good: Path) -> str:
    patch_meta(_broken_run(store), pid="abc", status="running")
    return "pid"


def spec_of_wrong_shapes(store: Path, good: Path) -> Optional[str]:
    patch_meta(good, spec={"name": 3, "models": 5, "train": "fast", "data": [1], "baseline": [], "metrics": "f1",
                           "monitor": 7})
    return None


def run_json_deeply_nested(store: Path, good: Path) -> str:
    (_broken_run(store) / "run.json").write_text("[" * 100_000 + "]" * 100_000)  # json.loads: RecursionError
    return "nested too deeply"


def run_json_nested_past_reason(store: Path, good: Path) -> str:
    deep: dict = {}
    for _ in range(500):  # parses, but no run record nests like this (and readers recurse over specs)
        deep = {"x": deep}
    patch_meta(_broken_run(store), spec=deep)
    return "nested deeper than"


def run_json_binary(store: Path, good: Path) -> str:
    (_broken_run(store) / "run.json").write_bytes(b"\x89PNG\r\n\x1a\n\0\0\xff\xfe")
    return "unreadable"


def run_json_a_folder(store: Path, good: Path) -> str:
    path = _broken_run(store)
    (path / "run.json").unlink()
    (path / "run.json").mkdir()
    return "not a regular file"


def run_json_a_fifo(store: Path, good: Path) -> str:
    path = _broken_run(store)
    (path / "run.json").unlink()
    os.mkfifo(path / "run.json")  # reading it would wait forever
    return "not a regular file"


def run_json_unreadable(store: Path, good: Path) -> str:
    path = _broken_run(store) / "run.json"
    path.chmod(0)
    try:
        path.read_bytes()
    except PermissionError:
        return "unreadable"
    pytest.skip("this user (root) reads a file with mode 000 anyway")


def a_file_where_a_run_folder_is_expected(store: Path, good: Path) -> str:
    (store / "victim-20250101-000000-abcd").write_text("not a folder")
    return "not a run folder"


def models_a_file(store: Path, good: Path) -> Optional[str]:
    (good / "models").write_text("a file where the models folder should be")
    return None


def summary_models_a_list(store: Path, good: Path) -> str:
    patch_summary(good, lambda s: s.update(models=[1, 2]))
    return "models"


def summary_val_a_string(store: Path, good: Path) -> str:
    patch_summary(good, lambda s: s["models"]["mlp"].update(val="high"))
    return "models.mlp.val"


def summary_status_unknown(store: Path, good: Path) -> str:
    patch_summary(good, lambda s: s["models"]["mlp"].update(status="exploded"))
    return "models.mlp.status"


def summary_deeply_nested(store: Path, good: Path) -> str:
    (good / "summary.json").write_text('{"models": ' + "[" * 50_000 + "]" * 50_000 + "}")
    return "nested too deeply"


def summary_truncated(store: Path, good: Path) -> str:
    text = (good / "summary.json").read_text()
    (good / "summary.json").write_text(text[: len(text) // 2])
    return "summary.json: unreadable"


def metrics_binary_bytes(store: Path, good: Path) -> Optional[str]:
    with open(good / "metrics.csv", "ab") as f:
        f.write(b"\xff\xfe\x00garbage\x89PNG\n" + os.urandom(64).replace(b"\n", b"") + b"\n")
    return None


def metrics_nul_and_bad_rows(store: Path, good: Path) -> Optional[str]:
    with open(good / "metrics.csv", "a") as f:
        f.write("mlp,0,\0\0\0,1,2\nmlp,0,7,not-a-number,0.5,0.5,0.5,0.5,0.001,0.1\nshort,row\n")
    return None


def metrics_no_summary_and_binary(store: Path, good: Path) -> str:
    (good / "summary.json").unlink()
    header, *rows = (good / "metrics.csv").read_bytes().splitlines(keepends=True)
    (good / "metrics.csv").write_bytes(header + b"\x00\x01\x02\n" * 5 + b"".join(rows))
    return "binary"


CORPUS: list[Callable[[Path, Path], Optional[str]]] = [
    symlink_to_itself, symlink_pair_loop, loop_inside_a_run, dangling_symlink, started_at_a_number, id_a_list,
    pid_text, spec_of_wrong_shapes, run_json_deeply_nested, run_json_nested_past_reason, run_json_binary, run_json_a_folder,
    run_json_a_fifo, run_json_unreadable, a_file_where_a_run_folder_is_expected, models_a_file,
    summary_models_a_list, summary_val_a_string, summary_status_unknown, summary_deeply_nested, summary_truncated,
    metrics_binary_bytes, metrics_nul_and_bad_rows, metrics_no_summary_and_binary]
COMMANDS = {"runs": ["runs"], "compare": ["compare"], "show": ["show", "last"], "curves": ["curves", "last"]}


@pytest.fixture
def store(tmp_path):
    return tmp_path / "runs"


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("damage", CORPUS, ids=lambda f: f.__name__)
def test_damaged_entry_is_warned_and_skipped(store, damage, command):
    good = write_run(store, make_spec(name="good"), two_models(BASE, (0.3, 0.32, 0.9, 0.89)), minute=5,
                     history={"baseline": [0.4], "mlp": [0.5, 0.3, 0.35]})
    said = damage(store, good)
    if command == "curves":
        pytest.importorskip("matplotlib")
    out = browse(store, *COMMANDS[command])
    assert out.exit_code == 0, out.output
    assert "Traceback" not in out.output
    warnings = out.stderr.splitlines()
    assert all(line.startswith("warning: ") for line in warnings), out.stderr
    if command == "curves":
        assert out.stdout.startswith("curves: ") and (good / "curves.png").is_file()
    else:
        assert good.name in out.stdout
    if said and command in ("runs", "compare", "show"):
        assert any(said in line for line in warnings), (said, out.stderr)


def test_a_store_that_is_a_file_is_a_warning(tmp_path):
    store = tmp_path / "runs"
    store.write_text("not a store")
    for args in (["runs"], ["compare"]):
        out = browse(store, *args)
        assert out.exit_code == 0 and "is a file, not a folder" in out.stderr


def test_wrong_types_name_the_field_and_file(store):
    good = write_run(store, make_spec(name="good"), two_models(BASE, BASE), minute=5)
    bad = _broken_run(store)
    patch_meta(bad, started_at=3)
    patch_summary(good, lambda s: s["models"]["mlp"].update(val="high"))
    out = browse(store, "compare", "--format", "json")
    assert out.exit_code == 0
    lines = out.stderr.splitlines()
    assert any(f"skipped {bad}/run.json: started_at: Input should be a valid string" in line for line in lines)
    assert any(f"{good.name}: {good}/summary.json: models.mlp.val: Input should be a valid dictionary" in line
               and "read from metrics.csv" in line for line in lines)
    rows = json.loads(out.stdout)  # the run with the damaged summary is still compared, from its metrics.csv
    assert [(r["model"], r["val_loss"]) for r in rows] == [("baseline", 0.40), ("mlp", 0.40)]


def test_binary_rows_are_dropped_and_the_rest_read(store):
    good = write_run(store, make_spec(name="good"), minute=5, status="failed", summary=False,
                     history={"baseline": [0.4], "mlp": [0.5, 0.3, 0.35]})
    with open(good / "metrics.csv", "ab") as f:
        f.write(b"mlp,0,4,\xff\xfe,0.01\nmlp,0,5,0.2,0.01,0.2,0.99,0.99,0.001,0.1\0\n")
    out = browse(store, "compare", "--format", "json")
    assert out.exit_code == 0 and "2 line(s) with binary bytes skipped" in out.stderr
    mlp = json.loads(out.stdout)[1]
    assert (mlp["best_epoch"], mlp["epochs_run"], mlp["val_loss"]) == (2, 3, 0.3)
