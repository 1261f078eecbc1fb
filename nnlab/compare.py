"""Runs -> tables: the run list, one row per (run, model) with only the settings that differ, the two-run
view and how far an unfinished run got. Their csv / markdown / json text is `formats.py`'s.

Reads run folders only through `runstore`, and lazily: run.json (which carries the resolved spec) and
summary.json; metrics.csv only for unfinished runs and the two-run curves. Rows are plain
dicts (`columns` + `rows`) so that listing 1,000 runs needs no pandas import (0.6 s of a 2 s budget);
`.frame` gives the same table as a pandas DataFrame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from nnlab.errors import NnlabError
from nnlab.metrics import HIGHER_IS_BETTER, metric_name
from nnlab.runstore import Run, list_runs, resolve_run

SPLITS = ("val", "test")
DELTA_SUFFIX = "_vs_baseline"
RUNS_COLUMNS = ["id", "name", "status", "started_at", "duration_seconds", "models", "best_model", "monitor",
                "best_val", "best_test", "note"]
ROW_COLUMNS = ["run", "model", "kind", "status"]
EPOCH_COLUMNS = ["best_epoch", "epochs_run"]
DEFAULT_LAST = 10
NAN = math.nan


def higher_is_better(column: str) -> bool | None:
    """Direction of a metric column (`test_accuracy`, `val_loss_vs_baseline`, `f1`); None when it is not one."""
    if column == "train_seconds":
        return False
    return HIGHER_IS_BETTER.get(metric_name(column.removesuffix(DELTA_SUFFIX)))


def monitor_metric(monitor: str | None) -> str:
    """`val_loss` -> `loss`: the metric the monitor names, without its split."""
    return (monitor or "val_loss").removeprefix("val_")


def to_float(value: Any) -> float:
    """A number from a summary or metrics value; NaN where there is none."""
    try:
        return float(value) if value is not None else NAN
    except (TypeError, ValueError):
        return NAN


def _frame(columns: list[str], rows: list[dict[str, Any]]) -> Any:
    import pandas as pd

    return pd.DataFrame([[row.get(c) for c in columns] for row in rows], columns=columns)


# ---------------------------------------------------------------- selecting runs

def filter_runs(runs: list[Run], name: str | None = None, status: str | None = None,
                last: int | None = None) -> list[Run]:
    """Runs whose name matches `name` (exact, or a glob such as `spam*`) and whose status is `status`,
    then the first `last` of them (the newest, as `list_runs` sorts)."""
    if name:
        runs = [r for r in runs if fnmatchcase(r.name, name)]
    if status:
        runs = [r for r in runs if r.status == status]
    return runs[:last] if last is not None else runs


def select_runs(store: Path, refs: list[str], name: str | None = None,
                last: int | None = None) -> tuple[list[Run], list[str]]:
    """The runs `compare` shows and the store's warnings: the referenced ones in the given order, else the
    newest `last` (10 unless `--name` picks them), oldest first so that each row reads as the next experiment."""
    if refs:
        return [resolve_run(ref, store) for ref in refs], []
    runs, warnings = list_runs(store)
    if last is None and not name:
        last = DEFAULT_LAST
    return filter_runs(runs, name=name, last=last)[::-1], warnings


# ---------------------------------------------------------------- settings

def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts -> dotted keys (`train.optimizer.lr`); lists and empty dicts stay values."""
    flat: dict[str, Any] = {}
    if isinstance(value, dict) and value:
        _flatten_into(flat, value, f"{prefix}." if prefix else "")
    elif prefix:
        flat[prefix] = value
    return flat


