"""The hand-written stacked optimizer step against torch.optim, member by member (the oracle), with the
learning rate changed by each scheduler between epochs; gradient clipping against clip_grad_norm_."""

from __future__ import annotations

import pytest
import torch

from nnlab.training.optim import OPTIMIZERS, SCHEDULERS, Schedule, make_step, skip_dynamo_import
from nnlab.spec import OptimizerSpec, TrainSpec

SHAPES = [(4, 3), (4,), (1, 4), (1,)]  # a small MLP's weights and biases
SETTINGS = [
    ("sgd", dict(momentum=0.0, weight_decay=0.0)),
    ("sgd", dict(momentum=0.9, weight_decay=0.0)),
    ("sgd", dict(momentum=0.0, weight_decay=0.01)),
    ("sgd", dict(momentum=0.9, weight_decay=0.01)),
    ("adam", dict(weight_decay=0.0)),
    ("adam", dict(weight_decay=0.01)),
    ("adamw", dict(weight_decay=0.0)),
    ("adamw", dict(weight_decay=0.01)),
]


def members_and_oracles(name, settings, lrs, seed=0):
    """K members (one lr each) as flat rows, and for each a torch optimizer over the same values as tensors."""
    skip_dynamo_import()
    torch.manual_seed(seed)
    tensors = [[torch.randn(shape) for shape in SHAPES] for _ in lrs]
    flat = torch.stack([torch.cat([t.reshape(-1) for t in member]) for member in tensors])
    specs = [OptimizerSpec(name=name, lr=lr, **settings) for lr in lrs]
    oracles = []
    for member, spec in zip(tensors, specs):
        params = [torch.nn.Parameter(t.clone()) for t in member]
        kwargs = {"lr": spec.lr, "weight_decay": spec.weight_decay}
        if name == "sgd":
            kwargs["momentum"] = spec.momentum
        oracles.append((params, OPTIMIZERS[name](params, **kwargs)))
    return flat, specs, oracles


def give_gradients(grads, oracles, generator):
    g = torch.randn(grads.shape, generator=generator)
    grads.copy_(g)
    for k, (params, _) in enumerate(oracles):
        offset = 0
        for p in params:
            p.grad = g[k, offset:offset + p.numel()].reshape(p.shape).clone()
            offset += p.numel()


def assert_members_equal(flat, oracles, rtol=1e-5, atol=1e-6):
    for k, (params, _) in enumerate(oracles):
        torch.testing.assert_close(flat[k], torch.cat([p.detach().reshape(-1) for p in params]), rtol=rtol,
                                   atol=atol)


@pytest.mark.parametrize("fused", [True, False], ids=["fused kernels", "tensor ops"])
@pytest.mark.parametrize("name, settings", SETTINGS, ids=[f"{n}-{s}" for n, s in SETTINGS])
def test_the_stacked_step_equals_torch_optim_for_every_member(name, settings, fused):
    flat, specs, oracles = members_and_oracles(name, settings, lrs=[0.1, 0.01, 0.01])
    grads = torch.zeros_like(flat)
    step = make_step(specs, flat, grads)
    assert step.fused  # torch >= 2.4 on the CPU
    step.fused = fused
    generator = torch.Generator().manual_seed(1)
    before = flat.clone()
    for _ in range(6):
        give_gradients(grads, oracles, generator)
        step()
        for _, optimizer in oracles:
            optimizer.step()
    assert not torch.equal(flat, before)
    assert_members_equal(flat, oracles)


SCHEDULES = [{"name": "step", "step_size": 2, "gamma": 0.5}, {"name": "cosine", "min_lr": 0.001},
             {"name": "plateau", "factor": 0.5, "patience": 1}]


