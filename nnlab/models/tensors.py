"""Model inputs as tensors: a dense array as it is, TF-IDF rows (`SparseRows`) as one sparse CSR tensor, so
that a linear layer over them is one sparse product (densified, they can be gigabytes). The one builder,
used by training (batches) and by the API (predictions)."""

from __future__ import annotations

import warnings
from typing import Optional

import numpy as np
import torch

from nnlab.core.inputs import SparseRows


def as_tensor(values: np.ndarray | SparseRows, device: Optional[torch.device] = None) -> torch.Tensor:
    """`values` as a tensor on `device` (default: where it was built, the CPU)."""
    if not isinstance(values, SparseRows):
        tensor = torch.from_numpy(values)
    else:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Sparse CSR tensor support is in beta")
            tensor = torch.sparse_csr_tensor(torch.from_numpy(values.indptr).long(),
                                             torch.from_numpy(values.indices).long(),
                                             torch.from_numpy(values.values).float(), values.shape,
                                             check_invariants=False)  # built by nnlab's own encoder
    return tensor if device is None else tensor.to(device)
