"""The model registry: each kind the spec allows and the function that builds it from `(model spec,
InputInfo)`. `set(MODELS) == set(MODEL_KINDS)` (the spec's union) is checked by the tests."""

from __future__ import annotations

from typing import Callable

from torch import nn

from nnlab.core.inputs import InputInfo
from nnlab.models import cnn, combiner, mlp, resmlp, rnn, transformer
from nnlab.spec import INPUT_KINDS_BY_MODEL, ModelSpec, needed_data

# kind -> build(model_spec, info) -> nn.Module producing [B, info.n_outputs]
MODELS: dict[str, Callable[[ModelSpec, InputInfo], nn.Module]] = {
    "mlp": mlp.build, "resmlp": resmlp.build, "cnn": cnn.build, "rnn": rnn.build, "transformer": transformer.build}


def build_model(model_spec: ModelSpec, info: InputInfo) -> nn.Module:
    """The model a spec describes, for inputs like `info`. Raises ValueError when they do not fit."""
    check_fits(model_spec.kind, info)
    if info.mixed:  # text beside table columns: an encoder per input, concatenated before the head
        return combiner.build(model_spec, info, MODELS)
    if model_spec.sets_inputs:
        given = next(f for f in ("inputs", "table", "combiner") if getattr(model_spec, f) is not None)
        raise ValueError(f"{given}: reads table columns beside data.text; the data has no other feature columns")
    return MODELS[model_spec.kind](model_spec, info)


def check_fits(kind: str, info: InputInfo) -> None:
    """The spec reports a model that does not fit the data before a run exists (the same rule,
    `INPUT_KINDS_BY_MODEL`); this is the backstop for code that builds models directly."""
    if info.kind not in INPUT_KINDS_BY_MODEL[kind]:
        raise ValueError(f"model kind '{kind}' does not fit {info.kind} data; it needs {needed_data(kind)}")
    if info.kind == "text" and info.vocab_size < 2:
        raise ValueError(f"text input needs a vocabulary (vocab_size >= 2); got {info.vocab_size}")
