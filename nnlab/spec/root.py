"""The top level of a spec: its fields (`name`, `seed`, `data`, `models`, ..., `sweep`), each valid on its own.

`SpecFields` is what the rules across parts (`checks`) read; `Spec` (`experiment`) is these fields with those
rules run at validation. Kept apart so that `checks` imports the fields without importing `Spec` back.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any, Literal, Optional

from pydantic import (Field, PrivateAttr, SerializerFunctionWrapHandler, field_validator, model_serializer,
                      model_validator)

from nnlab.spec.base import (ALL_METRICS, MAX_MODELS, MAX_NAME_LENGTH, MAX_SEED, MODEL_NAME, SCHEMA_VERSION,
                             StrictModel, quoted, shorten)
from nnlab.spec.data import DataSpec
from nnlab.spec.ensemble import EnsembleSpec
from nnlab.spec.load import deep_merge
from nnlab.spec.models import BaselineSpec, ModelSpec
from nnlab.spec.train import TrainSpec

MAX_SWEEP_POINTS = 1000
_SWEEP_KEY = re.compile(r"^[A-Za-z_][\w-]*(\.[\w-]+)*$")


def grid_points(sizes: list[int], one_at_a_time: bool) -> int:
    """How many points a sweep trains for axes of `sizes` values: every combination, or (one at a time) the
    spec's own point and one per value."""
    return 1 + sum(sizes) if one_at_a_time else math.prod(sizes)


class SweepSpec(StrictModel):
    # Values are anything YAML gives; each point's own validation decides whether a value fits its key.
    grid: dict[str, Annotated[list[Any], Field(min_length=1)]] = Field(
        default_factory=dict, description="Settings to vary: {dotted key: [values]}, e.g. {train.optimizer.lr: [0.001, "
                                  "0.01], models.mlp.dropout: [0, 0.3]}.")
    one_at_a_time: bool = Field(False, description="Vary each key alone from the spec's own value, instead of "
                                                   "every combination.")
    # Each distribution is parsed by sweeps/space.py when the sweep is planned (its errors name the key).
    space: dict[str, str] = Field(default_factory=dict, description="Distributions to sample (random search): "
                                  "{dotted key: 'loguniform(1e-4,1e-2)' | 'uniform(lo,hi)' | 'int(lo,hi)' | "
                                  "'choice(v1,v2,...)'}; with `sample`.")
    sample: Optional[int] = Field(None, ge=1, le=MAX_SWEEP_POINTS, description="How many points to draw from "
                                  "`space`, seeded by the spec's seed.")

    @field_validator("grid", "space")
    @classmethod
    def _keys_are_paths(cls, grid: dict[str, Any]) -> dict[str, Any]:
        for key in grid:
            if not _SWEEP_KEY.match(key) or len(key) > 200:
                raise ValueError(f"key '{shorten(key)}' must be a dotted spec path such as train.optimizer.lr or "
                                 f"models.mlp.dropout")
        return grid

    @property
    def points(self) -> int:
        """How many points the sweep trains (one-at-a-time: the spec's own point and one per value)."""
        return grid_points([len(values) for values in self.grid.values()], self.one_at_a_time)

    @model_serializer(mode="wrap")
    def _grid_shape(self, handler: SerializerFunctionWrapHandler) -> dict[str, object]:
        # a grid sweep resolves as it did before random search: space and sample only when sampling
        dumped = handler(self)
        if not self.space:
            dumped.pop("space", None)
            dumped.pop("sample", None)
        if not self.grid:
            dumped.pop("grid", None)
        return dumped

    @model_validator(mode="after")
    def _bounded(self) -> SweepSpec:
        if not self.grid and not self.space:
            raise ValueError("nothing to sweep: give grid: {key: [values]} or space: {key: 'uniform(lo,hi)'} "
                             "with sample: N")
        if bool(self.space) != (self.sample is not None):
            raise ValueError("space and sample go together: space: {key: DIST} and sample: N points to draw")
        if self.space and self.grid:
            raise ValueError("grid and space: give one of them (a spec's sweep is a grid or a random search)")
        if self.points > MAX_SWEEP_POINTS:
            sizes = " x ".join(str(len(v)) for v in list(self.grid.values())[:10])
            how = "1 + the values" if self.one_at_a_time else sizes
            raise ValueError(f"grid: {self.points:,} points ({shorten(how, 60)}); at most {MAX_SWEEP_POINTS:,}")
        return self


