"""`train.augment`: random changes to the training batches (off by default), and which data kind each one fits.

Under `train:` (the defaults for every model) or a model's own `train:`, merged like every other training
setting. Applied by `nnlab.training.augment` to training batches only; validation and test are never changed.
"""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import Field

from nnlab.spec.base import MAX_COUNT, Fraction, PositiveFloat, StrictModel


class CropSpec(StrictModel):
    pad: int = Field(4, ge=1, le=MAX_COUNT, description="Zero-pad each side by this many pixels, then crop back "
                                                         "to the image's size at a random offset.")


class AugmentSpec(StrictModel):
    flip: Optional[Literal["horizontal", "vertical"]] = Field(
        None, description="Images: mirror each image with probability 1/2.")
    crop: Optional[CropSpec] = Field(None, description="Images: a random crop of the zero-padded image.")
    noise: Optional[PositiveFloat] = Field(None, description="Images: add Gaussian noise of this standard deviation.")
    jitter: Optional[PositiveFloat] = Field(
        None, description="Sequences: add noise drawn uniformly from [-jitter, jitter] to every value.")
    scale: Optional[Fraction] = Field(
        None, description="Sequences: multiply each sequence by a factor drawn uniformly from [1-scale, 1+scale].")
    shift: Optional[int] = Field(
        None, ge=1, le=MAX_COUNT, description="Sequences: move each sequence in time by up to this many steps "
                                              "either way (the edge value fills the steps left open).")
    token_dropout: Optional[Fraction] = Field(
        None, description="Text: replace each real (non-pad) token by the unknown-word id with this probability.")

    def given(self) -> list[str]:
        """The augmentations switched on, in field order."""
        return [name for name in type(self).model_fields if getattr(self, name) is not None]


# The data kind (`nnlab.core.inputs`) each augmentation fits; spec checks refuse the others.
AUGMENT_KINDS: dict[str, str] = {"flip": "image", "crop": "image", "noise": "image", "jitter": "sequence",
                                 "scale": "sequence", "shift": "sequence", "token_dropout": "text"}
