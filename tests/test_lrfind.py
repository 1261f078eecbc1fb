"""The learning-rate range test (training/lrfind.py, `nnlab lr-find`): the suggestion on synthetic curves with a
known answer and on divergence and no-descent edge cases; the command on a tiny spec (the curve written as a
run, a suggestion inside the range, each copy equal to the model trained alone at its rate); bad options."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import binary_table, run_folders, tiny_spec, write_spec
from nnlab import runstore
from nnlab.cli import app
from nnlab.training import lrfind
from nnlab.training.lrfind import suggest_lr

RATES = [float(r) for r in 10.0 ** np.linspace(-6, 0, 25)]  # four a decade: 1e-3 is RATES[12]


def sigmoid_curve(centre: float) -> list[float]:
    """A loss that falls from 1.0 to 0.2 as log10(rate) passes `centre`, fastest exactly there."""
    return [1.0 - 0.8 / (1.0 + math.exp(-2.0 * (math.log10(r) - centre))) for r in RATES]


# --- suggest_lr -------------------------------------------------------------------------------------------

def test_the_suggestion_is_the_steepest_point_of_a_known_curve():
    assert suggest_lr(RATES, sigmoid_curve(-3.0)) == pytest.approx(1e-3)
    assert suggest_lr(RATES, sigmoid_curve(-4.5)) == pytest.approx(10 ** -4.5)
    # the order the rates come in does not matter
    backwards = list(reversed(RATES)), list(reversed(sigmoid_curve(-3.0)))
    assert suggest_lr(*backwards) == pytest.approx(1e-3)


def test_the_curve_is_read_up_to_its_divergence():
    losses = sigmoid_curve(-3.0)
    # past 1e-1 the rates blow up: not finite, or far above the best loss so far; a steeper fall after a
    # blow-up (an artefact of a diverged copy) is never suggested
    diverged = losses[:21] + [math.nan, math.inf, 0.01, 0.001]
    assert suggest_lr(RATES, diverged) == pytest.approx(1e-3)
    blown = losses[:21] + [50.0, 0.001, 0.0001, 0.00001]
    assert suggest_lr(RATES, blown) == pytest.approx(1e-3)


def test_a_hand_computed_cut_and_smoothing():
    # 5.0 is above 4 x the lowest loss before it (0.3): the curve ends there. np.gradient per decade of
    # 1, 0.9, 0.5, 0.3: -0.1, -0.25, -0.3, -0.2 -> the third rate
    rates = [1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0]
    assert suggest_lr(rates, [1.0, 0.9, 0.5, 0.3, 5.0, 0.1]) == pytest.approx(1e-2)


def test_a_coarse_curve_suggests_the_steepest_drop_before_its_lowest_loss():
    # (a GRU's curve at five rates) the drop from 1e-3 to 1e-2 is the descent; the rise after the lowest loss
    # is not read, and no smoothing spreads the drop over its neighbours
    rates = [1e-4, 1e-3, 1e-2, 1e-1, 1.0]
    assert suggest_lr(rates, [0.695, 0.6898, 0.5401, 0.6633, 0.8265]) == pytest.approx(1e-3)


@pytest.mark.parametrize("losses, why", [
    ([math.nan] * 6, "every rate diverged"),
    ([0.5, 0.4, math.nan, math.nan, math.nan, math.nan], "two rates before divergence: no slope to read"),
    ([0.1, 0.2, 0.3, 0.4, 0.5, 0.6], "the loss only rises"),
    ([0.7, 0.7, 0.7, 0.7, 0.7, 0.7], "flat: no rate is better than another"),
    ([0.7, 0.7001, 0.6999, 0.7, 0.7002, 0.7], "noise well under 1 % of the loss"),
])
def test_no_suggestion_without_a_descent_before_divergence(losses, why):
    assert suggest_lr([1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0], losses) is None, why


def test_one_loss_per_rate():
    with pytest.raises(ValueError, match="3 rates and 2 losses"):
        suggest_lr([1e-3, 1e-2, 1e-1], [0.5, 0.4])


def test_rates_steps_and_smoothing():
    assert lrfind.log_rates(1e-6, 1.0, 7) == [1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0]
    assert lrfind.log_rates(1e-4, 1e-1, 4) == [1e-4, 1e-3, 1e-2, 1e-1]
    assert lrfind.log_rates(1e-3, 1e-2, 3) == [0.001, 0.00316, 0.01]
    # the loop folds a last batch of one row into the one before
    assert [lrfind.batches_per_epoch(n, 32) for n in (1, 32, 33, 34, 64, 65, 100)] == [1, 1, 1, 2, 2, 2, 4]
    assert lrfind.epochs_for(300, 144, 32) == 60 and lrfind.epochs_for(1, 144, 32) == 1
    assert lrfind.smoothed_loss([4.0, 3.0, 2.0, 1.0]) == 1.0
    assert lrfind.smoothed_loss([8, 7, 6, 5, 4, 3, 2, 1]) == 1.5  # the last quarter's mean
    assert math.isnan(lrfind.smoothed_loss([0.5, math.nan]))


# --- the command ----------------------------------------------------------------------------------------------

@pytest.fixture
def spec(tmp_path: Path) -> Path:
    binary_table(200).to_csv(tmp_path / "data.csv", index=False)
    return write_spec(tmp_path, tiny_spec(models=[{"name": "mlp", "kind": "mlp", "hidden": [8]},
                                                  {"name": "wide", "kind": "mlp", "hidden": [16]}]))


def invoke(*args):
    return CliRunner().invoke(app, list(map(str, args)), catch_exceptions=False)


def test_lr_find_writes_the_curve_and_suggests_a_rate_in_the_range(spec: Path, tmp_path: Path):
    runs = tmp_path / "runs"
    result = invoke("lr-find", spec, "--model", "wide", "--min", 1e-5, "--max", 1, "--rates", 6, "--steps", 40,
                    "--runs-dir", runs)
    assert result.exit_code == 0, result.output
    (folder,) = run_folders(runs)
    with open(folder / "lr_find.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    rates = [float(r["lr"]) for r in rows]
    assert rates == [1e-5, 0.0001, 0.001, 0.01, 0.1, 1.0]
    losses = [float(r["loss"]) for r in rows]
    found = json.loads((folder / "run.json").read_text())["lr_find"]
    # the suggestion recorded is the one the pure function gives on the recorded curve
    assert found["suggested_lr"] == suggest_lr(rates, losses) is not None
    assert 1e-5 <= found["suggested_lr"] <= 1.0
    assert [r["suggested"] for r in rows].count("True") == 1
    assert f"suggested lr: {found['suggested_lr']:g}" in result.output
    assert "lowest loss " in result.output and " at lr " in result.output
    assert (found["model"], found["rates"], found["stacked"]) == ("wide", 6, True)
    assert found["steps_run"] >= 40
    # each copy's epochs are in metrics.csv, under its member index with its rate; runs lists the run
    history = runstore.read_run(folder).metrics()
    assert sorted(set(history["member"])) == list(range(6))
    assert sorted(set(history["lr"])) == rates
    assert folder.name in invoke("runs", "--runs-dir", runs).output


def test_each_copy_equals_the_model_trained_alone_at_its_rate(spec: Path, tmp_path: Path):
    runs = tmp_path / "runs"
    assert invoke("lr-find", spec, "--min", 1e-3, "--max", 1e-1, "--rates", 3, "--steps", 20,
                  "--runs-dir", runs).exit_code == 0
    (found,) = run_folders(runs)
    curve = runstore.read_run(found).metrics()
    epochs = int(curve["epoch"].max())
    alone = invoke("train", spec, "--set", "models=[{name: mlp, kind: mlp, hidden: [8]}]", "--set",
                   "models.mlp.train.optimizer.lr=0.01", "--set", f"models.mlp.train.epochs={epochs}",
                   "--set", "baseline=false", "--runs-dir", tmp_path / "alone")
    assert alone.exit_code == 0, alone.output
    (trained,) = run_folders(tmp_path / "alone")
    single = runstore.read_run(trained).metrics()
    member = curve[curve["lr"] == 0.01]
    np.testing.assert_allclose(member["train_loss"].to_numpy(), single["train_loss"].to_numpy(), rtol=1e-5)
    np.testing.assert_allclose(member["val_loss"].to_numpy(), single["val_loss"].to_numpy(), rtol=1e-5)


@pytest.mark.parametrize("options, message", [
    (["--model", "nope"], "error: --model: no model 'nope' in spec.yaml; expected one of mlp, wide"),
    (["--min", 0], "error: --min: a learning rate above 0; got 0"),
    (["--min", 1e-2, "--max", 1e-3], "error: --max: a learning rate above --min (0.01); got 0.001"),
    (["--rates", 2], "error: --rates: from 3 to 64 (the curve needs three points to have a slope); got 2"),
    (["--steps", 0], "error: --steps: from 1 to 100,000; got 0"),
    (["--set", "models.mlp.kind=mpl"], "error: spec.yaml: models[0].kind: expected one of"),
])
def test_bad_input_is_one_line_exit_2_and_no_run(spec: Path, tmp_path: Path, options, message):
    runs = tmp_path / "runs"
    result = invoke("lr-find", spec, *options, "--runs-dir", runs)
    assert result.exit_code == 2
    assert result.output.startswith(message) and len(result.output.strip().splitlines()) == 1, result.output
    assert run_folders(runs) == []
