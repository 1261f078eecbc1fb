"""The run contract: what a run records, as types. Torch-free.

`runstore` is the only module that writes or reads these to and from files; everyone else (runner, report,
tables, compare, curves, check, tests) works with these objects and never with raw dict keys. Every
record is validated when it is read, so a damaged file is a warning, not a crash.

    RunMeta       run.json: who, when, where, status, the resolved spec
    RunSummary    summary.json: task, monitor, metrics, data summary, one ModelResult per model, gates
    ModelResult   one model: status, best epoch, val/test scores (mean and sd over members), diagnosis,
                  per-class results (PerClassResult by split)
    DataSummary   summary.json's `data`: the source, rows, task, input, split and classes `train` shows
    ModelInfo     models/<model>.json: a saved model's kind, spec, input and preprocessing
    EnsembleInfo  models/ensemble.json: the ensemble's members (EnsembleMember) and weights
    Gate          an `expect` rule parsed once: `mlp.test.accuracy: ">= 0.92"`
"""

from __future__ import annotations

import math
import operator
import re
from dataclasses import dataclass, field
from typing import Callable, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from nnlab.core.columns import EVAL_SPLITS
from nnlab.core.jsonvalue import JSONObject

FORMAT_VERSION = 1

from nnlab.core.statuses import MODEL_STATUSES, RUN_STATUSES, ModelStatus, RunStatus  # noqa: E402,F401 - the contract's words
# --- gates ---------------------------------------------------------------------------------------------

_RULE = re.compile(r"^\s*(>=|<=|>|<|==)\s*([-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?)\s*$")
_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt, "==": operator.eq}


class Gate(BaseModel):
    """One `expect` rule, parsed once: `key` reads <model>.<val|test>.<metric>, `rule` '<op> <number>'."""

    model_config = ConfigDict(frozen=True)
    key: str
    rule: str
    model: str
    split: Literal["val", "test"]
    metric: str
    op: Literal[">=", ">", "<=", "<", "=="]
    threshold: float

    @classmethod
    def parse(cls, key: str, rule: str) -> Gate:
        """Raises ValueError with a one-line message naming the key and what it should read."""
        parts = key.split(".")
        if len(parts) < 3 or parts[-2] not in EVAL_SPLITS:
            raise ValueError(f"expect: key '{key}' must read <model>.<val|test>.<metric>")
        match = _RULE.match(rule) if isinstance(rule, str) else None
        if not match:
            raise ValueError(f"expect.{key}: rule must read '<op> <number>' with op one of >=, >, <=, <, ==; "
                             f"got {str(rule)[:40]!r}")
        return cls(key=key, rule=rule, model=".".join(parts[:-2]), split=parts[-2], metric=parts[-1],
                   op=match.group(1), threshold=float(match.group(2)))

    def check(self, models: dict[str, ModelResult]) -> GateResult:
        result = models.get(self.model)
        value = result.score(self.split, self.metric) if result else None
        passed = value is not None and _OPS[self.op](value, self.threshold)
        return GateResult(key=self.key, rule=self.rule, value=value, passed=passed)


class GateResult(BaseModel):
    key: str
    rule: str
    value: Optional[float] = None  # None: the model or its score is missing (a miss)
    passed: bool


# --- results -------------------------------------------------------------------------------------------

Scores = dict[str, Optional[float]]  # metric -> value; None where it is undefined (NaN is never stored)


def _finite_or_none(values: object) -> object:
    if isinstance(values, dict):
        return {str(k): (None if v is None or (isinstance(v, float) and not math.isfinite(v)) else v)
                for k, v in values.items()}
    return values


class MemberResult(BaseModel):
    """One repeat of a model (seed = the spec's seed + member)."""

    member: int = Field(ge=0)
    seed: int
    status: ModelStatus
    best_epoch: int = Field(ge=0)
    epochs_run: int = Field(ge=0)
    val: Scores = Field(default_factory=dict)
    test: Scores = Field(default_factory=dict)

    _finite = field_validator("val", "test", mode="before")(_finite_or_none)


