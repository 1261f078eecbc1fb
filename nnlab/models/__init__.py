"""Model families. Adding one = a file here, a spec class in spec.py (with its line in INPUT_KINDS_BY_MODEL)
and one line in MODELS.

Every model is built from `(model spec, InputInfo)` and maps a batch [B, *info.shape] to [B, n_outputs].
"""

from __future__ import annotations

from typing import Any, Callable

from torch import nn

from nnlab.core.inputs import InputInfo
from nnlab.models import cnn, linear, mlp, resmlp, rnn, transformer
from nnlab.models.summary import LayerRow, count_params_of, estimate_memory, layer_table
from nnlab.spec import INPUT_KINDS_BY_MODEL

__all__ = ["MODELS", "LayerRow", "build_model", "build_baseline", "count_params", "count_params_of",
           "estimate_memory", "layer_table"]

# kind -> build(model_spec, info) -> nn.Module producing [B, info.n_outputs]
MODELS: dict[str, Callable[[Any, InputInfo], nn.Module]] = {
    "mlp": mlp.build, "resmlp": resmlp.build, "cnn": cnn.build, "rnn": rnn.build, "transformer": transformer.build}

DATA_SETTING = {"text": "data.text", "sequence": "data.sequence", "image": "data.image"}


def build_model(model_spec: Any, info: InputInfo) -> nn.Module:
    """The model a spec describes, for inputs like `info`. Raises ValueError when they do not fit."""
    check_fits(model_spec.kind, info)
    return MODELS[model_spec.kind](model_spec, info)


def check_fits(kind: str, info: InputInfo) -> None:
    """The spec reports a model that does not fit the data before a run exists; this is the backstop for
    code that builds models directly."""
    if info.kind not in INPUT_KINDS_BY_MODEL[kind]:
        settings = [DATA_SETTING[k] for k in INPUT_KINDS_BY_MODEL[kind] if k in DATA_SETTING]
        needs = ", ".join(settings[:-1]) + " or " + settings[-1] if len(settings) > 1 else settings[0]
        raise ValueError(f"model kind '{kind}' does not fit {info.kind} data; it needs {needs}")
    if info.kind == "text" and info.vocab_size < 2:
        raise ValueError(f"text input needs a vocabulary (vocab_size >= 2); got {info.vocab_size}")


def build_baseline(n_inputs: int, n_outputs: int) -> nn.Module:
    return linear.build(n_inputs, n_outputs)


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
