"""One small store for the report tests, trained once per test session: a plain run (its note hostile
HTML), a run of 3 repeats that early stopping ends at epoch 2 of 6, and a sweep of two learning rates."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import binary_table, tiny_spec, write_spec
from nnlab.cli import app

HOSTILE_NOTE = "</script><img src=x onerror=\"document.title='pwned'\"> & <b>bold</b>"


@pytest.fixture(scope="session")
def report_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("report")
    binary_table(300).to_csv(folder / "data.csv", index=False)
    spec = tiny_spec(str(folder / "data.csv"), metrics=["accuracy"])
    spec["train"]["epochs"] = 4
    path = write_spec(folder, spec)
    store = folder / "runs"
    runner = CliRunner()
    for args in (["train", path, "--note", HOSTILE_NOTE],
                 # min_delta larger than any gain: early stopping ends every member at epoch 2
                 ["train", path, "--repeats", "3", "--set", "train.epochs=6",
                  "--set", "train.early_stopping={patience: 1, min_delta: 0.5}", "--note", "three repeats"],
                 ["sweep", path, "--grid", "train.optimizer.lr=0.001,0.01"]):
        result = runner.invoke(app, [*map(str, args), "--runs-dir", str(store)], catch_exceptions=False)
        assert result.exit_code == 0, result.output
    return store
