"""The words a run and a model end in. Apart from `records` so that the CLI can offer them as choices
without importing pydantic (`--help` stays fast)."""

from __future__ import annotations

from typing import Literal, get_args

RunStatus = Literal["running", "completed", "failed", "interrupted"]
RUN_STATUSES: tuple[str, ...] = get_args(RunStatus)
ModelStatus = Literal["completed", "diverged", "failed", "interrupted"]
MODEL_STATUSES: tuple[str, ...] = get_args(ModelStatus)
