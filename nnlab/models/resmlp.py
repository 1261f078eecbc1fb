"""Residual MLP: a projection to `width`, `blocks` residual blocks x + f(x), then a linear head.
The skip connections keep deeper tabular networks trainable."""

import torch
from torch import nn

from nnlab.models.mlp import hidden_block
from nnlab.spec import ResMLPSpec


class Residual(nn.Module):
    def __init__(self, body: nn.Module):
        super().__init__()
        self.body = body

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def build(spec: ResMLPSpec, n_inputs: int, n_outputs: int) -> nn.Module:
    blocks = [Residual(nn.Sequential(*hidden_block(spec.width, spec.width, spec.activation, spec.norm,
                                                   spec.dropout))) for _ in range(spec.blocks)]
    return nn.Sequential(nn.Linear(n_inputs, spec.width), *blocks, nn.Linear(spec.width, n_outputs))