class PerClassResult(BaseModel):
    """One split's per-class results: `labels` are the original class labels as text, in the model's class
    order; `confusion` counts rows of a true class (row) predicted as a class (column); precision, recall and
    F1 are 0 where undefined (scikit-learn's zero_division=0); `member` is the repeat they are of (the one the
    model's saved weights and errors file are of)."""

    labels: list[str]
    confusion: list[list[int]]
    precision: list[float]
    recall: list[float]
    f1: list[float]
    support: list[int]
    member: int = 0


class EnsembleMember(BaseModel):
    """One member of an ensemble: the repeat `member` of model `model`, its share of the average, and the
    models/<weights>.safetensors (+ .json) its weights are saved as (the model's own file when the member is
    the repeat the model saved, else `<model>@<member>`)."""

    model: str
    member: int = Field(ge=0)
    weight: float = Field(gt=0, le=1)
    weights: str


class EnsembleInfo(BaseModel):
    """models/ensemble.json: how the ensemble was chosen and what predicting averages. `trajectory` is the
    validation `metric` after each selection step; the first `steps` of the `size` steps (the best prefix)
    are kept, so the weights are counts / steps."""

    method: str
    size: int = Field(ge=1)
    steps: int = Field(ge=1)
    metric: str
    candidates: int = Field(ge=1)  # the members it chose from
    members: list[EnsembleMember] = Field(min_length=1)
    trajectory: list[Optional[float]] = Field(default_factory=list)


class HalvingStop(BaseModel):
    """Why a sweep point stopped before its last epoch (`sweep --halving`): at rung `rung` of `rungs` (after
    `epoch` of `epochs` epochs) its monitored validation score ranked `rank` of the `live` points of its stack,
    and only the best `kept` went on."""

    rung: int = Field(ge=1)
    rungs: int = Field(ge=1)
    epoch: int = Field(ge=1)
    epochs: int = Field(ge=1)
    rank: int = Field(ge=1)
    live: int = Field(ge=1)
    kept: int = Field(ge=1)
    score: Optional[float] = None
    reason: str


class ModelResult(BaseModel):
    """One model of a run. With repeats, `val`/`test` are the members' means, `val_sd`/`test_sd` their
    standard deviations (ddof=1), and `members` each member's own numbers."""

    name: str
    kind: str
    params: int = Field(ge=0)
    status: ModelStatus
    best_epoch: int = Field(ge=0)
    epochs_run: int = Field(ge=0)
    epochs_planned: Optional[int] = None
    val: Scores = Field(default_factory=dict)
    test: Scores = Field(default_factory=dict)
    val_sd: Scores = Field(default_factory=dict)
    test_sd: Scores = Field(default_factory=dict)
    repeats: int = Field(1, ge=1)
    members: list[MemberResult] = Field(default_factory=list)
    train_seconds: float = 0.0
    samples_per_second: float = 0.0
    message: Optional[str] = None
    stop_reason: Optional[str] = None
    diagnosis: list[str] = Field(default_factory=list)
    train_loss: Optional[float] = None  # the baseline's, what "underfitting" is measured against
    stacked: bool = False  # trained as stacked members in one model
    not_stacked: Optional[str] = None  # why its members trained one after another instead (the kind, a layer)
    per_class: Optional[dict[str, PerClassResult]] = None  # by split ("val", "test"); classification only
    # the decision threshold on P(positive) test was scored with (`train.threshold: val_f1`); None: 0.5
    threshold: Optional[float] = None
    ensemble: Optional[list[EnsembleMember]] = None  # kind "ensemble": which members, with what weight
    halved: Optional[HalvingStop] = None  # set when `sweep --halving` stopped it early

    _finite = field_validator("val", "test", "val_sd", "test_sd", mode="before")(_finite_or_none)

    def score(self, split: str, metric: str) -> Optional[float]:
        scores = self.val if split == "val" else self.test if split == "test" else {}
        return scores.get(metric)

    def spread(self, split: str, metric: str) -> Optional[float]:
        spreads = self.val_sd if split == "val" else self.test_sd if split == "test" else {}
        return spreads.get(metric)

    @property
    def finished(self) -> bool:
        return self.status == "completed"


