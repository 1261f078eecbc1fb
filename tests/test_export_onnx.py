"""`nnlab export --to onnx`: every model family exported with its scaling folded in, then run by onnxruntime
on the run's own validation rows and compared with nnlab's probabilities for them (1e-5). One tiny run per
input kind (table, sequence, image, text), trained once for the module."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import nnlab
from conftest import binary_table, write_spec
from nnlab.cli import app
from nnlab.data import prepare
from nnlab.spec import load_spec

onnxruntime = pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")
pytest.importorskip("onnx", reason="the onnx extra is not installed")

TRAIN = {"epochs": 2, "batch_size": 32}
RUNS = {
    "table": [{"name": "mlp", "kind": "mlp", "hidden": [8]},
              {"name": "resmlp", "kind": "resmlp", "width": 8, "blocks": 1}],
    "sequence": [{"name": "cnn1d", "kind": "cnn", "channels": [4], "kernel": 3},
                 {"name": "gru", "kind": "rnn", "cell": "gru", "hidden": 6},
                 {"name": "lstm", "kind": "rnn", "cell": "lstm", "hidden": 6, "pool": "mean"},
                 {"name": "transformer", "kind": "transformer", "d_model": 8, "heads": 2, "layers": 1, "ff": 16}],
    "image": [{"name": "cnn2d", "kind": "cnn", "channels": [4], "kernel": 3}],
    "text": [{"name": "transformer", "kind": "transformer", "d_model": 8, "heads": 2, "layers": 1, "ff": 16},
             {"name": "gru", "kind": "rnn", "cell": "gru", "hidden": 6}],
}
CASES = [(kind, model["name"]) for kind, models in RUNS.items() for model in models]


def frame_for(kind: str, n: int = 160) -> tuple[pd.DataFrame, dict]:
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, size=n)
    if kind == "table":
        frame = binary_table(n)
        frame["shade"] = rng.choice(["dark", "light"], n)  # a one-hot column beside the numbers
        return frame, {}
    if kind == "text":
        words = np.array(["good", "great", "fine", "bad", "poor", "awful", "the", "a", "film", "day"])
        texts = [" ".join(rng.choice(words[:3] if label else words[3:6], 3)) + " " + " ".join(rng.choice(words[6:], 2))
                 for label in y]
        return pd.DataFrame({"text": texts, "label": y}), {"text": {"max_len": 8, "min_freq": 1}}
    shape = (6, 2) if kind == "sequence" else (2, 4, 4)
    x = rng.normal(size=(n, int(np.prod(shape)))) * 5 + 3  # far from 0 and 1: the folded scaling shows
    x[:, 0] += y * 4
    frame = pd.DataFrame(x).add_prefix("v")
    frame["label"] = y
    return frame, {"sequence": {"steps": 6}} if kind == "sequence" else {"image": {"shape": list(shape)}}


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict[str, tuple[Path, Path]]:
    """Input kind -> (spec path, run folder)."""
    out = {}
    for kind, models in RUNS.items():
        folder = tmp_path_factory.mktemp(kind)
        frame, data = frame_for(kind)
        frame.to_csv(folder / "data.csv", index=False)
        spec = write_spec(folder, {"name": f"onnx-{kind}", "seed": 0,
                                   "data": {"path": "data.csv", "target": "label", **data},
                                   "train": TRAIN, "models": models})
        result = CliRunner().invoke(app, ["train", str(spec), "--runs-dir", str(folder / "runs"), "--no-progress"],
                                    catch_exceptions=False)
        assert result.exit_code == 0, result.output
        (run,) = (folder / "runs").iterdir()
        out[kind] = (spec, run)
    return out


def validation_rows(spec_path: Path) -> pd.DataFrame:
    spec, base = load_spec(spec_path)
    prepared = prepare(spec.data, base, spec.seed)
    return prepared.frame.iloc[prepared.rows["val"]]


def onnx_input(saved, rows: pd.DataFrame) -> np.ndarray:
    """The rows as the ONNX model takes them: unscaled numbers (one-hot columns included), or token ids."""
    features = saved.preprocessor.features
    if saved.preprocessor.kind == "text":
        return saved.preprocessor.transform(rows)
    if saved.preprocessor.kind == "table":
        return features._encode(rows).astype(np.float32)
    return rows[features.columns].to_numpy(np.float32).reshape(len(rows), *features.shape)


@pytest.mark.parametrize("kind,model", CASES, ids=[f"{k}-{m}" for k, m in CASES])
def test_onnxruntime_matches_nnlab_on_the_validation_rows(trained, tmp_path, kind, model):
    spec, run = trained[kind]
    out = tmp_path / f"{model}.onnx"
    result = CliRunner().invoke(app, ["export", str(run), "--to", "onnx", "--model", model, "-o", str(out)],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert f"{out}" in result.output and "checked: onnxruntime matches nnlab" in result.output
    saved = nnlab.load_run(str(run)).model(model)
    rows = validation_rows(spec)
    expected = saved.outputs(rows)  # nnlab's own P(positive) for the run's validation rows
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {"x": onnx_input(saved, rows)})
    assert got.shape == expected.shape == (len(rows),)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)
    assert np.array_equal(got > 0.5, expected > 0.5)
    side = json.loads(out.with_suffix(".json").read_text())
    assert side["classes"] == saved.classes and side["input"]["shape"][1:] == list(saved.preprocessor.info().shape)
    if kind == "text":  # the vocabulary beside the model, as the run keeps it
        assert side["vocabulary"] == json.loads((run / "models" / f"{model}.json").read_text())["preprocessing"]["vocabulary"]
    if kind == "table":
        assert side["features"] == ["a", "b", "noise", "shade=dark", "shade=light"]


def test_a_model_onnx_cannot_hold_says_so_and_writes_nothing(trained, tmp_path):
    _, run = trained["text"]
    out = tmp_path / "b.onnx"
    result = CliRunner().invoke(app, ["export", str(run), "--to", "onnx", "--model", "baseline", "-o", str(out)])
    assert result.exit_code == 2
    assert result.output.strip() == ("error: --to onnx: model 'baseline' reads TF-IDF rows of the text, which ONNX "
                                     "cannot build; export one of the run's neural models")
    assert not out.exists() and not out.with_suffix(".json").exists()


def test_the_onnx_file_replaces_a_link_never_writes_through_it(trained, tmp_path):
    _, run = trained["table"]
    target = tmp_path / "elsewhere.txt"
    target.write_text("keep me")
    (tmp_path / "m.onnx").symlink_to(target)
    result = CliRunner().invoke(app, ["export", str(run), "--to", "onnx", "--model", "mlp", "-o", str(tmp_path / "m.onnx")])
    assert result.exit_code == 0, result.output
    assert target.read_text() == "keep me" and not (tmp_path / "m.onnx").is_symlink()
