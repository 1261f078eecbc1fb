"""The training loop through the CLI: learning, best checkpoint, divergence, interruption, reproducibility."""

from __future__ import annotations


import numpy as np
import pandas as pd
import pytest
import torch

from conftest import binary_table, run_folders, tiny_spec, write_spec
from nnlab.core.columns import FINAL_METRICS
from nnlab import runstore


def only_run(runs):
    (folder,) = run_folders(runs)
    return runstore.read_run(folder)


def test_mlp_solves_xor_where_the_baseline_cannot(tmp_path, cli, runs):
    spec = write_spec(tmp_path, {
        "name": "xor", "data": {"builtin": "xor"}, "train": {"epochs": 60, "batch_size": 32,
                                                            "optimizer": {"lr": 0.01}},
        "models": [{"name": "mlp", "kind": "mlp", "hidden": [16, 16]}],
        "expect": {"mlp.test.accuracy": ">= 0.9", "baseline.test.accuracy": "< 0.7"}})
    result = cli("train", spec)
    assert result.exit_code == 0, result.output
    summary = only_run(runs).summary
    assert summary.models["mlp"].test["accuracy"] >= 0.9
    assert summary.models["baseline"].test["accuracy"] < 0.7
    assert all(g.passed for g in summary.expect)


def test_best_epoch_weights_are_kept_and_tested(tmp_path, cli, runs):
    # A wide network on 120 noisy rows overfits: validation loss turns up, so best epoch < last epoch.
    binary_table(n=120, seed=3).to_csv(tmp_path / "data.csv", index=False)
    spec = write_spec(tmp_path, tiny_spec(train={"epochs": 60, "batch_size": 16, "early_stopping": None,
                                                 "optimizer": {"lr": 0.01}},
                                          models=[{"name": "mlp", "kind": "mlp", "hidden": [128, 128]}]))
    assert cli("train", spec).exit_code == 0
    run = only_run(runs)
    entry = run.summary.models["mlp"]
    history = run.metrics()
    history = history[history.model == "mlp"]
    assert entry.epochs_run == 60 and entry.best_epoch < 60
    assert history.val_loss.idxmin() == history.index[entry.best_epoch - 1]
    assert entry.val["loss"] == pytest.approx(history.val_loss.min(), rel=1e-6)
    assert any(note.startswith("overfitting:") for note in entry.diagnosis)
    # The saved weights are the best epoch's: evaluating them on the test split gives the reported numbers.
    from nnlab.models import build_model
    from nnlab.spec import MLPSpec
    from nnlab.data import prepare
    from nnlab.spec import DataSpec
    info = run.model_info("mlp")
    from nnlab.core.inputs import InputInfo
    model = build_model(MLPSpec(**info.spec), InputInfo("table", (info.n_inputs,), info.n_outputs))
    model.load_state_dict(run.load_weights("mlp"))
    prepared = prepare(DataSpec(path="data.csv", target="label"), tmp_path, 0)
    with torch.no_grad():
        logits = model(torch.from_numpy(prepared.x["test"])).reshape(-1).numpy()
    accuracy = float(((logits > 0) == prepared.y["test"]).mean())
    assert accuracy == pytest.approx(entry.test["accuracy"], abs=1e-6)


def test_early_stopping_says_what_happened(tmp_path, cli, runs):
    binary_table(n=120, seed=3).to_csv(tmp_path / "data.csv", index=False)
    spec = write_spec(tmp_path, tiny_spec(train={"epochs": 200, "batch_size": 16, "optimizer": {"lr": 0.01},
                                                 "early_stopping": {"patience": 3}},
                                          models=[{"name": "mlp", "kind": "mlp", "hidden": [128, 128]}]))
    result = cli("train", spec)
    entry = only_run(runs).summary.models["mlp"]
    assert entry.epochs_run == entry.best_epoch + 3 < 200
    assert (f"val_loss did not improve for 3 epochs (best {entry.val['loss']:.4g} at epoch "
            f"{entry.best_epoch}); stopped at epoch {entry.epochs_run}; restored epoch {entry.best_epoch}"
            in result.stdout)


