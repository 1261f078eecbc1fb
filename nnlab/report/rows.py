"""One run -> one row per model: the numbers `compare`, `runs` and `show` put in their tables.

A row is a plain dict (1,000 runs need no pandas): run (the folder name), model, kind, status, best_epoch,
epochs_run, epochs_planned, repeats, train_seconds, and per metric `val_<m>` / `test_<m>` with their spreads
over repeats `val_<m>_sd` / `test_<m>_sd`. Rows come from the typed summary (`records.ModelResult`), or, for a
run without one (unfinished, killed, damaged), from metrics.csv: each model at its best epoch so far.
Stored numbers read as what they are (`numbers.stored_float`).
"""

from __future__ import annotations

import math
from typing import Optional

from nnlab.core.numbers import stored_float
from nnlab.core.columns import EVAL_SPLITS, FINAL_METRICS, SD_SUFFIX, higher_is_better, metric_column
from nnlab.core.records import ModelResult
from nnlab.runstore import Run
from nnlab.core.settings import deep_merge
from nnlab.core.jsonvalue import JSONObject, JSONValue

NAN = math.nan
Row = JSONObject  # one table row: column -> cell (a name, a number, NaN where missing, a setting as read)


def run_metrics(run: Run) -> list[str]:
    """The metric names a run reports, the loss first."""
    names = run.summary.metrics if run.summary else _list(run.spec.get("metrics"))
    return ["loss", *[str(m) for m in names if m != "loss"]]


def reported_metrics(run: Run) -> list[str]:
    """`run_metrics`, then the end-of-training metrics its models hold (binary pr_auc and brier, multiclass
    ece; not in the spec's `metrics`, which are logged every epoch): what `compare --metric` may name."""
    held = {m for result in (run.summary.models.values() if run.summary else []) for m in result.test}
    finals = dict.fromkeys(m for names in FINAL_METRICS.values() for m in names)
    return [*run_metrics(run), *[m for m in finals if m in held]]


def run_monitor(run: Run) -> str:
    monitor = run.summary.monitor if run.summary else run.spec.get("monitor")
    return monitor if isinstance(monitor, str) and monitor else "val_loss"


def baseline_name(run: Run) -> Optional[str]:
    if run.summary is not None:
        return run.summary.baseline
    return "baseline" if run.spec.get("baseline") not in (None, False) else None


def planned_epochs(run: Run) -> dict[str, Optional[int]]:
    """Each model the spec plans, with its epochs (the baseline's L-BFGS fit counts as one)."""
    spec = run.spec
    planned: dict[str, Optional[int]] = {}
    if spec.get("baseline") not in (None, False):
        planned["baseline"] = 1
    defaults = spec.get("train") if isinstance(spec.get("train"), dict) else {}
    for model in _list(spec.get("models")):
        if isinstance(model, dict):
            own = model.get("train") if isinstance(model.get("train"), dict) else {}
            epochs = deep_merge(defaults, own).get("epochs")
            planned[str(model.get("name"))] = epochs if isinstance(epochs, int) else None
    return planned


def model_rows(run: Run) -> list[Row]:
    """One dict per model of `run`, the baseline first when it has one (see the module doc)."""
    if run.summary is None:
        return _rows_from_history(run)
    models = run.summary.models
    # older runs do not record the epochs planned: read them from the spec (only then: it costs)
    planned = planned_epochs(run) if any(r.epochs_planned is None for r in models.values()) else {}
    rows = [result_row(run, result, planned.get(name)) for name, result in models.items()]
    if unfinished(run):  # the model in training when the run stopped (or still runs) is only in metrics.csv
        rows += [row for row in _rows_from_history(run) if row["model"] not in models]
    return rows


def unfinished(run: Run) -> bool:
    """A run whose summary may lack models: written after each model, the run not (or not well) ended."""
    return run.summary is None or (not run.summary.complete and run.status != "completed")


def result_row(run: Run, result: ModelResult, planned: Optional[int] = None) -> Row:
    row = {"run": run.folder, "model": result.name, "kind": result.kind, "status": result.status,
           "best_epoch": result.best_epoch, "epochs_run": result.epochs_run,
           "epochs_planned": result.epochs_planned or planned, "repeats": result.repeats,
           "train_seconds": stored_float(result.train_seconds)}
    if result.halved is not None:  # stopped early by `sweep --halving`: its scores are of fewer epochs
        row["halved"] = f"halved at epoch {result.halved.epoch} (rung {result.halved.rung})"
    for split in EVAL_SPLITS:
        for metric, value in (result.val if split == "val" else result.test).items():
            row[metric_column(split, metric)] = stored_float(value)
        for metric, value in (result.val_sd if split == "val" else result.test_sd).items():
            row[metric_column(split, metric) + SD_SUFFIX] = stored_float(value)
    return row


def _rows_from_history(run: Run) -> list[Row]:
    """Rows of a run without a summary: each model at its best epoch so far (member 0 of repeats)."""
    history = run.metrics()
    if history.empty:
        return []
    monitor = run_monitor(run)
    kinds = {m.get("name"): m.get("kind") for m in _list(run.spec.get("models")) if isinstance(m, dict)}
    if isinstance(run.spec.get("baseline"), dict):
        kinds[baseline_name(run)] = run.spec["baseline"].get("kind")
    planned = planned_epochs(run)
    rows = []
    for name, epochs in history.groupby("model", sort=False):
        repeats = int(epochs["member"].nunique())
        epochs = epochs[epochs["member"] == epochs["member"].min()]
        score = epochs[monitor] if monitor in epochs else None
        if score is None or score.isna().all():
            best = epochs.iloc[-1]
        else:
            best = epochs.loc[score.idxmax() if higher_is_better(monitor) else score.idxmin()]
        seconds = float(epochs["seconds"].sum()) if "seconds" in epochs else NAN
        row = {"run": run.folder, "model": str(name), "kind": kinds.get(name), "status": run.status,
               "best_epoch": int(best["epoch"]), "epochs_run": int(epochs["epoch"].max()),
               "epochs_planned": planned.get(str(name)), "repeats": repeats, "train_seconds": seconds}
        row.update({col: stored_float(best[col]) for col in epochs.columns if col.startswith("val_")})
        rows.append(row)
    return rows


def progress(run: Run) -> list[Row]:
    """How far each model of a run got: model, epochs_done, epochs_planned, the last epoch's val_loss."""
    history = run.metrics()
    planned = planned_epochs(run)
    first = history[history["member"] == 0] if len(history) else history
    seen = [str(m) for m in dict.fromkeys(first["model"])]
    rows = []
    for name in dict.fromkeys([*planned, *seen]):
        epochs = first[first["model"] == name] if name in seen else None
        done = 0 if epochs is None else len(epochs)
        last = stored_float(epochs["val_loss"].iloc[-1]) if done and "val_loss" in epochs else NAN
        rows.append({"model": name, "epochs_done": done, "epochs_planned": planned.get(name), "val_loss": last})
    return rows


def _list(value: object) -> list[JSONValue]:
    return value if isinstance(value, list) else []