class RunSummary(BaseModel):
    """summary.json. Written after every model (so a killed run keeps each finished model) and at the end."""

    format_version: int = FORMAT_VERSION
    task: str
    monitor: str
    baseline: Optional[str] = None
    metrics: list[str] = Field(default_factory=list)
    data: dict[str, object] = Field(default_factory=dict)  # DataSummary.to_json(); older runs' as they are
    models: dict[str, ModelResult] = Field(default_factory=dict)
    expect: list[GateResult] = Field(default_factory=list)
    complete: bool = False  # every planned model has a result and the gates were checked

    @property
    def baseline_result(self) -> Optional[ModelResult]:
        return self.models.get(self.baseline) if self.baseline else None

    @property
    def gates_missed(self) -> list[GateResult]:
        return [g for g in self.expect if not g.passed]

    @property
    def failed_models(self) -> list[str]:
        """Models a CI must notice: failed or diverged."""
        return [n for n, m in self.models.items() if m.status in ("failed", "diverged")]


@dataclass
class InputSummary:
    """How a model sees one example: summary.json's `data.input`."""

    kind: str
    shape: list[int]
    vocab_size: int = 0  # text only; left out of the JSON otherwise


@dataclass
class DataSummary:
    """What `train` prints and summary.json keeps about the data (`to_json` is summary.json's `data`)."""

    source: str
    rows: int
    features: int  # values per example, flattened
    columns: int  # feature columns read from the table
    task: str
    task_reason: str
    input: InputSummary
    split: dict[str, int]  # split name -> rows
    classes: Optional[dict[str, int]] = None  # label -> rows; classification only
    positive: Optional[str] = None  # binary only
    fingerprint: JSONObject = field(default_factory=dict)  # split.fingerprint(): which data and split
    images: Optional[JSONObject] = None  # image files: files read, resized, skipped (data/images.py)
    vectors: Optional[JSONObject] = None  # data.text.vectors: file, dim, covered of words, frozen (data/text.py)

    def to_json(self) -> JSONObject:
        """The keys in the order summary.json has always had them, optional ones only when set."""
        shown: JSONObject = {"kind": self.input.kind, "shape": list(self.input.shape)}
        if self.input.vocab_size:
            shown["vocab_size"] = self.input.vocab_size
        data: JSONObject = {"source": self.source, "rows": self.rows, "features": self.features,
                            "columns": self.columns, "task": self.task, "task_reason": self.task_reason,
                            "input": shown, "split": dict(self.split)}
        if self.classes is not None:
            data["classes"] = dict(self.classes)
        if self.positive is not None:
            data["positive"] = self.positive
        data["fingerprint"] = self.fingerprint
        if self.images is not None:
            data["images"] = self.images
        if self.vectors is not None:
            data["vectors"] = self.vectors
        return data


class SavedInput(BaseModel):
    """A saved model's input description: `core.inputs.InputInfo` less its outputs."""

    kind: str
    shape: list[int]
    vocab_size: int = 0


class SavedLayer(BaseModel):
    """One row of a saved model's layer table (`models.summary.LayerRow`): the report shows them."""

    name: str
    type: str
    output_shape: list[int]  # one example's output, batch dimension left out
    params: int


