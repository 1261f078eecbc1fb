"""Hostile specs fail fast and small: one line naming the file, exit 2, no traceback, nothing written.

Each input is generated in tmp_path; each must be refused in well under 2 seconds (they used to take minutes,
gigabytes of memory or a RecursionError), and no message may carry more than a short piece of the input.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import tracemalloc

import pytest
import yaml

from conftest import binary_table, run_folders, tiny_spec, write_spec
from nnlab.spec import MAX_DEPTH, MAX_SPEC_BYTES, MAX_VALUES, load_spec
from nnlab.errors import SpecError

SECONDS = 2.0
HEAD = "name: x\ndata: {path: data.csv, target: label}\n"


def alias_bomb() -> str:
    """The "billion laughs": 9 levels of 9 aliases each stand for 9**9 = 387 million strings, in 500 bytes."""
    lines = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for prev, cur in zip("abcdefgh", "bcdefghi"):
        lines.append(f"{cur}: &{cur} [" + ", ".join([f"*{prev}"] * 9) + "]")
    return "\n".join(lines) + "\nname: bomb\ndata: {path: data.csv, target: label}\nmodels: [{kind: mlp, hidden: *i}]\n"


def merge_bomb() -> str:
    """The billion laughs with merge keys: each level merges the one before and repeats it under 9 keys."""
    lines = ['a: &a {k: lol}']
    for prev, cur in zip("abcdefgh", "bcdefghi"):
        lines.append(f"{cur}: &{cur} {{<<: *{prev}, " + ", ".join(f"{cur}{j}: *{prev}" for j in range(9)) + "}")
    return "\n".join(lines) + "\n"


HOSTILE = [
    # (case, file text, text the one line must contain)
    ("alias bomb", alias_bomb(), f"spec.yaml: line 5, column 12: more than {MAX_VALUES:,} values (aliases count at "
                                 "their expanded size)"),
    ("merge bomb", HEAD + "train: {" + merge_bomb().replace("\n", ", ") + "}\n",
     "spec.yaml: line 3, column 324: more than 20,000 values (aliases count at their expanded size)"),
    ("a merge of a value", HEAD + "train: &t {epochs: 2}\nmodels: [{<<: 5, kind: mlp}]\n",
     "spec.yaml: line 4, column 15: '<<' merges a mapping or a list of mappings; got a value"),
    ("a merge of itself", HEAD + "train: &t {<<: *t}\n", "an alias inside its own anchor (a cycle)"),
    ("10,000 nested lists", HEAD + "models: " + "[" * 10_000 + "]" * 10_000 + "\n",
     f"spec.yaml: line 3, column {8 + MAX_DEPTH}: nested deeper than {MAX_DEPTH} levels"),
    ("10,000 nested mappings", HEAD + "train: " + "{a: " * 10_000 + "1" + "}" * 10_000 + "\n",
     f"nested deeper than {MAX_DEPTH} levels"),
    ("900 levels of indentation", HEAD + "train:\n" + "".join(" " * (i + 1) + f"k{i}:\n" for i in range(900)),
     f"nested deeper than {MAX_DEPTH} levels"),
    ("an alias inside its own anchor", HEAD + "train: &t {optimizer: *t}\n",
     "spec.yaml: line 3, column 23: an alias inside its own anchor (a cycle)"),
    ("a flat list of 300,000 values", HEAD + "metrics: [" + ",".join(["1"] * 300_000) + "]\n",
     f"more than {MAX_VALUES:,} values"),
    ("an integer of 5,000 digits", HEAD + "seed: " + "9" * 5000 + "\n",
     "spec.yaml: line 3, column 7: an integer of 5,000 digits; at most 100"),
    ("a name of a million characters", HEAD.replace("name: x", "name: " + "n" * 1_000_000),
     "spec.yaml: name: must be at most 100 characters long; got 'nnnnnnnnnnnnnnnnn...nnnnnnnnnnnnnnnnnn' "
     "(1,000,000 characters)"),
    ("a key of a million characters", HEAD + "k" * 1_000_000 + ": 1\n", "spec.yaml: line 3, column 1"),
    ("a long python tag", HEAD + "seed: !!python/object/apply:os.system [" + "x" * 100_000 + "]\n",
     "spec.yaml: line 3, column 7: could not determine a constructor for the tag 'tag:yaml.org,2002:python/obj"),
    ("binary bytes", None, "spec.yaml: cannot read the spec file (UnicodeDecodeError:"),
]


def check_one_line(result, message: str, started: float, runs) -> None:
    elapsed = time.perf_counter() - started
    assert result.exit_code == 2, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1, lines[:3]
    assert message in lines[0]
    assert lines[0].startswith("error: ")
    assert len(lines[0]) < 400  # a short piece of the input at most
    assert "Traceback" not in result.output
    assert run_folders(runs) == []
    assert elapsed < SECONDS, f"took {elapsed:.2f} s"


@pytest.mark.parametrize("case, text, message", HOSTILE, ids=[c[0] for c in HOSTILE])
def test_a_hostile_spec_fails_fast_in_one_line(tmp_path, runs, cli, case, text, message):
    binary_table(40).to_csv(tmp_path / "data.csv", index=False)
    spec = tmp_path / "spec.yaml"
    if text is None:
        spec.write_bytes(HEAD.encode() + b"seed: \xff\xfe\x00\n")
    else:
        spec.write_text(text)
    started = time.perf_counter()
    check_one_line(cli("train", spec), message, started, runs)


def test_a_45_mb_spec_is_refused_before_it_is_read(tmp_path, runs, cli):
    spec = tmp_path / "spec.yaml"
    text = HEAD + "# " + "x" * 45_000_000 + "\n"
    spec.write_text(text)
    started = time.perf_counter()
    result = cli("validate", spec)
    check_one_line(result, f"spec.yaml: {len(text):,} bytes; a spec file may have at most {MAX_SPEC_BYTES:,} (1 MiB)",
                   started, runs)
    assert time.perf_counter() - started < 1.0  # the size is checked before anything is read


def test_the_alias_bomb_stays_small_in_memory(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text(alias_bomb())
    tracemalloc.start()
    try:
        with pytest.raises(SpecError, match="aliases count at their expanded size"):
            load_spec(spec)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 20 * 2**20, f"peak {peak / 2**20:.1f} MiB"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_fifo_or_a_folder_is_not_a_spec_and_is_never_opened(tmp_path, runs, cli):
    fifo = tmp_path / "spec.yaml"
    os.mkfifo(fifo)  # opening it would block forever: no writer
    started = time.perf_counter()
    check_one_line(cli("validate", fifo), "spec.yaml: not a regular file (a FIFO, device or socket); expected a "
                                          "YAML spec file", started, runs)
    started = time.perf_counter()
    check_one_line(cli("validate", tmp_path), f"{tmp_path}: a folder; expected a YAML spec file", started, runs)


SET_VALUES = [
    # (case, --set argument, text the one line must contain)
    ("deeply nested value", "train.optimizer=" + "[" * 10_000 + "]" * 10_000,
     f"--set train.optimizer: line 1, column {MAX_DEPTH + 1}: nested deeper than {MAX_DEPTH} levels"),
    ("alias bomb in a value", "train.x=" + alias_bomb().replace("\n", ", ").join("{}"),
     "aliases count at their expanded size"),
    ("a key inside a list", "models.0.hidden.x=3",
     "--set models.0.hidden.x: 'models.0.hidden' is a list of 1 item(s), not a mapping; expected an index from 0 "
     "to 0 after it; got 'x'"),
    ("a key inside a value", "name.first=3", "--set name.first: 'name' is a value ('tiny'), not a mapping, so it has "
                                             "no key 'first'"),
    ("10,000 nested keys", ".".join(["a"] * 10_000) + "=1", "the key has 19,999 characters; at most 1,000"),
    ("60 nested keys", ".".join(["a"] * 60) + "=1", f"nested deeper than {MAX_DEPTH} levels"),
    ("an integer of 5,000 digits", "seed=" + "9" * 5000, "--set seed: line 1, column 1: an integer of 5,000 digits"),
    ("a value of two million characters", "name=" + "n" * 2_000_000,
     f"--set name: 2,000,000 characters; at most {MAX_SPEC_BYTES:,}"),
    ("no equals sign and a long key", "k" * 100_000, "--set 'kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk...': expected "
                                                     "KEY.PATH=VALUE"),
]


@pytest.mark.parametrize("case, override, message", SET_VALUES, ids=[c[0] for c in SET_VALUES])
def test_a_hostile_set_value_fails_fast_in_one_line(tmp_path, runs, cli, case, override, message):
    binary_table(40).to_csv(tmp_path / "data.csv", index=False)
    spec = write_spec(tmp_path, tiny_spec())
    started = time.perf_counter()
    check_one_line(cli("train", spec, "--set", override), message, started, runs)


def test_thousands_of_bad_values_are_counted_not_listed(tmp_path, cli):
    spec = write_spec(tmp_path, tiny_spec(data={"path": "data.csv", "target": "label", "include": [1] * 5_000}))
    started = time.perf_counter()
    result = cli("validate", spec)
    assert time.perf_counter() - started < SECONDS
    lines = result.stderr.splitlines()
    assert result.exit_code == 2 and len(lines) == 20
    assert lines[0] == "error: spec.yaml: data.include[0]: expected a valid string; got 1"
    assert lines[-1] == "error: spec.yaml: ... and 4,981 more problem(s)"


def test_a_run_folders_spec_yaml_is_read_within_the_same_limits(tmp_path, tiny, runs, cli):
    # A run.json without its spec sends readers to spec.yaml, which once went to plain yaml.safe_load: a
    # billion laughs there grew `compare` past 1.7 GB.
    assert cli("train", tiny).exit_code == 0
    [run] = run_folders(runs)
    meta = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({**meta, "spec": {}}))
    (run / "spec.yaml").write_text(alias_bomb())
    limit = "import resource; resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30)); "  # 1 GiB
    for command in ("compare", "runs"):
        code = limit + f"from nnlab.cli import app; app(['{command}', '--runs-dir', {str(runs)!r}])"
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr[-2000:]
        assert "Traceback" not in done.stderr
        if command == "compare":
            assert done.stderr.splitlines() == [
                f"warning: {run.name}: spec.yaml: line 5, column 12: more than {MAX_VALUES:,} values (aliases count "
                f"at their expanded size); a spec needs far fewer"]
            assert "baseline" in done.stdout and "mlp" in done.stdout


def test_merge_keys_share_settings_between_models(tmp_path, cli):
    binary_table(40).to_csv(tmp_path / "data.csv", index=False)
    spec = tmp_path / "spec.yaml"
    spec.write_text(HEAD + "models:\n  - &base {name: small, kind: mlp, hidden: [8], dropout: 0.1}\n"
                           "  - <<: *base\n    name: wide\n    hidden: [16]\n")
    result = cli("validate", spec, "--set", "models.small.hidden.0=4")
    assert result.exit_code == 0, result.stderr
    small, wide = yaml.safe_load(result.stdout)["models"]
    assert (small["name"], small["kind"], small["hidden"], small["dropout"]) == ("small", "mlp", [4], 0.1)
    assert (wide["name"], wide["kind"], wide["hidden"], wide["dropout"]) == ("wide", "mlp", [16], 0.1)
    # an alias shares nothing after loading: --set on one model leaves the other alone
    spec.write_text(HEAD + "models:\n  - {name: a, kind: mlp, hidden: &h [8]}\n  - {name: b, kind: mlp, hidden: *h}\n")
    a, b = yaml.safe_load(cli("validate", spec, "--set", "models.a.hidden.0=4").stdout)["models"]
    assert (a["hidden"], b["hidden"]) == ([4], [8])
