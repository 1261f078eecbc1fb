"""The run's ensemble (`ensemble: {method: greedy, size: N}`): greedy forward selection with replacement on
the validation predictions (Caruana et al. 2004, "Ensemble selection from libraries of models"; AutoGluon's
and TabPack's way), over every member the run trained — each model's repeats and the members of all models.

`greedy_selection` is the pure part: predictions [N] or [N, K] per member and a score function in, the
chosen counts out. Each of `size` steps adds the member (again, if it is the best choice: with replacement)
whose addition gives the best validation score of the averaged predictions; as AutoGluon does, the best
prefix of the steps is kept, so the first step — the best single member — bounds it: the ensemble's
validation score is never worse than its best member's. Weights are counts / steps kept.

The ensemble is then scored once on test with those weights, and recorded as the model `ensemble`: its
ModelResult (kind "ensemble", `ensemble` listing EnsembleMember{model, member, weight, weights}) and
models/ensemble.json (EnsembleInfo); each chosen member's weights are a saved model (the model's own file
when it is the repeat the model saved, else models/<model>@<member>), so `predict --model ensemble`
rebuilds every member and averages their outputs with the recorded weights.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Optional, Sequence

import numpy as np

from nnlab.core.columns import higher_is_better
from nnlab.core.records import EnsembleInfo, EnsembleMember, ModelResult, PerClassResult
from nnlab.spec.ensemble import ENSEMBLE_NAME, EnsembleSpec

if TYPE_CHECKING:
    import torch

    from nnlab.data import Prepared
    from nnlab.run.members import ModelToTrain, RepeatFit
    from nnlab.spec import TrainSpec

MEMBER_SEPARATOR = "@"  # models/<model>@<member>: a member's weights; '@' is never in a model name
PROBABILITY_FLOOR = 1e-7  # averaged probabilities are clipped into [floor, 1 - floor] before their log


@dataclass(frozen=True)
class Selection:
    """What greedy selection chose: `counts[i]` times candidate i in the kept steps; `trajectory[s]` the
    validation score after step s+1 (all `size` steps); `steps` the length of the best prefix kept."""

    counts: list[int]
    trajectory: list[float]
    steps: int

    @property
    def weights(self) -> list[float]:
        return [count / self.steps for count in self.counts]


def greedy_selection(val_outputs: Sequence[np.ndarray], score: Callable[[np.ndarray], float], size: int,
                     higher: bool) -> Selection:
    """Caruana's forward selection with replacement: `size` steps, each adding the candidate whose addition
    makes the average of the chosen candidates' outputs score best (`higher`: higher is better; ties go to
    the first candidate; a NaN score never wins); the best-scoring prefix of the steps is kept (its first
    step on ties). Pure: outputs in, counts out."""
    if not val_outputs or size < 1:
        raise ValueError("greedy selection needs at least one candidate and one step")
    total = np.zeros_like(np.asarray(val_outputs[0], dtype=np.float64))
    chosen: list[int] = []
    trajectory: list[float] = []
    for step in range(1, size + 1):
        best_index, best_score = 0, math.nan
        for i, outputs in enumerate(val_outputs):
            value = float(score((total + outputs) / step))
            if not math.isnan(value) and (math.isnan(best_score) or _better(value, best_score, higher)):
                best_index, best_score = i, value
        total = total + val_outputs[best_index]
        chosen.append(best_index)
        trajectory.append(best_score)
    finite = [s if not math.isnan(s) else (-math.inf if higher else math.inf) for s in trajectory]
    best_step = (max if higher else min)(range(len(finite)), key=lambda s: (finite[s], -s) if higher
                                         else (finite[s], s))
    kept = chosen[:best_step + 1]
    return Selection([kept.count(i) for i in range(len(val_outputs))], trajectory, best_step + 1)


def _better(value: float, than: float, higher: bool) -> bool:
    return value > than if higher else value < than


def raw_outputs(task: str, averaged: np.ndarray) -> torch.Tensor:
    """Averaged member outputs as the raw outputs [N, O] the loss and the metrics read: binary logits of
    P(positive), multiclass log-probabilities (their softmax is the probabilities), regression unchanged."""
    import torch

    p = torch.as_tensor(np.asarray(averaged, dtype=np.float64))
    if task == "regression":
        return p.reshape(-1, 1)
    p = p.clamp(PROBABILITY_FLOOR, 1 - PROBABILITY_FLOOR)
    if task == "binary":
        return (p.log() - (-p).log1p()).reshape(-1, 1)
    return p.log()


def split_scores(task: str, metrics: list[str], loss_fn: Callable, averaged: np.ndarray, y: np.ndarray,
                 target_std: float) -> dict[str, float]:
    """`loss` (the spec's loss, as each member's val_loss) and the run's metrics of averaged outputs."""
    import torch

    from nnlab.training import metrics as metric_fns
    from nnlab.training.evaluation import as_target, read

    outputs = raw_outputs(task, averaged)
    target = torch.as_tensor(np.asarray(y))
    with torch.no_grad():
        values = {"loss": loss_fn(outputs, as_target(target, outputs)),
                  **metric_fns.compute(task, metrics, outputs, target, target_std)}
    return read(values)


@dataclass
class Candidate:
    """A member the ensemble may choose: its model, its fit (val and test outputs, weights), and whether it is
    the repeat the model saved as models/<model>.safetensors."""

    run: ModelToTrain
    fit: RepeatFit
    saved: bool

    @property
    def label(self) -> str:
        return f"{self.run.name}#{self.fit.member}"

    @property
    def weights_name(self) -> str:
        return self.run.name if self.saved else f"{self.run.name}{MEMBER_SEPARATOR}{self.fit.member}"


