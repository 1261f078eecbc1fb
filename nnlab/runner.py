"""One `nnlab train`: spec -> data -> baseline and models -> run folder -> summary, diagnosis and gates.

Everything that can be wrong with the input (spec, data, devices, metrics for the task) is checked before
the run folder is created, so bad input never leaves a run behind. Once the run exists, its status ends as
completed, failed or interrupted whatever happens.
"""

from __future__ import annotations

import operator
import platform
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Protocol

import numpy as np

from nnlab import data as data_mod
from nnlab import runstore
from nnlab.diagnose import diagnose
from nnlab.errors import SpecError
from nnlab.spec import DEFAULT_METRICS, METRICS_BY_TASK, Spec, load_spec, parse_expect_rule

SMOKE_TRAIN_ROWS = 512
SMOKE_EPOCHS = 2
_OPS = {">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt, "==": operator.eq}


class Reporter(Protocol):
    """What the runner tells the person watching (report.TrainReport implements it)."""

    def data_ready(self, spec: Spec, prepared: data_mod.Prepared, device: str) -> None: ...
    def model_started(self, name: str, kind: str, params: int, epochs: int) -> None: ...
    def epoch(self, record: Any) -> None: ...
    def model_finished(self, name: str, entry: dict[str, Any]) -> None: ...


@dataclass
class Outcome:
    run_id: str
    path: Path
    summary: dict[str, Any]
    gates: list[dict[str, Any]] = field(default_factory=list)

    @property
    def failed_models(self) -> list[str]:
        return [n for n, m in self.summary["models"].items() if m["status"] == "failed"]

    @property
    def gates_missed(self) -> list[dict[str, Any]]:
        return [g for g in self.gates if not g["passed"]]


@dataclass
class Plan:
    """A checked spec with its data loaded: everything needed to train, nothing written yet."""

    spec: Spec
    prepared: data_mod.Prepared
    metrics: list[str]
    smoke: bool


def plan(spec_path: str | Path, overrides: list[str], device: Optional[str] = None, smoke: bool = False) -> Plan:
    """Load and check the spec and the data. Raises NnlabError; writes nothing."""
    extra = [f"train.device={device}"] if device else []
    spec, base_dir = load_spec(spec_path, [*overrides, *extra])
    if device:
        for model in spec.models:
            model.train.device = device
    if smoke:
        for model in spec.models:
            model.train.epochs = min(model.train.epochs, SMOKE_EPOCHS)
    prepared = data_mod.prepare(spec.data, base_dir, spec.seed)
    if smoke:
        data_mod.shrink_train(prepared, SMOKE_TRAIN_ROWS, spec.seed)
    metrics = _check_for_task(spec, prepared.task)
    return Plan(spec, prepared, metrics, smoke)


def _check_for_task(spec: Spec, task: str) -> list[str]:
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
    return metrics


def execute(plan: Plan, store: Path, note: str = "", report: Optional[Reporter] = None) -> Outcome:
    """Train the baseline and every model of a plan into a new run folder."""
    import torch

    from nnlab import train
    from nnlab.models import build_baseline, build_model, count_params

    spec, prepared = plan.spec, plan.prepared
    devices = {m.name: train.resolve_device(m.train.device) for m in spec.models}
    for i, model in enumerate(spec.models):
        train.resolve_precision(model.train.precision, devices[model.name])
    first_device = next(iter(devices.values()))
    resolved = spec.resolved()
    resolved["metrics"] = plan.metrics
    writer = runstore.RunWriter.create(store, spec.name, resolved, runstore.metric_columns(plan.metrics), {
        "seed": spec.seed, "note": note, "device": str(first_device), "smoke": plan.smoke,
        "versions": _versions(), "git_commit": _git_commit()})
    if report:
        report.data_ready(spec, prepared, str(first_device))
    summary: dict[str, Any] = {"task": prepared.task, "monitor": spec.monitor,
                               "baseline": "baseline" if spec.baseline else None, "metrics": plan.metrics,
                               "data": prepared.summary, "models": {}}
    problems: dict[str, train.Problem] = {}

    def problem_on(device: torch.device) -> train.Problem:
        if str(device) not in problems:
            problems[str(device)] = train.Problem.from_arrays(
                prepared.task, prepared.x, prepared.y, plan.metrics, spec.monitor, device,
                prepared.preprocessing.get("target_std", 1.0), prepared.n_outputs)
        return problems[str(device)]

    def on_epoch(record: train.EpochRecord) -> None:
        writer.append_epoch({"model": record.model, "epoch": record.epoch, **record.values,
                             "lr": record.lr, "seconds": round(record.seconds, 6)})
        if report:
            report.epoch(record)

    def finish_model(name: str, kind: str, model: Any, result: train.FitResult, max_epochs: int,
                     model_spec: dict[str, Any]) -> None:
        baseline_val = summary["models"].get("baseline", {}).get("val")
        entry = {"kind": kind, "params": count_params(model), "best_epoch": result.best_epoch,
                 "epochs_run": result.epochs_run, "val": result.val, "test": result.test,
                 "train_seconds": round(result.train_seconds, 4),
                 "samples_per_second": round(result.samples_per_second, 1), "status": result.status,
                 "message": result.message, "stop_reason": result.stop_reason,
                 "diagnosis": diagnose([r.values for r in result.history], best_epoch=result.best_epoch,
                                       max_epochs=max_epochs, monitor=spec.monitor, status=result.status,
                                       message=result.message, stop_reason=result.stop_reason, val=result.val,
                                       baseline_val=baseline_val if name != "baseline" else None)}
        summary["models"][name] = entry
        if result.state is not None:
            writer.save_model(name, result.state, {
                "kind": kind, "spec": model_spec, "n_inputs": prepared.n_features, "n_outputs": prepared.n_outputs,
                "preprocessing": prepared.preprocessing})
            writer.save_errors(name, data_mod.misclassified(prepared, result.val_probabilities))
        if report:
            report.model_finished(name, entry)

    status, error = "failed", None
    try:
        if spec.baseline:
            problem = problem_on(first_device)
            torch.manual_seed(spec.seed)
            model = build_baseline(prepared.n_features, prepared.n_outputs)
            kind = _baseline_kind(spec.baseline.kind, prepared.task)
            if report:
                report.model_started("baseline", kind, count_params(model), 1)
            result = train.fit_baseline("baseline", model, problem, spec.baseline, on_epoch)
            finish_model("baseline", kind, model, result, 1, spec.baseline.model_dump(mode="json"))
        for model_spec in spec.models:
            problem = problem_on(devices[model_spec.name])
            torch.manual_seed(spec.seed)
            model = build_model(model_spec, prepared.n_features, prepared.n_outputs)
            if report:
                report.model_started(model_spec.name, model_spec.kind, count_params(model), model_spec.train.epochs)
            try:
                result = train.fit(model_spec.name, model, problem, model_spec.train, spec.seed, on_epoch)
            except RuntimeError as e:  # e.g. out of memory: the run goes on with the next model
                result = train.FitResult(model_spec.name, "failed", 0, 0, {}, {}, 0.0, 0.0,
                                         message=f"training failed: {str(e).splitlines()[0]}")
            finish_model(model_spec.name, model_spec.kind, model, result, model_spec.train.epochs,
                         model_spec.model_dump(mode="json"))
        summary["expect"] = check_gates(spec.expect, summary["models"])
        status = "completed"
    except KeyboardInterrupt:
        status, error = "interrupted", "interrupted by the user (Ctrl-C)"
        raise
    except Exception as e:
        error = f"{e.__class__.__name__}: {e}"
        raise
    finally:
        summary.setdefault("expect", [])
        writer.write_summary(summary)
        writer.finish(status, error)
    return Outcome(writer.id, writer.path, summary, summary["expect"])


def _baseline_kind(kind: str, task: str) -> str:
    if kind != "auto":
        return kind
    return {"binary": "logistic", "multiclass": "softmax", "regression": "linear"}[task]


def check_gates(expect: dict[str, str], models: dict[str, Any]) -> list[dict[str, Any]]:
    gates = []
    for key, rule in expect.items():
        model, split, metric = key.rsplit(".", 2)
        value = models.get(model, {}).get(split, {}).get(metric)
        op, threshold = parse_expect_rule(rule)
        passed = value is not None and not np.isnan(value) and _OPS[op](value, threshold)
        gates.append({"key": key, "rule": rule, "value": value, "passed": bool(passed)})
    return gates


def _versions() -> dict[str, str]:
    import numpy
    import pandas
    import torch

    from nnlab import __version__
    return {"nnlab": __version__, "python": platform.python_version(), "torch": torch.__version__,
            "numpy": numpy.__version__, "pandas": pandas.__version__}


def _git_commit() -> Optional[str]:
    try:
        done = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None if done.returncode == 0 else None


def run(spec_path: str | Path, overrides: list[str] = (), *, store: Path, note: str = "", smoke: bool = False,
        device: Optional[str] = None, report: Optional[Reporter] = None) -> Outcome:
    return execute(plan(spec_path, list(overrides), device, smoke), store, note, report)
