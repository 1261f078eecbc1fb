"""Input kinds: text (vocabulary on the training split, TF-IDF baseline), sequences, images and .npz arrays, and
the Preprocessor that prediction rebuilds from the run's JSON."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from nnlab.data import Preprocessor, array_frame, prepare, tokenize
from nnlab.errors import DataError
from nnlab.core.inputs import OOV_ID, PAD_ID, SparseRows
from nnlab.spec import DataSpec

WORDS = ["free", "prize", "call", "now", "win", "cash", "hello", "lunch", "meeting", "see", "you", "later"]


def messages(n: int = 120, seed: int = 0) -> pd.DataFrame:
    """Spam-like texts: spam draws from the first six words, ham from the last six, with some shared ones."""
    rng = np.random.default_rng(seed)
    label = rng.integers(0, 2, n)
    texts = [" ".join(rng.choice(WORDS[:6] if y else WORDS[6:], rng.integers(2, 9))) + ("!" if y else ".")
             for y in label]
    return pd.DataFrame({"text": texts, "label": np.where(label == 1, "spam", "ham")})


def text_spec(**text) -> DataSpec:
    return DataSpec(path="data.csv", target="label", text={"column": "text", "max_len": 6, **text})


def write(tmp_path, frame: pd.DataFrame, name: str = "data.csv") -> None:
    frame.to_csv(tmp_path / name, index=False)


def test_tokenizer_splits_words_and_punctuation():
    assert tokenize("Call NOW: win £1000!!") == ["call", "now", ":", "win", "£", "1000", "!", "!"]
    assert tokenize("Don't", lowercase=False) == ["Don", "'", "t"]


def test_vocabulary_from_the_training_split_only(tmp_path):
    frame = messages()
    write(tmp_path, frame)
    prepared = prepare(text_spec(), tmp_path, 0)
    vocabulary = prepared.preprocessing["vocabulary"]
    assert vocabulary[PAD_ID] == "<pad>" and vocabulary[OOV_ID] == "<unk>"
    train_tokens = [t for text in frame["text"].iloc[prepared.rows["train"]] for t in tokenize(text)]
    counts = pd.Series(train_tokens).value_counts()
    expected = sorted(counts.index, key=lambda t: (-counts[t], t))  # by frequency, ties alphabetical
    assert vocabulary[2:] == expected
    capped = prepare(text_spec(max_vocab=10), tmp_path, 0).preprocessing["vocabulary"]
    assert len(expected) > 10 and capped == vocabulary[:12]
    assert prepared.info.kind == "text" and prepared.info.shape == (6,) and prepared.info.vocab_size == len(vocabulary)
    x = prepared.x["train"]
    assert x.dtype == np.int64 and x.shape == (len(prepared.rows["train"]), 6)
    first = frame["text"].iloc[prepared.rows["train"][0]]
    ids = [vocabulary.index(t) for t in tokenize(first)][:6]
    assert x[0].tolist() == ids + [PAD_ID] * (6 - len(ids))  # padded at the end


def test_a_word_seen_only_outside_training_is_out_of_vocabulary(tmp_path):
    frame = messages()
    write(tmp_path, frame)
    rows = prepare(text_spec(), tmp_path, 0).rows
    frame.loc[rows["val"][0], "text"] = "zebra free"
    frame.loc[rows["test"][0], "text"] = "zebra"
    write(tmp_path, frame)
    prepared = prepare(text_spec(), tmp_path, 0)
    assert "zebra" not in prepared.preprocessing["vocabulary"]
    assert prepared.x["val"][0, :3].tolist() == [OOV_ID, prepared.preprocessing["vocabulary"].index("free"), PAD_ID]
    assert prepared.x["test"][0, :2].tolist() == [OOV_ID, PAD_ID]


def test_min_freq_max_vocab_lowercase_and_empty_text(tmp_path):
    frame = pd.DataFrame({"text": ["A a a b", "a B c", "", "d"] * 10 + ["rare"] * 3,
                          "label": [0, 1, 0, 1] * 10 + [1] * 3})
    write(tmp_path, frame)
    prepared = prepare(text_spec(min_freq=4, lowercase=False), tmp_path, 0)
    vocabulary = prepared.preprocessing["vocabulary"]
    train = frame["text"].iloc[prepared.rows["train"]]
    counts = pd.Series([t for text in train for t in tokenize(text, lowercase=False)]).value_counts()
    assert set(vocabulary[2:]) == set(counts[counts >= 4].index) and {"A", "B"} <= set(vocabulary)
    assert "rare" not in vocabulary
    empty = prepared.x["train"][(frame["text"].iloc[prepared.rows["train"]] == "").to_numpy()]
    assert len(empty) and (empty[:, 0] == OOV_ID).all() and (empty[:, 1:] == PAD_ID).all()


def test_tfidf_equals_scikit_learn(tmp_path):
    from sklearn.feature_extraction.text import TfidfVectorizer

    frame = messages(200)
    frame.loc[::7, "text"] = frame["text"][::7] + " free free zebra"
    write(tmp_path, frame)
    prepared = prepare(text_spec(), tmp_path, 0)
    vocabulary = prepared.preprocessing["vocabulary"][2:]
    oracle = TfidfVectorizer(vocabulary=vocabulary, tokenizer=tokenize, lowercase=False, token_pattern=None)
    oracle.fit(frame["text"].iloc[prepared.rows["train"]])
    for split, rows in prepared.rows.items():
        ours = prepared.baseline_x[split]
        assert isinstance(ours, SparseRows) and ours.shape == (len(rows), len(vocabulary))
        expected = oracle.transform(frame["text"].iloc[rows]).toarray()
        np.testing.assert_allclose(ours.to_dense(), expected, atol=1e-6)


@pytest.mark.parametrize("change, message", [
    (lambda f: f.rename(columns={"text": "body"}), "data.text.column: column 'text' not found in data.csv"),
    (lambda f: f.assign(text=np.arange(len(f))), "data.text.column: column 'text' holds int64 values; "
                                                 "expected text"),
])
def test_text_errors(tmp_path, change, message):
    write(tmp_path, change(messages()))
    with pytest.raises(DataError, match=re.escape(message)):
        prepare(text_spec(), tmp_path, 0)


def test_sequence_is_time_major_and_scaled_per_feature(tmp_path):
    rng = np.random.default_rng(0)
    n, steps = 90, 4
    # feature 0 near 0, feature 1 near 1000: time-major columns t0f0, t0f1, t1f0, ...
    values = np.stack([rng.normal(0, 1, (n, steps)), rng.normal(1000, 50, (n, steps))], axis=2)
    frame = pd.DataFrame(values.reshape(n, -1), columns=[f"t{t}f{f}" for t in range(steps) for f in range(2)])
    frame["label"] = rng.integers(0, 2, n)
    write(tmp_path, frame)
    prepared = prepare(DataSpec(path="data.csv", target="label", sequence={"steps": steps}), tmp_path, 0)
    x = prepared.x["train"]
    assert x.shape == (len(prepared.rows["train"]), steps, 2) and prepared.info.shape == (steps, 2)
    np.testing.assert_allclose(x.reshape(-1, 2).mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(x.reshape(-1, 2).std(axis=0), 1, atol=1e-4)
    train = values[prepared.rows["train"]]
    expected = (values[prepared.rows["val"]] - train.mean(axis=(0, 1))) / train.std(axis=(0, 1))
    np.testing.assert_allclose(prepared.x["val"], expected, rtol=1e-5, atol=1e-5)
    assert prepared.baseline_x["val"].shape == (len(prepared.rows["val"]), steps * 2)
    with pytest.raises(DataError, match=r"data.sequence.steps: 8 feature columns cannot be read as 3 steps "
                                        r"\(8 = 3 x 2 \+ 2\); columns are read time-major \(t0f0, t0f1"):
        prepare(DataSpec(path="data.csv", target="label", sequence={"steps": 3}), tmp_path, 0)
    with pytest.raises(DataError, match="data.sequence.steps: needed to read table columns as a sequence"):
        prepare(DataSpec(path="data.csv", target="label", sequence={}), tmp_path, 0)


def test_image_is_reshaped_and_scaled_per_channel(tmp_path):
    rng = np.random.default_rng(1)
    n = 80
    images = rng.normal(size=(n, 2, 3, 3)) * np.array([1.0, 100.0])[None, :, None, None]
    frame = pd.DataFrame(images.reshape(n, -1)).add_prefix("p")
    frame["label"] = rng.integers(0, 3, n)
    write(tmp_path, frame)
    prepared = prepare(DataSpec(path="data.csv", target="label", image={"shape": [2, 3, 3]}), tmp_path, 0)
    assert prepared.x["test"].shape == (len(prepared.rows["test"]), 2, 3, 3) and prepared.n_features == 18
    train = images[prepared.rows["train"]]
    mean, std = train.mean(axis=(0, 2, 3))[None, :, None, None], train.std(axis=(0, 2, 3))[None, :, None, None]
    np.testing.assert_allclose(prepared.x["test"], (images[prepared.rows["test"]] - mean) / std, rtol=1e-5,
                               atol=1e-5)
    with pytest.raises(DataError, match=r"data.image.shape: \[2, 3, 2\] holds 12 values per image; the table "
                                        r"has 18 feature columns"):
        prepare(DataSpec(path="data.csv", target="label", image={"shape": [2, 3, 2]}), tmp_path, 0)


def test_npz_arrays(tmp_path):
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 60)
    np.savez(tmp_path / "seq.npz", X=rng.normal(size=(60, 5, 2)), y=y)
    np.savez(tmp_path / "img.npz", X=rng.normal(size=(60, 1, 4, 4)), y=y)
    np.savez(tmp_path / "flat.npz", X=rng.normal(size=(60, 8)), y=y)
    np.savez(tmp_path / "bad.npz", features=rng.normal(size=(60, 8)), y=y)
    seq = prepare(DataSpec(path="seq.npz", target="y", sequence={}), tmp_path, 0)
    assert seq.info.kind == "sequence" and seq.x["train"].shape[1:] == (5, 2)
    img = prepare(DataSpec(path="img.npz", target="label", image={}), tmp_path, 0)  # any target name: y's
    assert img.info.shape == (1, 4, 4) and img.summary.classes == {"0": int((y == 0).sum()), "1": int(y.sum())}
    assert prepare(DataSpec(path="flat.npz", target="y"), tmp_path, 0).info.shape == (8,)
    assert prepare(DataSpec(path="flat.npz", target="y", sequence={"steps": 4}), tmp_path, 0).info.shape == (4, 2)
    for path, message in [("seq.npz", "data.sequence: X in seq.npz is 3-D [N, T, F] = [60, 5, 2]; add "
                                      "data.sequence: {} to read it"),
                          ("img.npz", "data.image: X in img.npz is 4-D [N, C, H, W]"),
                          ("bad.npz", "data.path: bad.npz needs arrays X and y; missing X (arrays: features, y)")]:
        with pytest.raises(DataError, match=re.escape(message)):
            prepare(DataSpec(path=path, target="y"), tmp_path, 0)
    with pytest.raises(DataError, match=r"data.sequence.steps: X has 5 steps"):
        prepare(DataSpec(path="seq.npz", target="y", sequence={"steps": 4}), tmp_path, 0)
    new = rng.normal(size=(3, 5, 2))  # rows to predict that come as an array
    x0 = seq.preprocessor.transform(array_frame(new))
    train_x = np.load(tmp_path / "seq.npz")["X"][seq.rows["train"]]
    np.testing.assert_allclose(x0, (new - train_x.mean(axis=(0, 1))) / train_x.std(axis=(0, 1)), rtol=1e-5)


def kinds(tmp_path) -> list[DataSpec]:
    rng = np.random.default_rng(3)
    n = 100
    table = pd.DataFrame({"a": rng.normal(size=n), "colour": rng.choice(["red", "blue"], n),
                          "label": rng.integers(0, 2, n)})
    write(tmp_path, table, "table.csv")
    write(tmp_path, messages(n), "text.csv")
    grid = pd.DataFrame(rng.normal(size=(n, 12))).add_prefix("v").assign(label=rng.normal(size=n))
    write(tmp_path, grid, "grid.csv")
    return [DataSpec(path="table.csv", target="label"), DataSpec(path="text.csv", target="label", text={}),
            DataSpec(path="grid.csv", target="label", sequence={"steps": 3}),
            DataSpec(path="grid.csv", target="label", image={"shape": [3, 2, 2]}, scale="minmax")]


def test_preprocessor_from_state_reproduces_every_split(tmp_path):
    for spec in kinds(tmp_path):
        prepared = prepare(spec, tmp_path, 0)
        state = json.loads(json.dumps(prepared.preprocessing, allow_nan=False))  # what the run folder holds
        preprocessor = Preprocessor.from_state(state)
        assert preprocessor.info() == prepared.info
        for split, rows in prepared.rows.items():
            new_rows = prepared.frame.iloc[rows].drop(columns=[spec.target]).assign(unrelated="x")
            np.testing.assert_array_equal(preprocessor.transform(new_rows), prepared.x[split])
            baseline = preprocessor.baseline_transform(new_rows)
            expected = prepared.baseline_x[split]
            if isinstance(baseline, SparseRows):
                baseline, expected = baseline.to_dense(), expected.to_dense()
            np.testing.assert_array_equal(baseline, expected)
            np.testing.assert_array_equal(preprocessor.encode_target(prepared.frame.iloc[rows]), prepared.y[split])


def test_preprocessor_checks_new_rows(tmp_path):
    table_spec = kinds(tmp_path)[0]
    prepared = prepare(table_spec, tmp_path, 0)
    preprocessor = prepared.preprocessor
    rows = prepared.frame.drop(columns=["label"])
    with pytest.raises(DataError, match=r"data: column\(s\) colour missing from the rows to predict "
                                        r"\(expected columns: a, colour\)"):
        preprocessor.transform(rows.drop(columns=["colour"]))
    with pytest.raises(DataError, match="data: column 'a' must hold numbers; got .* values such as 'oops'"):
        preprocessor.transform(rows.astype({"a": object}).assign(a="oops"))
    with pytest.raises(DataError, match=r"data.target: column 'label' has label 7, which the model was not "
                                        r"trained on \(labels: 0, 1\)"):
        preprocessor.encode_target(prepared.frame.assign(label=7))


def test_decode_gives_labels_and_units(tmp_path):
    table, _, grid, _ = kinds(tmp_path)
    binary = prepare(table, tmp_path, 0).preprocessor
    assert binary.decode(np.array([0.2, 0.9])).tolist() == [0, 1]
    regression = prepare(grid.model_copy(update={"sequence": None}), tmp_path, 0)
    pre = regression.preprocessor
    units = pre.decode(regression.y["val"])
    np.testing.assert_allclose(units, regression.frame["label"].iloc[regression.rows["val"]], rtol=1e-5, atol=1e-6)
