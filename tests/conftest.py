"""Shared helpers: tiny data sets and specs written into tmp_path, and an in-process CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from nnlab.cli import app

ROOT = Path(__file__).resolve().parents[1]
SPAMBASE = ROOT / "data" / "spambase.csv"


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    return tmp_path / "runs"


@pytest.fixture
def cli(runs: Path):
    """Invoke `nnlab` in-process with the store in tmp_path; returns the click Result."""
    runner = CliRunner()

    def invoke(*args: str, store: bool = True):
        extra = ["--runs-dir", str(runs)] if store and args and args[0] == "train" else []
        return runner.invoke(app, [*map(str, args), *extra], catch_exceptions=False)

    return invoke


def write_spec(folder: Path, spec: dict, name: str = "spec.yaml") -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def binary_table(n: int = 240, seed: int = 0) -> pd.DataFrame:
    """Two informative features and a noise feature; the label is linear in them (a baseline can learn it)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    y = (x[:, 0] + 0.5 * x[:, 1] + rng.normal(scale=0.3, size=n) > 0).astype(int)
    return pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "noise": x[:, 2], "label": y})


def tiny_spec(data_path: str = "data.csv", target: str = "label", **overrides) -> dict:
    spec = {"name": "tiny", "seed": 0, "data": {"path": data_path, "target": target},
            "train": {"epochs": 3, "batch_size": 32},
            "models": [{"name": "mlp", "kind": "mlp", "hidden": [8]}]}
    spec.update(overrides)
    return spec


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    """A valid spec on a small binary table; returns the spec path."""
    binary_table().to_csv(tmp_path / "data.csv", index=False)
    return write_spec(tmp_path, tiny_spec())


def run_folders(runs: Path) -> list[Path]:
    return sorted(p for p in runs.iterdir() if p.is_dir()) if runs.exists() else []
