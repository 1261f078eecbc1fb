"""`nnlab export RUN --model M --to onnx [-o FILE]`: one model as an ONNX file, its preprocessing folded in.

    input  `x`: table rows as numbers (numeric columns, then each category's one-hot column, in the order
           the sidecar's `features` lists), sequences [N, T, F], images [N, C, H, W], or for text the token
           ids [N, max_len] (tokenizing is string work ONNX has no operators for: the vocabulary and the
           tokenizer's settings are in the sidecar)
    graph  the scaling as explicit Sub and Div (per feature, or per channel), the network, then what nnlab
           predicts: sigmoid (binary, P(positive) [N]), softmax (multiclass [N, K]) or, for regression,
           the prediction in the target's units [N]
    output `FILE` (default <model>.onnx) and `FILE` with .json: input, features, classes, the vocabulary

Exported with torch's TorchScript exporter (`dynamo=False`: no onnxscript needed, and quicker), then checked
here with onnxruntime, when it is installed, against nnlab's own outputs on rows made from the scaling's
own statistics. Both files are written atomically (never through a link). The baseline of a text run reads
TF-IDF rows, which ONNX cannot build from text: it says so and writes nothing.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import numpy as np

from nnlab.errors import RunError, describe
from nnlab.runstore import Run
from nnlab.runstore.layout import to_json, write_atomic

if TYPE_CHECKING:
    from torch import nn

    from nnlab.api import SavedModel

OPSET = 17
TOLERANCE = 1e-5
CHECK_ROWS = 64


def folded(saved: SavedModel) -> nn.Module:
    """The saved module with its scaling before it and nnlab's output function after it."""
    import torch
    from torch import nn

    from nnlab.data.arrays import ArrayEncoder
    from nnlab.data.table import TableEncoder

    features, target = saved.preprocessor.features, saved.preprocessor.target
    shape: tuple[int, ...] = ()
    if isinstance(features, ArrayEncoder):  # per channel: broadcast along the channel axis of [N, *shape]
        shape = tuple(-1 if axis == features.channel_axis else 1 for axis in range(len(features.shape)))
    scaled = isinstance(features, (TableEncoder, ArrayEncoder))

    class Exported(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.module = saved.module
            if scaled:
                self.register_buffer("center", torch.tensor(features.center, dtype=torch.float32).reshape(shape or -1))
                self.register_buffer("spread", torch.tensor(features.spread, dtype=torch.float32).reshape(shape or -1))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if scaled:
                x = (x - self.center) / self.spread
            if saved.baseline:
                x = x.reshape(x.shape[0], -1)
            out = self.module(x).float()
            if target.task == "binary":
                return out.reshape(-1).sigmoid()
            if target.task == "multiclass":
                return out.softmax(dim=1)
            return out.reshape(-1) * float(target.std) + float(target.mean)

    return Exported().eval()


def example_input(saved: SavedModel, rows: int) -> np.ndarray:
    """Inputs the check runs on: values around the training data (its centre and spread), or token ids."""
    from nnlab.data.text import TextEncoder

    features = saved.preprocessor.features
    rng = np.random.default_rng(0)
    if isinstance(features, TextEncoder):
        return rng.integers(0, features.vocab_size, size=(rows, features.spec.max_len)).astype(np.int64)
    info = saved.preprocessor.info()
    x = rng.normal(size=(rows, *info.shape))
    if saved.preprocessor.kind == "table":
        return (x * features.spread + features.center).astype(np.float32)
    axis = features.channel_axis  # type: ignore[union-attr]
    moved = np.moveaxis(x, 1 + axis, -1) * features.spread + features.center  # type: ignore[union-attr]
    return np.ascontiguousarray(np.moveaxis(moved, -1, 1 + axis)).astype(np.float32)


def reference_outputs(saved: SavedModel, x: np.ndarray) -> np.ndarray:
    """What nnlab itself computes for inputs `x` given as the ONNX model takes them (before scaling)."""
    import torch

    from nnlab.data.text import TextEncoder
    from nnlab.training.metrics import probabilities

    features = saved.preprocessor.features
    if isinstance(features, TextEncoder):
        model_x = x
    elif saved.preprocessor.kind == "table":
        model_x = ((x.astype(np.float64) - features.center) / features.spread).astype(np.float32)
    else:
        axis = features.channel_axis  # type: ignore[union-attr]
        moved = np.moveaxis(x.astype(np.float64), 1 + axis, -1)
        moved = (moved - features.center) / features.spread  # type: ignore[union-attr]
        model_x = np.ascontiguousarray(np.moveaxis(moved, -1, 1 + axis)).astype(np.float32)
    tensor = torch.from_numpy(model_x)
    if saved.baseline:
        tensor = tensor.reshape(len(tensor), -1)
    with torch.inference_mode():
        out = probabilities(saved.task, saved.module(tensor)).numpy()
    return saved.preprocessor.target.to_units(out) if saved.task == "regression" else out


def onnx_bytes(saved: SavedModel, x: np.ndarray) -> bytes:
    import torch

    module = folded(saved)
    out = io.BytesIO()
    try:
        with warnings.catch_warnings():  # the tracer's notes on shapes it fixes; the check below is the proof
            warnings.simplefilter("ignore")
            torch.onnx.export(module, (torch.from_numpy(x),), out, input_names=["x"], output_names=["output"],
                              dynamic_axes={"x": {0: "rows"}, "output": {0: "rows"}}, opset_version=OPSET,
                              dynamo=False)
    except Exception as e:  # noqa: BLE001 - the exporter raises many kinds; any is "this kind cannot export"
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise RunError(f"--to onnx: model '{saved.name}' ({saved.kind}) cannot be exported to ONNX: "
                       f"{first[:200]}") from None
    return out.getvalue()


def run_onnx(data: bytes, x: np.ndarray) -> np.ndarray:
    import onnxruntime

    session = onnxruntime.InferenceSession(data, providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


def sidecar(saved: SavedModel, run: Run) -> dict[str, object]:
    from nnlab.data.table import TableEncoder
    from nnlab.data.text import TextEncoder

    features = saved.preprocessor.features
    info = saved.preprocessor.info()
    described: dict[str, object] = {
        "run": run.id, "model": saved.name, "kind": saved.kind, "task": saved.task,
        "input": {"name": "x", "kind": saved.preprocessor.kind, "shape": ["rows", *info.shape],
                  "dtype": "int64" if isinstance(features, TextEncoder) else "float32"},
        "output": {"name": "output", "holds": {"binary": "P(positive class) [rows]",
                                               "multiclass": "class probabilities [rows, classes]",
                                               "regression": "prediction in the target's units [rows]"}[saved.task]},
        "columns": saved.columns}
    if saved.task != "regression":
        described["classes"] = saved.classes
    if isinstance(features, TableEncoder):
        described["features"] = features.encoded_names
        described["categories"] = features.categories
        described["impute"] = features.fill
    if isinstance(features, TextEncoder):
        described["text"] = features.spec.model_dump(mode="json")
        described["vocabulary"] = features.tokens  # a token's id is its index; 0 pads, 1 is out of vocabulary
    return described


def export_model(run: Run, model: Optional[str], out: Optional[Path]) -> list[str]:
    """Write the model as ONNX (and its sidecar JSON); lines saying what was written and how it checked."""
    import importlib.util

    from nnlab.api import LoadedRun, SavedEnsemble
    from nnlab.data.text import TextEncoder

    if importlib.util.find_spec("onnx") is None:
        raise RunError("--to onnx: needs the onnx extra: pip install -e '.[onnx]' in the nnlab checkout")
    saved = LoadedRun(run).model(model)
    if isinstance(saved, SavedEnsemble):  # several models averaged: no one graph to write
        member = saved.members[0][1].name.split("@")[0]
        raise RunError(f"--to onnx: model '{saved.name}' is an ensemble of {len(saved.members)} saved models, not "
                       f"one graph; export a member (--model {member}) or predict with nnlab predict")
    if saved.preprocessor.info().mixed:  # its graph would need the table's one-hot and scaling beside the ids
        raise RunError(f"--to onnx: model '{saved.name}' reads text beside table columns, which the ONNX export "
                       "does not take yet; export a run on text or on a table alone")
    if saved.baseline and isinstance(saved.preprocessor.features, TextEncoder):
        raise RunError(f"--to onnx: model '{saved.name}' reads TF-IDF rows of the text, which ONNX cannot build; "
                       "export one of the run's neural models")
    out = out or Path(f"{saved.name}.onnx")
    x = example_input(saved, CHECK_ROWS)
    data = onnx_bytes(saved, x)
    lines = []
    if importlib.util.find_spec("onnxruntime") is not None:
        got, expected = run_onnx(data, x), reference_outputs(saved, x)
        worst = float(np.max(np.abs(got - expected))) if got.size else 0.0
        if not worst <= TOLERANCE * max(1.0, float(np.max(np.abs(expected))) if expected.size else 1.0):
            raise RunError(f"--to onnx: model '{saved.name}': onnxruntime differs from nnlab by {worst:.3g} "
                           f"(more than {TOLERANCE:g}); nothing written")
        lines.append(f"checked: onnxruntime matches nnlab on {CHECK_ROWS} rows (largest difference {worst:.2g})")
    side = out.with_suffix(".json")
    try:
        write_atomic(out, data)
        write_atomic(side, to_json(sidecar(saved, run)))
    except OSError as e:
        raise RunError(f"-o {out}: cannot write ({describe(e)})") from None
    return [f"model '{saved.name}' ({saved.kind}) of run {run.id}: {out}", f"inputs, classes"
            f"{', vocabulary' if isinstance(saved.preprocessor.features, TextEncoder) else ''}: {side}", *lines]
