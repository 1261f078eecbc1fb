"""Branches a run takes rarely, each provoked on purpose: a model failing mid-training, an interrupt during
the baseline fit, a learning rate that makes the loss non-finite."""

from __future__ import annotations

import json
import math
import re

import pytest

from conftest import binary_table, run_folders, tiny_spec, write_spec
from nnlab import runstore

STEPS_PER_EPOCH = 6  # binary_table's 168 training rows in batches of up to 32


def only_run(runs):
    (folder,) = run_folders(runs)
    return runstore.read_run(folder)


def test_a_model_failing_mid_training_is_failed_with_one_line_and_the_run_goes_on(tmp_path, cli, runs,
                                                                                   monkeypatch):
    from nnlab.models import resmlp

    real_forward, calls = resmlp.Residual.forward, []

    def breaks_in_epoch_two(self, x):
        if self.training:
            calls.append(1)
            if len(calls) == STEPS_PER_EPOCH + 2:
                raise RuntimeError("a layer broke in epoch 2\nand this second line stays out of the reason")
        return real_forward(self, x)

    monkeypatch.setattr(resmlp.Residual, "forward", breaks_in_epoch_two)
    binary_table().to_csv(tmp_path / "data.csv", index=False)
    spec = write_spec(tmp_path, tiny_spec(models=[{"name": "res", "kind": "resmlp", "width": 8, "blocks": 1},
                                                  {"name": "mlp", "kind": "mlp", "hidden": [8]}]))
    result = cli("train", spec)
    assert result.exit_code == 1, result.output  # a failed model is something a CI must see
    assert len(calls) == STEPS_PER_EPOCH + 2  # it broke where it was meant to, and was not trained again
    run = only_run(runs)
    assert run.meta.status == "completed" and run.summary.complete
    res, mlp, baseline = (run.summary.models[name] for name in ("res", "mlp", "baseline"))
    assert res.status == "failed" and res.test == {}
    assert res.message == "training failed: RuntimeError: a layer broke in epoch 2"
    assert mlp.status == "completed" and mlp.epochs_run == 3 and 0 < mlp.test["accuracy"] <= 1
    assert baseline.status == "completed" and baseline.test["accuracy"] > 0.7
    assert "res (failed)" in result.stdout
    rows = {r["model"]: r for r in json.loads(cli("compare", run.path, "--format", "json").stdout)}
    assert rows["res"]["status"] == "failed" and rows["mlp"]["status"] == "completed"
    assert rows["mlp"]["test_accuracy"] == pytest.approx(mlp.test["accuracy"])
    shown = cli("show", run.path)
    assert shown.exit_code == 0 and "training failed: RuntimeError: a layer broke in epoch 2" in shown.stdout


def test_an_interrupt_during_the_baseline_fit_ends_the_run_interrupted_and_readable(tmp_path, cli, runs,
                                                                                    monkeypatch):
    from nnlab.training import fit as train

    real_evaluate, splits = train.evaluate, []

    def interrupted(model, problem, split, *args):
        splits.append(split)
        if split == "train":  # the fit's first look at its rows, before anything is recorded
            raise KeyboardInterrupt
        return real_evaluate(model, problem, split, *args)

    monkeypatch.setattr(train, "evaluate", interrupted)
    binary_table().to_csv(tmp_path / "data.csv", index=False)
    result = cli("train", write_spec(tmp_path, tiny_spec()))
    assert result.exit_code == 130 and splits == ["train"]
    assert "Traceback" not in result.output
    run = only_run(runs)
    assert run.meta.status == "interrupted" and run.status == "interrupted"
    baseline = run.summary.models["baseline"]
    assert baseline.status == "interrupted" and baseline.test == {} and baseline.epochs_run == 0
    assert baseline.message.startswith("interrupted")
    assert list(run.summary.models) == ["baseline"]  # nothing after it ran
    compared = cli("compare", run.path, "--format", "json")
    assert compared.exit_code == 0 and "Traceback" not in compared.output
    rows = {r["model"]: r for r in json.loads(compared.stdout)}
    assert rows["baseline"]["status"] == "interrupted"
    shown = cli("show", run.path)
    assert shown.exit_code == 0 and "interrupted" in shown.stdout


def test_a_huge_learning_rate_makes_the_loss_non_finite_and_the_blow_up_rule_says_so(tmp_path, cli, runs):
    binary_table().to_csv(tmp_path / "data.csv", index=False)
    spec = write_spec(tmp_path, tiny_spec(models=[
        {"name": "wild", "kind": "mlp", "hidden": [8], "train": {"optimizer": {"name": "sgd", "lr": 1e30}}},
        {"name": "calm", "kind": "mlp", "hidden": [8], "train": {"batch_size": 16}}]))
    result = cli("train", spec)
    assert result.exit_code == 1, result.output
    run = only_run(runs)
    wild, calm = run.summary.models["wild"], run.summary.models["calm"]
    assert wild.status == "diverged" and wild.epochs_run == 1 and wild.best_epoch == 0 and wild.test == {}
    assert re.fullmatch(r"loss became (NaN|infinite) at epoch 1, step \d: try a lower learning rate "
                        r"\(train\.optimizer\.lr is 1e\+30\) or set train\.grad_clip", wild.message), wild.message
    history = run.metrics()
    losses = history[history.model == "wild"]["train_loss"].tolist()
    assert len(losses) == 1 and not math.isfinite(losses[0])  # the NaN really happened, and was logged
    assert calm.status == "completed" and calm.epochs_run == 3 and math.isfinite(calm.val["loss"])
