"""Where and how a fit runs, resolved once: the device, the autocast dtype (precision), fp16's loss scale and
the CPU threads. The loop gets one `Placement` and has no device branches."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import ContextManager, Iterator, Optional

import torch
from torch import nn

from nnlab.errors import SpecError
from nnlab.spec import TrainSpec
from nnlab.core.messages import shorten
from nnlab.training.lossscale import LossScale

SMALL_STEP_WORK = 20_000_000  # rows per step x parameters below which one CPU thread beats several


@dataclass(frozen=True)
class Placement:
    """`dtype`: autocast's, None for plain fp32; `loss_scale`: fp16's dynamic loss scale; `threads`: the
    intra-op threads while fitting (1 for small CPU steps), None to leave torch's as they are."""

    device: torch.device
    dtype: Optional[torch.dtype] = None
    loss_scale: bool = False
    threads: Optional[int] = None

    def autocast(self) -> ContextManager[object]:
        return torch.autocast(self.device.type, dtype=self.dtype) if self.dtype else contextlib.nullcontext()

    def new_loss_scale(self) -> Optional[LossScale]:
        return LossScale(self.device) if self.loss_scale else None

    @contextlib.contextmanager
    def cpu_threads(self) -> Iterator[None]:
        """`threads` for the duration, torch's own count restored after. One thread for small CPU steps:
        waking a thread pool costs more than such a step's arithmetic, and on a busy machine spinning threads
        are many times slower still."""
        before = torch.get_num_threads()
        if self.threads is not None:
            torch.set_num_threads(self.threads)
        try:
            yield
        finally:
            torch.set_num_threads(before)


def resolve_placement(train: TrainSpec, device: torch.device, work: int) -> Placement:
    """The placement of a fit on `device` with `train`'s precision; `work` is rows per step x parameters."""
    dtype = resolve_precision(train.precision, device)
    return Placement(device, dtype, dtype == torch.float16, small_step_threads(work, device))


def small_step_threads(work: int, device: torch.device) -> Optional[int]:
    return 1 if device.type == "cpu" and work < SMALL_STEP_WORK else None


def resolve_device(name: str) -> torch.device:
    """`auto` is cuda, then mps, then cpu; a named device that is not there is a spec error."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda"):
        # Checked before torch.device, which wraps an index past 127 (cuda:200 is cuda:-56) and fails past 2**31.
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        index = name.partition(":")[2] or "0"
        if not index.isdigit() or len(index) > 9 or int(index) >= count:
            allowed = f"auto, cpu, cuda or cuda:N with N < {count}" if count else "auto or cpu"
            raise SpecError(f"train.device: '{shorten(name)}' is not available here (CUDA devices: "
                            f"{count or 'none'}); expected {allowed}")
    device = torch.device(name)
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise SpecError("train.device: 'mps' is not available here; use auto or cpu")
    return device


def resolve_precision(precision: str, device: torch.device) -> Optional[torch.dtype]:
    """The autocast dtype, or None for plain fp32."""
    if precision == "auto":
        return torch.bfloat16 if device.type == "cuda" and torch.cuda.is_bf16_supported() else None
    if precision == "fp16" and device.type != "cuda":
        raise SpecError(f"train.precision: fp16 needs a CUDA device; this model trains on {device.type}")
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def compute_params(model: nn.Module) -> int:
    """Parameters that cost arithmetic per row: an embedding table is a lookup, whatever its size."""
    return sum(p.numel() for m in model.modules() if not isinstance(m, nn.Embedding)
               for p in m.parameters(recurse=False))
