"""Model families. Adding one = a file here, a spec class in spec.py, and one line in MODELS."""

from __future__ import annotations

from typing import Any, Callable

from nnlab.models import linear, mlp, resmlp

# kind -> build(model_spec, n_inputs, n_outputs) -> torch.nn.Module producing [N, n_outputs]
MODELS: dict[str, Callable[..., Any]] = {"mlp": mlp.build, "resmlp": resmlp.build}


def build_model(model_spec: Any, n_inputs: int, n_outputs: int) -> Any:
    return MODELS[model_spec.kind](model_spec, n_inputs, n_outputs)


def build_baseline(n_inputs: int, n_outputs: int) -> Any:
    return linear.build(n_inputs, n_outputs)


def count_params(model: Any) -> int:
    return sum(p.numel() for p in model.parameters())
