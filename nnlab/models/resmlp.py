"""Residual MLP: a projection to `width`, `blocks` residual blocks x + f(x), then a linear head.
The skip connections keep deeper tabular networks trainable. Inputs are read as in `mlp` (text: a bag of
embeddings; sequences and images: flattened)."""

from __future__ import annotations

import torch
from torch import nn

from nnlab.core.inputs import InputInfo
from nnlab.models.mlp import flat_input, hidden_block
from nnlab.spec import ResMLPSpec


class Residual(nn.Module):
    def __init__(self, body: nn.Module):
        super().__init__()
        self.body = body

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def build(spec: ResMLPSpec, info: InputInfo) -> nn.Module:
    layers, width = flat_input(info, spec.embedding)
    blocks = [Residual(nn.Sequential(*hidden_block(spec.width, spec.width, spec.activation, spec.norm,
                                                   spec.dropout))) for _ in range(spec.blocks)]
    return nn.Sequential(*layers, nn.Linear(width, spec.width), *blocks, nn.Linear(spec.width, info.n_outputs))
