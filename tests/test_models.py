"""Model families: every registered kind builds, trains through the one loop, saves and reloads; each kind learns
a task made for it that a bag of features cannot solve; padding never changes an output; the layer table and
the memory estimate come from a dry pass that allocates nothing for a giant model."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from nnlab.training import fit as train
from nnlab.core.inputs import PAD_ID, InputInfo
from nnlab.models import MODELS, build_model, count_params, estimate_memory, layer_table
from nnlab.training.optim import skip_dynamo_import
from nnlab.spec import (INPUT_KINDS_BY_MODEL, MODEL_KINDS, BaselineSpec, CNNSpec, MLPSpec, ResMLPSpec, RNNSpec,
                        TrainSpec, TransformerSpec)

SPECS = {"mlp": MLPSpec(kind="mlp", hidden=[16], embedding=8),
         "resmlp": ResMLPSpec(kind="resmlp", width=16, blocks=1, embedding=8),
         "cnn": CNNSpec(kind="cnn", channels=[8, 8], kernel=3, embedding=8),
         "rnn": RNNSpec(kind="rnn", hidden=8, embedding=8),
         "transformer": TransformerSpec(kind="transformer", d_model=16, heads=2, layers=1, ff=16)}
SHAPES = {"table": (5,), "text": (12,), "sequence": (12, 3), "image": (2, 6, 6)}
VOCAB = 20
KIND_AND_INPUT = [(kind, input_kind) for kind in MODEL_KINDS for input_kind in INPUT_KINDS_BY_MODEL[kind]]


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models: a second intra-op thread only adds waiting, the more so on a shared machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def random_inputs(info: InputInfo, n: int, rng: np.random.Generator) -> np.ndarray:
    """Text: real tokens first (ids 2..VOCAB-1), then PAD_ID; other kinds: standard normal values."""
    if info.kind != "text":
        return rng.normal(size=(n, *info.shape)).astype(np.float32)
    steps = info.shape[0]
    tokens = rng.integers(2, VOCAB, size=(n, steps))
    lengths = rng.integers(1, steps + 1, size=n)
    tokens[np.arange(steps)[None, :] >= lengths[:, None]] = PAD_ID
    return tokens.astype(np.int64)


def problem_of(x: np.ndarray, y: np.ndarray, task: str = "binary", n_outputs: int = 1) -> train.Problem:
    """First 60% train, next 20% val, last 20% test."""
    a, b = int(0.6 * len(x)), int(0.8 * len(x))
    parts = {"train": slice(0, a), "val": slice(a, b), "test": slice(b, None)}
    return train.Problem.from_arrays(task, {k: x[s] for k, s in parts.items()}, {k: y[s] for k, s in parts.items()},
                                     ["accuracy"], "val_loss", torch.device("cpu"), n_outputs=n_outputs)


def quiet(record) -> None:
    pass


def fit(model, problem, epochs: int, lr: float = 3e-3, batch_size: int = 32) -> train.FitResult:
    spec = TrainSpec(epochs=epochs, batch_size=batch_size, early_stopping=None, optimizer={"lr": lr})
    return train.fit_stack([train.BuiltMember("m", model, spec, 0)], problem, quiet)[0]


# --- every registered kind --------------------------------------------------------------------------------

def test_the_registry_holds_every_kind_the_spec_allows():
    assert set(MODELS) == set(MODEL_KINDS) == set(INPUT_KINDS_BY_MODEL)


def test_the_tables_kept_beside_the_spec_match_its_unions():
    # The spec's Literals and tagged unions are the one source; the tables that act on them must cover them.
    from nnlab.models.mlp import ACTIVATIONS as LAYERS
    from nnlab.spec import ACTIVATIONS, SCHEDULER_NAMES
    from nnlab.training.optim import SCHEDULERS
    from nnlab.training.stack import ELEMENTWISE

    assert MODEL_KINDS == ("mlp", "resmlp", "cnn", "rnn", "transformer")
    assert SCHEDULER_NAMES == ("step", "cosine", "plateau") and set(SCHEDULERS) == set(SCHEDULER_NAMES)
    assert set(LAYERS) == set(ACTIVATIONS) and set(ELEMENTWISE) == set(LAYERS.values())


@pytest.mark.parametrize("kind,input_kind", KIND_AND_INPUT)
def test_every_kind_trains_an_epoch_and_reloads_from_safetensors(kind, input_kind, tmp_path):
    rng = np.random.default_rng(0)
    info = InputInfo(input_kind, SHAPES[input_kind], 3, VOCAB if input_kind == "text" else 0)
    x, y = random_inputs(info, 60, rng), rng.integers(0, 3, size=60)
    torch.manual_seed(0)
    model = build_model(SPECS[kind], info)
    result = fit(model, problem_of(x, y, "multiclass", 3), epochs=1)
    assert result.status == "completed" and result.epochs_run == 1
    assert count_params(model) == sum(row.params for row in layer_table(SPECS[kind], info)) > 0
    save_file(model.state_dict(), tmp_path / "model.safetensors")
    torch.manual_seed(1)  # different initial weights, so equal outputs prove the load
    again = build_model(SPECS[kind], info)
    again.load_state_dict(load_file(tmp_path / "model.safetensors"))
    model.eval(), again.eval()
    batch = torch.from_numpy(x[:8])
    with torch.no_grad():
        expected, got = model(batch), again(batch)
    assert expected.shape == (8, 3)
    torch.testing.assert_close(got, expected, rtol=0, atol=0)


@pytest.mark.parametrize("kind,input_kind", [("cnn", "table"), ("rnn", "image"), ("transformer", "table"),
                                             ("rnn", "table")])
def test_a_model_that_does_not_fit_the_data_kind_is_a_value_error(kind, input_kind):
    info = InputInfo(input_kind, SHAPES[input_kind], 1)
    with pytest.raises(ValueError, match=f"model kind '{kind}' does not fit {input_kind} data; it needs data.seq"):
        build_model(SPECS[kind], info)


# --- tasks made for each kind -----------------------------------------------------------------------------

def motif_signals(n: int, steps: int = 24, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A step up (label 1) or a step down (label 0) at a random position in noise: every time step has the
    same mean in both classes, so a linear model on the values cannot tell them apart."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, size=n)
    x = rng.normal(scale=0.3, size=(n, steps, 1)).astype(np.float32)
    start = rng.integers(0, steps - 4, size=n)
    for i in range(n):
        x[i, start[i]:start[i] + 4, 0] += np.array([-1, -1, 1, 1]) * (1 if y[i] else -1)
    return x, y.astype(np.float32)


def order_texts(n: int, steps: int = 10, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Token 2 and token 3 once each among fillers (4..VOCAB-1), texts of random length padded at the end; the
    label says whether 2 comes before 3. Both classes hold the same bag of words."""
    rng = np.random.default_rng(seed)
    tokens = rng.integers(4, VOCAB, size=(n, steps))
    lengths = rng.integers(4, steps + 1, size=n)
    y = np.zeros(n, dtype=np.float32)
    for i in range(n):
        first, second = rng.choice(lengths[i], size=2, replace=False)
        tokens[i, first], tokens[i, second] = 2, 3
        tokens[i, lengths[i]:] = PAD_ID
        y[i] = first < second
    return tokens.astype(np.int64), y


