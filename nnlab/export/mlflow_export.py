"""`nnlab export RUN --to mlflow`: one MLflow run per model, its members (repeats) as nested runs.

    params    the model's flattened resolved spec (`train.optimizer.lr`, `models.hidden`, `data.path`, ...)
    metrics   every metrics.csv column per epoch, `step=epoch`; `summary/<split>_<metric>` (and `_sd`) at
              the best epoch: the scores summary.json records
    tags      nnlab.run_id, nnlab.model (and nnlab.member), nnlab.status, the note, the data fingerprint
    artifacts the model's files (models/<model>.*, errors/<model>.csv), curves.png and report.html if present

Exporting again finds the MLflow runs by their `nnlab.run_id` and `nnlab.model` (`nnlab.member`) tags and
adds only what they lack (a run exported while it trained is completed, nothing is logged twice), so
`--log-to mlflow` during training and a later export write into the same MLflow runs. Torch-free.
"""

from __future__ import annotations

import json
import logging
import os
import re
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Optional

from nnlab.core.messages import shorten, show_value
from nnlab.core.records import ModelResult
from nnlab.errors import RunError, describe
from nnlab.export.scalars import SUMMARY_PREFIX, Member, ModelScalars, model_scalars
from nnlab.runstore import Run

if TYPE_CHECKING:
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

RUN_TAG, MODEL_TAG, MEMBER_TAG = "nnlab.run_id", "nnlab.model", "nnlab.member"
PARENT_TAG = "mlflow.parentRunId"  # MLflow's own: a member nests under its model
NOTE_TAG = "mlflow.note.content"  # MLflow's own: the run's description in its UI
SAFE_ID = re.compile(r"^[A-Za-z0-9_.:-]+$")  # an nnlab run id as it may appear in a search filter
UNSAFE_KEY = re.compile(r"[^A-Za-z0-9_\-. /]")  # what MLflow refuses in a param or metric key
BATCH = 100  # params and tags per log_batch call (MLflow's limit; metrics allow 1000)
REPORT_FILE = "report.html"  # `nnlab report -o RUN/report.html`: kept with the model when there
MAX_VALUE = 6000  # MLflow's limit on a param's value, and under its limit on a tag's
STATUS = {"completed": "FINISHED", "diverged": "FAILED", "failed": "FAILED", "interrupted": "KILLED"}
# A dead server fails in seconds, not after MLflow's default of 7 retries with backoff (minutes).
HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}


def quick_failing_http() -> None:
    """MLflow's HTTP retries bounded for this process, unless the user set them."""
    for key, value in HTTP_DEFAULTS.items():
        os.environ.setdefault(key, value)


def millis(iso: Optional[str]) -> Optional[int]:
    try:
        return int(datetime.fromisoformat(iso).timestamp() * 1000) if iso else None
    except ValueError:
        return None


def param_key(key: str) -> str:
    return UNSAFE_KEY.sub("_", key)[:250]


def param_value(value: object) -> str:
    return shorten(show_value(value), MAX_VALUE)


def failure_reason(error: BaseException) -> str:
    """One line on why MLflow failed: a server nobody answers on said plainly, else its first line."""
    first = (describe(error).strip().splitlines() or [type(error).__name__])[0]
    if "Max retries exceeded" in first or "Connection refused" in first:
        return "cannot reach the tracking server (nothing answers there)"
    return shorten(first, 200)