def test_divergence_stops_that_model_and_the_run_goes_on(tmp_path, cli, runs):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.normal(size=200), "z": rng.normal(size=200)})
    frame["y"] = 1000 * frame.x + rng.normal(size=200)
    frame.to_csv(tmp_path / "data.csv", index=False)
    spec = write_spec(tmp_path, tiny_spec(target="y", train={"epochs": 5, "batch_size": 32},
                                          models=[{"name": "wild", "kind": "mlp", "hidden": [32],
                                                   "train": {"optimizer": {"name": "sgd", "lr": 1.0e+4}}},
                                                  {"name": "calm", "kind": "mlp", "hidden": [8],
                                                   "train": {"optimizer": {"lr": 0.03}}}]))
    result = cli("train", spec)
    assert result.exit_code == 1, result.output  # a diverged model is something a CI must see
    models = only_run(runs).summary.models
    assert models["wild"].status == "diverged"
    assert models["wild"].message.startswith("loss ")
    assert "at epoch 1" in models["wild"].message and "try a lower learning rate" in models["wild"].message
    assert models["calm"].status == "completed" and models["calm"].test["r2"] > 0.5
    assert "wild (diverged)" in result.stdout


def test_ctrl_c_marks_the_run_interrupted_and_keeps_finished_epochs(tmp_path, cli, runs, monkeypatch):
    from nnlab.training.optim import StackedStep

    real_step, calls = StackedStep.__call__, []

    def interrupted_step(self, skip=None):
        calls.append(1)
        if len(calls) == 14:  # mid-epoch 3: 168 training rows make 6 batches of up to 32
            raise KeyboardInterrupt
        real_step(self, skip)

    monkeypatch.setattr(StackedStep, "__call__", interrupted_step)
    spec = write_spec(tmp_path, tiny_spec())
    binary_table().to_csv(tmp_path / "data.csv", index=False)
    result = cli("train", spec)
    assert result.exit_code == 130
    run = only_run(runs)
    assert run.meta.status == "interrupted" and run.status == "interrupted"
    history = run.metrics()
    assert list(history[history.model == "mlp"].epoch) == [1, 2]
    mlp = run.summary.models["mlp"]  # the model in progress is kept, with what it had trained
    assert mlp.status == "interrupted" and mlp.epochs_run == 2 and mlp.best_epoch in (1, 2) and mlp.test == {}
    assert run.summary.models["baseline"].status == "completed"


def test_same_spec_and_seed_give_identical_numbers(tmp_path, cli, runs):
    binary_table().to_csv(tmp_path / "data.csv", index=False)
    spec = write_spec(tmp_path, tiny_spec(models=[{"name": "mlp", "kind": "mlp", "hidden": [8], "dropout": 0.2},
                                                  {"name": "res", "kind": "resmlp", "width": 8, "blocks": 1}]))
    assert cli("train", spec).exit_code == 0
    assert cli("train", spec).exit_code == 0
    first, second = (runstore.read_run(p) for p in run_folders(runs))
    drop = ["seconds"]
    pd.testing.assert_frame_equal(first.metrics().drop(columns=drop), second.metrics().drop(columns=drop))
    strip = lambda s: {n: m.model_dump(exclude={"train_seconds", "samples_per_second"})
                       for n, m in s.models.items()}
    assert strip(first.summary) == strip(second.summary)
    other_seed = write_spec(tmp_path, tiny_spec(seed=1), name="seed1.yaml")
    assert cli("train", other_seed).exit_code == 0
    newest = runstore.list_runs(runs)[0][0]
    assert newest.meta.seed == 1  # runs started within one second still list newest first
    third = newest
    assert third.summary.models["mlp"].val != first.summary.models["mlp"].val


