"""What a new user meets first: the README's two commands, `.ci/run` building a throwaway venv so a
green CI means green on a new machine, `nnlab --version`, and install hints that point at this checkout
(the name `nnlab` on the package index is another project)."""

from __future__ import annotations

import re
import subprocess
import sys
from importlib.metadata import version

from conftest import ROOT

README = (ROOT / "README.md").read_text()
CI = (ROOT / ".ci" / "run").read_text()


def fenced_commands(text: str) -> list[str]:
    return [line.strip() for block in re.findall(r"```bash\n(.*?)```", text, re.S) for line in block.splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def test_ci_runs_the_readmes_test_command_in_a_new_venv():
    test_command = next(c for c in fenced_commands(README) if c.endswith("python -m pytest"))
    assert test_command in CI
    venv_at = CI.index("-m venv")
    assert venv_at < CI.index("bin/activate") < CI.index(test_command)
    assert test_command.startswith("pip install torch==2.13.0 && ")


def test_version_prints_the_installed_packages_version(cli):
    result = cli("--version")
    assert result.exit_code == 0
    assert result.stdout == f"nnlab {version('nnlab')}\n"


def test_version_works_as_its_own_process():
    out = subprocess.run([sys.executable, "-m", "nnlab.cli", "--version"], capture_output=True, text=True,
                         timeout=60)
    assert (out.returncode, out.stdout.strip()) == (0, f"nnlab {version('nnlab')}")


def test_no_hint_installs_the_unrelated_nnlab_from_the_index():
    # `pip install 'nnlab[plots]'` takes "nnlab 0.0.1", based on Theano: extras come from the checkout.
    sources = [README] + [p.read_text() for p in (ROOT / "nnlab").rglob("*.py")]
    for text in sources:
        assert not re.search(r"pip install\s+['\"]?nnlab\b", text)
    assert "pip install -e '.[plots]'" in README and "pip install -e '.[ray]'" in README
