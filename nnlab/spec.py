"""The experiment spec: Pydantic models, YAML loading, `--set` overrides and error messages.

Validation happens once, here; the rest of nnlab trusts the types. Every error names the field path, what
is allowed and what was given, e.g. `spam.yaml: models[1].kind: expected one of 'mlp', 'resmlp'; got 'mpl'`.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Annotated, Any, Literal, Optional, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError

from nnlab.errors import SpecError

SCHEMA_VERSION = 1
TASKS = ("auto", "binary", "multiclass", "regression")
METRICS_BY_TASK = {
    "binary": ("accuracy", "precision", "recall", "f1", "roc_auc", "log_loss"),
    "multiclass": ("accuracy", "f1", "log_loss"),
    "regression": ("mse", "rmse", "mae", "r2"),
}
DEFAULT_METRICS = {"binary": ["accuracy", "f1", "roc_auc"], "multiclass": ["accuracy", "f1"],
                   "regression": ["rmse", "mae", "r2"]}
ALL_METRICS = sorted({m for names in METRICS_BY_TASK.values() for m in names})
MODEL_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
MAX_SEED = 2**32 - 1  # numpy's and torch's generators both take it; repeats use seed .. seed+N-1
_EXPECT_RULE = re.compile(r"^\s*(>=|<=|>|<|==)\s*([-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?)\s*$")

PositiveFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]
NonNegFloat = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Fraction = Annotated[float, Field(gt=0, lt=1, allow_inf_nan=False)]


class StrictModel(BaseModel):
    """Strict types (no `epochs: yes`), no NaN/inf, and unknown keys rejected with a did-you-mean."""

    model_config = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False, validate_default=True)

    @model_validator(mode="before")
    @classmethod
    def _reject_unknown_keys(cls, data: Any) -> Any:
        if isinstance(data, dict):
            allowed = list(cls.model_fields)
            for key in data:
                if key not in allowed:
                    close = difflib.get_close_matches(str(key), allowed, n=1, cutoff=0.6)
                    hint = f"did you mean '{close[0]}'? " if close else ""
                    raise PydanticCustomError(
                        "unknown_key", "unknown key; {hint}allowed: {allowed}",
                        {"key": str(key), "hint": hint, "allowed": ", ".join(allowed)})
        return data


# --- data -------------------------------------------------------------------------------------------

class SplitSpec(StrictModel):
    val: Fraction = Field(0.15, description="Fraction of rows for validation (model selection).")
    test: Fraction = Field(0.15, description="Fraction of rows held out for the final test, touched once.")
    stratify: bool = Field(True, description="Keep class proportions equal across splits (classification).")
    seed: Optional[int] = Field(None, ge=0, le=MAX_SEED,
                                description="Seed of the split (default: the spec's seed). Fix it to keep one "
                                            "split while repeats and sweeps vary the training seed.")

    @model_validator(mode="after")
    def _check_sum(self) -> SplitSpec:
        if self.val + self.test >= 0.9:
            raise ValueError(f"val + test must leave at least 10% for training; got {self.val} + {self.test}")
        return self


class TextSpec(StrictModel):
    column: str = Field("text", description="The text column; it becomes token ids [N, max_len].")
    max_len: int = Field(64, ge=1, le=4096, description="Tokens kept per row (longer rows are cut).")
    max_vocab: int = Field(20000, ge=10, le=1_000_000, description="Most frequent training tokens kept.")
    min_freq: int = Field(1, ge=1, description="Tokens seen fewer times in the training split are unknown.")
    lowercase: bool = Field(True, description="Lower-case the text before splitting it into tokens.")


class SequenceSpec(StrictModel):
    steps: Optional[int] = Field(None, ge=1, description="Time steps T: columns are read time-major as [N, T, F] "
                                                         "(F = columns / T). Omit for a 3-D array in an .npz file.")


class ImageSpec(StrictModel):
    shape: Optional[list[Annotated[int, Field(ge=1)]]] = Field(
        None, min_length=3, max_length=3, description="[C, H, W]: columns reshaped to images. Omit for a 4-D "
                                                      "array in an .npz file.")


class DataSpec(StrictModel):
    path: Optional[str] = Field(None, description="CSV or Parquet file, relative to the spec file.")
    builtin: Optional[Literal["iris", "wine", "breast_cancer", "digits", "diabetes", "moons", "xor"]] = Field(
        None, description="A data set that ships with scikit-learn (iris, wine, breast_cancer, digits, diabetes)"
                          " or is generated (moons, xor); needs no file.")
    target: Optional[str] = Field(None, description="Target column (default 'target' for builtin sets).")
    task: Literal[TASKS] = Field("auto", description="auto infers it from the target column.")
    positive: Optional[Union[str, int, bool]] = Field(
        None, description="Positive class of a binary target (default: 1/True, else the second label sorted).")
    split: SplitSpec = Field(default_factory=SplitSpec)
    scale: Literal["standard", "minmax", "none"] = Field(
        "standard", description="Feature scaling, fitted on the training split only.")
    include: Optional[list[str]] = Field(None, description="Feature columns to use (default: all but target).")
    exclude: list[str] = Field(default_factory=list, description="Columns to leave out.")
    impute: Optional[Literal["mean", "median", "most_frequent"]] = Field(
        None, description="Fill missing feature values (statistics from the training split). "
                          "Without it, missing values are an error.")
    max_categories: int = Field(20, ge=2, description="Non-numeric columns with at most this many distinct "
                                                      "values are one-hot encoded; more is an error.")
    text: Optional[TextSpec] = Field(None, description="Read a text column as token ids (text models).")
    sequence: Optional[SequenceSpec] = Field(None, description="Read the columns as a sequence [N, T, F].")
    image: Optional[ImageSpec] = Field(None, description="Read the columns as images [N, C, H, W].")

    @property
    def input_kind(self) -> str:
        """table, text, sequence or image: how the features are read."""
        return next((k for k in ("text", "sequence", "image") if getattr(self, k) is not None), "table")

    @model_validator(mode="after")
    def _check_source(self) -> DataSpec:
        if (self.path is None) == (self.builtin is None):
            raise ValueError("give exactly one of data.path (a CSV or Parquet file) or data.builtin")
        if self.builtin and self.target is None:
            self.target = "target"
        if self.target is None:
            raise ValueError("data.target is required: the name of the column to predict")
        return self


# --- training ---------------------------------------------------------------------------------------

class OptimizerSpec(StrictModel):
    name: Literal["sgd", "adam", "adamw"] = "adam"
    lr: PositiveFloat = Field(1e-3, description="Learning rate.")
    momentum: float = Field(0.0, ge=0, lt=1, allow_inf_nan=False, description="SGD momentum.")
    weight_decay: NonNegFloat = Field(0.0, description="L2 penalty (decoupled for adamw).")


class StepScheduler(StrictModel):
    name: Literal["step"]
    step_size: int = Field(10, ge=1, description="Epochs between learning-rate drops.")
    gamma: Fraction = Field(0.1, description="Factor applied at each drop.")


class CosineScheduler(StrictModel):
    name: Literal["cosine"]
    min_lr: NonNegFloat = Field(0.0, description="Learning rate reached at the last epoch.")


class PlateauScheduler(StrictModel):
    name: Literal["plateau"]
    patience: int = Field(3, ge=0, description="Epochs without improvement of the monitor before a drop.")
    factor: Fraction = Field(0.1, description="Factor applied at each drop.")


SchedulerSpec = Annotated[Union[StepScheduler, CosineScheduler, PlateauScheduler], Field(discriminator="name")]


class EarlyStoppingSpec(StrictModel):
    monitor: Optional[str] = Field(None, description="Default: the spec's top-level monitor.")
    patience: int = Field(8, ge=1, description="Epochs without improvement before stopping.")
    min_delta: NonNegFloat = Field(0.0, description="Smallest change that counts as an improvement.")


class TrainSpec(StrictModel):
    epochs: int = Field(50, ge=1, le=100_000)
    batch_size: int = Field(64, ge=1)
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
    device: str = Field("auto", pattern=r"^(auto|cpu|cuda|cuda:\d+|mps)$",
                        description="auto | cpu | cuda | cuda:N | mps")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        "auto", description="auto: bf16 autocast on CUDA where supported, else fp32.")


# --- models -----------------------------------------------------------------------------------------

Activation = Literal["relu", "tanh", "sigmoid", "gelu", "leaky_relu"]


class ModelBase(StrictModel):
    name: Optional[str] = Field(None, pattern=MODEL_NAME, description="Unique name (default: the kind).")
    train: Optional[TrainSpec] = Field(None, description="Overrides of the top-level train settings.")


Embedding = Annotated[int, Field(ge=1, le=4096, description="Token embedding size (text data only).")]
Dropout = Annotated[float, Field(ge=0, lt=1, allow_inf_nan=False)]


class MLPSpec(ModelBase):
    kind: Literal["mlp"]
    embedding: Embedding = 64
    hidden: list[Annotated[int, Field(ge=1)]] = Field(default_factory=lambda: [64, 32])
    activation: Activation = "relu"
    dropout: float = Field(0.0, ge=0, lt=1, allow_inf_nan=False)
    norm: Literal["none", "batchnorm", "layernorm"] = "none"


class ResMLPSpec(ModelBase):
    kind: Literal["resmlp"]
    embedding: Embedding = 64
    width: int = Field(128, ge=1, description="Width of every residual block.")
    blocks: int = Field(2, ge=1, description="Number of residual blocks.")
    activation: Activation = "relu"
    dropout: float = Field(0.0, ge=0, lt=1, allow_inf_nan=False)
    norm: Literal["none", "batchnorm", "layernorm"] = "layernorm"


class CNNSpec(ModelBase):
    kind: Literal["cnn"]
    channels: list[Annotated[int, Field(ge=1)]] = Field(default_factory=lambda: [32, 64], min_length=1,
                                                         description="Output channels of each conv layer.")
    kernel: int = Field(5, ge=1, description="Kernel size (k, or k x k on images).")
    stride: int = Field(1, ge=1)
    pool: Literal["max", "avg", "none"] = Field("max", description="Pooling (size 2) after each conv layer.")
    norm: Literal["none", "batchnorm"] = "none"
    activation: Activation = "relu"
    dropout: Dropout = 0.0
    embedding: Embedding = 64


class RNNSpec(ModelBase):
    kind: Literal["rnn"]
    cell: Literal["gru", "lstm", "rnn"] = "gru"
    hidden: int = Field(64, ge=1)
    layers: int = Field(1, ge=1, le=16)
    bidirectional: bool = False
    dropout: Dropout = 0.0
    pool: Literal["last", "mean", "max"] = Field("last", description="How the steps become one vector "
                                                                    "(padding-aware on text).")
    embedding: Embedding = 64


class TransformerSpec(ModelBase):
    kind: Literal["transformer"]
    d_model: int = Field(64, ge=1, le=8192)
    heads: int = Field(4, ge=1)
    layers: int = Field(2, ge=1, le=48)
    ff: int = Field(128, ge=1, description="Width of each feed-forward block.")
    dropout: Dropout = 0.1
    positions: Literal["learned", "sinusoidal"] = "learned"
    pool: Literal["cls", "mean"] = "mean"


ModelSpec = Annotated[Union[MLPSpec, ResMLPSpec, CNNSpec, RNNSpec, TransformerSpec], Field(discriminator="kind")]
MODEL_KINDS = ("mlp", "resmlp", "cnn", "rnn", "transformer")


class BaselineSpec(StrictModel):
    kind: Literal["auto", "logistic", "linear"] = Field(
        "auto", description="auto: logistic (softmax) regression for classification, ridge for regression.")
    l2: NonNegFloat = Field(1.0, description="L2 strength; scikit-learn's C = 1/l2 (Ridge's alpha = l2).")
    max_iter: int = Field(500, ge=1, description="L-BFGS iterations.")


# --- the spec ---------------------------------------------------------------------------------------

class Spec(StrictModel):
    """An nnlab experiment."""

    schema_version: Literal[1] = SCHEMA_VERSION
    name: str = Field(pattern=MODEL_NAME, description="Used in run names.")
    seed: int = Field(0, ge=0, le=MAX_SEED)
    data: DataSpec
    baseline: Optional[BaselineSpec] = Field(
        default_factory=BaselineSpec, description="false (or null) skips the baseline.")
    train: TrainSpec = Field(default_factory=TrainSpec, description="Defaults for every model.")
    models: Optional[list[ModelSpec]] = Field(
        None, description="Neural models; omitted: one first network (MLP 64-32, ReLU, Adam).")
    metrics: Optional[list[Literal[tuple(ALL_METRICS)]]] = Field(
        None, description="Default by task; the loss is always logged.")
    monitor: str = Field("val_loss", description="What 'best' means: val_loss or val_<metric>.")
    repeats: int = Field(1, ge=1, le=100, description="Train every model this many times, seeds seed .. "
                                                      "seed+repeats-1, on the same split; scores as mean ± sd.")
    _default_model: bool = PrivateAttr(False)
    expect: dict[str, str] = Field(default_factory=dict, description="CI gates: {'<model>.<val|test>.<metric>': "
                                                                      "'>= 0.9'}; a miss makes train exit 1.")

    @field_validator("baseline", mode="before")
    @classmethod
    def _baseline_switch(cls, value: Any) -> Any:
        return {} if value is True else None if value is False else value

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
        for model in data["models"]:
            if isinstance(model, dict):
                override = model.get("train") or {}
                model = {**model, "train": _deep_merge(defaults, override) if isinstance(override, dict)
                         else override}
            models.append(model)
        return {**data, "models": models}

    @model_validator(mode="after")
    def _resolve(self) -> Spec:
        if self.models is None:
            self.models = [MLPSpec(kind="mlp", name="mlp")]
            self._default_model = True
        names: list[str] = []
        for model in self.models:
            model.name = model.name or _unique(model.kind, names)
            if model.name in names or model.name == "baseline":
                raise ValueError(f"models: names must be unique; '{model.name}' appears twice" if model.name in names
                                 else "models: the name 'baseline' is reserved for the baseline model")
            names.append(model.name)
            if model.train is None:
                model.train = self.train.model_copy(deep=True)
        if not self.models and self.baseline is None:
            raise ValueError("models: nothing to train: the baseline is off and the model list is empty")
        _check_monitor("monitor", self.monitor, self.metrics)
        for i, model in enumerate(self.models):
            es = model.train.early_stopping
            if es is not None and es.monitor is not None:
                _check_monitor(f"models[{i}].train.early_stopping.monitor", es.monitor, self.metrics)
        for key, rule in self.expect.items():
            _check_expect(key, rule, ["baseline", *names], self.metrics)
        return self

    @property
    def default_model(self) -> bool:
        """True when `models` was omitted and nnlab chose the first network."""
        return self._default_model

    def resolved(self) -> dict[str, Any]:
        """The spec with every default filled in, as plain YAML-able data."""
        return self.model_dump(mode="json")


def _unique(base: str, taken: list[str]) -> str:
    if base not in taken:
        return base
    n = 2
    while f"{base}-{n}" in taken:
        n += 1
    return f"{base}-{n}"


def _deep_merge(base: dict, override: dict) -> dict:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _check_monitor(where: str, monitor: str, metrics: Optional[list[str]]) -> None:
    allowed = ["val_loss", *[f"val_{m}" for m in (metrics or ALL_METRICS)]]
    if monitor not in allowed:
        raise ValueError(f"{where}: expected one of {', '.join(allowed)}; got '{monitor}'")


def _check_expect(key: str, rule: str, models: list[str], metrics: Optional[list[str]]) -> None:
    parts = key.split(".")
    metric_names = ["loss", *(metrics or ALL_METRICS)]
    if len(parts) < 3 or parts[-2] not in ("val", "test"):
        raise ValueError(f"expect: key '{key}' must read <model>.<val|test>.<metric>, "
                         f"e.g. {models[-1]}.test.{metric_names[1]}")
    model, metric = ".".join(parts[:-2]), parts[-1]
    if model not in models:
        raise ValueError(f"expect: key '{key}': no model '{model}' (models: {', '.join(models)})")
    if metric not in metric_names:
        raise ValueError(f"expect: key '{key}': metric '{metric}' not logged (metrics: {', '.join(metric_names)})")
    if not _EXPECT_RULE.match(rule):
        raise ValueError(f"expect.{key}: rule must read '<op> <number>' with op one of >=, >, <=, <, ==; "
                         f"got '{rule}'")


def parse_expect_rule(rule: str) -> tuple[str, float]:
    match = _EXPECT_RULE.match(rule)
    assert match, rule  # validated when the spec was loaded
    return match.group(1), float(match.group(2))


# --- YAML -------------------------------------------------------------------------------------------

class _Loader(yaml.SafeLoader):
    """safe_load, plus: duplicate keys are errors, and `1e-3` is a float (YAML 1.1 wants `1.0e-3`)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, Any] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                mark = key_node.start_mark
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key '{key}'", mark)
            seen[key] = True
        return super().construct_mapping(node, deep=deep)


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:\d[\d_]*)?(?:\.\d*)?[eE][-+]?\d+$|^[-+]?\d[\d_]*\.\d*$|^[-+]?\.\d+$"
               r"|^[-+]?\.(?:inf|Inf|INF)$|^\.(?:nan|NaN|NAN)$"),
    list("-+0123456789."))


