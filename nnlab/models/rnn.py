"""Recurrent network: `layers` GRU, LSTM or plain RNN layers (each direction its own module when
bidirectional), dropout between layers, then the steps pooled to one vector (`last`, `mean` or `max`) and a
linear head. Sequences [B, T, F] are read as they are; text starts from a token embedding.

Padding-aware without packing: real tokens come first, so the forward direction's output at the last real
token has seen only real tokens, and the backward direction reads each text reversed within its own length
(padding stays at the end). Lengths stay on the device; nothing is read back to the host per step, which
`pack_padded_sequence` (lengths on the CPU) would need.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from nnlab.core.inputs import InputInfo
from nnlab.models.dropout import Dropout, members_batched
from nnlab.models.embedding import masked_max, masked_mean, real_lengths, real_positions, token_embedding
from nnlab.spec import RNNSpec

CELLS = {"gru": nn.GRU, "lstm": nn.LSTM, "rnn": nn.RNN}


def run_layer(layer: nn.RNNBase, x: torch.Tensor) -> torch.Tensor:
    """One layer's outputs [B, T, H]: torch's own kernel, or, while members run batched under torch.vmap
    (which has no batching rule for aten::gru/lstm/rnn), the same recurrence as batched operations."""
    return recurrence(layer, x) if members_batched() else layer(x)[0]


def recurrence(layer: nn.RNNBase, x: torch.Tensor) -> torch.Tensor:
    """nn.GRU/LSTM/RNN (one layer, one direction, batch first, tanh) step by step, from the layer's own weights:
    the input projection of every step at once, then one matrix product per step (under vmap: a bmm over the
    members). The steps are taken with unbind, so the backward stacks their gradients once (indexing step t
    would build a zero tensor of every step per step)."""
    w_hh, b_hh = layer.weight_hh_l0, layer.bias_hh_l0
    inputs = torch.nn.functional.linear(x, layer.weight_ih_l0, layer.bias_ih_l0).unbind(1)
    h = x.new_zeros(x.shape[0], w_hh.shape[1])
    c = h
    w_t = w_hh.t()
    outs = []
    for gi in inputs:
        gh = torch.addmm(b_hh, h, w_t)
        if isinstance(layer, nn.GRU):
            ir, iz, i_n = gi.chunk(3, 1)
            hr, hz, hn = gh.chunk(3, 1)
            r, z = torch.sigmoid(ir + hr), torch.sigmoid(iz + hz)
            n = torch.tanh(i_n + r * hn)
            h = n + z * (h - n)
        elif isinstance(layer, nn.LSTM):
            i, f, g, o = (gi + gh).chunk(4, 1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
        else:
            h = torch.tanh(gi + gh)
        outs.append(h)
    return torch.stack(outs, 1)


def reversal_index(lengths: torch.Tensor, steps: int) -> torch.Tensor:
    """Int64 [B, T]: position t reads L-1-t for t < L and stays put after, so reversing twice is identity."""
    t = torch.arange(steps, device=lengths.device).unsqueeze(0)
    last = lengths.unsqueeze(1) - 1
    return torch.where(t <= last, last - t, t)


def reverse_within(x: torch.Tensor, index: Optional[torch.Tensor]) -> torch.Tensor:
    """Reverse [B, T, H] along time within each row's length (all of it when every position is real)."""
    if index is None:
        return x.flip(1)
    return x.gather(1, index.unsqueeze(-1).expand_as(x))


class RNN(nn.Module):
    def __init__(self, spec: RNNSpec, info: InputInfo):
        super().__init__()
        self.pool = spec.pool
        self.embedding = token_embedding(info.vocab_size, spec.embedding, info.vectors) if info.kind == "text" else None
        width = spec.embedding if info.kind == "text" else info.shape[-1]
        directions = 2 if spec.bidirectional else 1
        cell = CELLS[spec.cell]
        inputs = [width, *[spec.hidden * directions] * (spec.layers - 1)]
        self.forward_layers = nn.ModuleList(cell(n, spec.hidden, batch_first=True) for n in inputs)
        self.backward_layers = nn.ModuleList(cell(n, spec.hidden, batch_first=True) for n in inputs) \
            if spec.bidirectional else None
        self.dropout = Dropout(spec.dropout) if spec.dropout > 0 and spec.layers > 1 else None
        self.head = nn.Linear(spec.hidden * directions, info.n_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        real = lengths = index = None
        if self.embedding is not None:
            real = real_positions(x)
            lengths = real_lengths(real)
            x = self.embedding(x)
            if self.backward_layers is not None:
                index = reversal_index(lengths, x.shape[1])
        forward_out = backward_out = x
        for i, layer in enumerate(self.forward_layers):
            forward_out = run_layer(layer, x)
            if self.backward_layers is not None:
                backward_out = reverse_within(run_layer(self.backward_layers[i], reverse_within(x, index)), index)
                x = torch.cat([forward_out, backward_out], dim=-1)
            else:
                x = forward_out
            if self.dropout is not None and i < len(self.forward_layers) - 1:
                x = self.dropout(x)
        return self.head(self._pooled(x, forward_out, backward_out, real, lengths))

    def _pooled(self, steps: torch.Tensor, forward_out: torch.Tensor, backward_out: torch.Tensor,
                real: Optional[torch.Tensor], lengths: Optional[torch.Tensor]) -> torch.Tensor:
        if self.pool == "mean":
            return steps.mean(1) if real is None else masked_mean(steps, real)
        if self.pool == "max":
            return steps.amax(1) if real is None else masked_max(steps, real)
        # last: the forward direction after the last real step; the backward one after reading back to step 0
        if lengths is None:
            last = forward_out[:, -1]
        else:
            last = forward_out.gather(1, (lengths - 1).view(-1, 1, 1).expand(-1, 1, forward_out.shape[-1]))[:, 0]
        return last if self.backward_layers is None else torch.cat([last, backward_out[:, 0]], dim=-1)


def build(spec: RNNSpec, info: InputInfo) -> nn.Module:
    return RNN(spec, info)
