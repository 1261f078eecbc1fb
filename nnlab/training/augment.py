"""Augmentation of training batches (`train.augment`): pure torch functions of (batch, generator, settings).

A batch is one member's [B, ...] rows on the device: images [B, C, H, W], sequences [B, T, F], text ids [B, T].
Every random number comes from the member's own generator (`augment_generator`), drawn in the same amounts
whether the member trains alone or stacked, so a member stacked equals the member alone. Which augmentation
fits which data kind is checked with the spec (`nnlab.spec.augment.AUGMENT_KINDS`), so nothing here asks
for the kind: each function reads the settings it has and leaves the batch alone otherwise.
"""

from __future__ import annotations

from typing import Callable, Optional

import torch

from nnlab.core.inputs import OOV_ID, PAD_ID
from nnlab.spec.augment import AugmentSpec

# Augmentation draws from a stream of its own, not the member's dropout or batch-order stream.
SEED_OFFSET = 0x41554731


def augment_generator(seed: int, device: torch.device) -> torch.Generator:
    return torch.Generator(device=device).manual_seed((seed + SEED_OFFSET) % 2**64)


def _uniform(shape: tuple[int, ...], like: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    return torch.rand(shape, generator=g, device=like.device, dtype=torch.float32)


def flip(x: torch.Tensor, g: torch.Generator, s: AugmentSpec) -> torch.Tensor:
    """Mirror each image (horizontal: the width axis; vertical: the height axis) with probability 1/2."""
    if s.flip is None:
        return x
    flipped = _uniform((x.shape[0],), x, g) < 0.5
    axis = -1 if s.flip == "horizontal" else -2
    return torch.where(flipped.view(-1, *[1] * (x.dim() - 1)), x.flip(axis), x)


def crop(x: torch.Tensor, g: torch.Generator, s: AugmentSpec) -> torch.Tensor:
    """Zero-pad each side by `pad`, then take the image's size back at a random offset per image."""
    if s.crop is None:
        return x
    b, _, h, w = x.shape
    p = s.crop.pad
    padded = torch.nn.functional.pad(x, (p, p, p, p))
    offsets = (_uniform((2, b), x, g) * (2 * p + 1)).long().clamp_(max=2 * p)  # 0 .. 2p each way
    rows = offsets[0, :, None] + torch.arange(h, device=x.device)  # [B, H]
    cols = offsets[1, :, None] + torch.arange(w, device=x.device)  # [B, W]
    picked = padded[torch.arange(b, device=x.device)[:, None, None], :, rows[:, :, None], cols[:, None, :]]
    return picked.permute(0, 3, 1, 2)  # advanced indexing puts the channels last: [B, H, W, C]


def noise(x: torch.Tensor, g: torch.Generator, s: AugmentSpec) -> torch.Tensor:
    if s.noise is None:
        return x
    return x + s.noise * torch.randn(x.shape, generator=g, device=x.device, dtype=torch.float32).to(x.dtype)


def jitter(x: torch.Tensor, g: torch.Generator, s: AugmentSpec) -> torch.Tensor:
    """Add noise uniform in [-jitter, jitter] to every value."""
    if s.jitter is None:
        return x
    return x + (s.jitter * (2 * _uniform(tuple(x.shape), x, g) - 1)).to(x.dtype)


def scale(x: torch.Tensor, g: torch.Generator, s: AugmentSpec) -> torch.Tensor:
    """Multiply each sequence by one factor uniform in [1 - scale, 1 + scale]."""
    if s.scale is None:
        return x
    factor = 1 + s.scale * (2 * _uniform((x.shape[0],), x, g) - 1)
    return x * factor.view(-1, *[1] * (x.dim() - 1)).to(x.dtype)


def shift(x: torch.Tensor, g: torch.Generator, s: AugmentSpec) -> torch.Tensor:
    """Move each sequence in time by a whole number of steps in [-shift, shift]; the edge value fills in."""
    if s.shift is None:
        return x
    b, t = x.shape[:2]
    steps = (_uniform((b,), x, g) * (2 * s.shift + 1)).long().clamp_(max=2 * s.shift) - s.shift
    source = (torch.arange(t, device=x.device) - steps[:, None]).clamp_(0, t - 1)  # [B, T]
    return x.gather(1, source.view(b, t, *[1] * (x.dim() - 2)).expand_as(x))


def token_dropout(x: torch.Tensor, g: torch.Generator, s: AugmentSpec) -> torch.Tensor:
    """Replace each real token by OOV_ID with probability p. Not by PAD_ID: the models read the real tokens
    as the ones before the first pad, so a pad in the middle would cut the message short."""
    if s.token_dropout is None:
        return x
    dropped = (_uniform(tuple(x.shape), x, g) < s.token_dropout) & (x != PAD_ID)
    return x.masked_fill(dropped, OOV_ID)


# In this order: a crop of the flipped image, noise on the final pixels; a shift of the scaled sequence.
AUGMENTATIONS: tuple[Callable[[torch.Tensor, torch.Generator, AugmentSpec], torch.Tensor], ...] = (
    flip, crop, noise, scale, shift, jitter, token_dropout)


def augment(x: torch.Tensor, g: torch.Generator, settings: Optional[AugmentSpec]) -> torch.Tensor:
    """One member's training batch [B, ...] with its augmentations applied (the batch itself when none)."""
    if settings is None:
        return x
    for step in AUGMENTATIONS:
        x = step(x, g, settings)
    return x


def augment_members(x: torch.Tensor, generators: list[torch.Generator],
                    settings: list[Optional[AugmentSpec]]) -> torch.Tensor:
    """Every member's batch [K, B, ...], each augmented by its own generator and settings."""
    if all(s is None for s in settings):
        return x
    return torch.stack([augment(x[k], g, s) for k, (g, s) in enumerate(zip(generators, settings))])
