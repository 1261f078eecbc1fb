"""What nnlab shows cannot drive the reader's terminal, and what it writes never goes through a symlink.

Control characters planted in a run store (notes, errors, model names, diagnoses, folder names), in a spec,
a `--set`, a data file's header or its labels reach stdout and stderr escaped (`\\x1b`), in every view; rich's
own colours are kept. curves.png and `init -o` are renamed into place. A run.json duration that is no number
of seconds (`1e999`, `Infinity`) is shown as unknown with a warning.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest
from compare_fixtures import browse, make_spec, patch_meta, result, write_run
from conftest import binary_table, tiny_spec, write_spec
from rich.table import Table
from rich.text import Text
from typer.testing import CliRunner

from nnlab.cli import app
from nnlab.cli.base import SafeConsole, escape_controls

EVIL = "\x1b]0;PWNED\x07|\x1b[31mred|\x9bJ|\x7f|\x85|\rCR"
RAW = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # what must never reach the terminal (\n and \t may)


def assert_safe(out, *, shown: bool = True) -> None:
    """No control character in stdout or stderr, no traceback; `shown`: the planted ESC is there escaped."""
    for stream in (out.stdout, out.stderr):
        assert not RAW.search(stream), repr(RAW.search(stream).group())  # type: ignore[union-attr]
    assert "Traceback" not in out.output
    if shown:
        assert "\\x1b]0;PWNED" in out.output, out.output


def test_escape_controls_forms():
    assert escape_controls("a\x1b[2Jb\tc\nd\x9b\x7f") == "a\\x1b[2Jb\tc\nd\\x9b\\x7f"
    assert json.loads('"' + escape_controls("\x1b\x9b", json=True) + '"') == "\x1b\x9b"
    assert escape_controls("plain ±") == "plain ±"


def test_a_terminal_keeps_richs_colours_and_gets_user_text_escaped():
    buffer = io.StringIO()
    console = SafeConsole(file=buffer, force_terminal=True, color_system="standard", width=80)
    table = Table()
    table.add_column("model")
    table.add_row(Text("m\x1b]0;X", style="red"))
    table.add_row("s\x1b[2J")
    console.print(Text("note \x1b]0;PWNED", style="bold"), table)
    written = buffer.getvalue()
    assert "\x1b[1m" in written and "\x1b[31m" in written  # rich's own bold and red
    # every ESC left starts an SGR colour code rich wrote; without them, the text shows escaped and whole
    assert not re.search("\x1b(?!\\[[0-9;]*m)", written), repr(written)
    shown = re.sub("\x1b\\[[0-9;]*m", "", written)
    assert "note \\x1b]0;PWNED" in shown and "│ m\\x1b]0;X │" in shown and "│ s\\x1b[2J  │" in shown, shown


@pytest.fixture
def hostile_store(tmp_path: Path) -> tuple[Path, Path, Path]:
    store = tmp_path / "runs"
    evil_model = "mlp" + EVIL
    results = {"baseline": result(0.4, 0.41, 0.8, 0.79, kind="logistic"),
               evil_model: result(0.3, 0.32, 0.9, 0.88, status="failed", diagnosis=["overfits" + EVIL])}
    a = write_run(store, make_spec(name="exp"), results, note="note" + EVIL, minute=1,
                  history={"baseline": [0.4], evil_model: [0.5, 0.3]})
    patch_meta(a, error="boom" + EVIL, name="exp" + EVIL)
    b = write_run(store, make_spec(name="exp", seed=1), {"baseline": result(0.4, 0.41, 0.8, 0.79, kind="logistic"),
                                                         evil_model: result(0.31, 0.3, 0.89, 0.9)}, minute=2,
                  note="other" + EVIL)
    (store / ("junk" + EVIL)).mkdir()
    return store, a, b


@pytest.mark.parametrize("args", [
    ["runs"], ["runs", "--format", "csv"], ["runs", "--format", "markdown"], ["compare"],
    ["compare", "--format", "csv"], ["compare", "--format", "markdown"], ["show", "RUN_A"], ["show", "RUN_B"],
    ["compare", "RUN_A", "RUN_B"], ["check", "RUN_A", "--expect", "m\x1b]0;PWNED.test.accuracy=>=0.5"],
    ["show", "exp\x1b]0;PWNED"]], ids=" ".join)
def test_every_view_of_a_hostile_store_is_escaped(hostile_store, args):
    store, a, b = hostile_store
    args = [{"RUN_A": a.name, "RUN_B": b.name}.get(arg, arg) for arg in args]
    out = browse(store, *args)
    assert out.exit_code in (0, 1, 2), out.output
    assert_safe(out)


def test_json_output_is_valid_and_means_the_same_text(hostile_store):
    store, a, _ = hostile_store
    for args in (["runs", "-f", "json"], ["compare", "-f", "json"]):
        out = browse(store, *args)
        assert out.exit_code == 0, out.output
        assert_safe(out, shown=False)
        rows = json.loads(out.stdout)
        assert "\\u001b]0;PWNED" in out.stdout
        assert any("\x1b]0;PWNED" in str(value) for row in rows for value in row.values())


def test_curves_of_a_hostile_model_name_are_safe(hostile_store):
    pytest.importorskip("matplotlib")
    store, a, _ = hostile_store
    out = browse(store, "curves", a.name)
    assert out.exit_code == 0, out.output
    assert_safe(out, shown=False)
    assert not [w for w in out.stderr.splitlines() if "Glyph" in w]  # the titles show the name escaped


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    binary_table(60).to_csv(tmp_path / "data.csv", index=False)
    return tmp_path


def cli(*args: str):
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def test_spec_errors_escape_keys_paths_and_set_keys(data_dir):
    spec = tiny_spec()
    spec["models"][0]["hid\x1b]0;PWNEDden"] = [4]
    assert_safe(out := cli("validate", str(write_spec(data_dir, spec, "bad_key.yaml"))))
    assert out.exit_code == 2
    assert_safe(out := cli("train", str(write_spec(data_dir, tiny_spec(data_path="d\x1b]0;PWNED.csv"))),
                           "--runs-dir", str(data_dir / "runs")))
    assert out.exit_code == 2
    assert_safe(out := cli("validate", str(write_spec(data_dir, tiny_spec())), "--set", "train.ep\x1b]0;PWNED=3"))
    assert out.exit_code == 2


def test_a_data_header_and_labels_in_errors_and_tables_are_escaped(data_dir, tmp_path):
    frame = binary_table(80)
    frame.columns = ["x\x1b]0;PWNED", *frame.columns[1:]]
    frame.to_csv(data_dir / "data.csv", index=False)
    out = cli("train", str(write_spec(data_dir, tiny_spec(target="nope"))), "--runs-dir", str(tmp_path / "runs"))
    assert out.exit_code == 2
    assert_safe(out)  # the error lists the columns there are
    labelled = binary_table(80)
    labelled["label"] = labelled["label"].map({0: "no\x1b]0;PWNED", 1: "yes"})
    labelled.to_csv(data_dir / "labels.csv", index=False)
    spec = tiny_spec(data_path="labels.csv")
    spec["train"]["epochs"] = 1
    runs = tmp_path / "runs"
    out = cli("train", str(write_spec(data_dir, spec, "labels.yaml")), "--runs-dir", str(runs))
    assert out.exit_code == 0, out.output
    assert_safe(out, shown=False)
    predicted = cli("predict", "last", str(data_dir / "labels.csv"), "--runs-dir", str(runs))
    assert predicted.exit_code == 0, predicted.output
    assert_safe(predicted)  # CSV on stdout: the label and its p_ column escaped
    out = cli("predict", "last", str(data_dir / "missing\x1b]0;PWNED.csv"), "--runs-dir", str(runs))
    assert out.exit_code == 2
    assert_safe(out)


def test_curves_replace_a_symlink_and_leave_its_target(hostile_store, tmp_path):
    pytest.importorskip("matplotlib")
    store, a, _ = hostile_store
    target = tmp_path / "precious.txt"
    target.write_text("keep me")
    (a / "curves.png").symlink_to(target)
    out = browse(store, "curves", a.name)
    assert out.exit_code == 0, out.output
    assert target.read_text() == "keep me"
    png = a / "curves.png"
    assert not png.is_symlink() and png.read_bytes().startswith(b"\x89PNG")
    assert not [p for p in a.iterdir() if p.name.endswith(".tmp")]


def test_init_onto_a_dangling_symlink_never_creates_its_target(data_dir, tmp_path):
    target = tmp_path / "elsewhere" / "created.yaml"
    target.parent.mkdir()
    link = data_dir / "spec.yaml"
    link.symlink_to(target)
    out = cli("init", str(data_dir / "data.csv"), "--target", "label", "-o", str(link))
    assert out.exit_code == 2 and "exists" in out.stderr and "--force" in out.stderr
    assert not target.exists()
    out = cli("init", str(data_dir / "data.csv"), "--target", "label", "-o", str(link), "--force")
    assert out.exit_code == 0, out.output
    assert not target.exists()
    assert not link.is_symlink() and "data.csv" in link.read_text()


@pytest.mark.parametrize("raw", ["1e999", "Infinity", "-Infinity", "NaN", "-5"])
def test_a_duration_that_is_no_number_of_seconds_is_unknown_with_a_warning(tmp_path, raw):
    store = tmp_path / "runs"
    run = write_run(store, make_spec(name="exp"), {"baseline": result(0.4, 0.41, 0.8, 0.79, kind="logistic")})
    text = (run / "run.json").read_text()
    (run / "run.json").write_text(re.sub(r'"duration_seconds": [^,\n]+', f'"duration_seconds": {raw}', text))
    for args in (["runs"], ["show", run.name], ["runs", "-f", "json"]):
        out = browse(store, *args)
        assert out.exit_code == 0, out.output
        assert "Traceback" not in out.output
        assert f"warning: {run / 'run.json'}: duration_seconds" in out.stderr, out.stderr
        assert run.name in out.stdout
    assert json.loads(browse(store, "runs", "-f", "json").stdout)[0]["duration_seconds"] is None
