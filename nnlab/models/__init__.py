"""Model families: one module per kind (mlp, resmlp, cnn, rnn, transformer; embedding for token inputs),
the registry of kinds (`registry`), the baseline's linear model and convex fit (`linear`), and the dry
pass that tables a model's layers and memory before it exists (`summary`).

Adding a kind = a file here, a spec class in `nnlab/spec/models.py` (with its line in `INPUT_KINDS_BY_MODEL`)
and one line in `registry.MODELS`. Every model is built from `(model spec, InputInfo)` and maps a batch
[B, *info.shape] to [B, n_outputs].

May import: `nnlab.spec`, `nnlab.core`, `nnlab.errors` (and torch).
"""

from __future__ import annotations

from torch import nn

from nnlab.models import linear
from nnlab.models.registry import MODELS, build_model, check_fits
from nnlab.models.summary import LayerRow, count_params_of, estimate_memory, layer_table

__all__ = ["MODELS", "LayerRow", "build_model", "build_baseline", "check_fits", "count_params", "count_params_of",
           "estimate_memory", "layer_table"]


def build_baseline(n_inputs: int, n_outputs: int) -> nn.Module:
    return linear.build(n_inputs, n_outputs)


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
