"""`nnlab sweep ... --ensemble`: an ensemble over the sweep's points, as its own small run of the sweep (in the api
layer: it rebuilds the points' saved models as `load_run` does).

Each finished point offers its best model by validation (its monitored metric; the baseline, the same in
every point, and a point's own `ensemble` are left out); the greedy selection of run/ensemble.py chooses
among them on the validation rows, which every point shares (the same data and split, checked), and the
ensemble is scored once on test. It is written as a
run of its own — `<name>-ensemble`, in the sweep (`compare --sweep ID` lists it beside the points) — holding
a copy of each chosen point's model (`p<point>-<model>`, so the run predicts on its own when points are
removed), their results, and the model `ensemble`: `nnlab predict RUN --model ensemble` as for a train run.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import numpy as np

from nnlab import runstore
from nnlab.core.records import ModelResult, RunMeta, RunSummary, data_identity
from nnlab.errors import RunError
from nnlab.run.ensemble import Candidate
from nnlab.spec.ensemble import ENSEMBLE_NAME, EnsembleSpec

if TYPE_CHECKING:
    from nnlab.api import SavedModel
    from nnlab.data import Prepared
    from nnlab.runstore import Run

ENSEMBLE_KIND = "ensemble"


@dataclass
class PointCandidate(Candidate):
    """A point's best model offered to the selection: the point's run, the model's name there, and its result
    under the name it has in the ensemble's run."""

    source: Run
    source_model: str
    result_copy: ModelResult


@dataclass
class SweepEnsemble:
    """The ensemble's run, its summary, and the line saying what it chose against its best member."""

    path: Path
    summary: RunSummary
    line: str


def ensemble_points(points: list[tuple[int, Path]], store: Path, sweep: str,
                    spec: Optional[EnsembleSpec] = None) -> SweepEnsemble:
    """Choose and write the ensemble of the finished points `(index, run folder)` (`spec`: default, the
    spec's own `ensemble:` section, else greedy with 5 steps); RunError (one line) when no point finished
    with a saved model or the points do not share their validation rows."""
    from nnlab.api import LoadedRun
    from nnlab.core.columns import epoch_columns
    from nnlab.run import ensemble

    offered = []
    for index, path in points:
        run = runstore.read_run(path)
        if run.summary is None:
            continue
        loaded = LoadedRun(run)
        # the baseline is every point's same model, and a point's own ensemble is made of its members
        best = next((name for name in loaded.models if run.summary.models[name].finished
                     and run.summary.models[name].kind != ENSEMBLE_KIND and name != run.summary.baseline), None)
        if best is not None:
            offered.append((index, run, loaded, best))
    if not offered:
        raise RunError(f"--ensemble: no point of sweep {sweep} finished with a saved model to choose from")
    first = offered[0][1]
    if spec is None:
        section = first.spec.get("ensemble")
        spec = EnsembleSpec.model_validate(section) if isinstance(section, dict) else EnsembleSpec()
    same = data_identity(first.meta.data_fingerprint or {})
    for _, run, _, _ in offered[1:]:
        if data_identity(run.meta.data_fingerprint or {}) != same:
            raise RunError(f"--ensemble: the points of sweep {sweep} read different data or splits ({first.id} and "
                           f"{run.id}); an ensemble chooses on the validation rows they share")
    datasets: dict[str, Prepared] = {}  # points that differ only in model and train settings read the same
    prepared = _prepared(first, datasets)
    summary = first.summary
    candidates = [_candidate(index, run, loaded.model(best), run.summary.models[best], _prepared(run, datasets))
                  for index, run, loaded, best in offered]
    train = _train_spec(first)
    built = ensemble.build(candidates, spec, prepared, summary.metrics, summary.monitor, train,
                           train.threshold == "val_f1")
    if built is None:
        raise RunError(f"--ensemble: no point of sweep {sweep} has finite validation and test predictions")
    chosen = {c.run.name: c for c, _ in built.chosen}
    models = {name: c.result_copy for name, c in chosen.items()}
    models[ENSEMBLE_NAME] = built.result
    out = RunSummary(task=summary.task, monitor=summary.monitor, metrics=summary.metrics, data=summary.data,
                     models=models, complete=True)
    meta = RunMeta(id="-", name=f"{first.name}-ensemble"[:100], seed=first.meta.seed,
                   note=f"ensemble of sweep {sweep}'s points (their best models)", device="cpu",
                   smoke=first.meta.smoke, versions=first.meta.versions, git_commit=first.meta.git_commit,
                   sweep=sweep, data_fingerprint=first.meta.data_fingerprint,
                   # the points' data and defaults; its models are the chosen points' models, by their names here
                   spec={**first.spec, "models": [{**(c.source.model_info(c.source_model).spec or {}), "name": name}
                                                  for name, c in chosen.items()],
                         "ensemble": spec.model_dump(mode="json")},
                   **({"spec_dir": first.meta.model_extra["spec_dir"]}
                      if (first.meta.model_extra or {}).get("spec_dir") else {}))
    with runstore.RunWriter(store, meta, epoch_columns(summary.metrics)) as writer:
        for name, c in chosen.items():
            writer.save_model(name, c.source.load_weights(c.source_model), c.source.model_info(c.source_model))
        writer.save_ensemble(ENSEMBLE_NAME, built.info)
        from nnlab.data.predictions import predictions_table

        writer.save_predictions(ENSEMBLE_NAME, predictions_table(prepared, built.outputs, built.predicted))
        writer.write_summary(out)
    return SweepEnsemble(writer.path, out, f"ensemble of sweep {sweep}'s points: {built.result.diagnosis[0]}")