def _flatten_into(flat: dict[str, Any], mapping: dict[Any, Any], prefix: str) -> None:
    for key, item in mapping.items():
        if type(item) is dict and item:
            _flatten_into(flat, item, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = item


def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """`over` on top of `base`, nested dicts merged key by key (a model's train settings over the defaults)."""
    merged = dict(base)
    for key, value in over.items():
        both = isinstance(value, dict) and isinstance(merged.get(key), dict)
        merged[key] = merge(merged[key], value) if both else value
    return merged


@dataclass
class Settings:
    """A run's spec as flat dicts: what every row shares, the baseline's, and each neural model's
    own fields (`models.*`) with its merged train settings (`train.*`)."""

    shared: dict[str, Any]
    baseline: dict[str, Any]
    models: dict[str, dict[str, Any]]

    @classmethod
    def of(cls, spec: dict[str, Any]) -> Settings:
        shared = flatten({k: v for k, v in spec.items() if k not in ("models", "train", "baseline")})
        baseline = spec.get("baseline")
        defaults = spec.get("train") if isinstance(spec.get("train"), dict) else {}
        flat_defaults = flatten(defaults, "train")
        models = {}
        for model in spec.get("models") or []:
            if isinstance(model, dict):
                own = flatten({k: v for k, v in model.items() if k not in ("name", "train")}, "models")
                override = model.get("train") if isinstance(model.get("train"), dict) else {}
                flat_train = flatten(override, "train")
                if not flat_defaults.keys() <= flat_train.keys():  # the runner writes them merged: rarely taken
                    flat_train = flatten(merge(defaults, override), "train")
                models[str(model.get("name"))] = {**own, **flat_train}
        return cls(shared, flatten(baseline, "baseline") if isinstance(baseline, dict) else {}, models)


def differing(dicts: list[dict[str, Any]]) -> list[str]:
    """Keys whose values differ between the dicts (lists compare as values; a missing key differs from a
    present one), in first-seen order."""
    if len(dicts) < 2:
        return []
    ref = dicts[0]
    order, differ = list(ref), set()
    for other in dicts[1:]:
        if other.keys() != ref.keys():
            new = [k for k in other if k not in ref and k not in differ]
            order.extend(new)
            differ.update(ref.keys() ^ other.keys())
        for key, value in other.items():
            if key not in differ and key in ref and ref[key] != value:
                differ.add(key)
    return [k for k in dict.fromkeys(order) if k in differ]


# ---------------------------------------------------------------- one run's rows

def run_metrics(run: Run) -> list[str]:
    """The metric names a run reports, the loss first."""
    names = (run.summary or {}).get("metrics") or run.spec.get("metrics") or []
    return ["loss", *[m for m in names if m != "loss"]]


def run_monitor(run: Run) -> str:
    return (run.summary or {}).get("monitor") or run.spec.get("monitor") or "val_loss"


def baseline_name(run: Run) -> str | None:
    summary = run.summary
    if summary is not None and "baseline" in summary:
        return summary["baseline"]
    return "baseline" if run.spec.get("baseline") not in (None, False) else None


def model_rows(run: Run) -> list[dict[str, Any]]:
    """One dict per model of `run`, the baseline first when it has one: run, model, kind, status,
    best_epoch, epochs_run, train_seconds and `val_<metric>` / `test_<metric>` at the best epoch."""
    summary = run.summary
    if summary is not None and isinstance(summary.get("models"), dict):
        return _rows_from_summary(run, summary["models"])
    return _rows_from_history(run)


def _rows_from_summary(run: Run, models: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for name, result in models.items():
        result = result if isinstance(result, dict) else {}
        row = {"run": run.id, "model": name, "kind": result.get("kind"), "status": result.get("status") or run.status,
               "best_epoch": result.get("best_epoch"), "epochs_run": result.get("epochs_run"),
               "train_seconds": to_float(result.get("train_seconds"))}
        for split in SPLITS:
            for metric, value in (result.get(split) or {}).items():
                row[f"{split}_{metric}"] = to_float(value)
        rows.append(row)
    return rows


def _rows_from_history(run: Run) -> list[dict[str, Any]]:
    """Rows of a run without a summary (unfinished, crashed or damaged): each model at its best epoch so far."""
    history = run.metrics()
    if history.empty or "model" not in history:
        return []
    monitor = run_monitor(run)
    spec = run.spec
    kinds = {m.get("name"): m.get("kind") for m in spec.get("models") or [] if isinstance(m, dict)}
    if isinstance(spec.get("baseline"), dict):
        kinds[baseline_name(run)] = spec["baseline"].get("kind")
    seconds = history["seconds"] if "seconds" in history else None
    rows = []
    for name, epochs in history.groupby("model", sort=False):
        score = epochs[monitor].astype("float64") if monitor in epochs else None
        if score is None or score.isna().all():
            best = epochs.iloc[-1]
        else:
            best = epochs.loc[score.idxmax() if higher_is_better(monitor) else score.idxmin()]
        row = {"run": run.id, "model": str(name), "kind": kinds.get(name),
               "status": run.status, "best_epoch": int(best["epoch"]), "epochs_run": int(epochs["epoch"].max()),
               "train_seconds": float(seconds.loc[epochs.index].sum()) if seconds is not None else NAN}
        row.update({col: to_float(best[col]) for col in epochs.columns if col.startswith("val_")})
        rows.append(row)
    return rows


# ---------------------------------------------------------------- the comparison

@dataclass
class Comparison:
    """`nnlab compare`: one row per (run, model). `settings`, `metric_columns` and `delta_columns` say
    which of `columns` are which."""

    columns: list[str]
    rows: list[dict[str, Any]]
    settings: list[str]
    metrics: list[str]
    metric_columns: list[str]
    delta_columns: list[str]
    runs: list[Run]
    between_runs: list[str] = field(default_factory=list)  # what differs for the same model across runs
    warnings: list[str] = field(default_factory=list)

    @property
    def frame(self) -> Any:
        """The rows as a pandas DataFrame with these columns."""
        return _frame(self.columns, self.rows)

    @property
    def note(self) -> str | None:
        """A plain-words remark when the runs differ in nothing, or only in their seed."""
        if len({r.id for r in self.runs}) < 2:
            return None
        if not self.between_runs:
            return "No setting differs between these runs: their metric differences are run-to-run noise."
        if self.between_runs == ["seed"]:
            return "Only the seed differs between these runs: their metric differences are run-to-run noise."
        return None


def compare_runs(runs: list[Run], metrics: list[str] | None = None, split: str | None = None,
                 models: list[str] | None = None, sort: str | None = None) -> Comparison:
    """Columns: run, model, kind, status, the settings that differ between the rows, best_epoch, epochs_run,
    then per metric `val_<m>`, `test_<m>`, `val_<m>_vs_baseline`, `test_<m>_vs_baseline`, and train_seconds."""
    available = _union(run_metrics(r) for r in runs)
    chosen = _checked("--metric", list(dict.fromkeys(metrics)), available) if metrics else available
    splits = [split] if split else list(SPLITS)
    metric_columns = [f"{s}_{m}" for m in chosen for s in splits]
    rows, settings_of, warnings = [], {}, []
    for run in runs:
        run_rows = model_rows(run)
        if run.summary is None and run.status == "completed":
            warnings.append(f"{run.id}: summary.json is missing or unreadable; "
                            "showing each model's best epoch from metrics.csv")
        base = next((r for r in run_rows if r["model"] == baseline_name(run)), None)
        for row in run_rows:
            row["_baseline"] = row is base
            for col in metric_columns:
                row.setdefault(col, NAN)
                row[col + DELTA_SUFFIX] = row[col] - base.get(col, NAN) if base is not None and row is not base else NAN
        settings_of[run.id] = Settings.of(run.spec)
        rows.extend(run_rows)
    if models:
        _checked("--model", models, _union([r["model"]] for r in rows))
        rows = [r for r in rows if r["model"] in models]
    settings, between = _differing_settings(rows, settings_of)
    for row in rows:
        scope = settings_of[row["run"]]
        own = scope.baseline if row.pop("_baseline") else scope.models.get(row["model"], {})
        for key in settings:
            row[key] = scope.shared[key] if key in scope.shared else own.get(key, NAN)
    delta_columns = [c + DELTA_SUFFIX for c in metric_columns]
    by_metric = [c for m in chosen for c in [*(f"{s}_{m}" for s in splits), *(f"{s}_{m}{DELTA_SUFFIX}" for s in splits)]]
    columns = [*ROW_COLUMNS, *settings, *EPOCH_COLUMNS, *by_metric, "train_seconds"]
    if sort:
        rows = sort_rows(rows, columns, sort, splits[-1])
    return Comparison(columns, rows, settings, chosen, metric_columns, delta_columns, runs, between, warnings)


def _differing_settings(rows: list[dict[str, Any]], settings_of: dict[str, Settings]) -> tuple[list[str], list[str]]:
    """The settings that differ between the rows (each compared across the rows it applies to), and those
    that differ between runs for the same model (what the runs changed)."""
    run_ids = list(dict.fromkeys(r["run"] for r in rows))
    baselines = [settings_of[r["run"]].baseline for r in rows if r["_baseline"]]
    by_model: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        if not row["_baseline"]:
            by_model.setdefault(row["model"], []).append(settings_of[row["run"]].models.get(row["model"], {}))
    shared = differing([settings_of[i].shared for i in run_ids])
    base = differing(baselines)
    settings = [k for k in dict.fromkeys([*shared, *base, *differing([d for ds in by_model.values() for d in ds])])
                if k not in ROW_COLUMNS]
    between = _union([shared, base, *(differing(ds) for ds in by_model.values())])
    return settings, between


def sort_rows(rows: list[dict[str, Any]], columns: list[str], sort: str, split: str) -> list[dict[str, Any]]:
    """Best first by `sort` (`accuracy` means `<split>_accuracy`) in the metric's direction; missing values last."""
    column = sort if sort in columns else f"{split}_{sort}"
    higher = higher_is_better(column) if column in columns else None
    if higher is None:
        choices = [c for c in columns if higher_is_better(c) is not None and not c.endswith(DELTA_SUFFIX)]
        bare = [c.split("_", 1)[1] for c in choices if c.startswith(f"{split}_")]
        raise NnlabError(f"--sort: expected one of {', '.join(dict.fromkeys([*bare, *choices]))}; got '{sort}'")
    sign = -1 if higher else 1

    def best_first(row: dict[str, Any]) -> tuple[bool, float]:
        value = to_float(row.get(column))
        return math.isnan(value), 0.0 if math.isnan(value) else sign * value

    return sorted(rows, key=best_first)


def _checked(option: str, given: list[str], allowed: list[str]) -> list[str]:
    for name in given:
        if name not in allowed:
            raise NnlabError(f"{option}: expected one of {', '.join(allowed)}; got '{name}'")
    return given


def _union(lists: Any) -> list[Any]:
    return list(dict.fromkeys(item for items in lists for item in items))


# ---------------------------------------------------------------- the run list

def runs_rows(runs: list[Run]) -> list[dict[str, Any]]:
    """`nnlab runs`, one dict per run (RUNS_COLUMNS): the best model is the best on the monitored validation
    metric, and best_test is its test score on that metric."""
    rows = []
    for run in runs:
        monitor, models = run_monitor(run), model_rows(run)
        scored = [r for r in models if not math.isnan(r.get(monitor, NAN))]
        pick = max if higher_is_better(monitor) else min
        best = pick(scored, key=lambda r: r[monitor]) if scored else {}
        rows.append({"id": run.id, "name": run.name, "status": run.status, "started_at": run.started_at,
                     "duration_seconds": to_float(run.meta.get("duration_seconds")),
                     "models": [r["model"] for r in models], "best_model": best.get("model"), "monitor": monitor,
                     "best_val": best.get(monitor, NAN), "best_test": best.get(f"test_{monitor_metric(monitor)}", NAN),
                     "note": run.note})
    return rows


def runs_frame(runs: list[Run]) -> Any:
    """`runs_rows` as a pandas DataFrame."""
    return _frame(RUNS_COLUMNS, runs_rows(runs))


# ---------------------------------------------------------------- two runs side by side

NOT_SET = "(not set)"
PAIR_SETTINGS_COLUMNS = ["key", "a", "b"]
PAIR_METRICS_COLUMNS = ["model", "metric", "a", "b", "delta", "verdict"]


@dataclass
class Pair:
    """`nnlab compare A B`: the settings that differ (key, a, b), each common model's metrics (B - A and
    whether that is better), and each model's monitored validation curve in A and B."""

    a: Run
    b: Run
    settings: list[dict[str, Any]]
    metrics: list[dict[str, Any]]
    curves: dict[str, tuple[dict[int, float], dict[int, float]]]  # model -> ({epoch: value} in A, in B)
    monitor: str
    only_in: dict[str, list[str]]  # "a" / "b" -> the models the other run lacks


def compare_pair(a: Run, b: Run, metrics: list[str] | None = None, split: str | None = None,
                 models: list[str] | None = None) -> Pair:
    rows_a, rows_b = {r["model"]: r for r in model_rows(a)}, {r["model"]: r for r in model_rows(b)}
    if models:
        _checked("--model", models, _union([rows_a, rows_b]))
    available = _union([run_metrics(a), run_metrics(b)])
    chosen = _checked("--metric", list(dict.fromkeys(metrics)), available) if metrics else available
    columns = ["best_epoch", *[f"{s}_{m}" for m in chosen for s in ([split] if split else SPLITS)], "train_seconds"]
    common = [m for m in rows_a if m in rows_b and (not models or m in models)]
    table = []
    for model in common:
        for col in columns:
            va, vb = to_float(rows_a[model].get(col)), to_float(rows_b[model].get(col))
            table.append({"model": model, "metric": col, "a": va, "b": vb, "delta": vb - va,
                          "verdict": _verdict(col, va, vb)})
    monitor = run_monitor(b)
    only = {"a": [m for m in rows_a if m not in rows_b], "b": [m for m in rows_b if m not in rows_a]}
    return Pair(a, b, pair_settings(a.spec, b.spec), table, _curves(a, b, common, monitor), monitor, only)


def pair_settings(spec_a: dict[str, Any], spec_b: dict[str, Any]) -> list[dict[str, Any]]:
    """What differs between two specs, each model's settings under `models.<name>.`; a changed train
    default shows once, not again under every model that inherits it."""
    fa, fb = _all_settings(spec_a), _all_settings(spec_b)
    missing = object()
    keys = [k for k in dict.fromkeys([*fa, *fb]) if fa.get(k, missing) != fb.get(k, missing)]
    changed = {k: (repr(fa.get(k, NOT_SET)), repr(fb.get(k, NOT_SET))) for k in keys}
    inherited = [k for k in keys if k.startswith("models.") and ".train." in k
                 and changed.get("train." + k.split(".train.", 1)[1]) == changed[k]]
    return [{"key": k, "a": fa.get(k, NOT_SET), "b": fb.get(k, NOT_SET)} for k in keys if k not in inherited]


def _all_settings(spec: dict[str, Any]) -> dict[str, Any]:
    flat = flatten({k: v for k, v in spec.items() if k != "models"})
    settings = Settings.of(spec)
    if settings.models:
        flat["models"] = list(settings.models)
    for name, own in settings.models.items():
        flat.update({f"models.{name}.{k.removeprefix('models.')}": v for k, v in own.items()})
    return flat


def _verdict(column: str, a: float, b: float) -> str:
    higher = higher_is_better(column)
    if higher is None or column == "train_seconds" or math.isnan(a) or math.isnan(b):
        return ""
    if a == b:
        return "same"
    return "better" if (b > a) == higher else "worse"


def _curves(a: Run, b: Run, models: list[str], monitor: str) -> dict[str, tuple[dict[int, float], dict[int, float]]]:
    histories = [run.metrics() for run in (a, b)]
    curves = {}
    for model in models:
        pair = []
        for history in histories:
            if monitor not in history or "model" not in history:
                pair.append({})
                continue
            rows = history[history["model"] == model]
            pair.append({int(e): to_float(v) for e, v in zip(rows["epoch"], rows[monitor])})
        curves[model] = (pair[0], pair[1])
    return curves


# ---------------------------------------------------------------- one run in detail

def progress(run: Run) -> list[dict[str, Any]]:
    """How far each model of a run got: model, epochs_done, epochs_planned, the last epoch's val_loss."""
    spec, history = run.spec, run.metrics()
    planned: dict[str, Any] = {}
    if spec.get("baseline") not in (None, False):
        planned["baseline"] = 1
    for model in spec.get("models") or []:
        if isinstance(model, dict):
            planned[str(model.get("name"))] = merge(spec.get("train") or {}, model.get("train") or {}).get("epochs")
    seen = [str(m) for m in dict.fromkeys(history["model"])] if "model" in history else []
    rows = []
    for name in dict.fromkeys([*planned, *seen]):
        epochs = history[history["model"] == name] if name in seen else None
        done = 0 if epochs is None else len(epochs)
        last = to_float(epochs["val_loss"].iloc[-1]) if done and "val_loss" in epochs else NAN
        rows.append({"model": name, "epochs_done": done, "epochs_planned": planned.get(name), "val_loss": last})
    return rows


def is_measure(column: str) -> bool:
    """Whether a column holds a measured number (a metric, a delta, seconds) rather than a setting."""
    return higher_is_better(column) is not None or column in ("best_val", "best_test", "duration_seconds")


def best_rows(columns: list[str], rows: list[dict[str, Any]]) -> dict[str, set[int]]:
    """Positions of the best value of each metric column (all of them on a tie), where two or more rows have one."""
    best: dict[str, set[int]] = {}
    for col in columns:
        higher = higher_is_better(col)
        if higher is None or col.endswith(DELTA_SUFFIX) or col == "train_seconds":
            continue
        values = [to_float(row.get(col)) for row in rows]
        finite = [v for v in values if not math.isnan(v)]
        if len(finite) > 1:
            target = max(finite) if higher else min(finite)
            best[col] = {i for i, v in enumerate(values) if v == target}
    return best
