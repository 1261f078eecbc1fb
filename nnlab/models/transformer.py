"""Transformer encoder: tokens (text: a token embedding; sequences: a linear projection of each step's
features) plus positions, `layers` pre-norm encoder layers, a final layer norm, then pooling (`cls`: a
learned token prepended to every input; `mean`: the mean over real positions) and a linear head.

On text a key padding mask hides padded positions from attention and from the mean, and the cls token is
never masked, so padding never changes an output. PyTorch's nested-tensor fast path is off: it drops padded
positions in eval mode only, which would make train and eval disagree at padded positions.
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np
import torch
from torch import nn

from nnlab.core.inputs import InputInfo
from nnlab.models.dropout import Dropout
from nnlab.models.embedding import masked_mean, real_positions, token_embedding
from nnlab.spec import TransformerSpec


class LearnedPositions(nn.Module):
    """Adds a learned vector per position; inputs shorter than the table use its first rows."""

    def __init__(self, max_len: int, d_model: int):
        super().__init__()
        self.table = nn.Parameter(torch.empty(max_len, d_model))
        nn.init.normal_(self.table, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.table[: x.shape[1]]


class SinusoidalPositions(nn.Module):
    """Adds the fixed sine/cosine code of each position (Vaswani et al. 2017); nothing to learn or save."""

    def __init__(self, max_len: int, d_model: int):
        super().__init__()
        # Computed in numpy: a model being sized on the meta device gets the buffer without any meta arithmetic.
        position = np.arange(max_len, dtype=np.float64)[:, None]
        rate = np.exp(np.arange(0, d_model, 2) * (-math.log(10000.0) / d_model))
        code = np.zeros((max_len, d_model), dtype=np.float32)
        code[:, 0::2] = np.sin(position * rate)
        code[:, 1::2] = np.cos(position * rate[: d_model // 2])
        self.register_buffer("code", torch.tensor(code), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.code[: x.shape[1]]


class ClsToken(nn.Module):
    """Prepends one learned token whose final state summarises the input."""

    def __init__(self, d_model: int):
        super().__init__()
        self.token = nn.Parameter(torch.empty(1, 1, d_model))
        nn.init.normal_(self.token, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.token.expand(len(x), -1, -1), x], dim=1)


class Attention(nn.MultiheadAttention):
    """nn.MultiheadAttention's weights and call, its arithmetic written out (batch first, self-attention, a
    key padding mask): the attention weights' dropout is a `Dropout` a stack can supply masks to (torch's
    own draws from the global generator), and there is no fused kernel, which torch.vmap cannot batch."""

    weights_dropout: Dropout

    def forward(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,  # noqa: D102 - as torch's
                key_padding_mask: Optional[torch.Tensor] = None, need_weights: bool = False,
                attn_mask: Optional[torch.Tensor] = None, average_attn_weights: bool = True,
                is_causal: bool = False) -> tuple[torch.Tensor, None]:
        b, t, d = query.shape
        heads = self.num_heads
        q, k, v = (part.reshape(b, t, heads, d // heads).transpose(1, 2)
                   for part in nn.functional.linear(query, self.in_proj_weight, self.in_proj_bias).chunk(3, -1))
        scores = torch.matmul(q, k.transpose(-2, -1)) / math.sqrt(d // heads)
        if key_padding_mask is not None:
            scores = scores.masked_fill(key_padding_mask[:, None, None, :], float("-inf"))
        weights = self.weights_dropout(torch.softmax(scores, dim=-1))
        return self.out_proj(torch.matmul(weights, v).transpose(1, 2).reshape(b, t, d)), None


class EncoderLayer(nn.TransformerEncoderLayer):
    """nn.TransformerEncoderLayer (pre-norm, batch first), its weights named and initialised as torch's, with
    every dropout a `Dropout` (see Attention) and without the fused fast path."""

    def __init__(self, d_model: int, heads: int, ff: int, dropout: float):
        super().__init__(d_model, heads, ff, dropout, batch_first=True, norm_first=True)
        self.dropout, self.dropout1, self.dropout2 = Dropout(dropout), Dropout(dropout), Dropout(dropout)
        self.self_attn.__class__ = Attention  # the weights torch made, from the same draws: seeds keep their models
        self.self_attn.weights_dropout = Dropout(dropout)

    def forward(self, src: torch.Tensor, src_mask: Optional[torch.Tensor] = None,  # noqa: D102 - as torch's
                src_key_padding_mask: Optional[torch.Tensor] = None, is_causal: bool = False) -> torch.Tensor:
        x = src + self._sa_block(self.norm1(src), None, src_key_padding_mask)
        return x + self._ff_block(self.norm2(x))


class Transformer(nn.Module):
    def __init__(self, spec: TransformerSpec, info: InputInfo):
        super().__init__()
        if spec.d_model % spec.heads:
            raise ValueError(f"transformer: d_model ({spec.d_model}) must be a multiple of heads ({spec.heads})")
        self.pool = spec.pool
        d = spec.d_model
        self.tokens = (token_embedding(info.vocab_size, d, info.vectors) if info.kind == "text"
                       else nn.Linear(info.shape[-1], d))
        self.text = info.kind == "text"
        # Positions are added before the cls token, so the cls token is the same at every length.
        positions = LearnedPositions if spec.positions == "learned" else SinusoidalPositions
        self.positions = positions(info.shape[0], d)
        self.cls = ClsToken(d) if spec.pool == "cls" else None
        layer = EncoderLayer(d, spec.heads, spec.ff, spec.dropout)
        self.encoder = nn.TransformerEncoder(layer, spec.layers, norm=nn.LayerNorm(d), enable_nested_tensor=False)
        self.head = nn.Linear(d, info.n_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        real: Optional[torch.Tensor] = real_positions(x) if self.text else None
        h = self.positions(self.tokens(x))
        ignore = None if real is None else ~real
        if self.cls is not None:
            h = self.cls(h)
            if ignore is not None:
                ignore = torch.cat([ignore.new_zeros(len(x), 1), ignore], dim=1)
        for layer in self.encoder.layers:  # the layers and the final norm, without the encoder's fast paths
            h = layer(h, src_key_padding_mask=ignore)
        h = self.encoder.norm(h)
        if self.cls is not None:
            return self.head(h[:, 0])
        return self.head(h.mean(1) if real is None else masked_mean(h, real))


def build(spec: TransformerSpec, info: InputInfo) -> nn.Module:
    return Transformer(spec, info)
