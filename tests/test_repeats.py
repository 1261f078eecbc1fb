"""`nnlab train --repeats N` end to end: one split, N seeds, mean ± sd over the members' own numbers, and the
run saying which models stacked and why the others trained one after another."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from conftest import binary_table, run_folders, tiny_spec, write_spec
from nnlab import runstore

MODELS = [{"name": "mlp", "kind": "mlp", "hidden": [8], "dropout": 0.2},
          {"name": "bn", "kind": "mlp", "hidden": [8], "norm": "batchnorm"}]


@pytest.fixture
def repeated(tmp_path, cli, runs):
    binary_table().to_csv(tmp_path / "data.csv", index=False)
    spec = write_spec(tmp_path, tiny_spec(models=MODELS, train={"epochs": 4, "batch_size": 32}))
    result = cli("train", spec, "--repeats", "3")
    assert result.exit_code == 0, result.output
    return tmp_path, result, runstore.read_run(run_folders(runs)[-1])


def test_each_models_score_is_the_mean_and_sd_of_its_members_own_numbers(repeated):
    _, _, run = repeated
    for name in ("mlp", "bn"):
        model = run.summary.models[name]
        assert model.repeats == 3 and [m.seed for m in model.members] == [0, 1, 2]
        for split, mean, sd in (("val", model.val, model.val_sd), ("test", model.test, model.test_sd)):
            for metric in ("loss", "accuracy", "roc_auc"):
                values = [getattr(m, split)[metric] for m in model.members]
                assert mean[metric] == pytest.approx(np.mean(values), rel=1e-12)
                assert sd[metric] == pytest.approx(np.std(values, ddof=1), rel=1e-9)
        assert len({m.val["loss"] for m in model.members}) == 3  # the seeds make the members differ
    assert run.summary.models["baseline"].repeats == 1  # the baseline is deterministic: fitted once
    rows = run.metrics()  # every member's own epochs, marked with its member number
    for name in ("mlp", "bn"):
        epochs = rows[rows["model"] == name].groupby("member")["epoch"].max()
        assert epochs.to_dict() == {k: m.epochs_run for k, m in enumerate(run.summary.models[name].members)}


def test_member_k_is_the_run_with_seed_k_on_the_same_split(repeated, cli, runs):
    # Repeats vary the seed of initialisation, batch order and dropout, never the split: member 2 of the
    # repeated run (seed 0) equals a single run with seed 2 whose split seed is pinned to 0.
    tmp_path, _, run = repeated
    single = write_spec(tmp_path, tiny_spec(models=MODELS, seed=2, train={"epochs": 4, "batch_size": 32},
                                            data={"path": "data.csv", "target": "label", "split": {"seed": 0}}),
                        "single.yaml")
    before = set(run_folders(runs))
    assert cli("train", single).exit_code == 0
    new, = set(run_folders(runs)) - before
    alone = runstore.read_run(new).summary.models
    for name in ("mlp", "bn"):
        member = run.summary.models[name].members[2]
        assert member.val == pytest.approx(alone[name].val, rel=1e-5, abs=1e-6)
        assert member.test == pytest.approx(alone[name].test, rel=1e-5, abs=1e-6)
        assert member.best_epoch == alone[name].best_epoch


def test_the_run_says_which_models_stacked_and_why_the_others_did_not(repeated, cli):
    _, result, run = repeated
    mlp, bn = run.summary.models["mlp"], run.summary.models["bn"]
    assert (mlp.stacked, mlp.not_stacked) == (True, None)
    assert bn.stacked is False and bn.not_stacked == "a BatchNorm1d layer has no stacked form"
    out = " ".join(result.stdout.split())
    assert "stacked: mlp trained together as one stack of members" in out
    assert "one after another: bn's 3 repeats (a BatchNorm1d layer has no stacked form; sec adds them up)" in out
    shown = " ".join(cli("show", run.path).stdout.split())
    assert "one after another: bn's 3 repeats (a BatchNorm1d layer has no stacked form" in shown


# One small model of each registered kind, with dropout where the kind has it, and the data it reads.
KIND_MODELS = {
    "mlp": [({"hidden": [8], "dropout": 0.3}, {})],
    "resmlp": [({"width": 8, "blocks": 1, "dropout": 0.3}, {})],
    "cnn": [({"channels": [4], "kernel": 3, "dropout": 0.3}, {"image": {"shape": [1, 3, 4]}}),
            ({"channels": [4], "kernel": 3, "dropout": 0.3}, {"sequence": {"steps": 4}})],
    "rnn": [({"cell": "gru", "hidden": 6, "layers": 2, "dropout": 0.3}, {"sequence": {"steps": 4}}),
            ({"cell": "lstm", "hidden": 6, "layers": 2, "dropout": 0.3}, {"sequence": {"steps": 4}})],
    "transformer": [({"d_model": 8, "heads": 2, "layers": 1, "ff": 16, "dropout": 0.3}, {"sequence": {"steps": 4}})],
}


def _kind_cases():
    from nnlab.models import MODELS

    assert set(KIND_MODELS) == set(MODELS), "every registered model kind has a case here"
    return [pytest.param(kind, fields, data, id=f"{kind}-{next(iter(data), 'table')}-{fields.get('cell', '')}")
            for kind in MODELS for fields, data in KIND_MODELS[kind]]


@pytest.mark.parametrize("kind,fields,data", _kind_cases())
def test_member_k_with_dropout_is_the_run_with_seed_k_for_every_kind_stacked(tmp_path, cli, runs, kind, fields,
                                                                            data):
    # Every kind stacks; each member draws its dropout masks from its own generator, as it does alone, so it
    # equals its run alone up to the rounding of batched kernels (1e-5).
    rng = np.random.default_rng(5)
    x = rng.normal(size=(96, 12))
    frame = pd.DataFrame(x).add_prefix("v").assign(label=(x[:, 0] + x[:, 5] > 0).astype(int))
    frame.to_csv(tmp_path / "grid.csv", index=False)
    model = {"name": "net", "kind": kind, **fields}
    base = {"models": [model], "baseline": False, "train": {"epochs": 4, "batch_size": 16}}
    source = {"path": "grid.csv", "target": "label", "split": {"seed": 0}, **data}
    repeated = write_spec(tmp_path, tiny_spec(data=source, **base))
    single = write_spec(tmp_path, tiny_spec(data=source, seed=1, **base), "single.yaml")
    assert cli("train", repeated, "--repeats", "2").exit_code == 0
    assert cli("train", single).exit_code == 0
    both, alone = (runstore.read_run(p) for p in run_folders(runs))
    if both.summary.models["net"].repeats != 2:
        both, alone = alone, both
    member, lone = both.summary.models["net"].members[1], alone.summary.models["net"]
    assert both.summary.models["net"].stacked is True
    assert member.seed == 1 and (member.best_epoch, member.epochs_run) == (lone.best_epoch, lone.epochs_run)
    assert member.val == pytest.approx(lone.val, rel=1e-5, abs=1e-5)
    assert member.test == pytest.approx(lone.test, rel=1e-5, abs=1e-5)
    columns = [c for c in alone.metrics().columns if c not in ("seconds", "member")]
    rows = both.metrics()
    ours = rows[rows["member"] == 1][columns].reset_index(drop=True)
    theirs = alone.metrics()[columns].reset_index(drop=True)
    assert len(theirs) == 4 and theirs["val_loss"].nunique() == 4
    pd.testing.assert_frame_equal(ours, theirs, check_exact=False, rtol=1e-5, atol=1e-5)