class ModelInfo(BaseModel):
    """models/<model>.json: what predicting again needs besides the weights. The run writes it
    (`RunWriter.save_model`) and the API reads it back (`Run.model_info`); the fields are in the file's key
    order. Older files may lack what predicting never read (member, seed, input); the API asks for what a
    rebuild needs (a file without it reads `no 'n_inputs' in mlp.json`)."""

    kind: str
    member: Optional[int] = None
    seed: Optional[int] = None
    spec: Optional[dict[str, object]] = None  # the model's spec as JSON (ModelSpec or BaselineSpec)
    input: Optional[SavedInput] = None
    n_inputs: Optional[int] = None
    n_outputs: Optional[int] = None
    preprocessing: dict[str, object]  # data.Preprocessor.state()
    layers: Optional[list[SavedLayer]] = None  # the layer table at train time; older files have none

    @field_validator("layers", mode="wrap")
    @classmethod
    def _layers_or_none(cls, value: object, handler: Callable[[object], object]) -> object:
        """A damaged table is no table: predicting never reads it, so it must not make the file unreadable."""
        try:
            return handler(value)
        except ValidationError:
            return None

    @classmethod
    def parse(cls, data: object) -> ModelInfo:
        """KeyError naming the first missing key predicting reads (preprocessing, then kind), as the file was
        always read; ValueError (one line: field and problem) for a value of the wrong type."""
        if isinstance(data, dict):
            for key in ("preprocessing", "kind"):
                if key not in data:
                    raise KeyError(key)
        try:
            return cls.model_validate(data)
        except ValidationError as e:
            first = e.errors()[0]
            raise ValueError(f"{'.'.join(map(str, first['loc']))}: {first['msg']}") from None

    def to_file(self) -> dict[str, object]:
        """What the file holds (python values: `runstore.layout.to_json` writes numpy scalars and non-finite
        floats as nnlab always has)."""
        return self.model_dump()


PLACE_KEYS = ("path", "file", "source")  # a data fingerprint's keys for where the data lay, not what it was


def data_identity(fingerprint: JSONObject) -> JSONObject:
    """A data fingerprint (RunMeta.data_fingerprint) less where the file lay: what the data was, equal for
    the same data read from another place (resume and the test-split count compare it)."""
    return {k: v for k, v in fingerprint.items() if k not in PLACE_KEYS}


class RunNote(BaseModel):
    """A note added after the run (`nnlab note`): when, and what. The note given to `train --note` stays in
    RunMeta.note; these follow it, oldest first."""

    time: str
    text: str


class RunMeta(BaseModel):
    """run.json. Unknown keys are kept (older and newer writers add fields)."""

    model_config = ConfigDict(extra="allow")
    format_version: int = FORMAT_VERSION
    id: str = Field(min_length=1)
    name: str = ""
    status: RunStatus = "running"
    started_at: str = ""
    finished_at: Optional[str] = None
    duration_seconds: Optional[float] = None
    heartbeat_at: Optional[str] = None  # refreshed while training: how another host tells a dead run
    pid: Optional[int] = None
    host: Optional[str] = None
    seed: Optional[int] = None
    note: str = ""
    device: Optional[str] = None
    smoke: bool = False
    versions: dict[str, object] = Field(default_factory=dict)
    git_commit: Optional[str] = None
    error: Optional[str] = None
    sweep: Optional[str] = None  # the sweep id this run belongs to
    data_fingerprint: Optional[dict[str, object]] = None
    first_started_at: Optional[str] = None  # set when a run is resumed: started_at is then the last resume
    resumed_at: list[str] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)  # `train --tag`, `nnlab tag`; no duplicates, in the order given
    notes: list[RunNote] = Field(default_factory=list)  # `nnlab note`, oldest first
    spec: dict[str, object] = Field(default_factory=dict)


def parse_record(model: type[BaseModel], data: object, source: str) -> tuple[Optional[BaseModel], Optional[str]]:
    """Validate a record read from a file; on failure return None and a one-line warning naming the field."""
    try:
        return model.model_validate(data), None
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        return None, f"{source}: {where}: {first['msg']}" + (f" (and {e.error_count() - 1} more)"
                                                            if e.error_count() > 1 else "")