def _prepared(run: Run, datasets: dict[str, Prepared]) -> Prepared:
    """A point's data as it read it (its resolved spec, the data path relative to the spec's folder), read
    once for the points whose data settings and seed are the same."""
    import json

    from nnlab import data as data_mod
    from nnlab.spec import validate_spec

    spec = validate_spec({k: v for k, v in run.spec.items() if k != "metrics"}, f"{run.id}/spec.yaml")
    base = Path((run.meta.model_extra or {}).get("spec_dir") or ".")
    key = json.dumps([spec.data.model_dump(mode="json"), spec.seed, str(base), bool(run.meta.smoke)])
    if key not in datasets:
        datasets[key] = data_mod.prepare(spec.data, base, spec.seed)
        if run.meta.smoke:
            from nnlab.run.session import SMOKE_TRAIN_ROWS

            data_mod.shrink_train(datasets[key], SMOKE_TRAIN_ROWS, spec.seed)
    return datasets[key]


def _train_spec(run: Run):
    from nnlab.spec import validate_spec

    return validate_spec({k: v for k, v in run.spec.items() if k != "metrics"}, f"{run.id}/spec.yaml").train


def _outputs(saved: SavedModel, prepared: Prepared, split: str) -> np.ndarray:
    """A saved model's outputs on a split of the prepared data (as training evaluated it)."""
    import torch

    from nnlab.models.tensors import as_tensor
    from nnlab.training.metrics import probabilities

    x = (prepared.baseline_x if saved.baseline else prepared.x)[split]
    with torch.inference_mode():
        return probabilities(prepared.task, saved.module(as_tensor(x))).numpy()


def _candidate(index: int, run: Run, saved: SavedModel, result: ModelResult, prepared: Prepared) -> PointCandidate:
    """A point's best model as an ensemble candidate named `p<index>-<model>`, its outputs recomputed."""
    from nnlab.run.members import ModelToTrain, Repeat, RepeatFit
    from nnlab.training.state import FitResult

    name = f"p{index}-{saved.name}"[:100]
    member = run.model_info(saved.name).member or 0
    fit = FitResult(name=name, status="completed", best_epoch=result.best_epoch, epochs_run=result.epochs_run,
                    val=dict(result.val), test=dict(result.test), train_seconds=result.train_seconds,
                    samples_per_second=result.samples_per_second, state={}, member=member,
                    val_probabilities=_outputs(saved, prepared, "val"),
                    test_probabilities=_outputs(saved, prepared, "test"))
    return PointCandidate(ModelToTrain(name, saved.kind, None, [Repeat(member, 0)], result.epochs_run),
                          RepeatFit(member, 0, result.params, 0, fit), True, run, saved.name,
                          result.model_copy(update={"name": name}))