class SpecFields(StrictModel):
    """The fields of an nnlab experiment, each checked on its own."""

    schema_version: Literal[1] = SCHEMA_VERSION
    name: str = Field(pattern=MODEL_NAME, max_length=MAX_NAME_LENGTH, description="Used in run names.")
    seed: int = Field(0, ge=0, le=MAX_SEED)
    data: DataSpec
    baseline: Optional[BaselineSpec] = Field(
        default_factory=BaselineSpec, description="false (or null) skips the baseline.")
    train: TrainSpec = Field(default_factory=TrainSpec, description="Defaults for every model.")
    models: Optional[list[ModelSpec]] = Field(
        None, max_length=MAX_MODELS, description="Neural models; omitted: one first network (MLP 64-32, ReLU, Adam).")
    metrics: Optional[list[Literal[tuple(ALL_METRICS)]]] = Field(
        None, description="Default by task; the loss is always logged.")
    monitor: str = Field("val_loss", description="What 'best' means: val_loss or val_<metric>.")
    repeats: int = Field(1, ge=1, le=100, description="Train every model this many times, seeds seed .. "
                                                      "seed+repeats-1, on the same split; scores as mean ± sd.")
    _default_model: bool = PrivateAttr(False)
    expect: dict[str, str] = Field(default_factory=dict, description="CI gates: {'<model>.<val|test>.<metric>': "
                                                                      "'>= 0.9'}; a miss makes train exit 1.")
    sweep: Optional[SweepSpec] = Field(None, description="Points to train by `nnlab sweep`: a grid of settings.")
    ensemble: Optional[EnsembleSpec] = Field(None, description="After training, an ensemble of the members chosen "
                                             "on validation, recorded as one more model: {method: greedy, size: 5}.")

    @model_serializer(mode="wrap")
    def _ensemble_when_set(self, handler: SerializerFunctionWrapHandler) -> dict[str, object]:
        # unset, it is left out of the resolved spec: runs from before the section resume and compare as before
        dumped = handler(self)
        if dumped.get("ensemble", 0) is None:
            dumped.pop("ensemble")
        return dumped

    @field_validator("baseline", mode="before")
    @classmethod
    def _baseline_switch(cls, value: object) -> object:
        return {} if value is True else None if value is False else value

    @field_validator("metrics")
    @classmethod
    def _metrics_once(cls, metrics: Optional[list[str]]) -> Optional[list[str]]:
        twice = sorted({m for i, m in enumerate(metrics or []) if m in metrics[:i]})
        if twice:
            raise ValueError(f"{quoted(twice)} listed more than once; list each metric once")
        return metrics

    @model_validator(mode="before")
    @classmethod
    def _merge_model_train(cls, data: object) -> object:
        # Each model's `train:` is an override merged over the top-level defaults, so the resolved spec
        # shows every model's full settings. Bad values in the defaults are reported once, at `train.*`.
        if not isinstance(data, dict) or not isinstance(data.get("models"), list):
            return data
        defaults = data.get("train") or {}
        if not isinstance(defaults, dict):
            return data
        models = []
        for model in data["models"][: MAX_MODELS + 1]:  # past the limit, one more is enough to report it
            if isinstance(model, dict):
                override = model.get("train") or {}
                model = {**model, "train": deep_merge(defaults, override) if isinstance(override, dict)
                         else override}
            models.append(model)
        return {**data, "models": models}