class Tracking:
    """An MLflow tracking store (`uri`, or MLflow's default) and the experiment nnlab writes to."""

    def __init__(self, uri: Optional[str], experiment: str):
        try:
            from mlflow.exceptions import MlflowException
            from mlflow.tracking import MlflowClient
        except ImportError:
            raise RunError("--to mlflow: needs the mlflow extra: pip install -e '.[mlflow]' in the nnlab "
                           "checkout") from None
        logging.getLogger("mlflow").setLevel(logging.WARNING)  # its INFO lines (creating tables) are not ours
        self.errors: tuple[type[BaseException], ...] = (MlflowException, OSError)
        self.uri = uri
        try:
            self.client: MlflowClient = MlflowClient(uri)
        except self.errors as e:  # an unknown scheme, a file store MLflow refuses
            raise self.failure(e) from None
        self.experiment = experiment
        self._experiment_id: Optional[str] = None

    def where(self) -> str:
        return self.uri or str(getattr(self, "client", None) and self.client.tracking_uri)

    def failure(self, error: BaseException) -> RunError:
        return RunError(f"mlflow {self.where()}: {failure_reason(error)}")

    @property
    def experiment_id(self) -> str:
        if self._experiment_id is None:
            found = self.client.get_experiment_by_name(self.experiment)
            if found is not None and found.lifecycle_stage == "deleted":
                raise RunError(f"--experiment: MLflow experiment '{self.experiment}' is deleted; restore it "
                               "(mlflow experiments restore) or name another")
            if found is None:
                try:
                    self._experiment_id = self.client.create_experiment(self.experiment, self.artifacts())
                except self.errors:  # created meanwhile by another exporter
                    found = self.client.get_experiment_by_name(self.experiment)
                    if found is None:
                        raise
            if found is not None:
                self._experiment_id = found.experiment_id
        return self._experiment_id  # type: ignore[return-value]

    def artifacts(self) -> Optional[str]:
        """Where a new experiment keeps its files: beside a SQLite store (mlartifacts/), not in MLflow's
        default ./mlruns of whatever folder the export ran in; a server's own choice otherwise."""
        uri = str(self.client.tracking_uri)
        if not uri.startswith("sqlite:///"):
            return None
        return (Path(uri.removeprefix("sqlite:///")).resolve().parent / "mlartifacts").as_uri()

    def exported(self, run_id: str) -> dict[tuple[str, Optional[str]], str]:
        """(model, member or None) -> the MLflow run id of what was exported of nnlab run `run_id`."""
        if not SAFE_ID.match(run_id):
            raise RunError(f"run.json: id {run_id!r} holds characters an nnlab run id never has")
        found = {}
        token = None
        while True:
            page = self.client.search_runs([self.experiment_id], f"tags.`{RUN_TAG}` = '{run_id}'",
                                           max_results=1000, page_token=token)
            for mlrun in page:
                tags = mlrun.data.tags
                found.setdefault((tags.get(MODEL_TAG, ""), tags.get(MEMBER_TAG)), mlrun.info.run_id)
            token = page.token
            if not token:
                return found

    def open_run(self, known: dict[tuple[str, Optional[str]], str], model: str, member: Optional[int],
                 name: str, start: Optional[int], tags: dict[str, str]) -> tuple[str, bool]:
        """The MLflow run of (model, member), created if it is not in `known`; and whether it is new."""
        key = (model, None if member is None else str(member))
        if key in known:
            return known[key], False
        created = self.client.create_run(self.experiment_id, start_time=start, tags=tags, run_name=name)
        known[key] = created.info.run_id
        return known[key], True

    def log_params(self, mlrun: str, params: dict[str, object], new: bool) -> None:
        from mlflow.entities import Param

        have = {} if new else self.client.get_run(mlrun).data.params
        todo = [Param(k, v) for k, v in ((param_key(k), param_value(v)) for k, v in params.items()) if k not in have]
        for start in range(0, len(todo), BATCH):
            self.client.log_batch(mlrun, params=todo[start:start + BATCH])

    def set_tags(self, mlrun: str, tags: dict[str, str]) -> None:
        from mlflow.entities import RunTag

        todo = [RunTag(k, shorten(v, MAX_VALUE)) for k, v in tags.items()]
        for start in range(0, len(todo), BATCH):
            self.client.log_batch(mlrun, tags=todo[start:start + BATCH])

    def log_metrics(self, mlrun: str, metrics: list[Metric], new: bool) -> int:
        """Log the metrics the run does not hold yet (a key at a step), in batches; how many were logged."""
        if not new:
            have = {(m.key, m.step) for key in {m.key for m in metrics}
                    for m in self.client.get_metric_history(mlrun, key)}
            metrics = [m for m in metrics if (m.key, m.step) not in have]
        for start in range(0, len(metrics), 1000):
            self.client.log_batch(mlrun, metrics=metrics[start:start + 1000])
        return len(metrics)


def epoch_metrics(member: Member, start: int) -> list[Metric]:
    """A member's metrics.csv rows as MLflow metrics, step=epoch, stamped start + the seconds trained."""
    from mlflow.entities import Metric

    metrics, elapsed = [], 0.0
    for epoch in sorted(member.epochs):
        values = member.epochs[epoch]
        elapsed += values.get("seconds", 0.0)
        stamp = start + int(elapsed * 1000)
        metrics += [Metric(param_key(k), v, stamp, epoch) for k, v in values.items()]
    return metrics


def score_metrics(scores: dict[str, float], step: int, stamp: int) -> list[Metric]:
    from mlflow.entities import Metric

    return [Metric(param_key(k), v, stamp, step) for k, v in scores.items()]


def run_tags(run: Run, model: str, kind: Optional[str], status: str) -> dict[str, str]:
    tags = {RUN_TAG: run.id, MODEL_TAG: model, "nnlab.status": status, "nnlab.run_status": run.status,
            "nnlab.name": run.name, "nnlab.folder": run.folder}
    if kind:
        tags["nnlab.kind"] = kind
    if run.note:
        tags[NOTE_TAG] = tags["nnlab.note"] = run.note
    if run.meta.data_fingerprint:
        tags["nnlab.data_fingerprint"] = json.dumps(run.meta.data_fingerprint, sort_keys=True)
    if run.meta.sweep:
        tags["nnlab.sweep"] = run.meta.sweep
    return tags


