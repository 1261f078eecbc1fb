"""Runs -> tables: the run list and one row per (run, model) with only the settings that differ, deltas to
each run's baseline and which differences are within noise. The two-run view is `pair.py`'s, the rows of
one run `rows.py`'s, their csv / markdown / json text `formats.py`'s.

Decisions read validation: sorting by a bare metric (`--sort accuracy`), the best model of a run and the
highlighted best value of a column use the validation split unless `--split test` is asked for; test
columns are the final report. Smoke runs (`train --smoke`) are left out unless asked for.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Optional, TypeVar

from nnlab.errors import NnlabError
from nnlab.report.filters import RunFilter
from nnlab.report.noise import SINGLE_RUNS, difference
from nnlab.core.numbers import exact_difference, format_value, stored_float
from nnlab.core.columns import higher_is_better, metric_column, split_column, SD_SUFFIX
from nnlab.report.rows import Row, baseline_name, model_rows, reported_metrics, run_metrics
from nnlab.report.runlist import RUNS_COLUMNS, runs_frame, runs_rows  # noqa: F401  (the run list, as compare had it)
from nnlab.runstore import Run, list_runs, resolve_run
from nnlab.core.settings import Settings, differing, short_keys

if TYPE_CHECKING:
    import pandas as pd

T = TypeVar("T")

SPLITS = ("val", "test")
DECISION_SPLIT = "val"
DELTA_SUFFIX = "_vs_baseline"
ROW_COLUMNS = ["run", "model", "kind", "status"]
EPOCH_COLUMNS = ["best_epoch", "epochs_run", "repeats"]
DEFAULT_LAST = 10
NAN = math.nan


def is_measure(column: str) -> bool:
    """Whether a column holds a measured number (a metric, its spread, a delta, seconds), not a setting."""
    base = column.removesuffix(DELTA_SUFFIX).removesuffix(SD_SUFFIX)
    return column == "train_seconds" or higher_is_better(base) is not None or base in (
        "best_val", "best_test", "duration_seconds")


def _frame(columns: list[str], rows: list[Row]) -> pd.DataFrame:
    from nnlab.report.runlist import as_frame

    return as_frame(columns, rows)


# ---------------------------------------------------------------- selecting runs

def filter_runs(runs: list[Run], name: Optional[str] = None, status: Optional[str] = None,
                last: Optional[int] = None, sweep: Optional[str] = None) -> list[Run]:
    """Runs whose name matches `name` (exact, or a glob such as `spam*`), whose status is `status` and that
    belong to sweep `sweep`, then the first `last` of them (the newest, as `list_runs` sorts)."""
    if name:
        runs = [r for r in runs if fnmatchcase(r.name, name)]
    if status:
        runs = [r for r in runs if r.status == status]
    if sweep:
        runs = [r for r in runs if r.meta.sweep == sweep]
    return runs[:last] if last is not None else runs


@dataclass
class Selection:
    runs: list[Run]
    warnings: list[str]
    store_runs: list[Run]  # every readable run of the store (for what the store knows about test splits)
    smoke_left_out: int = 0


def select_runs(store: Path, refs: list[str], name: Optional[str] = None, last: Optional[int] = None,
                sweep: Optional[str] = None, smoke: bool = False, chosen_by: Optional[RunFilter] = None) -> Selection:
    """The runs `compare` shows: the referenced ones in the given order, else the newest `last` (10 unless
    `--name`, `--sweep` or a filter (`chosen_by`: --where, --tag, --note) picks them), oldest first so that
    each row reads as the next experiment. Smoke runs are left out unless `smoke` (or named by reference)."""
    store_runs, warnings = list_runs(store)
    if refs:
        return Selection([resolve_run(ref, store, store_runs) for ref in refs], warnings, store_runs)
    candidates = [r for r in store_runs if smoke or not r.smoke]
    if chosen_by:
        candidates = chosen_by.apply(candidates)
    if last is None and not name and not sweep and not chosen_by:
        last = DEFAULT_LAST
    chosen = filter_runs(candidates, name=name, last=last, sweep=sweep)[::-1]
    left_out = len(filter_runs([r for r in store_runs if r.smoke], name=name, sweep=sweep)) if not smoke else 0
    return Selection(chosen, warnings, store_runs, left_out)


# ---------------------------------------------------------------- the comparison

@dataclass
class Comparison:
    """`nnlab compare`: one row per (run, model). `settings` and `metric_columns` say which of `columns`
    are which (each metric column's change against the baseline is `<column>_vs_baseline`); `split` is the split decisions read (validation unless asked)."""

    columns: list[str]
    rows: list[Row]
    settings: list[str]
    metrics: list[str]
    metric_columns: list[str]
    runs: list[Run]
    split: str = DECISION_SPLIT
    between_runs: list[str] = field(default_factory=list)  # what differs for the same model across runs
    warnings: list[str] = field(default_factory=list)
    # the runs by the data they read (label, run folders), each group judged on its own
    data_groups: list[tuple[str, list[str]]] = field(default_factory=list)
    models_changed: list[str] = field(default_factory=list)  # `run X adds cnn`, against its group's first run

    @property
    def frame(self) -> pd.DataFrame:
        """The rows as a pandas DataFrame with these columns."""
        return _frame(self.columns, self.rows)

    @property
    def repeated(self) -> bool:
        return any((r.get("repeats") or 1) > 1 for r in self.rows)

    @property
    def note(self) -> Optional[str]:
        """A plain-words remark when the runs differ in nothing, or only in their seed."""
        if len({r.folder for r in self.runs}) < 2:
            return None
        lines = []
        if len(self.data_groups) > 1:
            lines.append(f"these runs read {len(self.data_groups)} data sets, never judged against each other: "
                         "each is compared within its own group (" + "; ".join(
                             f"{label}: {len(folders)} run(s)" for label, folders in self.data_groups) + ")")
        if self.models_changed:  # a different set of models is a change, not noise
            lines.append("models differ between these runs: " + "; ".join(self.models_changed))
        if lines:
            return "\n".join(lines)
        if not self.between_runs:
            return "No setting differs between these runs: their metric differences are run-to-run noise."
        if self.between_runs == ["seed"]:
            return "Only the seed differs between these runs: their metric differences are run-to-run noise."
        return None


def compare_runs(runs: list[Run], metrics: Optional[list[str]] = None, split: Optional[str] = None,
                 models: Optional[list[str]] = None, sort: Optional[str] = None) -> Comparison:
    """Columns: run, model, kind, status, the settings that differ between the rows, best_epoch, epochs_run,
    repeats, then per metric `val_<m>`, `val_<m>_sd`, `test_<m>`, `test_<m>_sd`, `val_<m>_vs_baseline`,
    `test_<m>_vs_baseline`, and train_seconds."""
    available = union_in_order(run_metrics(r) for r in runs)
    chosen = checked_choices("--metric", list(dict.fromkeys(metrics)), union_in_order(
        reported_metrics(r) for r in runs)) if metrics else available
    splits = [split] if split else list(SPLITS)
    metric_columns = [metric_column(s, m) for m in chosen for s in splits]
    groups = data_groups(runs)
    runs = [run for _, members in groups for run in members]  # each data set's runs together
    rows, settings_of, warnings = [], {}, []
    for run in runs:
        run_rows = model_rows(run)
        if run.summary is None and run.status == "completed":
            warnings.append(f"{run.folder}: summary.json is missing or unreadable; "
                            "showing each model's best epoch from metrics.csv")
        base = next((r for r in run_rows if r["model"] == baseline_name(run)), None)
        for row in run_rows:
            row["_baseline"] = row is base
            for col in metric_columns:
                row.setdefault(col, NAN)
                row.setdefault(col + SD_SUFFIX, NAN)
                row[col + DELTA_SUFFIX] = (exact_difference(row[col], base.get(col, NAN))
                                           if base is not None and row is not base else NAN)
        settings_of[run.folder] = Settings.of(run.spec)
        rows.extend(run_rows)
    if models:
        checked_choices("--model", models, union_in_order([r["model"]] for r in rows))
        rows = [r for r in rows if r["model"] in models]
    settings, between = _differing_settings(rows, settings_of)
    group_of = {run.folder: label for label, members in groups for run in members}
    if len(groups) > 1:  # what differs between runs is told within each data set
        between = union_in_order(_differing_settings([r for r in rows if group_of[r["run"]] == label], settings_of)[1]
                         for label, _ in groups)
    changed = [line for _, members in groups for line in _models_changed(members, rows)]
    for row in rows:
        scope = settings_of[row["run"]]
        own = scope.baseline if row.pop("_baseline") else scope.models.get(row["model"], {})
        for key in settings:
            row[key] = scope.shared[key] if key in scope.shared else own.get(key, NAN)
    by_metric = [c for m in chosen for c in [
        *(x for s in splits for x in (metric_column(s, m), metric_column(s, m) + SD_SUFFIX)),
        *(metric_column(s, m) + DELTA_SUFFIX for s in splits)]]
    columns = [*ROW_COLUMNS, *settings, *EPOCH_COLUMNS, *by_metric, "train_seconds"]
    decide = split or DECISION_SPLIT
    if sort:  # best first within each data set: a score on other data is no rival
        rows = [r for label, _ in groups for r in sort_rows([r for r in rows if group_of[r["run"]] == label],
                                                          columns, sort, decide)]
    return Comparison(columns, rows, settings, chosen, metric_columns, runs, decide, between, [*warnings, *(w for r in runs for w in r.warnings)],
                      [(label, [r.folder for r in members]) for label, members in groups], changed)


def data_groups(runs: list[Run]) -> list[tuple[str, list[Run]]]:
    """The runs by the data they read (fingerprints.data_key), in the order each data set first appears;
    two data sets with one name are told apart by their run count's order (`churn.csv -> y (2)`)."""
    from nnlab.report.fingerprints import data_key

    groups: dict[str, tuple[str, list[Run]]] = {}
    for run in runs:
        key, label = data_key(run)
        groups.setdefault(key, (label, []))[1].append(run)
    labels = [label for label, _ in groups.values()]
    return [(label if labels.count(label) == 1 else f"{label} ({i + 1})", members)
            for i, (label, members) in enumerate(groups.values())]


def _models_changed(runs: list[Run], rows: list[Row]) -> list[str]:
    """`run B adds cnn`, `run C drops mlp`: each run's models against the first run's of its data set."""
    models = {run.folder: [r["model"] for r in rows if r["run"] == run.folder] for run in runs}
    first = models[runs[0].folder] if runs else []
    lines = []
    for run in runs[1:]:
        added = [m for m in models[run.folder] if m not in first]
        dropped = [m for m in first if m not in models[run.folder]]
        said = [f"adds {', '.join(added)}"] * bool(added) + [f"drops {', '.join(dropped)}"] * bool(dropped)
        if said:
            lines.append(f"{run.folder} {' and '.join(said)} (against {runs[0].folder})")
    return lines


def _differing_settings(rows: list[Row], settings_of: dict[str, Settings]) -> tuple[list[str], list[str]]:
    """The settings that differ between the rows (each compared across the rows it applies to), and those
    that differ between runs for the same model (what the runs changed)."""
    run_ids = list(dict.fromkeys(r["run"] for r in rows))
    baselines = [settings_of[r["run"]].baseline for r in rows if r["_baseline"]]
    by_model: dict[str, list[Row]] = {}
    for row in rows:
        if not row["_baseline"]:
            by_model.setdefault(row["model"], []).append(settings_of[row["run"]].models.get(row["model"], {}))
    shared = differing([settings_of[i].shared for i in run_ids])
    base = differing(baselines)
    settings = [k for k in dict.fromkeys([*shared, *base, *differing([d for ds in by_model.values() for d in ds])])
                if k not in ROW_COLUMNS]
    between = union_in_order([shared, base, *(differing(ds) for ds in by_model.values())])
    return settings, between


def sort_rows(rows: list[Row], columns: list[str], sort: str, split: str) -> list[Row]:
    """Best first by `sort` (`accuracy` means `<split>_accuracy`, validation by default) in the metric's
    direction; missing values last."""
    column = sort if sort in columns else metric_column(split, sort)
    higher = higher_is_better(column) if column in columns else None
    if higher is None:
        choices = [c for c in columns if higher_is_better(c) is not None and not c.endswith((DELTA_SUFFIX, SD_SUFFIX))]
        bare = [split_column(c)[1] for c in choices if c.startswith(f"{split}_")]
        raise NnlabError(f"--sort: expected one of {', '.join(dict.fromkeys([*bare, *choices]))}; got '{sort}'")
    sign = -1 if higher else 1

    def best_first(row: Row) -> tuple[bool, float]:
        value = stored_float(row.get(column))
        return math.isnan(value), 0.0 if math.isnan(value) else sign * value

    return sorted(rows, key=best_first)


def checked_choices(option: str, given: list[str], allowed: list[str]) -> list[str]:
    """`given` (names from `option`, e.g. --metric) when each is in `allowed`; else NnlabError naming them."""
    for name in given:
        if name not in allowed:
            raise NnlabError(f"{option}: expected one of {', '.join(allowed)}; got '{name}'")
    return given


def union_in_order(lists: Iterable[Iterable[T]]) -> list[T]:
    """Every item of the lists once, in the order first seen."""
    return list(dict.fromkeys(item for items in lists for item in items))


# ---------------------------------------------------------------- within noise

def noise_lines(comparison: Comparison, metric: Optional[str] = None) -> list[str]:
    """Each model's later rows against its first (oldest) row on the decision split, in words:
    `dropout 0.3: +0.0040 ± 0.0060 accuracy — within noise` (the rule: noise.py)."""
    if not comparison.rows:
        return []
    if not comparison.repeated:  # nothing to judge by; say how, where a network has rows to compare (the
        # baseline's convex fit gives the same numbers whatever the seed)
        models = [row["model"] for row in comparison.rows if row["model"] != "baseline"]
        return [SINGLE_RUNS] if len(set(models)) < len(models) else []
    metric = metric or primary_metric(comparison)
    column = metric_column(comparison.split, metric)
    short = short_keys(comparison.settings)
    first: dict[tuple[str, str], Row] = {}
    group_of = {run: label for label, runs in comparison.data_groups for run in runs}
    lines = []
    for row in comparison.rows:  # each model against its first row on the same data: other data is no reference
        ref = first.setdefault((group_of.get(row["run"], ""), row["model"]), row)
        if ref is row or (row.get("repeats") or 1) == (ref.get("repeats") or 1) == 1:
            continue  # single runs on both sides: no spread to tell noise by
        change = difference(column, ref, row)
        if math.isnan(change.delta):
            continue
        changed = [f"{short[k]} {format_value(row.get(k), None)}" for k in comparison.settings
                   if row.get(k) != ref.get(k) and not _both_missing(row.get(k), ref.get(k))]
        label = ", ".join(changed) or row["run"]
        verdict = change.verdict or "no spread to judge by"
        lines.append(f"{row['model']} {label}: {change.text()} {metric} — {verdict}")
    if lines:
        lines.insert(0, f"{comparison.split} {metric} against each model's first row"
                        + (" on the same data" if len(comparison.data_groups) > 1 else "")
                        + " (within noise: |Δ| < sqrt(sd_a² + sd_b²), the members' spreads):")
    return lines


def primary_metric(comparison: Comparison) -> str:
    """The metric differences are told in: the spec's first metric other than the loss, else the loss."""
    return next((m for m in comparison.metrics if m != "loss"), comparison.metrics[0] if comparison.metrics else "loss")


def _both_missing(a: object, b: object) -> bool:
    return all(isinstance(v, float) and math.isnan(v) for v in (a, b))


def best_rows(columns: list[str], rows: list[Row], split: Optional[str] = None) -> dict[str, set[int]]:
    """Positions of the best value of each metric column (all of them on a tie), where two or more rows have
    one; only the `split` columns when a split is given (the decision split is what gets highlighted)."""
    from nnlab.core.columns import best_positions

    best: dict[str, set[int]] = {}
    for col in columns:
        if higher_is_better(col) is None or col.endswith((DELTA_SUFFIX, SD_SUFFIX)) or col == "train_seconds":
            continue
        if split and split_column(col)[0] not in (split, None):
            continue
        positions = best_positions([row.get(col) for row in rows], col)
        if positions:
            best[col] = positions
    return best
