"""One `nnlab train`: spec -> data -> baseline and models -> run folder -> summary, diagnosis and gates.

Everything that can be wrong with the input (spec, data, devices, metrics for the task, the run store) is
checked before the run folder is created, so bad input never leaves a run behind. Once the run exists,
`RunWriter` ends it as completed, failed or interrupted whatever happens, each model's result is in
summary.json as soon as that model ends, and one model that fails (too large, out of memory, a bug in a
layer) is recorded as failed while the run goes on with the next.

While a model (a stack group) trains, its latest loop state is kept and written to the run folder now and
then (runstore/checkpoints.py), so that `nnlab train --resume` (`resume_from`, then `execute(...,
resume=...)`, see run/resume.py) continues a cut-off run in its own folder with the numbers an
uninterrupted run would have had.
"""

from __future__ import annotations

import json
import platform
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Optional, Protocol

from nnlab import data as data_mod
from nnlab import runstore
from nnlab.runstore.layout import CACHE_DIR
from nnlab.errors import RunError, SpecError
from nnlab.core.settings import changes_since, previous_of
from nnlab.core.interrupts import deferred
from nnlab.data.predictions import predictions_table
from nnlab.data.text import size_models_to_vectors
from nnlab.run.members import (Fits, ModelsInterrupted, ModelToTrain, Repeat, RepeatFit, add_final_metrics,
                               aggregate, build_and_fit, build_and_fit_baseline, stack_groups)
from nnlab.runstore.checkpoints import Checkpoints
from nnlab.core.records import (Gate, GateResult, ModelInfo, ModelResult, RunMeta, RunSummary, SavedInput,
                                SavedLayer)
from nnlab.core.columns import epoch_columns
from nnlab.run.resume import ResumePoint, resume_point
from nnlab.run.ensemble import Candidate
from nnlab.spec.ensemble import ENSEMBLE_NAME
from nnlab.spec import ModelSpec, Spec, apply_override, check_for_task, load_spec, validate_spec

if TYPE_CHECKING:
    import torch

    from nnlab.training.state import EpochRecord, FitState, Problem

SMOKE_TRAIN_ROWS = 512
SMOKE_EPOCHS = 2
IMAGE_CACHE = "images"  # under the store's cache: decoded image files, <fingerprint>.npz (data/images.py)


class Reporter(Protocol):
    """What the runner tells the person watching (report.TrainReport implements it)."""

    def run_created(self, path: Path) -> None: ...
    def changes(self, previous: Optional[str], lines: list[str]) -> None: ...
    def data_ready(self, spec: Spec, prepared: data_mod.Prepared, device: str) -> None: ...
    def model_started(self, name: str, kind: str, params: int, epochs: int, members: int) -> None: ...
    def epoch(self, record: EpochRecord) -> None: ...
    def model_finished(self, result: ModelResult) -> None: ...


@dataclass
class Outcome:
    run_id: str
    path: Path
    summary: RunSummary

    @property
    def failed_models(self) -> list[str]:
        return self.summary.failed_models

    @property
    def gates_missed(self) -> list[GateResult]:
        return self.summary.gates_missed


@dataclass
class Plan:
    """A checked spec with its data loaded: everything needed to train, nothing written yet."""

    spec: Spec
    prepared: data_mod.Prepared
    metrics: list[str]
    smoke: bool
    base_dir: Optional[Path] = None  # the folder the spec's data path is relative to


def plan(spec_path: str | Path, overrides: list[str], device: Optional[str] = None, smoke: bool = False,
         repeats: Optional[int] = None, store: Optional[Path] = None,
         data_cache: Optional[dict[str, data_mod.Prepared]] = None) -> Plan:
    """Load and check the spec and the data. Raises NnlabError; writes nothing but, given the `store`,
    decoded image files to its cache (so that the next run does not decode them again). `data_cache`: plans
    of one sweep share the data prepared for the same data section and seed (prepared once, not per point)."""
    spec, base_dir = load_spec(spec_path, [*overrides, *_option_overrides(device, repeats)])
    return _plan(spec, base_dir, Path(spec_path).name, device, smoke, store, data_cache)


