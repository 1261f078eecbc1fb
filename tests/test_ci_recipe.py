"""docs/ci-example.yml: the CI job the README shows. The nnlab commands it runs are run here the same way
(in-process), so the recipe cannot drift from what nnlab accepts, and its smoke gates are ones a smoke run
really passes."""

from __future__ import annotations

import re
import shlex

import pytest
import yaml

from conftest import ROOT

WORKFLOW = ROOT / "docs" / "ci-example.yml"
EXPERIMENTS = sorted((ROOT / "experiments").glob("*.yaml"))


def workflow() -> dict:
    return yaml.safe_load(WORKFLOW.read_text())


def step_scripts(job: str) -> list[str]:
    return [step["run"] for step in workflow()["jobs"][job]["steps"] if "run" in step]


def smoke_gates() -> dict[str, list[str]]:
    """spec name -> the `--expect` arguments of the SMOKE_GATES table in the smoke job's script."""
    script = "\n".join(step_scripts("smoke"))
    return {name: shlex.split(args) for name, args in re.findall(r'^\s*\[([\w.-]+)\]="([^"]*)"\s*$', script, re.M)}


def test_the_workflow_installs_cpu_torch_first_and_runs_every_example():
    triggers = workflow().get("on", workflow().get(True))  # YAML 1.1 reads a bare `on` as true
    assert {"push", "pull_request"} <= set(triggers)
    install, validate, smoke = step_scripts("smoke")
    assert install.index("download.pytorch.org/whl/cpu") < install.index("pip install -e .")
    assert "for spec in experiments/*.yaml" in validate and "nnlab validate \"$spec\"" in validate
    assert "for spec in experiments/*.yaml" in smoke and 'nnlab train "$spec" --smoke' in smoke
    assert "nnlab check last ${SMOKE_GATES[$name]}" in smoke
    full = step_scripts("full")[-1]
    assert "for spec in experiments/*.yaml" in full and 'nnlab check last --runs-dir "$store"' in full
    assert "spam" in smoke_gates() and EXPERIMENTS


@pytest.mark.parametrize("spec", EXPERIMENTS, ids=lambda p: p.stem)
def test_every_example_spec_validates(cli, spec):
    assert cli("validate", spec).exit_code == 0


@pytest.mark.parametrize("name", sorted(smoke_gates()))
def test_a_smoke_run_passes_the_recipes_gates(cli, runs, name):
    spec = ROOT / "experiments" / f"{name}.yaml"
    trained = cli("train", spec, "--smoke", "--no-progress", "--note", "CI smoke run")
    assert trained.exit_code == 0, trained.output
    checked = cli("check", "last", *smoke_gates()[name], "--runs-dir", runs)
    assert checked.exit_code == 0, checked.output
    lines = checked.stdout.splitlines()
    assert len(lines) == len(smoke_gates()[name]) // 2 and all(line.endswith("-> pass") for line in lines)
    strict = [re.sub(r">=.*", ">=1.01", arg) for arg in smoke_gates()[name]]  # no score reaches 1.01
    assert cli("check", "last", *strict, "--runs-dir", runs).exit_code == 1  # a miss fails the CI step


def test_every_gated_name_is_an_example():
    assert set(smoke_gates()) <= {spec.stem for spec in EXPERIMENTS}


@pytest.mark.parametrize("job", ["smoke", "full"])
def test_the_scripts_are_valid_bash(job):
    import subprocess

    for script in step_scripts(job):
        done = subprocess.run(["bash", "-n"], input=script, capture_output=True, text=True, timeout=10)
        assert done.returncode == 0, done.stderr
