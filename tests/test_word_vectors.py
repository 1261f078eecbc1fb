"""Pretrained word vectors (data.text.vectors): covered words start from the file's vector, the others from the
model's seeded init; frozen stays put, unfrozen trains; stacked members equal members alone; the count is
reported; the embedding takes the file's dimension; bad files are one-line errors; the file is in the data's
fingerprint."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import run_folders, write_spec
from nnlab import api
from nnlab.core.inputs import PAD_ID
from nnlab.data import prepare
from nnlab.models import build_model
from nnlab.spec import load_spec
from nnlab.training import fit as train

SPAM = ["win", "cash", "prize", "free", "claim", "offer"]
HAM = ["lunch", "meet", "later", "home", "call", "today"]
FILLER = ["ok", "the", "a"]
DIM = 4
IN_FILE = ["win", "cash", "prize", "lunch", "meet", "ok"]  # the vocabulary words the file covers
TEXT_MODELS = [{"name": "rnn", "kind": "rnn", "hidden": 6},
               {"name": "mlp", "kind": "mlp", "hidden": [6]},
               {"name": "cnn", "kind": "cnn", "channels": [4], "kernel": 3},
               {"name": "transformer", "kind": "transformer", "heads": 2, "layers": 1, "ff": 8}]


def file_vectors(seed: int = 7) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    words = IN_FILE + ["zebra", "unseen"]  # two words no message uses
    return {w: rng.normal(scale=0.5, size=DIM).astype(np.float32) for w in words}


def write_vectors(path: Path, vectors: dict[str, np.ndarray], header: bool = False) -> Path:
    lines = [f"{len(vectors)} {DIM}"] if header else []
    lines += [w + " " + " ".join(repr(float(v)) for v in vec) for w, vec in vectors.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def write_data(folder: Path, vectors_file: str = "v.txt", freeze: bool = True, models=None, seed: int = 0,
               **text) -> Path:
    rng = np.random.default_rng(0)
    rows = []
    for i in range(160):
        label = i % 2
        words = list(rng.choice(SPAM if label else HAM, 4)) + list(rng.choice(FILLER, 2))
        rows.append((" ".join(words), "spam" if label else "ham"))
    pd.DataFrame(rows, columns=["message", "label"]).to_csv(folder / "d.csv", index=False)
    return write_spec(folder, {
        "name": "vec", "seed": seed,
        "data": {"path": "d.csv", "target": "label",
                 "text": {"column": "message", "vectors": vectors_file, "freeze": freeze, **text}},
        "train": {"epochs": 3, "batch_size": 32, "optimizer": {"lr": 0.05}},
        "models": models if models is not None else TEXT_MODELS[:2]})


def prepared_of(spec_path: Path):
    spec, base = load_spec(spec_path, [])
    return spec, prepare(spec.data, base, spec.seed)


def built(spec, info, index: int, seed: int):
    torch.manual_seed(seed)
    return build_model(spec.models[index], info)


def embedding_of(module: torch.nn.Module) -> torch.Tensor:
    return next(m for m in module.modules() if isinstance(m, torch.nn.Embedding)).weight.detach()


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    write_vectors(tmp_path / "v.txt", file_vectors())
    return tmp_path


@pytest.mark.parametrize("index", range(len(TEXT_MODELS)))
def test_covered_words_start_from_the_file_and_the_others_from_the_seeded_init(folder, index):
    from nnlab.data.text import size_models_to_vectors

    spec, prepared = prepared_of(write_data(folder, models=TEXT_MODELS))
    size_models_to_vectors(spec.models, prepared.vectors)
    tokens = prepared.preprocessor.features.tokens
    with_vectors = built(spec, prepared.info, index, seed=3)
    plain = built(spec, replace(prepared.info, vectors=None), index, seed=3)
    weight, random_rows = embedding_of(with_vectors), embedding_of(plain)
    vectors = file_vectors()
    covered = [tokens.index(w) for w in IN_FILE]
    for word, i in zip(IN_FILE, covered):
        assert torch.equal(weight[i], torch.from_numpy(vectors[word]))  # exactly the file's values
    scale = np.std(np.stack([vectors[w] for w in IN_FILE]))  # numpy's spread of the covered vectors
    others = [i for i in range(len(tokens)) if i not in covered and i != PAD_ID]
    torch.testing.assert_close(weight[others], random_rows[others] * float(scale))
    assert torch.all(weight[PAD_ID] == 0) and not weight.requires_grad
    # the rest of the model starts as it would without vectors (the same draws from the seed)
    rest = {k: v for k, v in plain.state_dict().items() if "embedding" not in k and not k.startswith("tokens")}
    for key, value in rest.items():
        assert torch.equal(with_vectors.state_dict()[key], value), key


def test_a_word2vec_header_is_skipped_and_an_exact_word_beats_a_case_folded_one(tmp_path):
    vectors = {"WIN": np.full(DIM, 9, np.float32), "win": np.ones(DIM, np.float32),
               "Cash": np.full(DIM, 2, np.float32), "cash": np.full(DIM, 3, np.float32),
               "Prize": np.full(DIM, 5, np.float32)}
    write_vectors(tmp_path / "w2v.txt", vectors, header=True)
    spec, prepared = prepared_of(write_data(tmp_path, "w2v.txt"))
    tokens = prepared.preprocessor.features.tokens
    values = prepared.info.vectors.values
    assert values[tokens.index("win")].tolist() == [1.0] * DIM  # "win" as written, though "WIN" came first
    assert values[tokens.index("cash")].tolist() == [3.0] * DIM  # "Cash" lower-cased first; "cash" then wins
    assert values[tokens.index("prize")].tolist() == [5.0] * DIM  # only "Prize": lower-cased (lowercase: true)
    assert prepared.vectors.covered == 3


def test_train_reports_the_count_and_a_frozen_embedding_never_moves(folder, cli, runs):
    spec_path = write_data(folder, freeze=True)
    result = cli("train", spec_path)
    assert result.exit_code == 0, result.output
    words = len(set(SPAM + HAM + FILLER))
    assert f"word vectors v.txt: 6 of {words} vocabulary words covered (4-d, frozen; the others start random)" \
        in result.output
    [run] = run_folders(runs)
    assert json.loads((run / "summary.json").read_text())["data"]["vectors"] == {
        "file": "v.txt", "dim": DIM, "covered": 6, "words": words, "frozen": True}
    spec, prepared = prepared_of(spec_path)
    from nnlab.data.text import size_models_to_vectors

    size_models_to_vectors(spec.models, prepared.vectors)
    loaded = api.load_run(run.name, runs)
    for index, name in enumerate(["rnn", "mlp"]):
        trained = embedding_of(loaded.model(name).module)
        assert torch.equal(trained, embedding_of(built(spec, prepared.info, index, seed=0))), name
        others = loaded.model(name).module.state_dict()
        start = built(spec, prepared.info, index, seed=0).state_dict()
        assert any(not torch.equal(others[k], start[k]) for k in start if "embedding" not in k)  # it did train


def test_an_unfrozen_embedding_trains_away_from_the_file(folder, cli, runs):
    result = cli("train", write_data(folder, freeze=False))
    assert result.exit_code == 0, result.output
    assert "(4-d; the others start random)" in result.output
    loaded = api.load_run("last", runs)
    tokens = loaded.model("rnn").preprocessor.features.tokens
    trained = embedding_of(loaded.model("rnn").module)
    moved = [not torch.allclose(trained[tokens.index(w)], torch.from_numpy(file_vectors()[w])) for w in IN_FILE]
    assert all(moved)


def test_uncovered_words_are_seeded_the_same_across_runs_and_differ_with_the_seed(folder, cli, runs):
    rows = []  # per run: word -> its row of the (frozen, so as it started) embedding
    for seed in (0, 0, 1):
        assert cli("train", write_data(folder, models=TEXT_MODELS[:1], seed=seed)).exit_code == 0
        model = api.load_run("last", runs).model("rnn")
        weight = embedding_of(model.module)
        rows.append({w: weight[i] for i, w in enumerate(model.preprocessor.features.tokens)})
    others = set(SPAM + HAM + FILLER) - set(IN_FILE)
    assert all(torch.equal(rows[0][w], rows[1][w]) for w in rows[0])
    assert all(torch.equal(rows[0][w], rows[2][w]) for w in IN_FILE)
    assert not any(torch.allclose(rows[0][w], rows[2][w]) for w in others)


@pytest.mark.parametrize("index, freeze", [(0, True), (1, True), (2, True), (3, True), (0, False)])
def test_stacked_members_with_word_vectors_equal_members_trained_alone(tmp_path, index, freeze):
    from nnlab.data.text import size_models_to_vectors

    write_vectors(tmp_path / "v.txt", file_vectors())
    spec, p = prepared_of(write_data(tmp_path, freeze=freeze, models=TEXT_MODELS))
    size_models_to_vectors(spec.models, p.vectors)
    problem = train.Problem.from_arrays(p.task, p.x, p.y, ["accuracy"], "val_loss", torch.device("cpu"))
    # SGD: Adam's first steps are lr * g / |g|, which turns the batched kernels' 1e-7 rounding of a gradient
    # that is zero in exact arithmetic (attention's key bias) into whole steps, vectors or not
    settings = spec.models[index].train.model_copy(update={"optimizer": spec.train.optimizer.model_copy(
        update={"name": "sgd"})})

    def member(seed, k):
        torch.manual_seed(seed)
        module = build_model(spec.models[index], p.info)
        return train.BuiltMember(f"m{k}", module, settings, seed, k, torch.get_rng_state())

    stacked = train.fit_stack([member(0, 0), member(1, 1)], problem, lambda r: None)
    alone = [train.fit_stack([member(seed, k)], problem, lambda r: None)[0] for k, seed in enumerate((0, 1))]
    for ours, theirs, seed in zip(stacked, alone, (0, 1)):
        assert ours.val == pytest.approx(theirs.val, rel=1e-5, abs=1e-5)
        for key in theirs.state:
            torch.testing.assert_close(ours.state[key], theirs.state[key], rtol=1e-5, atol=1e-5)
        key = next(k for k in theirs.state if k.endswith("embedding.weight") or k == "tokens.weight")
        start = embedding_of(member(seed, 0).model)
        assert torch.equal(ours.state[key], start) == freeze  # frozen: not one update, stacked or alone


def test_the_embedding_takes_the_files_dimension_unless_the_spec_gives_another(folder, cli, runs):
    shown = cli("validate", write_data(folder, models=TEXT_MODELS), "--models")
    assert shown.exit_code == 0, shown.output
    assert "word vectors v.txt: 6 of 15 vocabulary words covered, 4-d, frozen" in shown.output
    assert shown.output.count("[B, 64, 4]") >= 3  # rnn, cnn and transformer embeddings: 4 wide, from the file
    for model, needle in [({"kind": "rnn", "embedding": 8},
                           "models[0].embedding: 8 does not fit data.text.vectors (v.txt holds 4-dimensional "
                           "vectors); set embedding: 4 or leave it out to take the file's"),
                          ({"kind": "transformer", "heads": 8},
                           "models[0].heads: must divide d_model, which data.text.vectors (v.txt) makes 4; got 8")]:
        for command in ("train", "validate"):
            result = cli(command, write_data(folder, models=[model]), *(["--models"] if command == "validate" else []))
            assert result.exit_code == 2 and result.output.strip().splitlines() == [f"error: {needle}"], \
                result.output
    assert run_folders(runs) == []
    agrees = cli("train", write_data(folder, models=[{"kind": "rnn", "embedding": 4, "hidden": 4}]))
    assert agrees.exit_code == 0, agrees.output


BAD_FILES = [
    (None, "data.text.vectors: file not found: "),
    (b"win 1 2 3 4\ncash 1 2 3\n", "data.text.vectors: v.txt line 2: 3 values after the word 'cash'; expected 4, "
                                   "as line 1 has"),
    (b"2 4\nwin 1 2 3 4 5\n", "data.text.vectors: v.txt line 2: 5 values after the word 'win'; expected 4, as "
                              "the header says"),
    (b"win 1 2 3 4\ncash 1 x 3 4\n", "data.text.vectors: v.txt line 2: 'x' is not a number"),
    (b"win 1 2 nan 4\n", "data.text.vectors: v.txt line 1: 'nan' is not a finite number"),
    (b"3 4\nwin \xff\xfe\x00\x01\n", "data.text.vectors: v.txt line 2: not UTF-8 text"),
    (b"", "data.text.vectors: v.txt: holds no vectors"),
    (b"win\n", "data.text.vectors: v.txt line 1: 0 values after the word"),
    (b"zebra 1 2 3 4\n", "data.text.vectors: v.txt: none of the 15 vocabulary words is in the file"),
]


@pytest.mark.parametrize("content, needle", BAD_FILES)
def test_a_bad_vectors_file_is_one_line_naming_it_and_no_run(tmp_path, cli, runs, content, needle):
    if content is not None:
        (tmp_path / "v.txt").write_bytes(content)
    result = cli("train", write_data(tmp_path))
    assert result.exit_code == 2
    [line] = result.output.strip().splitlines()
    assert line.startswith(f"error: {needle}"), line
    assert run_folders(runs) == []


def test_freeze_without_vectors_is_a_spec_error(tmp_path, cli):
    spec = write_data(tmp_path)
    spec.write_text(spec.read_text().replace("vectors: v.txt", "max_len: 16"))
    result = cli("validate", spec)
    assert result.exit_code == 2 and "data.text.freeze: keeps pretrained word vectors fixed" in result.output


def test_the_vectors_file_is_part_of_the_data_fingerprint(folder, cli, runs):
    from nnlab import runstore
    from nnlab.report.fingerprints import data_key, split_key

    write_vectors(folder / "other.txt", file_vectors(seed=8))
    for name in ("v.txt", "v.txt", "other.txt"):
        assert cli("train", write_data(folder, name, models=TEXT_MODELS[1:2])).exit_code == 0
    read = [runstore.resolve_run(p.name, runs) for p in run_folders(runs)]
    other, first, again = sorted(read, key=lambda run: run.spec["data"]["text"]["vectors"])
    assert data_key(first) == data_key(again) and split_key(first) == split_key(again)
    assert data_key(first) != data_key(other) and split_key(first) != split_key(other)
    assert first.meta.data_fingerprint["vectors"] != other.meta.data_fingerprint["vectors"]


def test_text_beside_table_columns_starts_its_embedding_from_the_vectors_too(folder, cli):
    from nnlab.data.text import size_models_to_vectors

    spec_path = write_data(folder, models=TEXT_MODELS[:1])
    frame = pd.read_csv(folder / "d.csv")
    frame.assign(length=frame["message"].str.len()).to_csv(folder / "d.csv", index=False)  # a column beside
    spec, prepared = prepared_of(spec_path)
    size_models_to_vectors(spec.models, prepared.vectors)
    assert prepared.info.mixed
    tokens = prepared.preprocessor.features.text.tokens
    weight = embedding_of(built(spec, prepared.info, 0, seed=0))
    for word in IN_FILE:
        assert torch.equal(weight[tokens.index(word)], torch.from_numpy(file_vectors()[word]))
    assert not weight.requires_grad
    assert cli("train", spec_path).exit_code == 0