def plan_of_run(ref: str, store: Path, overrides: list[str], device: Optional[str] = None, smoke: bool = False,
                repeats: Optional[int] = None) -> Plan:
    """`nnlab train --resume RUN` without SPEC: the plan from the resolved spec the run folder keeps, its data
    path relative to the spec's folder then (run.json's `spec_dir`; the current folder for older runs). A
    smoke run stays one. Options given are applied to it, and `resume_from` checks the result as usual."""
    run = runstore.resolve_run(ref, store)
    raw = {key: value for key, value in run.spec.items() if key != "metrics"}
    if not raw:
        raise RunError(f"--resume: run {run.id} keeps no spec; give the spec it ran: nnlab train SPEC --resume "
                       f"{run.id}")
    for override in [*overrides, *_option_overrides(device, repeats)]:
        raw = apply_override(raw, override)
    source = f"{run.id}/spec.yaml"
    base_dir = Path((run.meta.model_extra or {}).get("spec_dir") or ".")
    return _plan(validate_spec(raw, source), base_dir, source, device, smoke or bool(run.meta.smoke), store)


def _option_overrides(device: Optional[str], repeats: Optional[int]) -> list[str]:
    return [*([f"train.device={device}"] if device else []), *([f"repeats={repeats}"] if repeats else [])]


def _plan(spec: Spec, base_dir: Path, source: str, device: Optional[str], smoke: bool,
          store: Optional[Path] = None, data_cache: Optional[dict[str, data_mod.Prepared]] = None) -> Plan:
    if device:
        for model in spec.models:
            model.train.device = device
    if smoke:
        for model in spec.models:
            model.train.epochs = min(model.train.epochs, SMOKE_EPOCHS)
    cache = store / CACHE_DIR / IMAGE_CACHE if store is not None else None
    key = json.dumps([spec.data.model_dump(mode="json"), str(base_dir), spec.seed, smoke], default=str)
    prepared = data_cache.get(key) if data_cache is not None else None
    if prepared is None:
        prepared = data_mod.prepare(spec.data, base_dir, spec.seed, cache)
        if smoke:
            data_mod.shrink_train(prepared, SMOKE_TRAIN_ROWS, spec.seed)
        if data_cache is not None:
            data_cache[key] = prepared
    if prepared.vectors is not None:  # the text models' embedding size: the word vectors' dimension
        size_models_to_vectors(spec.models, prepared.vectors)
    try:
        metrics = check_for_task(spec, prepared.task)
    except SpecError as e:  # rules that need the task: name the spec file like the other spec errors
        raise SpecError(f"{source}: {e}") from None
    return Plan(spec, prepared, metrics, smoke, base_dir)


def previous_run(plan: Plan, store: Path) -> tuple[Optional[str], list[str]]:
    """The newest earlier run of the same spec name in the store, and what changed since it, a line per
    setting (`train.optimizer.lr 0.001 → 0.01`), so that "one change at a time" is visible."""
    runs, _ = runstore.list_runs(store)
    earlier = previous_of(runs, plan.spec.name, plan.smoke)
    if earlier is None:
        return None, []
    return earlier.id, changes_since(earlier.spec, {**plan.spec.resolved(), "metrics": plan.metrics})


