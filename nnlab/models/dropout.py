"""Dropout whose masks a stack of members can supply, and how a model learns it runs as a stack's members.

Every model's dropout is `Dropout` (an nn.Dropout: same repr, no state). Alone it is nn.Dropout. When a
stack (`nnlab.training.stack.FuncStack`) calls the model it supplies the masks, each member's drawn from
that member's own generator, so a member's dropout is the same whether it trains alone or with others
(torch.vmap's own randomness draws every member's mask from one generator, which no run alone reproduces).
While members run batched under torch.vmap, `members_batched()` is true: a layer without a batching rule
(nn.GRU, nn.LSTM) then runs a form of its own made of batched operations.
"""

from __future__ import annotations

import contextlib
from typing import Callable, Iterator, Optional

import torch
from torch import nn

# (module, input) -> the input with dropout applied; None: nn.Dropout's own (torch's global generator)
Supply = Callable[[nn.Module, torch.Tensor], torch.Tensor]
_supply: Optional[Supply] = None
_batched = False


class Dropout(nn.Dropout):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and _supply is not None:
            return _supply(self, x)
        return super().forward(x)


@contextlib.contextmanager
def supplied(supply: Optional[Supply], batched: bool = False) -> Iterator[None]:
    """Within: every training Dropout calls `supply`; `members_batched()` says `batched`."""
    global _supply, _batched
    before = _supply, _batched
    _supply, _batched = supply, batched
    try:
        yield
    finally:
        _supply, _batched = before


def members_batched() -> bool:
    return _batched
