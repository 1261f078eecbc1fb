"""The baseline: a linear layer. Logistic (binary), softmax (multiclass) or ridge (regression) regression,
depending on the loss it is fitted with (`train.fit_baseline`, full-batch L-BFGS)."""

from torch import nn


def build(n_inputs: int, n_outputs: int) -> nn.Module:
    model = nn.Linear(n_inputs, n_outputs)
    nn.init.zeros_(model.weight)  # the convex fit does not need a random start; zeros make it exact to repeat
    nn.init.zeros_(model.bias)
    return model