def execute(plan: Plan, store: Path, note: str = "", report: Optional[Reporter] = None,
            sweep: Optional[str] = None, resume: Optional[ResumePoint] = None) -> Outcome:
    """Train the baseline and every model of a plan into a new run folder; with `resume` (see
    `resume_from`), continue that run in its own folder instead, training only what it has not kept."""
    from nnlab.training.placement import resolve_device, resolve_precision

    spec = plan.spec
    placed = {m.name: resolve_device(m.train.device) for m in spec.models}
    for model in spec.models:
        resolve_precision(model.train.precision, placed[model.name])  # a bad pairing fails before the run
    runstore.check_store(store)
    previous = previous_run(plan, store) if resume is None else (None, [])
    first_device = placed[spec.models[0].name] if spec.models else resolve_device(spec.train.device)
    meta = run_meta(plan, note, sweep, first_device)
    if resume is not None:  # the run's own record, with what this process trains with
        meta = resume.run.meta.model_copy(update={"versions": meta.versions, "git_commit": meta.git_commit,
                                                  **({"note": note} if note else {})})
    with runstore.RunWriter(store, meta, epoch_columns(plan.metrics), reopen=resume.run.path if resume else None,
                            keep_row=resume.keep_row if resume else None,
                            lock=resume.lock if resume else None) as writer:
        session = Session(plan, writer, report, resume)
        if report:
            report.run_created(writer.path)
            report.data_ready(spec, plan.prepared, str(first_device))
            report.changes(*previous)
        if spec.baseline and "baseline" not in session.kept:
            session.train_baseline(first_device)
        for group in stack_groups(spec.models, session.info.kind):
            if all(m.name in session.kept for m in group):
                session.checkpoints.remove(group[0].name)  # left by a kill between the result and its removal
                continue
            session.train_models(group, placed[group[0].name])
        session.finish()
    return Outcome(writer.id, writer.path, session.summary)


def run_meta(plan: Plan, note: str, sweep: Optional[str], device: torch.device) -> RunMeta:
    """run.json's record of a new run of `plan` (id, times and process are filled in when it is created)."""
    spec = plan.spec
    return RunMeta(id="-", name=spec.name, seed=spec.seed, note=note, device=str(device), smoke=plan.smoke,
                   versions=_versions(), git_commit=_git_commit(), sweep=sweep,
                   data_fingerprint=plan.prepared.fingerprint,
                   spec={**spec.resolved(), "metrics": plan.metrics},
                   # where the data path is relative to: `--resume RUN` without SPEC reads it from here
                   **({"spec_dir": str(plan.base_dir.resolve())} if plan.base_dir is not None else {}))


def resume_from(plan: Plan, ref: str, store: Path) -> ResumePoint:
    """What run `ref` keeps and where its models continue; RunError when it cannot continue with this plan."""
    groups = [[m.name for m in group] for group in stack_groups(plan.spec.models, plan.prepared.info.kind)]
    return resume_point(ref, store, plan.spec, plan.metrics, plan.prepared.fingerprint, plan.smoke,
                        groups)