@pytest.mark.parametrize("scheduler", SCHEDULES, ids=[s["name"] for s in SCHEDULES])
@pytest.mark.parametrize("name", ["sgd", "adam", "adamw"])
def test_schedulers_change_each_members_lr_as_torch_does(name, scheduler):
    lrs = [0.1, 0.02]
    settings = {"momentum": 0.9} if name == "sgd" else {"weight_decay": 0.01}
    flat, specs, oracles = members_and_oracles(name, settings, lrs)
    trains = [TrainSpec(epochs=6, optimizer=spec, scheduler=scheduler) for spec in specs]
    schedules = [Schedule(train, higher_is_better=False) for train in trains]
    torch_schedulers = [SCHEDULERS[scheduler["name"]](optimizer, train.scheduler, train.epochs, "min")
                        for train, (_, optimizer) in zip(trains, oracles)]
    grads = torch.zeros_like(flat)
    step = make_step(specs, flat, grads)
    generator = torch.Generator().manual_seed(2)
    scores = [1.0, 0.9, 0.95, 0.96, 0.97, 0.98]  # plateau: no improvement after epoch 2
    seen = []
    for epoch, score in enumerate(scores):
        step.set_lrs([s.lr for s in schedules])
        seen.append([s.lr for s in schedules])
        for _ in range(3):
            give_gradients(grads, oracles, generator)
            step()
            for _, optimizer in oracles:
                optimizer.step()
        for ours, theirs in zip(schedules, torch_schedulers):
            ours.step(score)
            theirs.step(score) if scheduler["name"] == "plateau" else theirs.step()
        assert [s.lr for s in schedules] == pytest.approx([o.param_groups[0]["lr"] for _, o in oracles], rel=1e-12)
    assert_members_equal(flat, oracles, rtol=1e-5, atol=1e-5)
    first_member = [lrs[0] for lrs in seen]
    if scheduler["name"] == "step":
        assert first_member == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.025, 0.025])
    elif scheduler["name"] == "plateau":  # 2 epochs without improvement (> patience 1) halve the rate
        assert first_member == pytest.approx([0.1, 0.1, 0.1, 0.1, 0.05, 0.05])
    else:
        assert first_member[0] == 0.1 and all(a > b for a, b in zip(first_member, first_member[1:]))


def test_an_inactive_member_does_not_move_and_the_others_do_as_alone():
    flat, specs, oracles = members_and_oracles("adam", {"weight_decay": 0.01}, lrs=[0.1, 0.1, 0.05])
    grads = torch.zeros_like(flat)
    step = make_step(specs, flat, grads)
    generator = torch.Generator().manual_seed(3)
    give_gradients(grads, oracles, generator)
    step()
    for _, optimizer in oracles:
        optimizer.step()
    step.set_active([True, False, True])
    frozen = flat[1].clone()
    for _ in range(4):
        give_gradients(grads, oracles, generator)
        grads[1] = float("nan")  # even a diverged member's gradients leave it (and the others) alone
        step()
        for k in (0, 2):
            oracles[k][1].step()
    assert torch.equal(flat[1], frozen)
    for k in (0, 2):
        torch.testing.assert_close(flat[k], torch.cat([p.detach().reshape(-1) for p in oracles[k][0]]),
                                   rtol=1e-5, atol=1e-6)


def test_grad_clip_per_member_equals_clip_grad_norm():
    flat, specs, oracles = members_and_oracles("sgd", {}, lrs=[1.0, 1.0, 1.0])
    grads = torch.zeros_like(flat)
    clips = [0.5, None, 100.0]
    step = make_step(specs, flat, grads, clips)
    give_gradients(grads, oracles, torch.Generator().manual_seed(4))
    norms = torch.linalg.vector_norm(grads, dim=1)
    assert norms[0] > 0.5 and norms[2] < 100  # the first is clipped, the last is not
    before = flat.clone()
    step()
    moved = torch.linalg.vector_norm(before - flat, dim=1)  # SGD at lr 1: the step is the clipped gradient
    assert moved[0] <= 0.5 + 1e-6 and moved[0] == pytest.approx(0.5, rel=1e-5)
    assert moved[1] == pytest.approx(float(norms[1]), rel=1e-6) and moved[2] == pytest.approx(float(norms[2]),
                                                                                                rel=1e-6)
    for (params, optimizer), clip in zip(oracles, clips):
        if clip:
            torch.nn.utils.clip_grad_norm_(params, clip)
        optimizer.step()
    assert_members_equal(flat, oracles)
