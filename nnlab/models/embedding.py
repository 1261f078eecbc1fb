"""Token ids -> vectors, shared by every text model, and the masks that keep padding from changing outputs.

Text arrives as int64 ids [B, T], real tokens first and PAD_ID after them. Every text model reads the real
positions from the ids themselves (no lengths travel separately), so padding a batch further, or changing
what sits in the padded positions, never changes an output.

With pretrained word vectors (`data.text.vectors`, `core.inputs.WordVectors`) the embedding starts from them:
the model's own seeded random rows are drawn first, as without vectors (so the rest of the model, and each
member of a stack, starts as it would anyway), then the covered rows are replaced by the file's vectors and
the others scaled to their spread; `freeze` takes the weight out of training (requires_grad False).
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from nnlab.core.inputs import PAD_ID, WordVectors


def token_embedding(vocab_size: int, dim: int, vectors: Optional[WordVectors] = None) -> nn.Embedding:
    """The PAD_ID row starts at zero and gets no gradient, so padding also reads as 'nothing' to a model."""
    embedding = nn.Embedding(vocab_size, dim, padding_idx=PAD_ID)
    if vectors is not None:
        start_from_vectors(embedding, vectors)
    return embedding


def start_from_vectors(embedding: nn.Embedding, vectors: WordVectors) -> None:
    """Covered ids get the file's vector; the others keep their random row, scaled to the vectors' spread."""
    if vectors.values.shape != tuple(embedding.weight.shape):
        raise ValueError(f"word vectors are {list(vectors.values.shape)} (vocabulary x dimension); the embedding "
                         f"is {list(embedding.weight.shape)}")
    weight = embedding.weight
    if not weight.is_meta:  # a dry build for shapes (models.summary) has no values to set
        with torch.no_grad():
            covered = torch.from_numpy(vectors.covered).to(weight.device)
            weight[~covered] *= vectors.scale
            weight[covered] = torch.from_numpy(vectors.values).to(weight.device, weight.dtype)[covered]
            weight[PAD_ID] = 0.0
    weight.requires_grad_(not vectors.freeze)


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

    def __init__(self, vocab_size: int, dim: int, vectors: Optional[WordVectors] = None):
        super().__init__()
        self.embedding = token_embedding(vocab_size, dim, vectors)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return masked_mean(self.embedding(tokens), real_positions(tokens))