def parse_yaml(text: str, source: str) -> Any:
    try:
        return yaml.load(text, Loader=_Loader)  # a SafeLoader subclass: no arbitrary objects
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = e.problem or e.context or "invalid YAML"
        raise SpecError(f"{source}:{where}: {problem}") from None
    except yaml.YAMLError as e:
        raise SpecError(f"{source}: invalid YAML: {e}") from None


# --- loading ----------------------------------------------------------------------------------------

def load_spec(path: str | Path, overrides: list[str] = ()) -> tuple[Spec, Path]:
    """Read, override and validate a spec file. Returns the spec and the folder data paths are relative to."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise SpecError(f"{path}: spec file not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise SpecError(f"{path}: cannot read the spec file ({e.__class__.__name__}: {e})") from None
    raw = parse_yaml(text, path.name)
    if raw is None:
        raise SpecError(f"{path.name}: the spec is empty; it needs at least name, data.path and data.target")
    if not isinstance(raw, dict):
        raise SpecError(f"{path.name}: the spec must be a mapping of keys (name, data, ...); "
                        f"got {type(raw).__name__}")
    for override in overrides:
        raw = apply_override(raw, override)
    return validate_spec(raw, path.name), path.parent


def validate_spec(raw: dict, source: str) -> Spec:
    try:
        return Spec.model_validate(raw)
    except ValidationError as e:
        raise SpecError("\n".join(f"{source}: {line}" for line in format_errors(e))) from None


def apply_override(raw: dict, override: str) -> dict:
    """Apply `key.path=value` (value parsed as YAML) to the raw spec. Models can be named or indexed."""
    key, sep, value_text = override.partition("=")
    if not sep or not key.strip():
        raise SpecError(f"--set {override!r}: expected KEY.PATH=VALUE, e.g. train.epochs=10")
    value = parse_yaml(value_text, f"--set {key}") if value_text.strip() else None
    parts = key.strip().split(".")
    node: Any = raw
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        where = ".".join(parts[: i + 1])
        if isinstance(node, list):
            index = _list_index(node, part, where)
            if last:
                node[index] = value
            else:
                node = node[index]
        elif isinstance(node, dict):
            if last:
                node[part] = value
            else:
                if node.get(part) is None:
                    node[part] = [] if part == "models" else {}
                node = node[part]
        else:
            raise SpecError(f"--set {key}: '{'.'.join(parts[:i])}' is a value, not a mapping")
    return raw


def _list_index(items: list, part: str, where: str) -> int:
    if part.isdigit():
        if int(part) >= len(items):
            raise SpecError(f"--set {where}: index {part} out of range ({len(items)} item(s))")
        return int(part)
    names = [m.get("name") or m.get("kind") for m in items if isinstance(m, dict)]
    if part in names:
        return names.index(part)
    raise SpecError(f"--set {where}: no model named '{part}' (models: {', '.join(map(str, names)) or 'none'})")


def format_errors(error: ValidationError) -> list[str]:
    """One line per problem: `field.path: what is allowed; got <value>`."""
    lines = []
    for err in error.errors():
        loc = [p for p in err["loc"] if not _is_union_tag(p)]
        ctx = err.get("ctx") or {}
        if err["type"] == "unknown_key":
            loc.append(ctx["key"])
        elif err["type"] == "union_tag_invalid":
            loc.append(ctx["discriminator"].strip("'"))
        message = _message(err)
        lines.append(f"{_path(loc)}: {message}" if loc else message)
    lines = list(dict.fromkeys(lines))
    # A bad top-level train default also fails inside every model that inherits it: report it once.
    return [line for line in lines if not re.match(r"models\[\d+\]\.(train\..*)", line)
            or re.sub(r"^models\[\d+\]\.", "", line) not in lines]


def _is_union_tag(part: Any) -> bool:
    # Pydantic puts the tag of a discriminated union ('mlp', 'cosine') or a validator's name into the location.
    return isinstance(part, str) and (part in _UNION_TAGS or part.startswith(("literal[", "function-")))


_UNION_TAGS = {*MODEL_KINDS, *(cls.model_fields["name"].annotation.__args__[0]
                               for cls in (StepScheduler, CosineScheduler, PlateauScheduler))}


def _path(loc: list) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _message(err: dict) -> str:
    kind, ctx, given = err["type"], err.get("ctx") or {}, err.get("input")
    got = f"got {_show(given)}"
    if kind == "unknown_key":
        return err["msg"]
    if kind == "missing":
        return "required field is missing"
    if kind == "literal_error":
        return f"expected one of {ctx['expected']}; {got}"
    if kind == "union_tag_invalid":
        return f"expected one of {ctx['expected_tags']}; got {_show(ctx.get('tag'))}"
    if kind == "union_tag_not_found":
        return f"needs a '{ctx['discriminator'].strip(chr(39))}' key; {got}"
    if kind == "value_error":
        return str(ctx.get("error", err["msg"]))
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        return f"{err['msg'].replace('Input should be', 'must be')}; {got}"
    if kind == "finite_number":
        return f"must be a finite number; {got}"
    if kind == "string_pattern_mismatch":
        return f"must match {ctx['pattern']}; {got}"
    return f"{err['msg'].replace('Input should be', 'expected')}; {got}"


def _show(value: Any) -> str:
    text = repr(value) if not isinstance(value, (dict, list)) else str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def json_schema() -> dict[str, Any]:
    schema = Spec.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "nnlab experiment spec"
    return schema
