"""Text beside table columns (Ludwig's combiner): one encoder per input, their outputs side by side, a head.

A row arrives as float32 [T + F] (`nnlab.data.mixed`): T token ids, then F encoded columns. The text encoder
is the model kind itself (rnn, cnn, transformer; mlp and resmlp: a bag of embeddings), built for text with
`combiner.text` outputs instead of the task's; the table encoder is an MLP over the columns (`table.hidden`);
`concat` puts the two outputs side by side and `combiner.hidden` layers learn how they interact before the
head. `inputs: [text]` or `[table]` reads one input alone, as the same model would on that input only (the
comparison that shows what the other input adds), from the same rows and split.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import replace
from typing import Callable

import torch
from torch import nn

from nnlab.core.inputs import InputInfo
from nnlab.models.mlp import hidden_block
from nnlab.spec import ModelSpec
from nnlab.spec.models import CombinerSpec, TableEncoderSpec

Builder = Callable[[ModelSpec, InputInfo], nn.Module]


class TokenIds(nn.Module):
    """[B, T + F] -> the token ids [B, T] as int64 (exact: ids are far below float32's 2**24)."""

    def __init__(self, steps: int):
        super().__init__()
        self.steps = steps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[..., :self.steps].long()

    def extra_repr(self) -> str:
        return f"first {self.steps}"


class Columns(nn.Module):
    """[B, T + F] -> the encoded columns [B, F]."""

    def __init__(self, steps: int):
        super().__init__()
        self.steps = steps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[..., self.steps:]

    def extra_repr(self) -> str:
        return f"after {self.steps}"


class Concat(nn.Module):
    """Text encoder and table encoder side by side, then the combiner's layers and the head."""

    def __init__(self, steps: int, text: nn.Module, table: nn.Module, head: nn.Module):
        super().__init__()
        self.tokens, self.columns = TokenIds(steps), Columns(steps)
        self.text, self.table, self.head = text, table, head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.cat([self.text(self.tokens(x)), self.table(self.columns(x))], dim=-1))


def mlp_layers(width: int, hidden: list[int], activation: str) -> tuple[list[nn.Module], int]:
    layers: list[nn.Module] = []
    for size in hidden:
        layers += hidden_block(width, size, activation, "none", 0.0)
        width = size
    return layers, width


def build(spec: ModelSpec, info: InputInfo, models: dict[str, Builder]) -> nn.Module:
    """The model for text beside table columns that `spec` describes (`models`: the registry's builders)."""
    steps, width = info.shape[0], info.table_width
    augment = spec.train.augment if spec.train is not None else None
    if augment is not None and augment.token_dropout is not None:
        # It replaces any nonzero value of a row by OOV_ID, and here a row's columns follow its token ids.
        raise ValueError("train.augment.token_dropout: not available for text beside table columns (it would "
                         "change the columns' values too); leave it out for this data")
    text_info = InputInfo("text", info.shape, info.n_outputs, info.vocab_size, vectors=info.vectors)
    reads_text, reads_table = spec.reads_beside
    if not reads_table:
        return nn.Sequential(OrderedDict(tokens=TokenIds(steps), text=models[spec.kind](spec, text_info)))
    if not reads_text:
        table_info = InputInfo("table", (width,), info.n_outputs)
        return nn.Sequential(OrderedDict(columns=Columns(steps), table=models[spec.kind](spec, table_info)))
    combiner = spec.combiner or CombinerSpec()
    table_spec = spec.table or TableEncoderSpec()
    text = models[spec.kind](spec, replace(text_info, n_outputs=combiner.text))
    table_layers, table_width = mlp_layers(width, table_spec.hidden, table_spec.activation)
    head_layers, head_width = mlp_layers(combiner.text + table_width, combiner.hidden, combiner.activation)
    head = nn.Sequential(*head_layers, nn.Linear(head_width, info.n_outputs))
    return Concat(steps, text, nn.Sequential(*table_layers) if table_layers else nn.Identity(), head)
