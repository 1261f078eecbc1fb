"""The baseline: a linear layer. Logistic (binary), softmax (multiclass) or ridge (regression) regression,
depending on the loss it is fitted with (`train.fit_baseline`, full-batch L-BFGS). It reads dense rows
[N, D] or sparse ones (a torch sparse CSR/COO tensor, e.g. the text baseline's TF-IDF features)."""

import torch
from torch import nn
from torch.nn import functional as F


class Linear(nn.Linear):
    """nn.Linear (same weight names and layout) that also multiplies sparse rows: a sparse [N, D] input
    would otherwise have to be densified, which for a TF-IDF vocabulary can be gigabytes."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.layout == torch.strided:
            return F.linear(x, self.weight, self.bias)
        return torch.sparse.mm(x, self.weight.t()) + self.bias


def build(n_inputs: int, n_outputs: int) -> nn.Module:
    model = Linear(n_inputs, n_outputs)
    nn.init.zeros_(model.weight)  # the convex fit does not need a random start; zeros make it exact to repeat
    nn.init.zeros_(model.bias)
    return model
