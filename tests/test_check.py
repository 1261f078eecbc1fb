"""`nnlab check`: a finished run's gates re-checked from its recorded scores, without training or torch."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import ROOT, binary_table, tiny_spec, write_spec
from nnlab import runstore


@pytest.fixture
def gated(tmp_path, cli, runs):
    """A trained tiny run whose spec has two gates that pass; returns its recorded models."""
    binary_table().to_csv(tmp_path / "data.csv", index=False)
    spec = write_spec(tmp_path, tiny_spec(expect={"baseline.test.accuracy": ">= 0.5", "mlp.val.loss": "< 10"}))
    assert cli("train", spec).exit_code == 0
    return runstore.resolve_run("last", runs).summary.models


def check(cli, runs, *args):
    return cli("check", *args, "--runs-dir", runs)


def test_the_runs_own_gates_pass_with_one_line_each(gated, cli, runs):
    result = check(cli, runs, "last")
    assert result.exit_code == 0, result.output
    accuracy = gated["baseline"].test["accuracy"]
    assert result.stdout.splitlines() == [
        f"expect baseline.test.accuracy >= 0.5: {accuracy:.4f} -> pass",
        f"expect mlp.val.loss < 10: {gated['mlp'].val['loss']:.4f} -> pass"]


def test_given_gates_replace_the_specs_and_a_miss_exits_1(gated, cli, runs):
    accuracy = gated["mlp"].test["accuracy"]
    above, below = f"{accuracy + 0.01:.4f}", f"{accuracy - 0.01:.4f}"
    result = check(cli, runs, "last", "--expect", f"mlp.test.accuracy=>={below}",
                   "--expect", f"mlp.test.accuracy >= {above}")
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [f"expect mlp.test.accuracy >={below}: {accuracy:.4f} -> pass",
                                          f"expect mlp.test.accuracy >= {above}: {accuracy:.4f} -> MISSED"]
    assert check(cli, runs, "last", "-e", f"mlp.test.accuracy>={below}").exit_code == 0
    assert check(cli, runs, "last", "-e", f"mlp.test.accuracy=={accuracy!r}").exit_code == 0


@pytest.mark.parametrize("args, message", [
    (["nope"], "run 'nope': no such run"),
    (["last~5"], "run 'last~5': the store"),
    (["last", "-e", "mlp.test.accuracy=>=0.9x"], "--expect mlp.test.accuracy: rule must read '<op> <number>'"),
    (["last", "-e", "mlp.accuracy>=0.9"], "--expect key 'mlp.accuracy' must read <model>.<val|test>.<metric>"),
    (["last", "-e", "mlp.test.accuracy"], "--expect 'mlp.test.accuracy': expected KEY=RULE"),
    (["last", "-e", "mpl.test.accuracy>=0.9"], "expect mpl.test.accuracy: run '"),
    (["last", "-e", "mlp.test.r2>=0.9"], "metric 'r2' was not logged"),
])
def test_bad_references_and_rules_exit_2_with_one_line(gated, cli, runs, args, message):
    result = check(cli, runs, *args)
    assert result.exit_code == 2
    assert result.stdout == "" and len(result.stderr.splitlines()) == 1
    assert message in result.stderr, result.stderr


def test_a_run_without_gates_needs_expect(tiny, cli, runs):
    assert cli("train", tiny).exit_code == 0
    result = check(cli, runs, "last")
    assert result.exit_code == 2 and "its spec has no expect gates and none were given" in result.stderr
    assert check(cli, runs, "last", "-e", "baseline.val.loss>=0").exit_code == 0


def test_a_failed_model_is_a_miss_not_an_error(gated, cli, runs):
    """A model the spec planned but that has no score (it failed, or the run was cut off) misses its gate."""
    summary = runstore.resolve_run("last", runs).path / "summary.json"
    data = json.loads(summary.read_text())
    del data["models"]["mlp"]
    summary.write_text(json.dumps(data))
    result = check(cli, runs, "last", "-e", "mlp.val.loss<10")
    assert result.exit_code == 1 and result.stdout.strip() == "expect mlp.val.loss <10: missing -> MISSED"
    data["models"]["baseline"].update(status="failed", val={}, test={})
    summary.write_text(json.dumps(data))
    result = check(cli, runs, "last", "-e", "baseline.test.accuracy>=0")
    assert result.exit_code == 1
    assert result.stdout.strip() == "expect baseline.test.accuracy >=0: missing (failed) -> MISSED"


def test_check_does_not_import_torch(gated, runs):
    code = ("import sys; from nnlab.cli import app\n"
            f"try: app(['check', 'last', '--runs-dir', {str(runs)!r}])\nexcept SystemExit as e: print(e.code)\n"
            "print('TORCH' if 'torch' in sys.modules else 'NO TORCH')")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.stdout.strip().splitlines()[-2:] == ["0", "NO TORCH"], done.stdout + done.stderr


def test_train_and_check_print_the_same_line_for_the_same_gate(tmp_path, cli, runs):
    """One gate line (report.check.gate_line): `train` printed its own, with other number formatting."""
    binary_table().to_csv(tmp_path / "data.csv", index=False)
    spec = write_spec(tmp_path, tiny_spec(expect={"baseline.test.accuracy": ">= 0.5", "mlp.val.loss": "< 1e-9"}))
    trained = cli("train", spec)
    assert trained.exit_code == 1, trained.output
    said = [line for line in trained.stdout.splitlines() if line.startswith("expect ")]
    checked = check(cli, runs, "last")
    assert checked.exit_code == 1 and len(said) == 2
    assert said == checked.stdout.splitlines()


@pytest.mark.parametrize("value, shown", [(0.930412, "0.9304"), (3e-05, "3.000e-05"), (12345.6789, "12345.6789"),
                                          (None, "missing")])
def test_a_gates_score_reads_as_every_table_writes_it(value, shown):
    from nnlab.core.records import GateResult
    from nnlab.report.check import gate_line

    result = GateResult(key="mlp.val.loss", rule="< 0.5 ", value=value, passed=False)
    assert gate_line(result, {}) == f"expect mlp.val.loss < 0.5: {shown} -> MISSED"
