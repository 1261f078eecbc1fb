"""fp16's dynamic loss scale for the training loop (`nnlab.training.loop`), on the device."""

from __future__ import annotations

import torch


class LossScale:
    """fp16's dynamic loss scale, kept on the device so that no step waits for the host (GradScaler's rule:
    halve on an overflow, double after 2000 clean steps). A member whose gradients overflowed skips the step.
    Its state goes into checkpoints, so that a resumed fp16 run goes on from the scale it had."""

    def __init__(self, device: torch.device):
        self.value = torch.full((), 2.0 ** 16, device=device)
        self.growth = torch.zeros((), dtype=torch.int32, device=device)

    def scale(self, objective: torch.Tensor) -> torch.Tensor:
        return objective * self.value

    def unscale(self, grads: torch.Tensor) -> torch.Tensor:
        """Divide the gradients by the scale in place; the members to skip, bool [K, 1]."""
        grads.div_(self.value)
        skip = ~torch.isfinite(grads).all(dim=1, keepdim=True)
        torch._amp_update_scale_(self.value, self.growth, skip.any().float(), 2.0, 0.5, 2000)
        return skip

    def state_dict(self) -> dict[str, torch.Tensor]:
        cpu = lambda t: t.detach().to("cpu", copy=True)
        return {"value": cpu(self.value), "growth": cpu(self.growth)}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.value.copy_(state["value"])
        self.growth.copy_(state["growth"])
