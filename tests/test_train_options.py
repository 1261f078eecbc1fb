"""The train options no other test trains: class_weights, grad_clip, l1, adamw, step and plateau schedulers
and an explicit device, each through `fit` on tiny data."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from nnlab.training import fit as train
from nnlab.errors import SpecError
from nnlab.core.inputs import InputInfo
from nnlab.models import build_model
from nnlab.training.optim import build_loss, class_weights
from nnlab.spec import MLPSpec, TrainSpec


def problem(task="binary", n=240, seed=0, classes=3):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4)).astype(np.float32)
    score = x[:, 0] + 0.5 * x[:, 1] + rng.normal(scale=0.3, size=n)
    if task == "binary":  # imbalanced: about one in five is positive
        y = (score > np.quantile(score, 0.8)).astype(np.float32)
    else:
        y = np.digitize(score, np.quantile(score, [0.6, 0.9])).astype(np.int64)
    parts = {"train": slice(0, n // 2), "val": slice(n // 2, 3 * n // 4), "test": slice(3 * n // 4, n)}
    return train.Problem.from_arrays(task, {k: x[s] for k, s in parts.items()}, {k: y[s] for k, s in parts.items()},
                                     ["accuracy"], "val_loss", torch.device("cpu"),
                                     n_outputs=1 if task == "binary" else classes)


def mlp(n_outputs=1, seed=0):
    torch.manual_seed(seed)
    return build_model(MLPSpec(kind="mlp", hidden=[8]), InputInfo("table", (4,), n_outputs))


def fit(spec, task="binary", n_outputs=1, **kwargs):
    model = mlp(n_outputs)
    return train.fit_stack([train.BuiltMember("m", model, spec, 0)], problem(task, **kwargs), lambda r: None)[0], model


def test_balanced_class_weights_are_inverse_frequencies():
    y = torch.tensor([0, 0, 0, 0, 0, 0, 1, 1, 2, 2, 2, 2])
    counts = np.array([6, 2, 4])
    np.testing.assert_allclose(class_weights("multiclass", y, 3), 12 / (3 * counts))  # n / (classes * count_c)
    y_binary = torch.tensor([0, 0, 0, 1.0])
    assert class_weights("binary", y_binary, 1).tolist() == [3.0]  # pos_weight = negatives / positives
    # The loss uses them as torch's weighted losses do, per member of a stack too.
    spec = TrainSpec(class_weights="balanced")
    outputs = torch.randn(2, 12, 3)
    loss = build_loss("multiclass", spec, y, 3)(outputs, y.expand(2, 12))
    weight = torch.tensor(12 / (3 * counts), dtype=torch.float32)
    for k in range(2):
        assert loss[k] == pytest.approx(float(F.cross_entropy(outputs[k], y, weight=weight)), rel=1e-6)
    logits = torch.randn(4, 1)
    binary = build_loss("binary", spec, y_binary, 1)(logits, y_binary)
    assert binary == pytest.approx(float(F.binary_cross_entropy_with_logits(
        logits.reshape(-1), y_binary, pos_weight=torch.tensor([3.0]))), rel=1e-6)


@pytest.mark.parametrize("task, n_outputs", [("binary", 1), ("multiclass", 3)])
def test_class_weights_raise_the_recall_of_the_rare_class(task, n_outputs):
    spec = TrainSpec(epochs=30, batch_size=32, optimizer={"lr": 0.02}, early_stopping=None)
    plain, plain_model = fit(spec, task, n_outputs)
    weighted, weighted_model = fit(spec.model_copy(update={"class_weights": "balanced"}), task, n_outputs)
    p = problem(task)
    rare = p.y["val"] == (1 if task == "binary" else 2)

    def rare_recall(model):
        with torch.no_grad():
            out = model(p.x["val"])
        predicted = (out.reshape(-1) > 0).float() if task == "binary" else out.argmax(1)
        return float((predicted[rare] == p.y["val"][rare]).float().mean())
    assert rare_recall(weighted_model) > rare_recall(plain_model)
    assert weighted.val["loss"] != plain.val["loss"]


def test_l1_shrinks_the_weights_and_not_the_biases_more_than_without():
    spec = TrainSpec(epochs=20, batch_size=32, optimizer={"lr": 0.01}, early_stopping=None)
    _, plain = fit(spec)
    _, sparse = fit(spec.model_copy(update={"l1": 0.01}))
    weight_sum = lambda model: sum(float(p.detach().abs().sum()) for p in model.parameters() if p.dim() > 1)
    assert weight_sum(sparse) < 0.8 * weight_sum(plain)


def test_grad_clip_trains_with_bounded_steps():
    spec = TrainSpec(epochs=3, batch_size=32, optimizer={"name": "sgd", "lr": 1.0}, grad_clip=0.01,
                     early_stopping=None)
    model = mlp()
    before = torch.cat([p.detach().reshape(-1).clone() for p in model.parameters()])
    result = train.fit_stack([train.BuiltMember("m", model, spec, 0)], problem(), lambda r: None)[0]
    after = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    steps = 3 * 4  # 120 training rows in batches of 32: 4 steps an epoch
    # SGD at lr 1: each step moves the weights by the clipped gradient, of norm <= 0.01.
    assert result.best_epoch >= 1 and 0 < float(torch.linalg.vector_norm(after - before)) <= steps * 0.01 + 1e-6


def test_adamw_trains_and_decays_differently_from_adam():
    base = TrainSpec(epochs=10, batch_size=32, optimizer={"name": "adam", "lr": 0.01, "weight_decay": 0.1},
                     early_stopping=None)
    adam, adam_model = fit(base)
    adamw, adamw_model = fit(base.model_copy(update={"optimizer": base.optimizer.model_copy(
        update={"name": "adamw"})}))
    assert adamw.status == "completed" and adamw.val["loss"] < 0.9 * adamw.history[0].values["val_loss"]
    assert not torch.equal(adam_model[0].weight, adamw_model[0].weight)


def test_step_scheduler_lr_per_epoch():
    spec = TrainSpec(epochs=5, batch_size=32, optimizer={"lr": 0.1}, early_stopping=None,
                     scheduler={"name": "step", "step_size": 2, "gamma": 0.5})
    result, _ = fit(spec)
    assert [r.lr for r in result.history] == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.025])


def test_plateau_scheduler_lowers_lr_after_patience_epochs_without_improvement():
    # lr 0 never improves the validation loss, so every epoch after the first is a bad one.
    spec = TrainSpec(epochs=6, batch_size=32, optimizer={"name": "sgd", "lr": 1e-30}, early_stopping=None,
                     scheduler={"name": "plateau", "factor": 0.5, "patience": 1})
    result, _ = fit(spec)
    # epochs 2 and 3 are bad (> patience 1): the rate halves for epoch 4; again after epochs 4 and 5.
    assert [r.lr for r in result.history] == pytest.approx([1e-30, 1e-30, 1e-30, 5e-31, 5e-31, 2.5e-31])


def test_device_cpu_trains_on_the_cpu_and_equals_auto_here():
    assert train.resolve_device("cpu") == torch.device("cpu")
    spec = TrainSpec(epochs=3, batch_size=32, device="cpu")
    on_cpu, _ = fit(spec)
    if not torch.cuda.is_available() and not torch.backends.mps.is_available():
        auto, _ = fit(spec.model_copy(update={"device": "auto"}))
        assert on_cpu.val == auto.val
    assert all(v.device.type == "cpu" for v in on_cpu.state.values())
    with pytest.raises(SpecError, match=r"train.device: 'cuda:7' is not available here"):
        if torch.cuda.device_count() > 7:
            pytest.skip("this machine has 8 CUDA devices")
        train.resolve_device("cuda:7")


def test_the_fp16_loss_scale_path_leaves_fp32_results_unchanged_and_skips_overflowed_members():
    # fp16 needs CUDA; its loss scaling runs here in fp32, where scaling by a power of two is exact.
    from nnlab.training import loop
    from nnlab.training.lossscale import LossScale
    from nnlab.training.placement import Placement

    spec = TrainSpec(epochs=3, batch_size=32, early_stopping=None)
    plain, _ = fit(spec)
    model = mlp()
    scaled = loop.run_epochs([train.BuiltMember("m", model, spec, 0)], problem(), lambda r: None,
                             Placement(torch.device("cpu"), loss_scale=True))[0]
    assert scaled.val == plain.val and scaled.history[-1].values == plain.history[-1].values
    scale = LossScale(torch.device("cpu"))
    grads = torch.ones(2, 3) * 2.0 ** 16
    grads[1, 0] = float("inf")
    assert scale.unscale(grads).reshape(-1).tolist() == [False, True]
    assert grads[0].tolist() == [1.0, 1.0, 1.0] and float(scale.value) == 2.0 ** 15  # halved after an overflow