def member_status(result: Optional[ModelResult], member: int) -> Optional[str]:
    if result is None:
        return None
    return next((m.status for m in result.members if m.member == member), result.status)


def model_files(run: Run, model: str) -> list[tuple[Path, Optional[str]]]:
    """The files of the run folder a model's MLflow run keeps, each with its artifact folder."""
    files = run.files()
    wanted = {f"model:{model}.safetensors": "models", f"model:{model}.json": "models", f"errors:{model}.csv": "errors",
              "curves": None}
    found = [(files[k], folder) for k, folder in wanted.items() if k in files]
    report = run.path / REPORT_FILE
    return found + ([(report, None)] if report.is_file() and not report.is_symlink() else [])


def export_run(tracking: Tracking, run: Run, models: Optional[list[str]] = None) -> list[str]:
    """Export (or complete the export of) `run` into `tracking`; one line per model: what was written."""
    start = millis(run.meta.first_started_at or run.started_at) or 0
    end = millis(run.meta.finished_at)
    lines = []
    try:
        known = tracking.exported(run.id)
        for scalars in model_scalars(run, models):
            lines.append(_export_model(tracking, run, scalars, known, start, end))
    except tracking.errors as e:
        raise tracking.failure(e) from None
    return lines


def _export_model(tracking: Tracking, run: Run, scalars: ModelScalars, known: dict[tuple[str, Optional[str]], str],
                  start: int, end: Optional[int]) -> str:
    result = scalars.result
    status = result.status if result else "running"
    kind = result.kind if result else None
    mlrun, new = tracking.open_run(known, scalars.name, None, f"{run.id}:{scalars.name}", start,
                                   run_tags(run, scalars.name, kind, status))
    tracking.set_tags(mlrun, run_tags(run, scalars.name, kind, status))
    tracking.log_params(mlrun, scalars.params, new)
    nested = len(scalars.members) > 1 or (result is not None and result.repeats > 1)
    logged = 0
    best = result.best_epoch if result else 0
    stamp = end or start
    if nested:
        for member in scalars.members.values():
            tags = {**run_tags(run, scalars.name, kind, member_status(result, member.member) or status),
                    MEMBER_TAG: str(member.member), PARENT_TAG: mlrun}
            child, child_new = tracking.open_run(known, scalars.name, member.member,
                                                 f"{run.id}:{scalars.name}#{member.member}", start, tags)
            tracking.set_tags(child, tags)
            tracking.log_params(child, scalars.params, child_new)
            scores = _member_scores(result, member.member)
            logged += tracking.log_metrics(child, epoch_metrics(member, start)
                                           + score_metrics(scores, _member_best(result, member.member), stamp),
                                           child_new)
            if member_status(result, member.member):
                tracking.client.set_terminated(child, STATUS[member_status(result, member.member)], end)
    else:
        for member in scalars.members.values():
            logged += tracking.log_metrics(mlrun, epoch_metrics(member, start), new)
    logged += tracking.log_metrics(mlrun, score_metrics(scalars.summary_scores(), best, stamp), new)
    for path, folder in model_files(run, scalars.name):
        tracking.client.log_artifact(mlrun, str(path), folder)
    if result is not None:
        tracking.client.set_terminated(mlrun, STATUS[result.status], end)
    members = f", {len(scalars.members)} members nested" if nested else ""
    return (f"{scalars.name}: MLflow run {mlrun} ({'new' if new else 'already there'}; {logged} metric value(s) "
            f"logged{members})")


def _member_scores(result: Optional[ModelResult], member: int) -> dict[str, float]:
    from nnlab.core.columns import metric_column

    found = next((m for m in result.members if m.member == member), None) if result else None
    if found is None:
        return {}
    return {f"{SUMMARY_PREFIX}{metric_column(split, k)}": float(v) for split in ("val", "test")
            for k, v in getattr(found, split).items() if v is not None}


def _member_best(result: Optional[ModelResult], member: int) -> int:
    found = next((m for m in result.members if m.member == member), None) if result else None
    return found.best_epoch if found else 0


def export_runs(runs: Iterable[Run], uri: Optional[str], experiment: Optional[str],
                models: Optional[list[str]] = None) -> list[str]:
    """Every run into MLflow (its experiment: `experiment`, else the run's spec name)."""
    quick_failing_http()
    lines, stores = [], {}
    for run in runs:
        name = experiment or run.name or "nnlab"
        tracking = stores.setdefault(name, Tracking(uri, name))
        lines.append(f"{run.folder} -> MLflow {tracking.where()}, experiment '{name}':")
        lines += [f"  {line}" for line in export_run(tracking, run, models)]
    return lines