@pytest.mark.parametrize("task_spec", [
    {"data": {"builtin": "iris"}, "metrics": ["accuracy", "f1", "log_loss"], "monitor": "val_accuracy"},
    {"data": {"builtin": "diabetes"}, "metrics": ["rmse", "mae", "r2"], "monitor": "val_r2",
     "train": {"epochs": 3, "batch_size": 32, "loss": "huber", "scheduler": {"name": "cosine"}}},
])
def test_multiclass_and_regression_end_to_end(tmp_path, cli, runs, task_spec):
    spec = write_spec(tmp_path, {"name": "t", "train": {"epochs": 3, "batch_size": 32},
                                 "models": [{"name": "mlp", "kind": "mlp", "hidden": [16], "norm": "batchnorm"}],
                                 **task_spec})
    result = cli("train", spec)
    assert result.exit_code == 0, result.output
    summary = only_run(runs).summary
    assert set(summary.models) == {"baseline", "mlp"}
    assert set(summary.models["mlp"].test) == {"loss", *task_spec["metrics"], *FINAL_METRICS[summary.task]}
    if summary.task == "regression":
        # Regression metrics are in the target's units (diabetes progression is ~25-346): not standardized.
        assert summary.models["baseline"].test["rmse"] > 30


# --- fit called directly: interrupts and what predict returns -------------------------------------------

