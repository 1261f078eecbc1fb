"""Stacked members: each member of a stack equals the same member trained alone with its seed."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from nnlab.training import fit as train
from nnlab.core.inputs import InputInfo
from nnlab.models import build_model
from nnlab.spec import CNNSpec, MLPSpec, ResMLPSpec, TrainSpec
from nnlab.training.stack import can_stack

INFO = InputInfo("table", (5,), 1)


def problem(n=300, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 5)).astype(np.float32)
    y = (x[:, 0] - x[:, 1] * x[:, 2] + rng.normal(scale=0.5, size=n) > 0).astype(np.float32)
    parts = {"train": slice(0, 200), "val": slice(200, 250), "test": slice(250, 300)}
    return train.Problem.from_arrays("binary", {k: x[s] for k, s in parts.items()},
                                     {k: y[s] for k, s in parts.items()}, ["accuracy", "roc_auc"], "val_loss",
                                     torch.device("cpu"))


def member(spec, seed, train_spec, name=None, index=0):
    torch.manual_seed(seed)
    return train.BuiltMember(name or f"m{seed}", build_model(spec, INFO), train_spec, seed, index)


# Members that differ in seed, dropout, learning rate, weight decay and early stopping; the second one
# stops early (patience 1 at a high learning rate), the third runs fewer epochs.
MEMBERS = [
    (MLPSpec(kind="mlp", hidden=[16, 8]), 0, dict(optimizer={"lr": 0.01})),
    (MLPSpec(kind="mlp", hidden=[16, 8], dropout=0.3), 1, dict(optimizer={"lr": 0.05}, early_stopping={"patience": 1})),
    (MLPSpec(kind="mlp", hidden=[16, 8], dropout=0.5), 2, dict(optimizer={"lr": 0.003, "weight_decay": 0.01},
                                                                epochs=6)),
]


def members(optimizer_name="adam", **shared):
    out = []
    for index, (spec, seed, settings) in enumerate(MEMBERS):
        settings = {"epochs": 12, "batch_size": 32, "early_stopping": None, **settings, **shared}
        settings["optimizer"] = {**settings["optimizer"], "name": optimizer_name}
        out.append(member(spec, seed, TrainSpec(**settings), index=index))
    return out


def assert_same_result(stacked, alone, tol=1e-5):
    assert (stacked.name, stacked.status, stacked.best_epoch, stacked.epochs_run, stacked.stop_reason) == (
        alone.name, alone.status, alone.best_epoch, alone.epochs_run, alone.stop_reason)
    for ours, theirs in zip(stacked.history, alone.history):
        assert ours.values == pytest.approx(theirs.values, rel=tol, abs=tol)
        assert ours.lr == theirs.lr
    assert stacked.val == pytest.approx(alone.val, rel=tol, abs=tol)
    assert stacked.test == pytest.approx(alone.test, rel=tol, abs=tol)
    assert stacked.state.keys() == alone.state.keys()
    for key in alone.state:
        torch.testing.assert_close(stacked.state[key], alone.state[key], rtol=tol, atol=tol)
    np.testing.assert_allclose(stacked.val_probabilities, alone.val_probabilities, rtol=tol, atol=tol)


@pytest.mark.parametrize("optimizer_name, shared", [("adam", {}), ("sgd", {"grad_clip": 1.0, "l1": 1e-3})])
def test_stacked_members_equal_members_trained_alone(optimizer_name, shared):
    p = problem()
    stack = members(optimizer_name, **shared)
    assert train.can_stack_members(stack) == (True, "")
    records = []
    stacked = train.fit_stack(stack, p, records.append)
    alone = [train.fit_stack([m], p, lambda r: None)[0] for m in members(optimizer_name, **shared)]
    for ours, theirs in zip(stacked, alone):
        assert_same_result(ours, theirs)
    if optimizer_name == "adam":
        assert stacked[1].stop_reason and stacked[1].epochs_run < 12  # stopped early, the others went on
        assert stacked[2].epochs_run == 6 and stacked[0].epochs_run == 12
    # on_epoch sees each member's epochs, tagged with the member.
    assert [(r.model, r.member) for r in records if r.epoch == 1] == [("m0", 0), ("m1", 1), ("m2", 2)]
    assert len(records) == sum(r.epochs_run for r in stacked)


def test_fit_is_the_one_member_case_and_its_module_holds_the_best_weights():
    p = problem()
    spec = TrainSpec(epochs=5, batch_size=32, early_stopping=None, optimizer={"lr": 0.01})
    model = member(MEMBERS[1][0], 1, spec).model
    result = train.fit_stack([train.BuiltMember("m1", model, spec, 1)], p, lambda r: None)[0]
    (same,) = train.fit_stack([member(MEMBERS[1][0], 1, spec)], p, lambda r: None)
    assert result.val == same.val and result.history[-1].values == same.history[-1].values
    for key, value in model.state_dict().items():
        assert torch.equal(value, result.state[key])


def test_an_interrupt_in_a_stack_returns_every_members_result():
    def on_epoch(record):
        if record.epoch == 3 and record.member == 2:
            raise KeyboardInterrupt
    with pytest.raises(train.FitInterrupted) as caught:
        train.fit_stack(members(), problem(), on_epoch)
    results = caught.value.results
    assert [r.status for r in results] == ["interrupted"] * 3 and caught.value.result is results[0]
    assert all(r.epochs_run == 3 and r.test == {} and r.state is not None for r in results)


def test_members_that_cannot_stack_train_one_after_another_with_the_same_results():
    p = problem()
    spec = TrainSpec(epochs=4, batch_size=32, early_stopping=None)
    mixed = [member(MLPSpec(kind="mlp", hidden=[8], norm="batchnorm"), 0, spec),
             member(ResMLPSpec(kind="resmlp", width=8, blocks=1), 1, spec)]
    assert train.can_stack_members(mixed) == (False, "a BatchNorm1d layer has no stacked form")
    results = train.fit_one_after_another(mixed, p, lambda r: None)
    torch.manual_seed(1)
    alone = train.fit_stack([train.BuiltMember("m1", build_model(ResMLPSpec(kind="resmlp", width=8, blocks=1), INFO), spec, 1)], p, lambda r: None)[0]
    assert [r.name for r in results] == ["m0", "m1"] and results[1].val == alone.val


def test_can_stack_says_why_not():
    mlp = MLPSpec(kind="mlp", name="a", hidden=[64, 32], train=TrainSpec())
    assert can_stack([mlp, mlp.model_copy(update={"name": "b", "dropout": 0.3})]) == (True, "")
    assert can_stack([mlp, ResMLPSpec(kind="resmlp", name="r", train=TrainSpec())]) == (
        False, "different architectures: kind mlp (a) vs resmlp (r)")
    assert can_stack([mlp.model_copy(update={"norm": "batchnorm"})]) == (False, "a: batchnorm layers do not stack")
    assert can_stack([mlp, mlp.model_copy(update={"name": "b", "hidden": [128]})]) == (
        False, "different architectures: hidden [64, 32] (a) vs [128] (b)")
    assert can_stack([mlp, mlp.model_copy(update={"name": "b", "train": TrainSpec(batch_size=32)})]) == (
        False, "different train.batch_size: 64, 32")
    assert can_stack([mlp], input_kind="text") == (True, "")  # through torch.func, as every kind
    cnn = CNNSpec(kind="cnn", name="c", dropout=0.2, train=TrainSpec())
    assert can_stack([cnn, cnn.model_copy(update={"name": "d", "dropout": 0.3})]) == (True, "")
    assert can_stack([cnn, cnn.model_copy(update={"name": "d", "dropout": 0.0})]) == (
        False, "different architectures: dropout 0.2 (c) vs 0.0 (d): one has dropout layers, the other none")


# --- resume: a LoopState after any epoch continues exactly --------------------------------------------

def strip_seconds(result):
    return [(r.epoch, r.values, r.lr, r.member) for r in result.history]


def assert_identical(resumed, uninterrupted):
    assert (resumed.status, resumed.best_epoch, resumed.epochs_run, resumed.stop_reason, resumed.val,
            resumed.test) == (uninterrupted.status, uninterrupted.best_epoch, uninterrupted.epochs_run,
                              uninterrupted.stop_reason, uninterrupted.val, uninterrupted.test)
    assert strip_seconds(resumed) == strip_seconds(uninterrupted)
    for key in uninterrupted.state:
        assert torch.equal(resumed.state[key], uninterrupted.state[key]), key
    assert np.array_equal(resumed.val_probabilities, uninterrupted.val_probabilities)


@pytest.mark.parametrize("cut", [1, 4, 7])
def test_a_stack_resumed_from_any_epoch_equals_the_uninterrupted_run(cut):
    p = problem()
    scheduled = dict(scheduler={"name": "plateau", "factor": 0.5, "patience": 1})
    states = []
    uninterrupted = train.fit_stack(members(**scheduled), p, lambda r: None, on_state=states.append)
    assert [s.epoch for s in states] == list(range(1, 13))
    state = states[cut - 1]
    torch.manual_seed(999)  # whatever ran in between, the state carries the generators
    seen = []
    resumed = train.fit_stack(members(**scheduled), p, seen.append, resume=state)
    assert min(r.epoch for r in seen) == cut + 1  # only the epochs after the state are trained again
    for ours, theirs in zip(resumed, uninterrupted):
        assert_identical(ours, theirs)


def test_a_single_module_resumes_with_its_buffers_and_the_global_generator():
    p = problem()
    spec = TrainSpec(epochs=6, batch_size=32, early_stopping={"patience": 3}, optimizer={"name": "sgd", "lr": 0.05,
                                                                                         "momentum": 0.9})
    kinds = [MLPSpec(kind="mlp", hidden=[8], norm="batchnorm", dropout=0.3),
             ResMLPSpec(kind="resmlp", width=8, blocks=1, dropout=0.3)]
    for kind in kinds:
        states = []
        torch.manual_seed(5)
        uninterrupted = train.fit_stack([train.BuiltMember("m", build_model(kind, INFO), spec, 5)], p, lambda r: None, on_state=states.append)[0]
        torch.manual_seed(5)
        model = build_model(kind, INFO)
        torch.manual_seed(123)
        resumed = train.fit_stack([train.BuiltMember("m", model, spec, 5)], p, lambda r: None, resume=states[2])[0]
        assert_identical(resumed, uninterrupted)
        with pytest.raises(ValueError, match=r"a saved loop state of \['m'\] does not fit the members \['other'\]"):
            train.fit_stack([train.BuiltMember("other", build_model(kind, INFO), spec, 5)], p, lambda r: None, resume=states[2])[0]


def test_an_interrupt_while_members_train_one_after_another_keeps_the_finished_ones():
    spec = TrainSpec(epochs=3, batch_size=32, early_stopping=None)
    mixed = [member(ResMLPSpec(kind="resmlp", width=8, blocks=1), 0, spec),
             member(ResMLPSpec(kind="resmlp", width=8, blocks=1), 1, spec)]

    def on_epoch(record):
        if record.model == "m1" and record.epoch == 2:
            raise KeyboardInterrupt
    with pytest.raises(train.FitInterrupted) as caught:
        train.fit_one_after_another(mixed, problem(), on_epoch)
    first, second = caught.value.results
    assert (first.status, first.epochs_run, bool(first.test)) == ("completed", 3, True)
    assert (second.status, second.epochs_run, second.test) == ("interrupted", 2, {})


# --- the stack's own backward: autograd's gradients bit for bit ---------------------------------------

@pytest.mark.parametrize("activation", [nn.ReLU(), nn.Tanh(), nn.Sigmoid(), nn.GELU(), nn.GELU("tanh"),
                                        nn.LeakyReLU(0.2)])
def test_the_taped_backward_gives_autograds_gradients_exactly(activation):
    from nnlab.training.stack import build_stack

    def mlp(seed, dropout):
        torch.manual_seed(seed)
        layers = [nn.Flatten(), nn.Linear(6, 9), activation, nn.Dropout(dropout), nn.Linear(9, 4), activation,
                  nn.Linear(4, 3)]
        return nn.Sequential(*layers)
    models = [mlp(0, 0.3), mlp(1, 0.0), mlp(2, 0.5)]
    stack = build_stack(models, [0, 1, 2], torch.device("cpu"))
    assert stack.has_backward
    x, y = torch.randn(3, 10, 2, 3), torch.randint(0, 3, (3, 10))
    generators = stack.generator_states()
    loss = lambda out: F.cross_entropy(out.reshape(-1, 3), y.reshape(-1), reduction="none").reshape(3, 10).mean(-1)
    stack.grads.fill_(float("nan"))  # the taped backward writes every gradient: nothing is left from before
    outputs, tape = stack.forward_taped(x)
    outputs.requires_grad_()
    stack.backward(torch.autograd.grad(loss(outputs).sum(), outputs)[0], tape)
    taped = stack.grads.clone()
    stack.load_generator_states(generators)  # the same dropout masks
    stack.grads.zero_()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the stacked weights' gradient layout
        loss(stack(x, training=True)).sum().backward()
    assert torch.equal(outputs.detach(), stack(x, training=False)) is False  # dropout was on in training
    assert torch.equal(taped, stack.grads)
    assert taped.abs().sum() > 0


@pytest.mark.parametrize("task, settings", [("binary", {}), ("binary", {"class_weights": "balanced"}),
                                            ("regression", {"loss": "mse"}), ("regression", {"loss": "auto"})])
def test_the_loss_gradient_without_autograd_is_autograds_exactly(task, settings):
    from nnlab.training.optim import build_loss, build_loss_grad

    spec = TrainSpec(**settings)
    y_train = torch.tensor([0.0, 1, 1, 0, 0, 0]) if task == "binary" else torch.randn(6)
    outputs = torch.randn(3, 21, 1)  # 21 rows: 1 / 21 is not exact in binary
    target = (torch.rand(3, 21) > 0.5).float() if task == "binary" else torch.randn(3, 21)
    losses, grad = build_loss_grad(task, spec, y_train, 1)(outputs, target)
    leaf = outputs.clone().requires_grad_()
    expected = build_loss(task, spec, y_train, 1)(leaf, target)
    assert torch.equal(losses, expected.detach())
    assert torch.equal(grad, torch.autograd.grad(expected.sum(), leaf)[0])


def test_losses_without_a_written_gradient_leave_it_to_autograd():
    from nnlab.training.optim import build_loss_grad

    for task, settings in (("multiclass", {}), ("regression", {"loss": "mae"}), ("regression", {"loss": "huber"})):
        assert build_loss_grad(task, TrainSpec(**settings), torch.tensor([0, 1, 2]), 3) is None


def test_the_fp16_loss_scale_is_part_of_the_saved_state(tmp_path):
    # fp16 (CUDA) steps scale the loss by a factor that halves on an overflow and doubles after 2000 clean
    # steps; a resumed run must go on from the scale it had, not from 2^16 again.
    from nnlab.training.lossscale import LossScale
    from nnlab.training.loop import Loop
    from nnlab.training.placement import Placement
    from nnlab.training.statecodec import decode_state, encode_state
    from nnlab.runstore.checkpoints import read_checkpoint, write_checkpoint

    def loop():
        return Loop(members(), problem(), Placement(torch.device("cpu"), loss_scale=True))
    before = loop()
    before.scaler.value.fill_(512.0)
    before.scaler.growth.fill_(37)
    write_checkpoint(tmp_path / "state.safetensors", *encode_state(before.state()))
    after = loop()
    assert after.scaler.value.item() == 2.0 ** 16
    after.load_state(decode_state(*read_checkpoint(tmp_path / "state.safetensors")))
    assert (after.scaler.value.item(), after.scaler.growth.item()) == (512.0, 37)
