"""Successive halving inside a stack (`sweep --halving`): the stop rule against hand-computed rankings, a
compacted stack against its members trained alone, the records and views of stopped points, and the
command line's one-line errors."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from conftest import binary_table, run_folders, tiny_spec, write_spec
from nnlab import runstore
from nnlab.cli import app

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


# --- the command line: records, the sweep table, compare, packed chunks --------------------------------------

def sweep(*args, runs):
    return CliRunner().invoke(app, ["sweep", *map(str, args), "--runs-dir", str(runs)], catch_exceptions=False)


@pytest.fixture
def spec8(tmp_path):
    binary_table().to_csv(tmp_path / "data.csv", index=False)
    return write_spec(tmp_path, tiny_spec(train={"epochs": 8, "batch_size": 32}))


LRS = "train.optimizer.lr=0.0001,0.0003,0.001,0.003,0.01,0.03"


def test_a_halving_sweep_records_where_each_point_stopped_and_shows_them_apart(spec8, tmp_path):
    runs = tmp_path / "runs"
    result = sweep(spec8, "--grid", LRS, "--halving", "--rungs", 2, "--keep", 0.5, runs=runs)
    assert result.exit_code == 0, result.output
    assert "halving: after epochs 2, 4 of 8, each stack's worst live points stop (the best 50% go on)" in result.output
    assert result.output.count("completed (stopped by halving at epoch 2 (rung 1))") == 3
    summaries = {}
    for folder in run_folders(runs):
        run = runstore.read_run(folder)
        summaries[run.meta.note] = run.summary.models["mlp"]
    assert len(summaries) == 6
    ends = sorted(m.epochs_run for m in summaries.values())
    assert ends == [2, 2, 2, 4, 8, 8]
    for model in summaries.values():
        assert model.status == "completed"
        if model.epochs_run < 8:
            assert model.halved.epoch == model.epochs_run and model.halved.rung == (1 if model.epochs_run == 2 else 2)
            assert model.stop_reason == model.halved.reason
            assert model.halved.reason.startswith(f"stopped early by halving at rung {model.halved.rung} of 2")
        else:
            assert model.halved is None
    # stopped at rung 1: the 3 worst by their best val_loss of epochs 1-2, as the metrics rows rank them
    first = {}
    for folder in run_folders(runs):
        run = runstore.read_run(folder)
        first[run.meta.note] = run.metrics().query("model == 'mlp' and epoch <= 2")["val_loss"].min()
    worst = sorted(first, key=first.get)[3:]
    assert {note for note, m in summaries.items() if m.epochs_run == 2} == set(worst)
    # the sweep table: full points first, then the halved ones under a line, each marked
    table = result.output[result.output.index("best first by val_loss"):]
    marks = [line for line in table.splitlines() if "halved at epoch" in line]
    assert len(marks) == 4
    assert table.index("halved at epoch") > max(table.index(f"{m.val['loss']:.4f}") for m in summaries.values()
                                               if m.halved is None)
    assert "4 point(s) stopped early by halving, below the line" in table
    sweep_id = runstore.read_run(run_folders(runs)[0]).meta.sweep
    compare = CliRunner().invoke(app, ["compare", "--sweep", sweep_id, "--runs-dir", str(runs)],
                                 catch_exceptions=False)
    assert compare.output.count("halved at epoch 2 (rung 1)") == 3
    assert compare.output.count("halved at epoch 4 (rung 2)") == 1


@pytest.mark.parametrize("options, message", [
    (["--halving", "--keep", "1.5"], "error: --keep 1.5: the share of live points each rung keeps must be between "
                                     "0 and 1 (both excluded), e.g. --keep 0.5"),
    (["--halving", "--rungs", "0"], "error: --rungs 0: the number of halving rungs must be at least 1, e.g. --rungs 3"),
    (["--rungs", "3"], "error: --rungs: only with --halving"),
])
def test_bad_halving_options_are_one_line_errors(spec8, tmp_path, options, message):
    runs = tmp_path / "runs"
    result = sweep(spec8, "--grid", LRS, *options, runs=runs)
    assert result.exit_code == 2 and result.output.strip() == message
    assert run_folders(runs) == []


def test_halving_needs_a_sweep_of_several_points(spec8, tmp_path):
    runs = tmp_path / "runs"
    result = sweep(spec8, "--grid", "train.optimizer.lr=0.01", "--halving", runs=runs)
    assert result.exit_code == 2
    assert result.output.strip().splitlines()[-1] == ("error: --halving: the sweep has 1 point; halving ranks "
                                                      "several points (--grid with several values, or --sample N)")
    assert run_folders(runs) == []


def test_packed_chunks_follow_the_memory_estimate_and_group_by_shape(spec8, tmp_path):
    from nnlab.sweeps.grid import plan_sweep

    from nnlab.core.inputs import InputInfo
    from nnlab.models import estimate_memory
    from nnlab.spec import load_spec

    plan = plan_sweep(spec8, [LRS, "models.mlp.hidden=[8],[16]"])
    spec, _ = load_spec(spec8, plan.points[0].overrides)
    per_point = estimate_memory(spec.models[0], InputInfo("table", (3,), 1), 32)  # 3 features, 1 output
    assert per_point > 0 and plan.stack_size(0, budget=10 * per_point) == 10
    assert plan.stack_size(0, budget=per_point - 1) == 1  # never less than one point a stack
    units = plan.units(tmp_path / "runs", 1, budget=3 * per_point + 1)  # room for 3 points of [8] a stack
    shapes = [{plan.points[u.index].value("models.mlp.hidden") == [8]} |
              {plan.points[s.index].value("models.mlp.hidden") == [8] for s in u.stacked} for u in units]
    assert all(len(shape) == 1 for shape in shapes)  # a stack never mixes hidden sizes
    small = [u for u, shape in zip(units, shapes) if shape == {True}]
    assert sorted(len(u.points) for u in small) == [3, 3]  # 6 points of [8]: two stacks of 3
    assert sorted(p.index for u in small for p in u.points) == [i for i, p in enumerate(plan.points)
                                                                  if p.value("models.mlp.hidden") == [8]]
    assert all(len(u.points) == 6 for u in plan.units(tmp_path / "runs", 1) if u.stacked)  # memory to spare


def test_points_of_one_shape_pack_into_one_stack_each_equal_to_the_point_alone(tmp_path):
    """lr x hidden: the two lr points of each hidden size share a stack (grouped by shape), and every point's
    run folder holds what `nnlab train` of that point alone writes."""
    binary_table().to_csv(tmp_path / "data.csv", index=False)
    spec = write_spec(tmp_path, tiny_spec(train={"epochs": 3, "batch_size": 32}))
    runs = tmp_path / "runs"
    result = sweep(spec, "--grid", "train.optimizer.lr=1e-3,1e-2", "--grid", "models.mlp.hidden=[8],[4]", runs=runs)
    assert result.exit_code == 0, result.output
    swept = [runstore.read_run(f) for f in run_folders(runs)]
    assert len(swept) == 4 and all(r.summary.models["mlp"].stacked for r in swept)
    for run in swept:
        alone = tmp_path / f"alone-{run.id}"
        overrides = [x for setting in run.note.split(", ") for x in ("--set", setting)]
        done = CliRunner().invoke(app, ["train", str(spec), *overrides, "--runs-dir", str(alone)])
        assert done.exit_code == 0, done.output
        twin = runstore.list_runs(alone)[0][0]
        for name, model in run.summary.models.items():
            other = twin.summary.models[name]
            assert model.best_epoch == other.best_epoch
            assert model.val == pytest.approx(other.val, rel=1e-5, abs=1e-5)
            assert model.test == pytest.approx(other.test, rel=1e-5, abs=1e-5)
        ours, theirs = run.metrics().drop(columns="seconds"), twin.metrics().drop(columns="seconds")
        np.testing.assert_allclose(ours.select_dtypes("number").to_numpy(), theirs.select_dtypes("number").to_numpy(),
                                   rtol=1e-5, atol=1e-5)


def test_with_a_cull_members_that_stop_on_their_own_leave_the_stack_and_equal_themselves_alone():
    """What a packed sweep gives every stack (halving.keep_all): early stopping and a shorter epoch count end
    members early, they leave the stack, and every member equals itself trained alone."""
    from nnlab.sweeps.halving import keep_all
    from tests.test_stack import members

    p = problem()
    sizes = []
    counted = lambda epoch, standings: sizes.append(len(standings)) or keep_all(epoch, standings)
    stacked = train.fit_stack(members(), p, lambda r: None, cull=counted)
    alone = [train.fit_stack([m], p, lambda r: None)[0] for m in members()]
    for ours, theirs in zip(stacked, alone):
        assert_same_result(ours, theirs)
    assert stacked[1].stop_reason and stacked[2].epochs_run == 6 and stacked[0].epochs_run == 12
    assert sizes[0] == 3 and sizes[-1] == 1  # the early-stopped and the 6-epoch member left the stack


def test_a_point_halving_stopped_is_not_failed_by_gates_set_for_a_full_training(tmp_path):
    from nnlab.core.records import GateResult, ModelResult, RunSummary
    from nnlab.run.session import Outcome
    from nnlab.sweeps.executors.units import Unit, _result

    stop = HalvingStop(rung=1, rungs=3, epoch=5, epochs=40, rank=7, live=8, kept=4, score=0.48, reason="stopped")
    gate = GateResult(key="mlp.test.accuracy", rule=">= 0.92", value=0.86, passed=False)
    unit = Unit(0, "spec.yaml", (), str(tmp_path))

    def outcome(halved):
        model = ModelResult(name="mlp", kind="mlp", params=1, status="completed", best_epoch=5, epochs_run=5,
                            halved=halved)
        return Outcome("r", tmp_path, RunSummary(task="binary", monitor="val_loss", models={"mlp": model},
                                                 expect=[gate]))

    assert _result(unit, outcome(stop)).status == "completed"
    assert _result(unit, outcome(stop)).message == ("stopped by halving at epoch 5 (rung 1); expect "
                                                    "mlp.test.accuracy missed, not judged: it trained 5 of 40 epochs")
    assert _result(unit, outcome(None)).status == "failed"  # trained to the end: the gate judges it