def tiny_problem(task="binary", n=200, seed=0):
    """Train/val/test arrays straight into a Problem: the loop alone, without the data module."""
    from nnlab.training.fit import Problem

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3)).astype(np.float32)
    signal = x[:, 0] + 0.5 * x[:, 1]
    y = ((signal > 0).astype(np.float32) if task == "binary"
         else (signal + rng.normal(scale=0.3, size=n)).astype(np.float32))
    parts = {"train": slice(0, n // 2), "val": slice(n // 2, 3 * n // 4), "test": slice(3 * n // 4, n)}
    metrics = ["accuracy"] if task == "binary" else ["rmse"]
    return Problem.from_arrays(task, {k: x[s] for k, s in parts.items()}, {k: y[s] for k, s in parts.items()},
                               metrics, "val_loss", torch.device("cpu"), target_std=1.0 if task == "binary" else 7.0)


def small_mlp(seed=0, n_outputs=1, dropout=0.0):
    from nnlab.core.inputs import InputInfo
    from nnlab.models import build_model
    from nnlab.spec import MLPSpec

    torch.manual_seed(seed)
    return build_model(MLPSpec(kind="mlp", hidden=[8], dropout=dropout), InputInfo("table", (3,), n_outputs))


def test_an_interrupt_during_fit_returns_what_was_trained_so_far():
    from nnlab.training import fit as train
    from nnlab.spec import TrainSpec

    problem, seen = tiny_problem(), []

    def on_epoch(record):
        seen.append(record)
        if record.epoch == 3:
            raise KeyboardInterrupt
    spec = TrainSpec(epochs=10, batch_size=32, early_stopping=None, optimizer={"lr": 0.01})
    with pytest.raises(train.FitInterrupted) as caught:
        train.fit_stack([train.BuiltMember("mlp", small_mlp(), spec, 0)], problem, on_epoch)[0]
    assert isinstance(caught.value, KeyboardInterrupt) and type(caught.value.cause) is KeyboardInterrupt
    result = caught.value.result
    assert result.status == "interrupted" and result.epochs_run == 3 and result.test == {}
    best = min(seen, key=lambda r: r.values["val_loss"])
    assert result.best_epoch == best.epoch and result.val["loss"] == best.values["val_loss"]
    # The kept weights are the best epoch's: the uninterrupted run's weights after that many epochs.
    twin = small_mlp()
    train.fit_stack([train.BuiltMember("mlp", twin, spec.model_copy(update={"epochs": best.epoch}), 0)], problem, lambda r: None)[0]
    for key, value in twin.state_dict().items():
        torch.testing.assert_close(result.state[key], value, rtol=0, atol=0)
        assert result.state[key].device.type == "cpu"
    assert result.val_probabilities.shape == (50,) and ((0 <= result.val_probabilities) &
                                                       (result.val_probabilities <= 1)).all()


def test_a_signal_while_an_epoch_is_recorded_waits_until_the_epoch_is_whole(monkeypatch):
    # The signal lands right after epoch 3's best weights are kept and before its history row exists: the
    # epoch is recorded whole first, so the model never reports a best epoch past its last logged one.
    import os
    import signal

    from nnlab.core import interrupts
    from nnlab.training import fit as train
    from nnlab.training.loop import Loop
    from nnlab.spec import TrainSpec

    keep_best = Loop._keep_best

    def keep_best_then_signal(self, values, bad_steps):
        keep_best(self, values, bad_steps)
        if self.epoch == 3:
            os.kill(os.getpid(), signal.SIGTERM)
    monkeypatch.setattr(Loop, "_keep_best", keep_best_then_signal)
    seen = []
    spec = TrainSpec(epochs=10, batch_size=32, early_stopping=None, optimizer={"lr": 0.01})
    with interrupts.handled(), pytest.raises(train.FitInterrupted) as caught:
        train.fit_stack([train.BuiltMember("mlp", small_mlp(), spec, 0)], tiny_problem(), seen.append)[0]
    result = caught.value.result
    assert [r.epoch for r in seen] == [1, 2, 3] and result.epochs_run == 3
    assert result.best_epoch == min(seen, key=lambda r: r.values["val_loss"]).epoch
    assert interrupts.interrupted_name(caught.value) == "SIGTERM"


def test_an_interrupt_before_the_first_epoch_ends_keeps_nothing(monkeypatch):
    from nnlab.training import fit as train
    from nnlab.spec import TrainSpec

    class SigTerm(KeyboardInterrupt):
        signal = 15

    from nnlab.training.optim import StackedStep

    real_step, calls = StackedStep.__call__, []

    def interrupted(self, skip=None):
        calls.append(1)
        if len(calls) == 2:
            raise SigTerm
        real_step(self, skip)
    monkeypatch.setattr(StackedStep, "__call__", interrupted)
    with pytest.raises(train.FitInterrupted) as caught:
        train.fit_stack([train.BuiltMember("mlp", small_mlp(), TrainSpec(epochs=5, batch_size=32), 0)], tiny_problem(), lambda r: None)[0]
    result = caught.value.result
    assert caught.value.cause.signal == 15
    assert (result.status, result.best_epoch, result.epochs_run, result.state, result.val_probabilities) == (
        "interrupted", 0, 0, None, None)


def test_an_interrupt_after_the_baseline_fit_keeps_its_weights():
    from nnlab.training import fit as train
    from nnlab.models import build_baseline
    from nnlab.spec import BaselineSpec

    def on_epoch(record):
        raise KeyboardInterrupt
    with pytest.raises(train.FitInterrupted) as caught:
        train.fit_baseline("baseline", build_baseline(3, 1), tiny_problem(), BaselineSpec(), on_epoch)
    result = caught.value.result
    assert (result.status, result.best_epoch, result.test) == ("interrupted", 1, {})
    assert set(result.state) == {"weight", "bias"} and result.val["loss"] < 0.5


def test_predict_is_in_model_units_standardized_for_regression():
    from nnlab.training import fit as train
    from nnlab.spec import TrainSpec

    problem = tiny_problem("regression")
    model = small_mlp()
    result = train.fit_stack([train.BuiltMember("mlp", model, TrainSpec(epochs=30, batch_size=32, optimizer={"lr": 0.01}), 0)], problem, lambda r: None)[0]
    with torch.no_grad():
        raw = model(problem.x["val"]).reshape(-1).numpy()
    np.testing.assert_allclose(result.val_probabilities, raw, rtol=1e-6)
    # Metrics are in the target's units (target_std 7): rmse is 7x the standardized error.
    standardized_rmse = float(np.sqrt(np.mean((raw - problem.y["val"].numpy()) ** 2)))
    assert result.val["rmse"] == pytest.approx(7 * standardized_rmse, rel=1e-5)


def spambase_problem():
    """Spambase split 70/15/15 by a seeded permutation, standardized on train (as bench/bench_train.py)."""
    from conftest import SPAMBASE
    from nnlab.training.fit import Problem

    frame = pd.read_csv(SPAMBASE)
    x, y = frame.drop(columns=["spam"]).to_numpy(np.float32), frame["spam"].to_numpy(np.float32)
    order = np.random.default_rng(0).permutation(len(frame))
    n_val = int(0.15 * len(frame))
    rows = {"val": order[:n_val], "test": order[n_val:2 * n_val], "train": order[2 * n_val:]}
    mean, std = x[rows["train"]].mean(0), x[rows["train"]].std(0) + 1e-12
    return Problem.from_arrays("binary", {k: (x[r] - mean) / std for k, r in rows.items()},
                               {k: y[r] for k, r in rows.items()}, ["accuracy"], "val_loss", torch.device("cpu"))


def spam_mlp():
    from nnlab.core.inputs import InputInfo
    from nnlab.models import build_model
    from nnlab.spec import MLPSpec

    torch.manual_seed(0)
    return build_model(MLPSpec(kind="mlp", hidden=[64, 32]), InputInfo("table", (57,), 1))


def test_adam_at_lr_100_on_spambase_diverges_and_says_lower():
    from nnlab.training import fit as train
    from nnlab.spec import TrainSpec

    problem = spambase_problem()
    result = train.fit_stack([train.BuiltMember("mlp", spam_mlp(), TrainSpec(epochs=10, optimizer={"lr": 100.0}), 0)], problem, lambda r: None)[0]
    prior = float(torch.nn.functional.binary_cross_entropy(problem.y["train"].mean().expand(len(problem.y["train"])),
                                                            problem.y["train"]))
    assert result.status == "diverged" and result.epochs_run == 1 and result.best_epoch == 0
    train_loss = result.history[0].values["train_loss"]
    assert train_loss > 1000 * prior  # 7.9e7 against a prior of 0.67
    assert result.message == (f"loss blew up at epoch 1: train loss {train_loss:.4g} is over 1000x the {prior:.4g} "
                              "of predicting the prior; try a lower learning rate (train.optimizer.lr is 100) or "
                              "set train.grad_clip")


def test_a_loss_that_rises_a_hundredfold_from_epoch_one_is_a_blow_up():
    from nnlab.training import stopping
    from nnlab.training import fit as train
    from nnlab.spec import TrainSpec

    history = [train.EpochRecord("m", 1, {"train_loss": 0.3, "val_loss": 0.4}, 0.1, 0.0)]
    spec = TrainSpec()
    ok = {"train_loss": 0.5, "val_loss": 0.5}
    losses = torch.zeros(3)
    assert stopping.divergence(2, -1, losses, ok, history, 0.69, spec) is None
    assert stopping.divergence(2, -1, losses, {"train_loss": 0.5, "val_loss": 41.0}, history, 0.69, spec) == (
        "loss blew up at epoch 2: val loss 41 is over 100x epoch 1's 0.4; try a lower learning rate "
        "(train.optimizer.lr is 0.001) or set train.grad_clip")
    # A hundredfold rise that stays below the prior's loss is not a blow-up (a near-perfect fit wobbling).
    tiny = [train.EpochRecord("m", 1, {"train_loss": 1e-5, "val_loss": 1e-5}, 0.1, 0.0)]
    assert stopping.divergence(2, -1, losses, {"train_loss": 1e-2, "val_loss": 1e-2}, tiny, 0.69, spec) is None


def test_a_healthy_high_learning_rate_is_not_called_diverged():
    from nnlab.training import fit as train
    from nnlab.spec import TrainSpec

    result = train.fit_stack([train.BuiltMember("mlp", spam_mlp(), TrainSpec(epochs=4, optimizer={"lr": 0.1}), 0)], spambase_problem(), lambda r: None)[0]
    assert result.status == "completed" and result.epochs_run == 4
