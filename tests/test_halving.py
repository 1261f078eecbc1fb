"""Successive halving inside a stack (`sweep --halving`): the stop rule against hand-computed rankings, a
compacted stack against its members trained alone, the records and views of stopped points, and the
command line's one-line errors."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from nnlab.core.records import HalvingStop
from nnlab.models import build_model
from nnlab.spec import MLPSpec, ResMLPSpec, TrainSpec
from nnlab.sweeps.halving import Halving, StackHalving, halving_stops, rung_epochs
from nnlab.training import fit as train
from nnlab.training.state import MemberStanding
from tests.test_stack import INFO, assert_same_result, problem


# --- the rule: pure functions against hand-computed rankings ------------------------------------------------

def test_rung_epochs_grow_geometrically_by_one_over_keep_below_the_last_epoch():
    assert rung_epochs(24, 3, 0.5) == [3, 6, 12]
    assert rung_epochs(40, 3, 0.5) == [5, 10, 20]
    assert rung_epochs(27, 2, 1 / 3) == [3, 9]
    assert rung_epochs(4, 3, 0.5) == [1, 2]  # 0.5 rounds up to 1 and repeats: two rungs fit in 4 epochs
    assert rung_epochs(1, 3, 0.5) == []  # nothing to stop before the only epoch


def test_halving_stops_the_worst_by_a_hand_computed_ranking():
    # val_loss (lower is better): ranking 0.2 (p3), 0.3 (p1), 0.5 (p0), 0.9 (p4), nan (p2), None (p5)
    losses = [0.5, 0.3, math.nan, 0.2, 0.9, None]
    assert halving_stops(losses, 0.5, higher=False) == [2, 4, 5]  # keep ceil(6 * 0.5) = 3: p3, p1, p0
    assert halving_stops(losses, 0.25, higher=False) == [0, 2, 4, 5]  # keep ceil(1.5) = 2
    # accuracy (higher is better): 0.9 (p3), 0.5 (p0), 0.3 (p1), 0.2 (p2); keep ceil(4 * 0.3) = 2
    assert halving_stops([0.5, 0.3, 0.2, 0.9], 0.3, higher=True) == [1, 2]
    assert halving_stops([0.4, 0.4, 0.1], 0.3, higher=True) == [1, 2]  # keep ceil(0.9) = 1; a tie: the earlier
    assert halving_stops([0.7], 0.1, higher=False) == []  # at least one point always goes on


def test_a_stacks_cull_stops_whole_points_at_rungs_only():
    cull = StackHalving(Halving(rungs=2, keep=0.5), epochs=8, monitor="val_loss")
    assert cull.rungs == [2, 4]
    # point 0 has two repeats (mean 0.4), point 1 scores 0.3, point 2 0.6 and point 3 already finished
    standings = [MemberStanding("mlp@0", 0, True, 0.35), MemberStanding("mlp@0", 1, True, 0.45),
                 MemberStanding("mlp@1", 0, True, 0.3), MemberStanding("mlp@2", 0, True, 0.6),
                 MemberStanding("mlp@3", 0, False, 0.1)]
    assert cull(3, standings) == {}
    stops = cull(2, standings)
    assert sorted(stops) == [3]  # of 3 live points keep ceil(1.5) = 2: point 1, then point 0
    assert stops[3].model_dump() == {
        "rung": 1, "rungs": 2, "epoch": 2, "epochs": 8, "rank": 3, "live": 3, "kept": 2, "score": 0.6,
        "reason": "stopped early by halving at rung 1 of 2 (epoch 2 of 8): val_loss 0.6 ranked 3 of 3 points; "
                  "the best 2 went on"}
    standings[3] = MemberStanding("mlp@2", 0, False, 0.6)  # stopped at rung 1
    assert sorted(cull(4, standings)) == [0, 1]  # of 2 live points keep 1: point 0 (mean 0.4) stops, both repeats
    standings[2] = MemberStanding("mlp@1", 0, True, 0.5)
    assert sorted(cull(4, standings)) == [2]


# --- a compacted stack equals its members alone ----------------------------------------------------------------

SETTINGS = [  # six points: learning rate, dropout, weight decay and momentum differ
    (0.0, dict(optimizer={"lr": 0.01})), (0.3, dict(optimizer={"lr": 0.05})),
    (0.0, dict(optimizer={"lr": 0.001, "weight_decay": 0.01})), (0.5, dict(optimizer={"lr": 0.02})),
    (0.1, dict(optimizer={"lr": 0.2})), (0.0, dict(optimizer={"lr": 0.003}, l1=1e-3)),
]


def built(kind="mlp", optimizer="adam", epochs=8, only=None, momentum=0.0, grad_clip=None):
    members = []
    for i, (dropout, settings) in enumerate(SETTINGS):
        if only is not None and i != only:
            continue
        spec = (MLPSpec(kind="mlp", hidden=[16, 8], dropout=dropout) if kind == "mlp"
                else ResMLPSpec(kind="resmlp", width=8, blocks=1, dropout=0.2))
        train_spec = TrainSpec(epochs=epochs, batch_size=32, early_stopping=None, grad_clip=grad_clip,
                               **{k: v for k, v in settings.items() if k != "optimizer"},
                               optimizer={**settings["optimizer"], "name": optimizer, "momentum": momentum})
        torch.manual_seed(i)
        members.append(train.BuiltMember(f"mlp@{i}", build_model(spec, INFO), train_spec, i))
    return members


@pytest.mark.parametrize("kind, optimizer, shared", [
    ("mlp", "adam", {}),
    ("mlp", "sgd", {"grad_clip": 1.0, "momentum": 0.9}),
    ("resmlp", "adamw", {}),  # a FuncStack (torch.func) compacts its weight views and dropout generators
])
def test_a_halved_stack_equals_its_members_alone_up_to_each_ones_end(kind, optimizer, shared):
    p = problem()
    cull = StackHalving(Halving(rungs=2, keep=0.5), epochs=8, monitor="val_loss")
    stops = []
    counted = lambda epoch, standings: stops.append((epoch, sum(s.live for s in standings))) or cull(epoch, standings)
    rows = []
    halved = train.fit_stack(built(kind, optimizer, **shared), p, rows.append, cull=counted)
    assert [r.name for r in halved] == [f"mlp@{i}" for i in range(6)]
    ends = sorted(r.epochs_run for r in halved)
    assert ends == [2, 2, 2, 4, 8, 8]  # 6 -> 3 go on after epoch 2 -> 2 after epoch 4
    assert [live for epoch, live in stops if epoch in (1, 3, 5)] == [6, 3, 2]  # the stack shrank
    for i, ours in enumerate(halved):
        alone = train.fit_stack(built(kind, optimizer, epochs=ours.epochs_run, only=i, **shared), p,
                                lambda r: None)[0]
        if ours.epochs_run < 8:
            assert ours.halved is not None and ours.halved.epoch == ours.epochs_run
            assert ours.stop_reason == ours.halved.reason and ours.stop_reason.startswith("stopped early by halving")
            ours.stop_reason = None  # alone it simply ran its epochs
        else:
            assert ours.halved is None
        assert ours.status == "completed"
        assert_same_result(ours, alone)
        # its metrics rows, as on_epoch saw them, are those of the member alone
        mine = [r for r in rows if r.model == f"mlp@{i}"]
        assert [r.epoch for r in mine] == list(range(1, ours.epochs_run + 1))
        for row, theirs in zip(mine, alone.history):
            assert row.values == pytest.approx(theirs.values, rel=1e-5, abs=1e-5)
