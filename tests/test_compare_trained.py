"""`nnlab compare`, `runs` and `show` on real runs: two tiny trainings through the CLI that differ in one setting."""

from __future__ import annotations

import io
import json

import pandas as pd
import pytest

from compare_fixtures import browse
from conftest import run_folders
from nnlab import runstore
from nnlab.core.numbers import stored_float


@pytest.fixture
def trained(tiny, cli, runs):
    first = cli("train", tiny, "--note", "lr 0.001")
    second = cli("train", tiny, "--set", "train.optimizer.lr=0.05", "--note", "lr 0.05")
    assert first.exit_code == 0, first.output
    assert second.exit_code == 0, second.output
    return [p.name for p in sorted(run_folders(runs), key=lambda p: json.loads((p / "run.json").read_text())[
        "started_at"])]


def test_compare_two_real_runs_in_every_format(trained, runs):
    frame = pd.read_csv(io.StringIO(browse(runs, "compare", "--format", "csv").stdout))
    assert list(zip(frame["run"], frame["model"])) == [(trained[0], "baseline"), (trained[0], "mlp"),
                                                       (trained[1], "baseline"), (trained[1], "mlp")]
    # one setting changed, so it is the one settings column
    assert [c for c in frame.columns if "." in c] == ["train.optimizer.lr"]
    assert list(frame["train.optimizer.lr"].iloc[[1, 3]]) == [0.001, 0.05]
    summaries = [runstore.read_run(runs / run).summary for run in trained]
    for i, summary in enumerate(summaries):
        mlp, base = summary.models["mlp"], summary.baseline_result
        row = frame.iloc[2 * i + 1]
        # stored metrics read as the float32 they are: equal to the summary's to float32 precision
        assert row["test_accuracy"] == stored_float(mlp.test["accuracy"]) == pytest.approx(mlp.test["accuracy"])
        assert row["val_loss"] == stored_float(mlp.val["loss"]) and row["best_epoch"] == mlp.best_epoch
        assert row["test_loss_vs_baseline"] == pytest.approx(mlp.test["loss"] - base.test["loss"], rel=1e-6)
    # the baseline does not depend on the learning rate: same data split and seed, same numbers
    assert frame["test_loss"].iloc[0] == frame["test_loss"].iloc[2]
    records = json.loads(browse(runs, "compare", "--format", "json").stdout)
    assert [r["test_f1"] for r in records] == list(frame["test_f1"])
    markdown = browse(runs, "compare", "--format", "markdown").stdout
    assert markdown.count("\n") == 2 + 4 and "train.optimizer.lr" in markdown.splitlines()[0]


def test_compare_a_b_runs_and_show_on_real_runs(trained, runs):
    text = browse(runs, "compare", trained[0], trained[1]).stdout
    assert "train.optimizer.lr  0.001  0.05" in text
    assert "mlp: val_loss per epoch" in text and "epoch" in text
    listing = browse(runs, "runs")
    assert listing.exit_code == 0 and listing.stderr == ""
    assert [line.split()[0] for line in listing.stdout.splitlines()[2:]] == trained[::-1]
    shown = browse(runs, "show", "last")
    assert shown.exit_code == 0 and shown.stdout.startswith(trained[1]) and "note: lr 0.05" in shown.stdout


def test_json_numbers_read_as_stored_and_predict_json_ends_its_line(trained, runs, tiny, cli, monkeypatch):
    from decimal import Decimal

    records = json.loads(browse(runs, "compare", "--format", "json").stdout)
    for base, mlp in (records[0:2], records[2:4]):
        for col in ("val_loss", "test_loss", "val_accuracy", "test_accuracy"):
            delta = mlp[f"{col}_vs_baseline"]  # the decimal difference of the stored numbers, no binary noise
            assert delta == float(Decimal(repr(mlp[col])) - Decimal(repr(base[col])))
            assert len(repr(delta).lstrip("-0.").replace(".", "")) <= 10
    from nnlab import api

    rows = tiny.parent / "data.csv"
    monkeypatch.setattr(api, "write_predictions", lambda *a, **k: '{"prediction":1}')  # as older pandas wrote
    out = cli("predict", "last", rows, "--format", "json", "--runs-dir", runs)
    assert out.exit_code == 0 and out.stdout.endswith('{"prediction":1}\n')
