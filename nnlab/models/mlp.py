"""Multi-layer perceptron: Linear -> [norm] -> activation -> [dropout] per hidden layer, then a linear head."""

from torch import nn

from nnlab.spec import MLPSpec

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "gelu": nn.GELU, "leaky_relu": nn.LeakyReLU}
NORMS = {"none": None, "batchnorm": nn.BatchNorm1d, "layernorm": nn.LayerNorm}


def hidden_block(n_in: int, n_out: int, activation: str, norm: str, dropout: float) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.Linear(n_in, n_out)]
    if NORMS[norm] is not None:
        layers.append(NORMS[norm](n_out))
    layers.append(ACTIVATIONS[activation]())
    if dropout > 0:
        layers.append(nn.Dropout(dropout))
    return layers


def build(spec: MLPSpec, n_inputs: int, n_outputs: int) -> nn.Module:
    layers: list[nn.Module] = []
    width = n_inputs
    for size in spec.hidden:
        layers += hidden_block(width, size, spec.activation, spec.norm, spec.dropout)
        width = size
    layers.append(nn.Linear(width, n_outputs))
    return nn.Sequential(*layers)
