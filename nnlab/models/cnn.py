"""Convolutional network: conv -> [batch norm] -> activation -> [pool 2] -> [dropout] per entry of
`channels`, then a global pooling head (global max when `pool: max`, else global average) and a linear layer.

Conv1d slides along time for sequences ([B, T, F] read channels-first) and along the token embeddings for
text; Conv2d slides over images. 'Same' padding keeps ceil(length / stride) positions, and pooling keeps a
last odd position (ceil mode), so short inputs work at any depth.

On text, padded positions are held at zero between layers and left out of every pool, so appending padding
never changes an output: a real position's window sees zeros past the end of the text either way.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from nnlab.core.inputs import InputInfo
from nnlab.models.dropout import Dropout
from nnlab.models.embedding import masked_max, masked_mean, real_positions, token_embedding
from nnlab.models.mlp import ACTIVATIONS
from nnlab.spec import CNNSpec

Mask = Optional[torch.Tensor]  # bool [B, T] of real positions (text), or None when every position is real


def _zero_padding(x: torch.Tensor, real: Mask) -> torch.Tensor:
    return x if real is None else x.masked_fill(~real.unsqueeze(1), 0.0)


class Pool2(nn.Module):
    """Max or average pooling of size 2 along each spatial axis; on text only real positions count."""

    def __init__(self, mode: str, dims: int):
        super().__init__()
        self.mode, self.dims = mode, dims

    def forward(self, x: torch.Tensor, real: Mask) -> tuple[torch.Tensor, Mask]:
        pool = {("max", 1): F.max_pool1d, ("max", 2): F.max_pool2d,
                ("avg", 1): F.avg_pool1d, ("avg", 2): F.avg_pool2d}[self.mode, self.dims]
        if real is None:
            return pool(x, 2, ceil_mode=True), None
        pooled_real = real[:, ::2]  # a window is real when its first position is (real positions come first)
        if self.mode == "max":
            x = pool(x.masked_fill(~real.unsqueeze(1), float("-inf")), 2, ceil_mode=True)
        else:
            weights = real.unsqueeze(1).to(x.dtype)
            x = pool(x * weights, 2, ceil_mode=True) / pool(weights, 2, ceil_mode=True).clamp(min=1e-6)
        return _zero_padding(x, pooled_real), pooled_real

    def extra_repr(self) -> str:
        return f"{self.mode}, size=2"


class ConvBlock(nn.Module):
    def __init__(self, dims: int, c_in: int, c_out: int, spec: CNNSpec):
        super().__init__()
        conv, norm = (nn.Conv1d, nn.BatchNorm1d) if dims == 1 else (nn.Conv2d, nn.BatchNorm2d)
        # 'same' padding that also holds for even kernels and strides: (k-1)//2 zeros before, k//2 after, so
        # the output keeps ceil(length / stride) positions, each centred on an input position.
        before, after = (spec.kernel - 1) // 2, spec.kernel // 2
        self.pad = None if before == after else (nn.ConstantPad1d if dims == 1 else nn.ConstantPad2d)(
            (before, after) * dims, 0.0)
        self.conv = conv(c_in, c_out, spec.kernel, stride=spec.stride, padding=before if before == after else 0)
        self.norm = norm(c_out) if spec.norm == "batchnorm" else None
        self.activation = ACTIVATIONS[spec.activation]()
        self.pool = Pool2(spec.pool, dims) if spec.pool != "none" else None
        self.dropout = Dropout(spec.dropout) if spec.dropout > 0 else None
        self.stride = spec.stride

    def forward(self, x: torch.Tensor, real: Mask) -> tuple[torch.Tensor, Mask]:
        x = self.conv(x if self.pad is None else self.pad(x))
        if real is not None:
            real = real[:, ::self.stride]
        if self.norm is not None:
            x = self.norm(x)
        x = _zero_padding(self.activation(x), real)
        if self.pool is not None:
            x, real = self.pool(x, real)
        return (x if self.dropout is None else self.dropout(x)), real


class GlobalPool(nn.Module):
    """[B, C, *spatial] -> [B, C]: max or mean over every position (real positions only, on text)."""

    def __init__(self, mode: str):
        super().__init__()
        self.mode = mode

    def forward(self, x: torch.Tensor, real: Mask) -> torch.Tensor:
        x = x.flatten(2).transpose(1, 2)  # [B, positions, C]
        if real is None:
            return x.amax(1) if self.mode == "max" else x.mean(1)
        return masked_max(x, real) if self.mode == "max" else masked_mean(x, real)

    def extra_repr(self) -> str:
        return self.mode


class CNN(nn.Module):
    def __init__(self, spec: CNNSpec, info: InputInfo):
        super().__init__()
        self.kind = info.kind
        self.embedding = token_embedding(info.vocab_size, spec.embedding, info.vectors) if info.kind == "text" else None
        dims = 2 if info.kind == "image" else 1
        c_in = {"text": spec.embedding, "sequence": info.shape[-1], "image": info.shape[0]}[info.kind]
        widths = [c_in, *spec.channels]
        self.blocks = nn.ModuleList(ConvBlock(dims, a, b, spec) for a, b in zip(widths, widths[1:]))
        self.global_pool = GlobalPool("max" if spec.pool == "max" else "mean")
        self.head = nn.Linear(widths[-1], info.n_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        real = None
        if self.embedding is not None:
            real = real_positions(x)
            x = _zero_padding(self.embedding(x).transpose(1, 2), real)
        elif self.kind == "sequence":
            x = x.transpose(1, 2)  # [B, T, F] -> channels first
        for block in self.blocks:
            x, real = block(x, real)
        return self.head(self.global_pool(x, real))


def build(spec: CNNSpec, info: InputInfo) -> nn.Module:
    return CNN(spec, info)