def usable(fit: RepeatFit) -> bool:
    """A member can join when it finished and has finite val and test outputs."""
    r = fit.result
    return (r is not None and r.status == "completed" and r.state is not None and r.val_probabilities is not None
            and r.test_probabilities is not None and bool(np.isfinite(r.val_probabilities).all())
            and bool(np.isfinite(r.test_probabilities).all()))


@dataclass
class Built:
    """The ensemble as chosen and scored: its result for summary.json, its models/ensemble.json, the chosen
    candidates (with their weights) and its averaged val and test outputs."""

    result: ModelResult
    info: EnsembleInfo
    chosen: list[tuple[Candidate, float]]
    outputs: dict[str, np.ndarray]
    predicted: Optional[dict[str, np.ndarray]] = None  # the class per row where a decision threshold made it


def build(candidates: list[Candidate], spec: EnsembleSpec, prepared: Prepared, metrics: list[str], monitor: str,
          train: TrainSpec, threshold: bool) -> Optional[Built]:
    """Choose the ensemble from `candidates` on val, score it once on test; None without a usable candidate.
    `train`: the spec's training defaults (the loss the scores are in); `threshold`: train.threshold is
    val_f1 (binary test scores at the F1 threshold chosen on val, as each model's)."""
    import torch

    from nnlab.training.metrics import final_metrics
    from nnlab.training.optim import build_loss

    started = time.perf_counter()
    pool = [c for c in candidates if usable(c.fit)]
    if not pool:
        return None
    task, y, std = prepared.task, prepared.y, prepared.preprocessor.target.std
    loss_fn = build_loss(task, train, torch.as_tensor(y["train"]), prepared.n_outputs)
    metric = monitor.removeprefix("val_")
    higher = higher_is_better(metric)

    def score(averaged: np.ndarray) -> float:
        return split_scores(task, [] if metric == "loss" else [metric], loss_fn, averaged, y["val"], std)[metric]

    val_outputs = [np.asarray(c.fit.result.val_probabilities, dtype=np.float64) for c in pool]
    selection = greedy_selection(val_outputs, score, spec.size, higher)
    chosen = [(c, w) for c, w in zip(pool, selection.weights) if w > 0]
    outputs = {split: sum(w * np.asarray(getattr(c.fit.result, f"{split}_probabilities"), dtype=np.float64)
                          for c, w in chosen) for split in ("val", "test")}
    val = split_scores(task, metrics, loss_fn, outputs["val"], y["val"], std)
    test = split_scores(task, metrics, loss_fn, outputs["test"], y["test"], std)
    per_class, applied, predicted = None, None, None
    if task != "regression":
        final = final_metrics(task, metrics, outputs, y, len(prepared.classes), threshold)
        val, test = {**val, **final.scores.get("val", {})}, {**test, **final.scores.get("test", {})}
        labels = [str(c) for c in prepared.classes]
        per_class = {split: PerClassResult(labels=labels, member=0, **table) for split, table in
                     final.per_class.items()}
        applied, predicted = final.threshold, final.predicted
    members = [EnsembleMember(model=c.run.name, member=c.fit.member, weight=w, weights=c.weights_name)
               for c, w in chosen]
    info = EnsembleInfo(method=spec.method, size=spec.size, steps=selection.steps, metric=monitor,
                        candidates=len(pool), members=members, trajectory=selection.trajectory)
    params = {c.weights_name: c.fit.params for c, _ in chosen}
    result = ModelResult(name=ENSEMBLE_NAME, kind="ensemble", params=sum(params.values()), status="completed",
                         best_epoch=0, epochs_run=0, val=val, test=test,
                         train_seconds=round(time.perf_counter() - started, 4), per_class=per_class,
                         threshold=applied, ensemble=members,
                         diagnosis=[selection_line(selection, pool, chosen, monitor, val.get(metric), higher,
                                             len(candidates))])
    return Built(result, info, chosen, outputs, predicted)


def selection_line(selection: Selection, pool: list[Candidate], chosen: list[tuple[Candidate, float]], monitor: str,
             value: Optional[float], higher: bool, offered: int) -> str:
    """`greedy selection on val_loss over 6 members, 4 of 5 steps kept: mlp#0 0.5, wide#1 0.25, ...;
    val_loss 0.2871 vs its best member's 0.2950 (mlp#0)`."""
    metric = monitor.removeprefix("val_")
    own = [(c.fit.result.val.get(metric), c) for c in pool]
    scored = [(v, c) for v, c in own if v is not None and math.isfinite(v)]
    best = (max if higher else min)(scored, key=lambda vc: vc[0]) if scored else None
    weights = ", ".join(f"{c.label} {w:.3g}" for c, w in sorted(chosen, key=lambda cw: -cw[1]))
    left_out = f" ({offered - len(pool)} unfinished or non-finite left out)" if offered > len(pool) else ""
    against = (f" vs its best member's {best[0]:.4f} ({best[1].label})" if best and value is not None else "")
    shown = f"; {monitor} {value:.4f}{against}" if value is not None else ""
    return (f"greedy selection on {monitor} over {len(pool)} member(s){left_out}, {selection.steps} of "
            f"{len(selection.trajectory)} steps kept: {weights}{shown}")
