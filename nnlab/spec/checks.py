"""Rules that span several parts of a spec: monitors and gates against the metrics, seeds against repeats,
models against the data kind, and (once the data has given the task) everything that depends on the task.

Each check returns its problems as lines (`field.path: what is allowed; got ...`) so that a spec's every
problem is reported at once.
"""

from __future__ import annotations

from typing import Any, Optional

from nnlab.errors import SpecError
from nnlab.core.records import Gate
from nnlab.spec.augment import AUGMENT_KINDS
from nnlab.spec.ensemble import ENSEMBLE_NAME, ensemble_problems
from nnlab.spec.base import ALL_METRICS, DEFAULT_METRICS, MAX_SEED, METRICS_BY_TASK
from nnlab.core.keys import model_names, model_position
from nnlab.core.messages import listing, shorten
from nnlab.spec.models import DATA_SETTING, INPUT_KINDS_BY_MODEL, needed_data
from nnlab.spec.root import SpecFields  # the fields these rules read; `Spec` runs them at validation

MAX_EXPECT_KEY = 250


def spec_problems(spec: SpecFields) -> list[str]:
    """Every cross-field problem of a spec whose fields are each valid; empty when it is consistent."""
    names = ["baseline", *(m.name for m in spec.models)]
    problems = ensemble_problems(spec.ensemble, names)
    names += [ENSEMBLE_NAME] if spec.ensemble is not None else []  # gates may name the ensemble
    problems += _monitor_problems(spec)
    problems += [p for key, rule in spec.expect.items() if (p := _expect_problem(key, rule, names, spec.metrics))]
    problems += _seed_problems(spec)
    problems += _input_kind_problems(spec)
    problems += _augment_problems(spec)
    problems += _beside_text_problems(spec)
    if spec.data.task != "auto":
        problems += _class_weight_problems(spec, spec.data.task)
    return problems


def check_for_task(spec: SpecFields, task: str) -> list[str]:
    """The rules that need the task (inferred from the data when `data.task` is auto). Returns the metrics
    to log; raises SpecError (without the file name, which the caller adds) at the first problem."""
    allowed = METRICS_BY_TASK[task]
    metrics = spec.metrics if spec.metrics is not None else DEFAULT_METRICS[task]
    for i, name in enumerate(metrics):
        if name not in allowed:
            raise SpecError(f"metrics[{i}]: '{name}' is not a {task} metric; expected one of {', '.join(allowed)}")
    logged = ["loss", *metrics]
    monitors = [("monitor", spec.monitor)] + [
        (f"models[{i}].train.early_stopping.monitor", m.train.early_stopping.monitor)
        for i, m in enumerate(spec.models) if m.train.early_stopping and m.train.early_stopping.monitor]
    for where, monitor in monitors:
        if monitor.removeprefix("val_") not in logged:
            raise SpecError(f"{where}: '{monitor}' is not logged for this {task} task; expected one of "
                            + ", ".join(f"val_{m}" for m in logged))
    for key in spec.expect:
        if key.rsplit(".", 1)[-1] not in logged:
            raise SpecError(f"expect.{key}: metric not logged for this {task} task; expected one of "
                            + ", ".join(logged))
    if spec.baseline and spec.baseline.kind != "auto" and (spec.baseline.kind == "linear") != (task == "regression"):
        raise SpecError(f"baseline.kind: '{spec.baseline.kind}' does not fit a {task} task; expected auto or "
                        + ("linear" if task == "regression" else "logistic"))
    for i, model in enumerate(spec.models):
        if model.train.loss != "auto" and task != "regression":
            raise SpecError(f"models[{i}].train.loss: '{model.train.loss}' is a regression loss and the task is "
                            f"{task}; use auto")
        if model.train.threshold is not None and task != "binary":
            raise SpecError(f"models[{i}].train.threshold: '{model.train.threshold}' picks a binary decision "
                            f"threshold and the task is {task}; remove it")
    problems = _class_weight_problems(spec, task)
    if problems:
        raise SpecError(problems[0])
    return metrics


def _monitor_problems(spec: SpecFields) -> list[str]:
    monitors = [("monitor", spec.monitor)] + [
        (f"models[{i}].train.early_stopping.monitor", m.train.early_stopping.monitor)
        for i, m in enumerate(spec.models) if m.train.early_stopping and m.train.early_stopping.monitor]
    allowed = ["val_loss", *[f"val_{m}" for m in (spec.metrics or ALL_METRICS)]]
    return [f"{where}: expected one of {', '.join(allowed)}; got '{shorten(monitor)}'"
            for where, monitor in monitors if monitor not in allowed]


