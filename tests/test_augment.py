"""`train.augment`: training batches only, each member from its own generator; every augmentation's meaning."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import run_folders, tiny_spec, write_spec
from nnlab import runstore
from nnlab.core.inputs import OOV_ID, PAD_ID
from nnlab.spec.augment import AugmentSpec
from nnlab.training import augment as aug
from nnlab.training.loop import Loop

IMAGES = {"flip": "horizontal", "crop": {"pad": 1}, "noise": 0.05}
CNN = {"name": "net", "kind": "cnn", "channels": [4], "kernel": 3, "dropout": 0.3}


def _grid(tmp_path):
    rng = np.random.default_rng(5)
    x = rng.normal(size=(96, 12))
    frame = pd.DataFrame(x).add_prefix("v").assign(label=(x[:, 0] + x[:, 5] > 0).astype(int))
    frame.to_csv(tmp_path / "grid.csv", index=False)
    return {"path": "grid.csv", "target": "label", "split": {"seed": 0}, "image": {"shape": [1, 3, 4]}}


def _spec(tmp_path, name, augment=None, seed=0):
    train = {"epochs": 3, "batch_size": 16, **({"augment": augment} if augment else {})}
    return write_spec(tmp_path, tiny_spec(data=_grid(tmp_path), models=[CNN], baseline=False, seed=seed,
                                          train=train), name)


@pytest.fixture(scope="module")
def fixed_model_runs(tmp_path_factory):
    """The same CNN trained with and without augmentation, its training step replaced by one that records the
    batch and changes nothing: the model stays as built, so only what augmentation touches can differ."""
    from conftest import CliRunner, app

    tmp_path = tmp_path_factory.mktemp("fixed")
    seen: dict[str, list[torch.Tensor]] = {}
    runs = {}
    with pytest.MonkeyPatch.context() as patch:
        for name, augment in (("plain", None), ("augmented", IMAGES)):
            batches = seen.setdefault(name, [])

            def record(self, x, y, batches=batches):
                batches.append(x.clone())
                return torch.zeros(x.shape[0]), torch.zeros(x.shape[0], x.shape[1], self.problem.n_outputs)

            patch.setattr(Loop, "train_step", record)
            spec = _spec(tmp_path, f"{name}.yaml", augment)
            result = CliRunner().invoke(app, ["train", str(spec), "--runs-dir", str(tmp_path / name)],
                                        catch_exceptions=False)
            assert result.exit_code == 0, result.output
            runs[name] = runstore.read_run(run_folders(tmp_path / name)[-1])
    return runs, seen


def test_validation_and_test_are_untouched_and_train_batches_differ(fixed_model_runs):
    runs, seen = fixed_model_runs
    plain, augmented = (runs[n].summary.models["net"] for n in ("plain", "augmented"))
    assert plain.val == augmented.val and plain.test == augmented.test  # exactly: the same inputs, same model
    assert plain.val["loss"] > 0
    assert len(seen["plain"]) == len(seen["augmented"]) > 3
    for a, b in zip(seen["plain"], seen["augmented"]):
        assert a.shape == b.shape
        assert not torch.equal(a, b)
        assert (a - b).abs().max() > 0.05  # more than noise: flips and crops moved pixels


def test_two_members_draw_different_augmentations_and_the_same_seed_the_same():
    x = torch.randn(32, 3, 8, 8)
    settings = AugmentSpec(flip="horizontal", crop={"pad": 2}, noise=0.05)
    same = lambda seed: aug.augment(x, aug.augment_generator(seed, torch.device("cpu")), settings)
    assert torch.equal(same(0), same(0))
    stacked = aug.augment_members(torch.stack([x, x]), [aug.augment_generator(s, torch.device("cpu")) for s in (0, 1)],
                                  [settings, settings])
    assert torch.equal(stacked[0], same(0)) and torch.equal(stacked[1], same(1))
    assert not torch.equal(stacked[0], stacked[1])
    # Off draws nothing and returns the batch itself.
    g = aug.augment_generator(0, torch.device("cpu"))
    before = g.get_state()
    assert aug.augment_members(x[None], [g], [None]) is not None and torch.equal(g.get_state(), before)


def test_a_member_stacked_with_augmentation_equals_the_member_alone(tmp_path, cli, runs):
    assert cli("train", _spec(tmp_path, "repeated.yaml", IMAGES), "--repeats", "2").exit_code == 0
    assert cli("train", _spec(tmp_path, "single.yaml", IMAGES, seed=1)).exit_code == 0
    both, alone = (runstore.read_run(p) for p in run_folders(runs))
    if both.summary.models["net"].repeats != 2:
        both, alone = alone, both
    member, lone = both.summary.models["net"].members[1], alone.summary.models["net"]
    assert both.summary.models["net"].stacked is True
    assert member.val == pytest.approx(lone.val, rel=1e-5, abs=1e-5)
    rows = both.metrics()
    ours = rows[rows["member"] == 1]["train_loss"].to_numpy()
    assert ours == pytest.approx(alone.metrics()["train_loss"].to_numpy(), rel=1e-5, abs=1e-6)
    # ... and augmentation changed training: the same run without it has other training losses
    before = set(run_folders(runs))
    assert cli("train", _spec(tmp_path, "plain.yaml", seed=1)).exit_code == 0
    new, = set(run_folders(runs)) - before
    plain = runstore.read_run(new).metrics()["train_loss"].to_numpy()
    assert not np.allclose(plain, ours)


def _g(seed=3):
    return aug.augment_generator(seed, torch.device("cpu"))


def test_flip_really_flips_about_half_the_images():
    x = torch.randn(200, 2, 5, 6)
    for direction, axis in (("horizontal", -1), ("vertical", -2)):
        out = aug.flip(x, _g(), AugmentSpec(flip=direction))
        flipped = torch.tensor([torch.equal(o, i.flip(axis)) for o, i in zip(out, x)])
        kept = torch.tensor([torch.equal(o, i) for o, i in zip(out, x)])
        assert bool((flipped ^ kept).all())  # every image is either itself or its mirror
        assert 70 < int(flipped.sum()) < 130


def test_crop_keeps_the_shape_and_takes_a_window_of_the_padded_image():
    x = torch.randn(50, 3, 6, 7)
    out = aug.crop(x, _g(), AugmentSpec(crop={"pad": 2}))
    assert out.shape == x.shape
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    offsets = set()
    for o, p in zip(out, padded):
        hit = [(dy, dx) for dy in range(5) for dx in range(5) if torch.equal(o, p[:, dy:dy + 6, dx:dx + 7])]
        assert hit, "each crop is a window of the zero-padded image"
        offsets.update(hit)
    assert len(offsets) > 10  # offsets 0..4 each way are drawn


def test_noise_has_the_given_standard_deviation():
    x = torch.zeros(100, 3, 8, 8)
    delta = aug.noise(x, _g(), AugmentSpec(noise=0.05))
    assert float(delta.std()) == pytest.approx(0.05, rel=0.05) and abs(float(delta.mean())) < 0.005


def test_token_dropout_replaces_about_p_of_the_real_tokens_with_the_unknown_id():
    lengths = torch.randint(1, 30, (400,), generator=torch.Generator().manual_seed(0))
    x = torch.randint(2, 50, (400, 30), generator=torch.Generator().manual_seed(1))
    x[torch.arange(30)[None, :] >= lengths[:, None]] = PAD_ID
    out = aug.token_dropout(x, _g(), AugmentSpec(token_dropout=0.1))
    real = x != PAD_ID
    assert torch.equal(out[~real], x[~real])  # padding untouched
    changed = out != x
    assert bool((out[changed] == OOV_ID).all())
    assert float(changed[real].float().mean()) == pytest.approx(0.1, abs=0.015)


def test_jitter_scale_and_shift_stay_within_their_bounds():
    x = torch.randn(300, 10, 2)
    delta = aug.jitter(x, _g(), AugmentSpec(jitter=0.03)) - x
    assert float(delta.abs().max()) <= 0.03 + 1e-6 and float(delta.abs().max()) > 0.025
    ratio = aug.scale(x, _g(), AugmentSpec(scale=0.1)) / x
    per_row = ratio.flatten(1)
    assert torch.allclose(per_row, per_row[:, :1].expand_as(per_row), atol=1e-5)  # one factor a sequence
    assert float(per_row.min()) >= 0.9 - 1e-6 and float(per_row.max()) <= 1.1 + 1e-6
    assert float(per_row.max()) > 1.08 and float(per_row.min()) < 0.92
    out = aug.shift(x, _g(), AugmentSpec(shift=3))
    drawn = set()
    for o, i in zip(out, x):
        steps = [s for s in range(-3, 4)
                 if torch.equal(o, i[(torch.arange(10) - s).clamp(0, 9)])]
        assert steps, "each sequence is itself moved by at most 3 steps, the edge value filling in"
        drawn.update(steps)
    assert drawn == set(range(-3, 4))


def test_a_resumed_stack_continues_the_same_augmentation_draws():
    from nnlab.core.inputs import InputInfo
    from nnlab.models import build_model
    from nnlab.spec import CNNSpec, TrainSpec
    from nnlab.training import fit

    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 6, 2)).astype(np.float32)
    y = (x[:, :, 0].sum(1) > 0).astype(np.float32)
    parts = {"train": slice(0, 80), "val": slice(80, 100), "test": slice(100, 120)}
    problem = fit.Problem.from_arrays("binary", {k: x[s] for k, s in parts.items()}, {k: y[s] for k, s in parts.items()},
                                      ["accuracy"], "val_loss", torch.device("cpu"))
    settings = TrainSpec(epochs=4, batch_size=16, early_stopping=None,
                         augment={"jitter": 0.05, "scale": 0.2, "shift": 2})

    def members():
        out = []
        for seed in (0, 1):
            torch.manual_seed(seed)
            model = build_model(CNNSpec(kind="cnn", channels=[3], kernel=3), InputInfo("sequence", (6, 2), 1))
            out.append(fit.BuiltMember("c", model, settings, seed, seed))
        return out

    states = []
    whole = fit.fit_stack(members(), problem, lambda r: None, on_state=states.append)
    resumed = fit.fit_stack(members(), problem, lambda r: None, resume=states[1])
    for ours, theirs in zip(resumed, whole):
        assert ours.val == theirs.val and ours.test == theirs.test
        for key in theirs.state:
            assert torch.equal(ours.state[key], theirs.state[key]), key