def order_signals(n: int, steps: int = 12, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two channels, one pulse each at random distinct steps, each pulse up or down at random; the label says
    whether channel 0 pulses first. The random signs leave every value's mean at zero in both classes, so a
    linear model cannot weigh positions against each other."""
    rng = np.random.default_rng(seed)
    x = rng.normal(scale=0.1, size=(n, steps, 2)).astype(np.float32)
    y = np.zeros(n, dtype=np.float32)
    for i in range(n):
        first, second = rng.choice(steps, size=2, replace=False)
        x[i, first, 0] += rng.choice([-1.0, 1.0])
        x[i, second, 1] += rng.choice([-1.0, 1.0])
        y[i] = first < second
    return x, y


def val_accuracy(result: train.FitResult) -> float:
    return result.val["accuracy"]


def baseline_accuracy(x: np.ndarray, y: np.ndarray) -> float:
    """Logistic regression on the flattened values (or on token counts, for text): a bag of features."""
    if x.dtype == np.int64:
        x = np.stack([np.bincount(row, minlength=VOCAB) for row in x]).astype(np.float32)
    problem = problem_of(x.reshape(len(x), -1).astype(np.float32), y)
    model = torch.nn.Linear(problem.x["train"].shape[1], 1)
    return train.fit_baseline("baseline", model, problem, BaselineSpec(), quiet).val["accuracy"]


def test_a_cnn_finds_a_pattern_wherever_it_is_and_a_linear_model_cannot():
    x, y = motif_signals(500)
    torch.manual_seed(0)
    model = build_model(CNNSpec(kind="cnn", channels=[8], kernel=5), InputInfo("sequence", (24, 1), 1))
    result = fit(model, problem_of(x, y), epochs=15, lr=1e-2)
    assert result.history[-1].values["train_loss"] < 0.5 * result.history[0].values["train_loss"]
    assert val_accuracy(result) >= 0.9
    assert baseline_accuracy(x, y) <= 0.7


@pytest.mark.parametrize("spec", [RNNSpec(kind="rnn", hidden=16, embedding=16),
                                  TransformerSpec(kind="transformer", d_model=16, heads=2, layers=1, ff=32,
                                                  dropout=0.0)], ids=["rnn", "transformer"])
def test_word_order_is_learned_where_a_bag_of_words_sits_at_chance(spec):
    x, y = order_texts(600)
    torch.manual_seed(0)
    result = fit(build_model(spec, InputInfo("text", (10,), 1, VOCAB)), problem_of(x, y), epochs=20, lr=1e-2)
    assert val_accuracy(result) >= 0.9
    assert baseline_accuracy(x, y) <= 0.7
    torch.manual_seed(0)
    bag = build_model(MLPSpec(kind="mlp", hidden=[16], embedding=16), InputInfo("text", (10,), 1, VOCAB))
    assert val_accuracy(fit(bag, problem_of(x, y), epochs=20, lr=1e-2)) <= 0.7


@pytest.mark.parametrize("spec", [RNNSpec(kind="rnn", cell="lstm", hidden=16),
                                  TransformerSpec(kind="transformer", d_model=32, heads=4, layers=1, ff=32,
                                                  dropout=0.0, positions="sinusoidal", pool="cls")],
                         ids=["lstm", "transformer-cls"])
def test_the_order_of_events_in_a_sequence_is_learned(spec):
    x, y = order_signals(600)
    torch.manual_seed(0)
    result = fit(build_model(spec, InputInfo("sequence", (12, 2), 1)), problem_of(x, y), epochs=20, lr=3e-3)
    assert result.history[-1].values["train_loss"] < 0.5 * result.history[0].values["train_loss"]
    assert val_accuracy(result) >= 0.85
    assert baseline_accuracy(x, y) <= 0.7


# --- padding ----------------------------------------------------------------------------------------------

PADDED = [
    RNNSpec(kind="rnn", hidden=8, embedding=8),
    RNNSpec(kind="rnn", cell="lstm", hidden=8, embedding=8, bidirectional=True, layers=2, pool="last"),
    RNNSpec(kind="rnn", cell="rnn", hidden=8, embedding=8, bidirectional=True, pool="mean"),
    RNNSpec(kind="rnn", hidden=8, embedding=8, pool="max"),
    TransformerSpec(kind="transformer", d_model=16, heads=2, layers=2, ff=16),
    TransformerSpec(kind="transformer", d_model=16, heads=2, layers=1, ff=16, pool="cls", positions="sinusoidal"),
    CNNSpec(kind="cnn", channels=[8, 8], kernel=3, embedding=8),
    CNNSpec(kind="cnn", channels=[8, 8, 8], kernel=4, stride=2, pool="avg", norm="batchnorm", embedding=8),
    CNNSpec(kind="cnn", channels=[8], kernel=5, pool="none", embedding=8),
    MLPSpec(kind="mlp", hidden=[8], embedding=8),
    ResMLPSpec(kind="resmlp", width=8, blocks=1, embedding=8),
]


def _padding_id(spec) -> str:
    return "-".join(str(v) for v in (spec.kind, getattr(spec, "cell", ""), getattr(spec, "pool", ""),
                                      getattr(spec, "positions", ""), getattr(spec, "stride", "")) if v != "")


@pytest.mark.parametrize("spec", PADDED, ids=_padding_id)
def test_padding_never_changes_an_output(spec):
    steps, extra = 9, 7
    torch.manual_seed(0)
    model = build_model(spec, InputInfo("text", (steps + extra,), 2, VOCAB))  # learned positions cover both
    model.eval()
    tokens = torch.from_numpy(random_inputs(InputInfo("text", (steps,), 2, VOCAB), 16, np.random.default_rng(3)))
    tokens[0, 1:] = PAD_ID  # a text of one token
    tokens[1] = torch.arange(2, 2 + steps)  # a text without padding
    longer = torch.cat([tokens, torch.full((16, extra), PAD_ID)], dim=1)
    with torch.no_grad():
        short_out, long_out = model(tokens), model(longer)
        changed = tokens.clone()
        changed[:, 0] = torch.where(changed[:, 0] == 2, 3, 2)  # a different first token: a different output
        changed_out = model(changed)
    torch.testing.assert_close(long_out, short_out, rtol=1e-5, atol=1e-5)
    assert (changed_out - short_out).abs().amax(dim=1).min() > 1e-4


def test_padding_never_changes_a_transformer_output_in_train_mode_either():
    spec = TransformerSpec(kind="transformer", d_model=16, heads=2, layers=2, ff=16, dropout=0.0)
    torch.manual_seed(0)
    model = build_model(spec, InputInfo("text", (16,), 1, VOCAB)).train()
    tokens = torch.from_numpy(random_inputs(InputInfo("text", (9,), 1, VOCAB), 8, np.random.default_rng(4)))
    longer = torch.cat([tokens, torch.full((8, 7), PAD_ID)], dim=1)
    torch.testing.assert_close(model(longer), model(tokens), rtol=1e-5, atol=1e-5)


def test_the_pad_embedding_is_zero_and_gets_no_gradient():
    model = build_model(SPECS["rnn"], InputInfo("text", (6,), 1, VOCAB))
    tokens = torch.tensor([[5, 6, PAD_ID, PAD_ID, PAD_ID, PAD_ID]])
    model(tokens).sum().backward()
    assert model.embedding.weight[PAD_ID].abs().sum() == 0
    assert model.embedding.weight.grad[PAD_ID].abs().sum() == 0


# --- layer table and memory -------------------------------------------------------------------------------

def test_the_layer_table_reads_like_a_summary_of_the_model():
    spec = CNNSpec(kind="cnn", channels=[4, 8], kernel=3)
    rows = layer_table(spec, InputInfo("image", (1, 8, 8), 10))
    assert [(r.name, r.type, r.output_shape, r.params) for r in rows] == [
        ("blocks.0.conv", "Conv2d", (4, 8, 8), 1 * 4 * 9 + 4),
        ("blocks.0.activation", "ReLU", (4, 8, 8), 0),
        ("blocks.0.pool", "Pool2", (4, 4, 4), 0),
        ("blocks.1.conv", "Conv2d", (8, 4, 4), 4 * 8 * 9 + 8),
        ("blocks.1.activation", "ReLU", (8, 4, 4), 0),
        ("blocks.1.pool", "Pool2", (8, 2, 2), 0),
        ("global_pool", "GlobalPool", (8,), 0),
        ("head", "Linear", (10,), 8 * 10 + 10)]


def test_odd_lengths_and_strides_keep_every_position_and_a_length_of_one_works():
    spec = CNNSpec(kind="cnn", channels=[4, 4, 4], kernel=4, stride=2)
    rows = layer_table(spec, InputInfo("sequence", (7, 2), 1))
    assert [r.output_shape for r in rows if r.type == "Conv1d"] == [(4, 4), (4, 1), (4, 1)]
    assert [r.output_shape for r in rows if r.type == "Pool2"] == [(4, 2), (4, 1), (4, 1)]
    model = build_model(spec, InputInfo("sequence", (1, 2), 1))
    assert model(torch.zeros(3, 1, 2)).shape == (3, 1)


def measured_training_bytes(model: torch.nn.Module, x: torch.Tensor) -> int:
    """What one Adam step really holds: weights, gradients, Adam's state, and the tensors autograd saved."""
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    saved: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in params:
            saved[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = model(x).sum()
    loss.backward()
    skip_dynamo_import()  # as nnlab's loop does: the first optimizer would import torch._dynamo (2 s)
    optimizer = torch.optim.Adam(model.parameters())
    optimizer.step()
    state = sum(v.nbytes for s in optimizer.state.values() for v in s.values() if v.dim() > 0)
    weights = sum(p.nbytes + p.grad.nbytes for p in model.parameters())
    return weights + state + sum(saved.values()) + x.nbytes


@pytest.mark.parametrize("spec,info", [
    (MLPSpec(kind="mlp", hidden=[64, 32]), InputInfo("table", (57,), 1)),
    (MLPSpec(kind="mlp", hidden=[512, 512]), InputInfo("table", (100,), 1)),
    (CNNSpec(kind="cnn", channels=[32, 64], kernel=3), InputInfo("image", (1, 28, 28), 10)),
    (RNNSpec(kind="rnn", hidden=64), InputInfo("sequence", (50, 4), 1)),
    (TransformerSpec(kind="transformer"), InputInfo("text", (64,), 2, 5000)),
], ids=["mlp-small", "mlp-wide", "cnn", "gru", "transformer"])
def test_the_memory_estimate_is_within_2x_of_what_training_holds(spec, info):
    torch.manual_seed(0)
    model = build_model(spec, info)
    x = torch.from_numpy(random_inputs(info, 64, np.random.default_rng(0)))
    measured = measured_training_bytes(model, x)
    assert 0.5 * measured <= estimate_memory(spec, info, 64) <= 2 * measured


def test_a_giant_model_is_sized_without_allocating_it():
    import resource

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    need = estimate_memory(MLPSpec(kind="mlp", hidden=[100_000_000]), InputInfo("table", (57,), 1), 64)
    assert need > 100e9  # 5.8e9 weights x 16 bytes, plus activations
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200_000  # kilobytes: under 200 MB
    rows = layer_table(MLPSpec(kind="mlp", hidden=[100_000_000]), InputInfo("table", (57,), 1))
    assert [r.output_shape for r in rows] == [(100_000_000,), (100_000_000,), (1,)]


# --- nnlab validate --models ------------------------------------------------------------------------------

def validate_models(tmp_path, spec_text: str):
    """`nnlab validate SPEC --models` on a spec written from `spec_text`, in-process."""
    from typer.testing import CliRunner

    from nnlab.cli import app

    spec = tmp_path / "spec.yaml"
    spec.write_text(spec_text)
    return CliRunner().invoke(app, ["validate", str(spec), "--models"], catch_exceptions=False)


def test_validate_models_prints_a_layer_table_per_model_on_the_data_shape(tmp_path):
    result = validate_models(tmp_path, "name: digits\ndata: {builtin: digits, image: {shape: [1, 8, 8]}}\nmodels:\n"
                                       "  - {name: small, kind: cnn, channels: [4], kernel: 3}\n"
                                       "  - {name: flat, kind: mlp, hidden: [16]}\n")
    assert result.exit_code == 0, result.output
    out = result.output
    assert "digits: input image [1, 8, 8] per example; 10 output(s)" in out
    cnn_params = count_params(build_model(CNNSpec(kind="cnn", channels=[4], kernel=3),
                                          InputInfo("image", (1, 8, 8), 10)))
    assert f"small (cnn): {cnn_params:,} parameters" in out and "flat (mlp): 1,210 parameters" in out
    assert re.search(r"│ blocks\.0\.conv +│ Conv2d +│ \[B, 4, 8, 8\] +│ +40 │", out)
    assert "[B, 4, 8, 8]" in out and "[B, 4, 4, 4]" in out
    assert "name: digits" not in out  # the resolved spec is what plain `validate` prints
    assert "training plan: alone: small; alone: flat" in out


def test_validate_models_says_which_models_will_stack_and_why_others_will_not(tmp_path):
    result = validate_models(tmp_path, "name: s\nrepeats: 3\ndata: {builtin: moons}\nmodels:\n"
                                       "  - {name: a, kind: mlp, hidden: [8]}\n"
                                       "  - {name: b, kind: mlp, hidden: [8], dropout: 0.3}\n"
                                       "  - {name: c, kind: mlp, hidden: [8], norm: batchnorm}\n")
    assert result.exit_code == 0, result.output
    assert ("training plan: one stack: a, b × 3 repeats; one after another: c × 3 repeats (c: batchnorm layers "
            "do not stack)") in " ".join(result.output.split())


def test_validate_models_names_the_data_problem_in_one_line(tmp_path):
    result = validate_models(tmp_path, "name: s\ndata: {path: missing.csv, target: y}\n")
    assert result.exit_code == 2
    assert "missing.csv" in result.output and "Traceback" not in result.output
