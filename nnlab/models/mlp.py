"""Multi-layer perceptron: Linear -> [norm] -> activation -> [dropout] per hidden layer, then a linear head.

It runs on every input kind: a table as it is, sequences and images flattened, and text as the mean of its
token embeddings (a bag of embeddings: word order is lost, which is why text has its own models)."""

from __future__ import annotations

from torch import nn

from nnlab.core.inputs import InputInfo
from nnlab.models.dropout import Dropout
from nnlab.models.embedding import BagOfEmbeddings
from nnlab.spec import MLPSpec

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "gelu": nn.GELU, "leaky_relu": nn.LeakyReLU}
NORMS = {"none": None, "batchnorm": nn.BatchNorm1d, "layernorm": nn.LayerNorm}


def hidden_block(n_in: int, n_out: int, activation: str, norm: str, dropout: float) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.Linear(n_in, n_out)]
    if NORMS[norm] is not None:
        layers.append(NORMS[norm](n_out))
    layers.append(ACTIVATIONS[activation]())
    if dropout > 0:
        layers.append(Dropout(dropout))
    return layers


def flat_input(info: InputInfo, embedding: int) -> tuple[list[nn.Module], int]:
    """The layers that turn one batch into [B, width] vectors, and that width. A table needs none, so a
    table MLP's weights keep the names they always had."""
    if info.kind == "text":
        return [BagOfEmbeddings(info.vocab_size, embedding, info.vectors)], embedding
    if info.kind in ("sequence", "image"):
        return [nn.Flatten()], info.n_features
    return [], info.n_features


def build(spec: MLPSpec, info: InputInfo) -> nn.Module:
    layers, width = flat_input(info, spec.embedding)
    for size in spec.hidden:
        layers += hidden_block(width, size, spec.activation, spec.norm, spec.dropout)
        width = size
    layers.append(nn.Linear(width, info.n_outputs))
    return nn.Sequential(*layers)
