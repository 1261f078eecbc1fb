"""The training settings of a spec: optimizer, scheduler, early stopping and the rest of `train:`.

The top-level `train:` holds the defaults; each model's `train:` is merged over them (see `spec`).
"""

from __future__ import annotations

from typing import Annotated, Literal, Optional, Union, get_args

from pydantic import Field

from nnlab.spec.augment import AugmentSpec
from nnlab.spec.base import MAX_COUNT, Fraction, NonNegFloat, PositiveFloat, StrictModel


class OptimizerSpec(StrictModel):
    name: Literal["sgd", "adam", "adamw"] = "adam"
    lr: PositiveFloat = Field(1e-3, description="Learning rate.")
    momentum: float = Field(0.0, ge=0, lt=1, allow_inf_nan=False, description="SGD momentum.")
    weight_decay: NonNegFloat = Field(0.0, description="L2 penalty (decoupled for adamw).")


class StepScheduler(StrictModel):
    name: Literal["step"]
    step_size: int = Field(10, ge=1, le=MAX_COUNT, description="Epochs between learning-rate drops.")
    gamma: Fraction = Field(0.1, description="Factor applied at each drop.")


class CosineScheduler(StrictModel):
    name: Literal["cosine"]
    min_lr: NonNegFloat = Field(0.0, description="Learning rate reached at the last epoch.")


class PlateauScheduler(StrictModel):
    name: Literal["plateau"]
    patience: int = Field(3, ge=0, le=MAX_COUNT, description="Epochs without improvement of the monitor before a drop.")
    factor: Fraction = Field(0.1, description="Factor applied at each drop.")


SchedulerSpec = Annotated[Union[StepScheduler, CosineScheduler, PlateauScheduler], Field(discriminator="name")]
# Read off the union; training's table of schedulers must match it (a test checks).
SCHEDULER_NAMES: tuple[str, ...] = tuple(get_args(cls.model_fields["name"].annotation)[0]
                                         for cls in get_args(get_args(SchedulerSpec)[0]))


class EarlyStoppingSpec(StrictModel):
    monitor: Optional[str] = Field(None, description="Default: the spec's top-level monitor.")
    patience: int = Field(8, ge=1, le=MAX_COUNT, description="Epochs without improvement before stopping.")
    min_delta: NonNegFloat = Field(0.0, description="Smallest change that counts as an improvement.")


class TrainSpec(StrictModel):
    epochs: int = Field(50, ge=1, le=100_000)
    batch_size: int = Field(64, ge=1, le=MAX_COUNT)
    optimizer: OptimizerSpec = Field(default_factory=OptimizerSpec)
    l1: NonNegFloat = Field(0.0, description="L1 penalty on weights (not biases), added to the loss.")
    scheduler: Optional[SchedulerSpec] = None
    early_stopping: Optional[EarlyStoppingSpec] = Field(
        default_factory=EarlyStoppingSpec, description="null turns early stopping off.")
    grad_clip: Optional[PositiveFloat] = Field(None, description="Clip the gradient norm to this value.")
    loss: Literal["auto", "mse", "mae", "huber"] = Field(
        "auto", description="auto: BCE for binary, cross-entropy for multiclass, MSE for regression.")
    class_weights: Optional[Literal["balanced"]] = Field(
        None, description="balanced: weight classes by inverse frequency in the training split.")
    threshold: Optional[Literal["val_f1"]] = Field(
        None, description="Binary: val_f1 scores test at the threshold that maximises F1 on validation "
                          "(default: 0.5). The threshold is reported either way.")
    device: str = Field("auto", pattern=r"^(auto|cpu|cuda|cuda:\d+|mps)$",
                        description="auto | cpu | cuda | cuda:N | mps")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        "auto", description="auto: bf16 autocast on CUDA where supported, else fp32.")
    augment: Optional[AugmentSpec] = Field(
        None, description="Random changes to the training batches only (see nnlab.spec.augment); off by default.")