class Session:
    """The models of one run: trains each, hands epochs to the run folder and the report, keeps the summary.
    `record_model` writes a model's result (`nnlab.sweeps.points` trains several points' models as one stack
    and records each in its own session)."""

    def __init__(self, plan: Plan, writer: runstore.RunWriter, report: Optional[Reporter],
                 resume: Optional[ResumePoint] = None):
        from nnlab.training.statecodec import encode_state

        self.plan, self.writer, self.report = plan, writer, report
        self.spec, self.prepared = plan.spec, plan.prepared
        self.info = self.prepared.info
        self.problems: dict[tuple[str, bool], Problem] = {}  # (device, baseline) -> the data on it, moved once
        self.kept: dict[str, ModelResult] = dict(resume.kept) if resume else {}
        self.states: dict[str, FitState] = dict(resume.states) if resume else {}  # group -> state to continue
        self.checkpoints: Checkpoints[FitState] = Checkpoints(writer.path, encode_state)
        self.candidates: list[Candidate] = []  # with `ensemble:`, every member trained here, for the selection
        self.summary = RunSummary(task=self.prepared.task, monitor=self.spec.monitor,
                                  baseline="baseline" if self.spec.baseline else None, metrics=plan.metrics,
                                  data=self.prepared.summary.to_json() if self.prepared.summary else {},
                                  models=dict(self.kept))

    def problem_on(self, device: torch.device, baseline: bool = False) -> Problem:
        from nnlab.training.state import Problem

        key = (str(device), baseline)
        if key not in self.problems:
            p = self.prepared
            x = p.baseline_x if baseline else p.x
            self.problems[key] = Problem.from_arrays(
                p.task, x, p.y, self.plan.metrics, self.spec.monitor, device,
                p.preprocessor.target.std, p.n_outputs)
        return self.problems[key]

    def on_epoch(self, record: EpochRecord) -> None:
        self.writer.append_epoch({"model": record.model, "member": record.member, "epoch": record.epoch,
                                  **record.values, "lr": record.lr, "seconds": round(record.seconds, 6)})
        if self.report:
            self.report.epoch(record)

    def train_baseline(self, device: torch.device) -> None:
        kind = baseline_kind(self.spec.baseline.kind, self.prepared.task)
        problem = self.problem_on(device, baseline=True)
        model = ModelToTrain("baseline", kind, None, [Repeat(0, self.spec.seed)], 1)
        self._fit_and_record([model], lambda: build_and_fit_baseline(model, problem, self.spec.baseline,
                                                                     self.on_epoch, self._started))

    def train_models(self, model_specs: list[ModelSpec], device: torch.device) -> None:
        """Models that can share one stack (and each model's repeats) train together as one stack."""
        models = self.models_to_train(model_specs)
        group = model_specs[0].name  # the key of the group's checkpoint
        self._fit_and_record(models, lambda: build_and_fit(
            models, self.info, self.problem_on(device), self.on_epoch, self._started,
            lambda state: self.checkpoints.keep(group, state), self.states.pop(group, None)), group)

    def models_to_train(self, model_specs: list[ModelSpec]) -> list[ModelToTrain]:
        """Each model of the spec with its repeats: seeds seed .. seed+N-1."""
        return [ModelToTrain(m.name, m.kind, m, [Repeat(k, self.spec.seed + k) for k in range(self.spec.repeats)],
                             m.train.epochs) for m in model_specs]

    def _fit_and_record(self, models: list[ModelToTrain], fit: Callable[[], Fits], group: Optional[str] = None
                        ) -> None:
        """Fit, then record each model; an interrupt records them as they stand (best weights so far) first,
        and writes the group's latest checkpoint. A group whose results are recorded needs no checkpoint."""
        try:
            fits = fit()
        except KeyboardInterrupt as stop:
            done = stop.fits if isinstance(stop, ModelsInterrupted) else {}
            with deferred():
                self.checkpoints.flush()
                for model in models:
                    if model.name in done or model is models[0]:
                        self.record_model(model, done.get(model.name, []))
            raise
        except OSError:  # the store failing (a full disk): keep the newest checkpoint if it still fits
            try:
                self.checkpoints.flush()
            except OSError:
                pass
            raise
        for model in models:
            self.record_model(model, fits[model.name])
        if group is not None:
            self.checkpoints.remove(group)

    def _started(self, run: ModelToTrain, params: int) -> None:
        if self.report:
            self.report.model_started(run.name, run.kind, params, run.epochs, len(run.repeats))

    def record_model(self, run: ModelToTrain, fits: list[RepeatFit]) -> None:
        """A model's result over its repeat fits into summary.json, with the best repeat's weights and errors."""
        baseline = self.summary.baseline_result if run.name != "baseline" else None
        p = self.prepared
        threshold = run.spec.train.threshold if run.spec else None  # the baseline is scored at 0.5
        add_final_metrics(fits, p.task, self.plan.metrics, p.y, len(p.classes), threshold == "val_f1")
        labels = [str(c) for c in p.classes] if p.task != "regression" else None
        result, best = aggregate(run, fits, self.spec.monitor, baseline, labels)
        self.summary.models[run.name] = result
        self.writer.write_summary(self.summary)
        if self.spec.ensemble is not None:
            self.candidates += [Candidate(run, fit, fit is best) for fit in fits]
        if best is not None and best.state is not None:
            p = self.prepared
            self.writer.save_model(run.name, best.state, self._model_info(run, best))
            if best.val_probabilities is not None:
                self.writer.save_errors(run.name, data_mod.misclassified(p, best.val_probabilities))
                self.writer.save_predictions(run.name, predictions_table(
                    p, {"val": best.val_probabilities, "test": best.result.test_probabilities},
                    best.final.predicted if best.final else None))
        if self.report:
            self.report.model_finished(result)

    def _model_info(self, run: ModelToTrain, fit: RepeatFit) -> ModelInfo:
        """models/<model>.json of one repeat: what rebuilding it for prediction needs."""
        p = self.prepared
        return ModelInfo(
            kind=run.kind, member=fit.member, seed=fit.seed,
            spec=run.spec.model_dump(mode="json") if run.spec else self.spec.baseline.model_dump(mode="json"),
            input=SavedInput(kind=self.info.kind, shape=list(self.info.shape), vocab_size=self.info.vocab_size),
            n_inputs=fit.n_inputs, n_outputs=p.n_outputs, preprocessing=p.preprocessing, layers=self._layers(run))

    def record_ensemble(self) -> None:
        """`ensemble:`: the members chosen on val (run/ensemble.py) as the model `ensemble`, with the weights of
        every chosen member saved so that predicting can rebuild it."""
        from nnlab.run import ensemble

        p = self.prepared
        built = ensemble.build(self.candidates, self.spec.ensemble, p, self.plan.metrics, self.spec.monitor,
                               self.spec.train, self.spec.train.threshold == "val_f1")
        if built is None:
            result = ModelResult(name=ENSEMBLE_NAME, kind="ensemble", params=0, status="failed", best_epoch=0,
                                 epochs_run=0, message="no member finished with finite validation and test "
                                                       "predictions to choose from")
        else:
            for candidate, _ in built.chosen:
                if not candidate.saved:
                    self.writer.save_model(candidate.weights_name, candidate.fit.state,
                                           self._model_info(candidate.run, candidate.fit))
            self.writer.save_ensemble(ENSEMBLE_NAME, built.info)
            result = built.result
            if self.kept:  # a resumed run: models finished before it kept their saved repeat only
                result.diagnosis.append(f"resumed run: {', '.join(self.kept)} finished before the resume and "
                                        "are not among the members")
            self.writer.save_errors(ENSEMBLE_NAME, data_mod.misclassified(p, built.outputs["val"]))
            self.writer.save_predictions(ENSEMBLE_NAME, predictions_table(p, built.outputs, built.predicted))
        self.summary.models[ENSEMBLE_NAME] = result
        self.writer.write_summary(self.summary)
        if self.report:
            self.report.model_finished(result)

    def _layers(self, run: ModelToTrain) -> Optional[list[SavedLayer]]:
        """The model's layer table for its models/<model>.json (the report shows it); none for the baseline."""
        if run.spec is None:
            return None
        from nnlab.models import layer_table  # torch: loaded already, a model just trained

        return [SavedLayer(name=row.name, type=row.type, output_shape=list(row.output_shape), params=row.params)
                for row in layer_table(run.spec, self.info)]

    def finish(self) -> None:
        """Gates, then the summary marked complete. Smoke runs train too little for the spec's gates."""
        if self.spec.ensemble is not None and ENSEMBLE_NAME not in self.kept:
            self.record_ensemble()
        if not self.plan.smoke:
            self.summary.expect = [Gate.parse(key, rule).check(self.summary.models)
                                   for key, rule in self.spec.expect.items()]
        self.summary.complete = True
        self.writer.write_summary(self.summary)


def baseline_kind(kind: str, task: str) -> str:
    if kind != "auto":
        return kind
    return {"binary": "logistic", "multiclass": "softmax", "regression": "linear"}[task]


def _versions() -> dict[str, str]:
    import numpy
    import pandas
    import torch

    from nnlab.version import __version__
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
