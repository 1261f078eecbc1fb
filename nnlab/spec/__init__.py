"""The experiment spec: the top-level `Spec`, loading it from YAML with `--set` overrides, and its JSON Schema.

Validation happens once, here; the rest of nnlab trusts the types. Every error names the field path, what
is allowed and what was given, e.g. `spam.yaml: models[1].kind: expected one of 'mlp', 'resmlp'; got 'mpl'`,
and every problem of a spec is reported at once, one line each.

The parts live by concern: `specbase` (base class, vocabulary, limits), `specdata` (`data:`), `spectrain`
(`train:`), `specmodels` (`models:`, `baseline:`), `specchecks` (rules across parts and for a task),
`specload` (bounded YAML, `--set`) and `specerrors` (messages). Everything is importable from here.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Annotated, Any, Literal, Optional

from pydantic import Field, PrivateAttr, ValidationError, field_validator, model_validator

from nnlab.errors import SpecError
from nnlab.core.records import Gate
from nnlab.spec.base import (ALL_METRICS, DEFAULT_METRICS, MAX_MODELS, MAX_NAME_LENGTH, MAX_SEED,  # noqa: F401
                            METRICS_BY_TASK, MODEL_NAME, SCHEMA_VERSION, TASKS, Dropout, Fraction, NonNegFloat,
                            PositiveFloat, StrictModel, listing, quoted, shorten)
from nnlab.spec.checks import check_for_task, spec_problems, sweep_key_problem  # noqa: F401
from nnlab.spec.data import DataSpec, ImageSpec, SequenceSpec, SplitSpec, TextSpec  # noqa: F401
from nnlab.spec.messages import format_errors as _format_errors
from nnlab.spec.load import (MAX_DEPTH, MAX_SPEC_BYTES, MAX_VALUES, apply_override, deep_merge,  # noqa: F401
                            parse_yaml, read_spec_file, set_path)
from nnlab.spec.models import (INPUT_KINDS_BY_MODEL, MODEL_KINDS, Activation, BaselineSpec, CNNSpec,  # noqa: F401
                              Embedding, MLPSpec, ModelBase, ModelSpec, ResMLPSpec, RNNSpec, TransformerSpec)
from nnlab.spec.train import (SCHEDULER_NAMES, CosineScheduler, EarlyStoppingSpec, OptimizerSpec,  # noqa: F401
                             PlateauScheduler, SchedulerSpec, StepScheduler, TrainSpec)

MAX_SWEEP_POINTS = 1000
_SWEEP_KEY = re.compile(r"^[A-Za-z_][\w-]*(\.[\w-]+)*$")


class SweepSpec(StrictModel):
    grid: dict[str, Annotated[list[Any], Field(min_length=1)]] = Field(
        min_length=1, description="Settings to vary: {dotted key: [values]}, e.g. {train.optimizer.lr: [0.001, "
                                  "0.01], models.mlp.dropout: [0, 0.3]}.")
    one_at_a_time: bool = Field(False, description="Vary each key alone from the spec's own value, instead of "
                                                   "every combination.")

    @field_validator("grid")
    @classmethod
    def _keys_are_paths(cls, grid: dict[str, list[Any]]) -> dict[str, list[Any]]:
        for key in grid:
            if not _SWEEP_KEY.match(key) or len(key) > 200:
                raise ValueError(f"key '{shorten(key)}' must be a dotted spec path such as train.optimizer.lr or "
                                 f"models.mlp.dropout")
        return grid

    @property
    def points(self) -> int:
        """How many points the sweep trains (one-at-a-time: the spec's own point and one per value)."""
        sizes = [len(values) for values in self.grid.values()]
        return 1 + sum(sizes) if self.one_at_a_time else math.prod(sizes)

    @model_validator(mode="after")
    def _bounded(self) -> SweepSpec:
        if self.points > MAX_SWEEP_POINTS:
            sizes = " x ".join(str(len(v)) for v in list(self.grid.values())[:10])
            how = "1 + the values" if self.one_at_a_time else sizes
            raise ValueError(f"grid: {self.points:,} points ({shorten(how, 60)}); at most {MAX_SWEEP_POINTS:,}")
        return self


class Spec(StrictModel):
    """An nnlab experiment."""

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

    @field_validator("baseline", mode="before")
    @classmethod
    def _baseline_switch(cls, value: Any) -> Any:
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
    def _merge_model_train(cls, data: Any) -> Any:
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

    @model_validator(mode="after")
    def _resolve(self) -> Spec:
        if self.models is None:
            self.models = [MLPSpec(kind="mlp", name="mlp")]
            self._default_model = True
        problems = self._name_models()
        if not self.models and self.baseline is None:
            problems.append("models: nothing to train: the baseline is off and the model list is empty")
        problems += spec_problems(self)
        if self.sweep is not None:
            resolved = self.resolved()
            problems += [p for key in self.sweep.grid if (p := sweep_key_problem(key, resolved))]
        if problems:
            raise ValueError("\n".join(problems))
        return self

    def _name_models(self) -> list[str]:
        problems, names = [], set()
        for model in self.models:
            model.name = model.name or _unique(model.kind, names)
            if model.name == "baseline":
                problems.append("models: the name 'baseline' is reserved for the baseline model")
            elif model.name in names:
                problems.append(f"models: names must be unique; '{model.name}' appears twice")
            names.add(model.name)
            if model.train is None:
                model.train = self.train.model_copy(deep=True)
        return problems

    @property
    def default_model(self) -> bool:
        """True when `models` was omitted and nnlab chose the first network."""
        return self._default_model

    def resolved(self) -> dict[str, Any]:
        """The spec with every default filled in, as plain YAML-able data."""
        return self.model_dump(mode="json")


def _unique(base: str, taken: set[str]) -> str:
    if base not in taken:
        return base
    n = 2
    while f"{base}-{n}" in taken:
        n += 1
    return f"{base}-{n}"


def parse_expect_rule(rule: str) -> tuple[str, float]:
    """`'>= 0.9'` -> ('>=', 0.9). Gates are parsed by `records.Gate`; this is its rule part."""
    gate = Gate.parse("model.val.metric", rule)
    return gate.op, gate.threshold


UNION_TAGS = {*MODEL_KINDS, *SCHEDULER_NAMES}


def format_errors(error: ValidationError) -> list[str]:
    """One line per problem of a spec: `field.path: what is allowed; got <value>`."""
    return _format_errors(error, Spec, UNION_TAGS)


def load_spec(path: str | Path, overrides: list[str] = ()) -> tuple[Spec, Path]:
    """Read, override and validate a spec file. Returns the spec and the folder data paths are relative to."""
    path = Path(path)
    raw = read_spec_file(path)
    if raw is None:
        raise SpecError(f"{path.name}: the spec is empty; it needs at least name, data.path and data.target")
    if not isinstance(raw, dict):
        raise SpecError(f"{path.name}: the spec must be a mapping of keys (name, data, ...); "
                        f"got {type(raw).__name__}")
    for override in overrides:
        raw = apply_override(raw, override)
    return validate_spec(raw, path.name), path.parent


def validate_spec(raw: dict, source: str) -> Spec:
    """A raw mapping (parsed YAML, maybe overridden) -> Spec, or a SpecError with one line per problem."""
    try:
        return Spec.model_validate(raw)
    except ValidationError as e:
        raise SpecError("\n".join(f"{source}: {line}" for line in format_errors(e))) from None
    except RecursionError:  # only reachable from Python callers: YAML and --set are bounded in depth
        raise SpecError(f"{source}: nested too deeply; at most {MAX_DEPTH} levels") from None


def json_schema() -> dict[str, Any]:
    schema = Spec.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "nnlab experiment spec"
    return schema
