"""Token ids -> vectors, shared by every text model, and the masks that keep padding from changing outputs.

Text arrives as int64 ids [B, T], real tokens first and PAD_ID after them. Every text model reads the real
positions from the ids themselves (no lengths travel separately), so padding a batch further, or changing
what sits in the padded positions, never changes an output.
"""

from __future__ import annotations

import torch
from torch import nn

from nnlab.core.inputs import PAD_ID


def token_embedding(vocab_size: int, dim: int) -> nn.Embedding:
    """The PAD_ID row starts at zero and gets no gradient, so padding also reads as 'nothing' to a model."""
    return nn.Embedding(vocab_size, dim, padding_idx=PAD_ID)


def real_positions(tokens: torch.Tensor) -> torch.Tensor:
    """Bool [B, T]: True at real tokens. Position 0 always counts, so an empty text still has one
    position to read (a mean over nothing, or attention over nothing, would be NaN)."""
    real = tokens != PAD_ID
    real[:, 0] = True
    return real


def real_lengths(real: torch.Tensor) -> torch.Tensor:
    """Int64 [B]: how many positions are real, from a mask whose real positions come first."""
    return real.sum(dim=1)


def masked_mean(values: torch.Tensor, real: torch.Tensor, dim: int = 1) -> torch.Tensor:
    """Mean of `values` over `dim`, counting only the positions where `real` ([B, T]) is True."""
    weights = real.to(values.dtype).unsqueeze(-1)
    return (values * weights).sum(dim) / weights.sum(dim).clamp(min=1.0)


def masked_max(values: torch.Tensor, real: torch.Tensor, dim: int = 1) -> torch.Tensor:
    """Max of `values` over `dim` among real positions; padded positions can never win."""
    return values.masked_fill(~real.unsqueeze(-1), float("-inf")).amax(dim)


class BagOfEmbeddings(nn.Module):
    """Text [B, T] -> the mean of its real tokens' embeddings [B, dim]: word order is ignored, which is
    what lets a plain MLP run on text."""

    def __init__(self, vocab_size: int, dim: int):
        super().__init__()
        self.embedding = token_embedding(vocab_size, dim)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return masked_mean(self.embedding(tokens), real_positions(tokens))