def _expect_problem(key: str, rule: str, models: list[str], metrics: Optional[list[str]]) -> Optional[str]:
    if len(key) > MAX_EXPECT_KEY:
        return f"expect: key '{shorten(key)}' has {len(key):,} characters; at most {MAX_EXPECT_KEY}"
    try:
        gate = Gate.parse(key, rule)  # the one parser of gates; its message names the key
    except ValueError as e:
        return str(e)
    metric_names = ["loss", *(metrics or ALL_METRICS)]
    if gate.model not in models:
        return f"expect: key '{key}': no model '{shorten(gate.model)}' (models: {listing(models)})"
    if gate.metric not in metric_names:
        return f"expect: key '{key}': metric '{gate.metric}' not logged (metrics: {', '.join(metric_names)})"
    return None


def _seed_problems(spec: SpecFields) -> list[str]:
    # Repeats train with seeds seed .. seed+repeats-1; each must be a seed numpy and torch accept.
    if spec.seed + spec.repeats - 1 <= MAX_SEED:
        return []
    return [f"seed: must be at most {MAX_SEED - spec.repeats + 1} with repeats: {spec.repeats} (repeats use seeds "
            f"seed .. seed+{spec.repeats - 1}, each at most {MAX_SEED}); got {spec.seed}"]


def _input_kind_problems(spec: SpecFields) -> list[str]:
    have = spec.data.input_kind
    return [f"models[{i}].kind: '{model.kind}' needs {needed_data(model.kind)}; the data is read as "
            f"{DATA_SETTING[have]}"
            for i, model in enumerate(spec.models) if have not in INPUT_KINDS_BY_MODEL[model.kind]]


def _beside_text_problems(spec: SpecFields) -> list[str]:
    # inputs/table/combiner read table columns beside data.text (nnlab.models.combiner); other data has none.
    if spec.data.text is not None:
        return []
    return [f"models[{i}].{field}: reads text beside table columns, which needs data.text; the data is read as "
            f"{DATA_SETTING[spec.data.input_kind]}"
            for i, model in enumerate(spec.models) for field in ("inputs", "table", "combiner")
            if getattr(model, field) is not None]


def _augment_problems(spec: SpecFields) -> list[str]:
    # Each augmentation fits one data kind; one set in the top-level train: is reported there once.
    have = spec.data.input_kind
    shared = spec.train.augment.given() if spec.train.augment else []
    places = [("train", shared)] + [(f"models[{i}].train", [a for a in m.train.augment.given() if a not in shared])
                                    for i, m in enumerate(spec.models) if m.train.augment]
    return [f"{where}.augment.{name}: augments {DATA_SETTING[AUGMENT_KINDS[name]]}; the data is read as "
            f"{DATA_SETTING[have]}" for where, names in places for name in names if AUGMENT_KINDS[name] != have]


def _class_weight_problems(spec: SpecFields, task: str) -> list[str]:
    if task != "regression":
        return []
    source = "data.task" if spec.data.task == "regression" else "inferred from the target"
    return [f"models[{i}].train.class_weights: '{m.train.class_weights}' weights classes, and the task is "
            f"regression ({source}); remove it" for i, m in enumerate(spec.models) if m.train.class_weights]


def sweep_key_problem(key: str, resolved: dict[str, Any]) -> Optional[str]:
    """Why `key` (e.g. `train.optimizer.lr`, `models.mlp.dropout`) names no setting of the resolved spec."""
    node: Any = resolved
    parts = key.split(".")
    for i, part in enumerate(parts):
        if node is None:
            return None  # an optional section left out (e.g. train.scheduler): the point's validation decides
        where = ".".join(parts[:i]) or "the spec"
        if isinstance(node, list):
            names = [m.get("name") for m in node if isinstance(m, dict)]
            position = model_position(model_names(node), part)  # a name wins over an index
            if position is not None:
                node = node[position]
            else:
                return f"sweep.grid: key '{shorten(key)}': no model '{shorten(part)}' in {where} " \
                       f"(models: {listing(names) or 'none'})"
        elif isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, dict):
            return f"sweep.grid: key '{shorten(key)}': '{shorten(part)}' is not a setting of {where} " \
                   f"(settings: {', '.join(node)})"
        else:
            return f"sweep.grid: key '{shorten(key)}': {where} is a value, not a section"
    return None
