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
    try:
        metrics = _check_for_task(spec, prepared.task)
    except SpecError as e:  # rules that need the task: name the spec file like the other spec errors
        raise SpecError(f"{Path(spec_path).name}: {e}") from None
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
    from nnlab import train

    spec = plan.spec
    devices = {m.name: train.resolve_device(m.train.device) for m in spec.models}
    for model in spec.models:
        train.resolve_precision(model.train.precision, devices[model.name])  # a bad pairing fails before the run
    first_device = devices[spec.models[0].name] if spec.models else train.resolve_device(spec.train.device)
    resolved = {**spec.resolved(), "metrics": plan.metrics}
    writer = runstore.RunWriter.create(store, spec.name, resolved, runstore.metric_columns(plan.metrics), {
        "seed": spec.seed, "note": note, "device": str(first_device), "smoke": plan.smoke,
        "versions": _versions(), "git_commit": _git_commit()})
    session = _Session(plan, writer, report)
    if report:
        report.data_ready(spec, plan.prepared, str(first_device))
    status, error = "failed", None
    try:
        if spec.baseline:
            session.train_baseline(first_device)
        for model_spec in spec.models:
            session.train_model(model_spec, devices[model_spec.name])
        session.summary["expect"] = check_gates(spec.expect, session.summary["models"])
        status = "completed"
    except KeyboardInterrupt:
        status, error = "interrupted", "interrupted by the user (Ctrl-C)"
        raise
    except Exception as e:
        error = f"{e.__class__.__name__}: {e}"
        raise
    finally:
        session.summary.setdefault("expect", [])
        writer.write_summary(session.summary)
        writer.finish(status, error)
    return Outcome(writer.id, writer.path, session.summary, session.summary["expect"])


class _Session:
    """The models of one run: trains each, hands epochs to the run folder and the report, keeps the summary."""

    def __init__(self, plan: Plan, writer: runstore.RunWriter, report: Optional[Reporter]):
        self.plan, self.writer, self.report = plan, writer, report
        self.spec, self.prepared = plan.spec, plan.prepared
        self.problems: dict[str, Any] = {}  # device -> train.Problem: the data moves to each device once
        self.summary: dict[str, Any] = {
            "task": self.prepared.task, "monitor": self.spec.monitor,
            "baseline": "baseline" if self.spec.baseline else None, "metrics": plan.metrics,
            "data": self.prepared.summary, "models": {}}

    def problem_on(self, device: Any) -> Any:
        from nnlab import train

        if str(device) not in self.problems:
            p = self.prepared
            self.problems[str(device)] = train.Problem.from_arrays(
                p.task, p.x, p.y, self.plan.metrics, self.spec.monitor, device,
                p.preprocessing.get("target_std", 1.0), p.n_outputs)
        return self.problems[str(device)]

    def on_epoch(self, record: Any) -> None:
        self.writer.append_epoch({"model": record.model, "epoch": record.epoch, **record.values,
                                  "lr": record.lr, "seconds": round(record.seconds, 6)})
        if self.report:
            self.report.epoch(record)

    def train_baseline(self, device: Any) -> None:
        import torch

        from nnlab import train
        from nnlab.models import build_baseline

        torch.manual_seed(self.spec.seed)
        model = build_baseline(self.prepared.n_features, self.prepared.n_outputs)
        kind = _baseline_kind(self.spec.baseline.kind, self.prepared.task)
        self._started("baseline", kind, model, 1)
        result = train.fit_baseline("baseline", model, self.problem_on(device), self.spec.baseline, self.on_epoch)
        self._finished("baseline", kind, model, result, 1, self.spec.baseline.model_dump(mode="json"))

    def train_model(self, model_spec: Any, device: Any) -> None:
        import torch

        from nnlab import train
        from nnlab.models import build_model

        torch.manual_seed(self.spec.seed)  # each model starts from the seed, whatever trained before it
        model = build_model(model_spec, self.prepared.n_features, self.prepared.n_outputs)
        self._started(model_spec.name, model_spec.kind, model, model_spec.train.epochs)
        try:
            result = train.fit(model_spec.name, model, self.problem_on(device), model_spec.train, self.spec.seed,
                               self.on_epoch)
        except RuntimeError as e:  # e.g. out of memory: the run goes on with the next model
            result = train.FitResult(model_spec.name, "failed", 0, 0, {}, {}, 0.0, 0.0,
                                     message=f"training failed: {str(e).splitlines()[0]}")
        self._finished(model_spec.name, model_spec.kind, model, result, model_spec.train.epochs,
                       model_spec.model_dump(mode="json"))

    def _started(self, name: str, kind: str, model: Any, epochs: int) -> None:
        if self.report:
            from nnlab.models import count_params

            self.report.model_started(name, kind, count_params(model), epochs)

    def _finished(self, name: str, kind: str, model: Any, result: Any, max_epochs: int,
                  model_spec: dict[str, Any]) -> None:
        from nnlab.models import count_params

        baseline = self.summary["models"].get("baseline", {}) if name != "baseline" else {}
        entry = {"kind": kind, "params": count_params(model), "best_epoch": result.best_epoch,
                 "epochs_run": result.epochs_run, "val": result.val, "test": result.test,
                 "train_seconds": round(result.train_seconds, 4),
                 "samples_per_second": round(result.samples_per_second, 1), "status": result.status,
                 "message": result.message, "stop_reason": result.stop_reason,
                 "diagnosis": diagnose([r.values for r in result.history], best_epoch=result.best_epoch,
                                       max_epochs=max_epochs, monitor=self.spec.monitor, status=result.status,
                                       message=result.message, stop_reason=result.stop_reason, val=result.val,
                                       baseline_val=baseline.get("val"),
                                       baseline_train_loss=baseline.get("train_loss"))}
        if name == "baseline" and result.history:
            entry["train_loss"] = result.history[0].values["train_loss"]  # what "underfitting" is measured by
        self.summary["models"][name] = entry
        if result.state is not None:
            p = self.prepared
            self.writer.save_model(name, result.state, {
                "kind": kind, "spec": model_spec, "n_inputs": p.n_features, "n_outputs": p.n_outputs,
                "preprocessing": p.preprocessing})
            self.writer.save_errors(name, data_mod.misclassified(p, result.val_probabilities))
        if self.report:
            self.report.model_finished(name, entry)


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
