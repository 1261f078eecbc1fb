"""Evaluating a stack's members on a split, and reading device numbers back to the host in one transfer.

Shared by the training loop (`nnlab.training.loop`) and the baseline's fit (`nnlab.training.fit`)."""

from __future__ import annotations

from typing import ContextManager

import numpy as np
import torch

from nnlab.training import metrics as metric_fns
from nnlab.training.state import Problem
from nnlab.training.stack import Stack

EVAL_BATCH = 65_536  # rows per forward pass when evaluating: large, but bounded for big tables


def outputs(stack: Stack, x: torch.Tensor, autocast: ContextManager[object]) -> torch.Tensor:
    """Every member's raw outputs on rows x: [K, N, n_outputs], in float32."""
    with torch.inference_mode(), autocast:
        return torch.cat([stack.outputs(x[i:i + EVAL_BATCH]).float() for i in range(0, len(x), EVAL_BATCH)], 1)


def predictions(stack: Stack, problem: Problem, split: str, autocast: ContextManager[object]) -> list[np.ndarray]:
    """Model units per member, on the host: probabilities (binary [N], multiclass [N, K]) or, for
    regression, STANDARDIZED predictions (the data's preprocessing turns them into the target's units)."""
    out = outputs(stack, problem.x[split], autocast)
    return [metric_fns.probabilities(problem.task, out[k]).cpu().numpy() for k in range(stack.k)]


def as_target(y: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """Targets in the outputs' dtype where they are numbers (class indices stay integers)."""
    return y.to(out.dtype) if y.is_floating_point() else y


def read(values: dict[str, torch.Tensor]) -> dict[str, float]:
    """Device tensors -> floats with one transfer."""
    if not values:
        return {}
    numbers = torch.stack([v.detach().float().reshape(()) for v in values.values()]).cpu().tolist()
    return dict(zip(values, numbers))


def read_members(columns: dict[str, torch.Tensor], wanted: list[bool]) -> list[dict[str, float]]:
    """Per-member columns ([K] tensors) -> each wanted member's numbers by name ({} for the others), read
    from the device with one transfer."""
    if not columns or not any(wanted):
        return [{} for _ in wanted]
    table = torch.stack([v.detach().float().reshape(-1) for v in columns.values()]).cpu().tolist()
    return [{name: row[k] for name, row in zip(columns, table)} if wanted[k] else {} for k in range(len(wanted))]
