"""The CI recipes the README shows run as written (the CI workflow in docs/ has tests/test_ci_recipe.py)."""

from __future__ import annotations

import os
import subprocess
import sys

from conftest import ROOT


def _readme_command(start: str) -> str:
    """The README's shell command that starts with `start`, its continuation lines joined."""
    lines = (ROOT / "README.md").read_text().splitlines()
    at = next((i for i, line in enumerate(lines) if line.startswith(start)), None)
    assert at is not None, f"the README no longer shows `{start}`"
    command = lines[at]
    while command.endswith("\\"):
        at += 1
        command = command[:-1] + " " + lines[at].strip()
    return command


def test_the_compare_json_gate_from_the_readme_runs_as_written(tiny, cli, runs):
    assert cli("train", tiny).exit_code == 0
    command = _readme_command("nnlab compare last --model mlp --metric accuracy --split test --format json")
    env = {**os.environ, "NNLAB_RUNS_DIR": str(runs), "PATH": f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}"}
    done = subprocess.run(["bash", "-c", command.replace("python ", f"{sys.executable} ", 1)], env=env,
                          capture_output=True, text=True, timeout=60)
    # The tiny MLP trains 3 epochs and is worse than its baseline: the gate must say so with exit 1.
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr


def test_the_check_recipe_from_the_readme_runs_as_written(tiny, cli, runs, monkeypatch):
    assert cli("train", tiny).exit_code == 0
    monkeypatch.setenv("NNLAB_RUNS_DIR", str(runs))
    command = _readme_command("$ nnlab check last --expect").removeprefix("$ ").split()
    args = [part.strip("'") for part in command[1:]]
    result = cli(*args, store=False)
    assert result.exit_code == 1  # the README shows it missing: exit 1
    assert "expect mlp.test.accuracy >=0.95:" in result.stdout and "-> MISSED" in result.stdout
