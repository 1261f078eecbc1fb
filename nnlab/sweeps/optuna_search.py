"""Bayesian search: Optuna's TPE sampler over a sweep's space, through Optuna's ask/tell interface.

    nnlab sweep SPEC --search optuna --trials 20 --batch 4 --space 'train.optimizer.lr=loguniform(1e-4,1e-1)'

The space is the random search's (sweeps/space.py), each distribution as Optuna's own: uniform -> a float,
loguniform -> a log-scaled float (integer bounds: a log-scaled integer), int -> an integer, choice -> a
categorical over the values (over their positions when a value is a list or a mapping, which Optuna's
categoricals cannot hold). Every trial is an ordinary sweep point with its own run folder under the
sweep's id. The sampler is seeded with the spec's seed, so the same command asks the same first trials.

Batches: `--batch K` asks K trials at once (TPE's constant liar keeps them apart) and trains them as one
sweep (SweepPlan.units): trials that differ only in stackable settings train as one stack. Each trial is
told its monitored validation metric (the best model's, the baseline left out; direction from the
monitor); a trial with no score is told failed. With batch 1 each trial trains alone in this process and
Optuna's median pruner reads every epoch's monitored validation metric through the run's per-epoch
reporter; when it says prune, the run stops there (its run folder reads interrupted, "by Optuna's
MedianPruner at epoch N", keeping its best epoch) and the trial is told pruned. Stacked trials are not pruned.

The study lives in the sweep's folder (runstore: runs/.sweeps/<id>/study.db, SQLite, next to search.json,
what the command asked), so `nnlab sweep --resume ID` continues a cut-off search: finished trials (complete,
pruned or failed) are kept and never asked again; a trial that was running when the search was cut off is
marked failed in the study (its run folder reads interrupted) and a fresh trial is asked in its place, so
the search ends with N finished trials. Optuna is imported only here, and only when a search asks for it.
"""

from __future__ import annotations

import dataclasses
import math
import re
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Literal, Optional

from pydantic import BaseModel, Field

from nnlab import runstore
from nnlab.core.columns import higher_is_better, metric_name
from nnlab.core.interrupts import Interrupted
from nnlab.core.jsonvalue import JSONValue
from nnlab.errors import NnlabError, RunError, SpecError
from nnlab.runstore.layout import SEARCH_FILE, STUDY_FILE, sweep_path, to_json, write_atomic
from nnlab.runstore.liveness import RunLock, try_lock
from nnlab.spec import MAX_SWEEP_POINTS, load_spec
from nnlab.sweeps import grid, space as spaces
from nnlab.sweeps.executors.units import Executor, Unit, UnitResult, run_unit

if TYPE_CHECKING:
    import optuna

    from nnlab.training.state import EpochRecord

SEARCHES = ("optuna",)
INSTALL = "pip install -e '.[search]' in the nnlab checkout"
_SWEEP_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")  # what new_sweep_id makes; never a path


class SpaceEntry(BaseModel):
    key: str
    name: str
    args: list[object]  # JSON values, as the space was parsed


class SearchRecord(BaseModel):
    """search.json: what the search command asked, so that `sweep --resume ID` repeats it exactly."""

    sweep: str
    search: Literal["optuna"] = "optuna"
    spec_path: str  # absolute: --resume may run from another folder
    space: list[SpaceEntry]
    trials: int = Field(ge=1)
    batch: int = Field(ge=1)
    seed: int
    monitor: str
    direction: Literal["minimize", "maximize"]
    models: list[str]
    common: list[str] = Field(default_factory=list)  # --set and repeats=N, every trial's overrides
    note: str = ""
    smoke: bool = False
    pruner: Literal["median"] = "median"
    spec: dict[str, object] = Field(default_factory=dict)  # resolved (with --set): a resume trains the same


def require_optuna() -> None:
    """Optuna is an extra: one line saying how to install it when it is missing."""
    import importlib.util

    if importlib.util.find_spec("optuna") is None:
        raise NnlabError(f"--search optuna: Optuna is not installed; {INSTALL}")


def check_options(search: Optional[str], trials: Optional[int], batch: Optional[int]) -> None:
    if search is not None and search not in SEARCHES:
        raise SpecError(f"--search {search}: allowed: {', '.join(SEARCHES)}")
    if trials is not None and trials < 1:
        raise SpecError(f"--trials {trials}: at least 1")
    if trials is not None and trials > MAX_SWEEP_POINTS:
        raise SpecError(f"--trials {trials:,}: at most {MAX_SWEEP_POINTS:,}")
    if batch is not None and batch < 1:
        raise SpecError(f"--batch {batch}: at least 1")


# --- the space as Optuna's distributions -------------------------------------------------------------

def _by_position(d: spaces.Distribution) -> bool:
    """Optuna's categoricals hold None, bools, numbers and strings; a choice of lists is over positions."""
    return any(isinstance(value, (list, dict)) for value in d.args)


def optuna_distribution(d: spaces.Distribution) -> optuna.distributions.BaseDistribution:
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    if d.name == "choice":
        return CategoricalDistribution(list(range(len(d.args))) if _by_position(d) else list(d.args))
    lo, hi = d.args
    if d.integers:
        return IntDistribution(int(lo), int(hi), log=d.name == "loguniform")
    return FloatDistribution(float(lo), float(hi), log=d.name == "loguniform")


def setting(d: spaces.Distribution, param: object) -> JSONValue:
    """The value a trial's parameter stands for: a choice's value at the asked position."""
    if d.name == "choice" and _by_position(d):
        return d.args[int(param)]  # type: ignore[call-overload]
    if isinstance(param, float):  # four significant digits, as the random search's; trained as shown
        return spaces.readable(param, float(d.args[1]))
    return param  # type: ignore[return-value]


def corner_points(space: list[spaces.Distribution]) -> list[grid.Point]:
    """Points that try every choice and both bounds of every range at least once: checked as `train` would
    before anything trains (a trial's values lie between them)."""
    values = [list(d.args) for d in space]
    return [grid.Point(tuple((d.key, v[min(j, len(v) - 1)]) for d, v in zip(space, values)))
            for j in range(max(len(v) for v in values))]


# --- planning: everything checked, nothing written ----------------------------------------------------

def plan_optuna(spec_path: Path, space_options: list[str], trials: Optional[int], batch: Optional[int],
                grid_options: list[str] = (), sample: Optional[int] = None, one_at_a_time: bool = False,
                repeats: Optional[int] = None, note: str = "", smoke: bool = False,
                overrides: list[str] = ()) -> OptunaSearch:
    """Check the command and the space (each choice and bound planned as `train` would); writes nothing."""
    check_options("optuna", trials, batch)
    if sample is not None:
        raise SpecError("--sample: draws a random search; with --search optuna give --trials N")
    if grid_options:
        raise SpecError("--grid: not with --search optuna; give the key as --space KEY=choice(v1,v2,...)")
    if one_at_a_time:
        raise SpecError("--one-at-a-time: varies a grid's keys one by one; not with --search optuna")
    require_optuna()
    spec, _ = load_spec(spec_path, list(overrides))
    space = spaces.space_of(spec, space_options)
    if not space:
        raise SpecError("--search optuna: nothing to search; give --space KEY=DIST (e.g. "
                        "train.optimizer.lr=loguniform(1e-4,1e-2)) or a sweep.space section in the spec")
    if trials is None:
        raise SpecError("--search optuna: how many trials? give --trials N")
    higher = higher_is_better(spec.monitor)
    common = [*overrides, *([f"repeats={repeats}"] if repeats else [])]
    grid.check_points(spec_path, corner_points(space), common, smoke)
    record = SearchRecord(sweep=grid.new_sweep_id(spec.name), spec_path=str(Path(spec_path).resolve()),
                          space=[SpaceEntry(key=d.key, name=d.name, args=list(d.args)) for d in space],
                          trials=trials, batch=batch or 1, seed=spec.seed, monitor=spec.monitor,
                          direction="maximize" if higher else "minimize", models=[m.name for m in spec.models],
                          common=common, note=note, smoke=smoke, spec=spec.resolved())
    return OptunaSearch(record)


def resume_search(sweep_id: str, store: Path, trials: Optional[int] = None) -> OptunaSearch:
    """The search `sweep_id` of `store` as its command asked it (`trials` raises or lowers its count)."""
    check_options(None, trials, None)
    folder = sweep_path(store, sweep_id) if _SWEEP_ID.match(sweep_id) else None
    if folder is None or not (folder / SEARCH_FILE).is_file():
        raise RunError(f"--resume {sweep_id}: no search of that id in {store} (an Optuna search keeps its "
                       f"study in {store / '.sweeps'}/<sweep id>/; a grid or random sweep does not resume)")
    require_optuna()
    try:
        record = SearchRecord.model_validate_json((folder / SEARCH_FILE).read_text())
    except (OSError, ValueError) as e:
        raise RunError(f"--resume {sweep_id}: {folder / SEARCH_FILE} is unreadable ({str(e).splitlines()[0]})")
    _check_unchanged(record, sweep_id)
    if trials is not None:
        record = record.model_copy(update={"trials": trials})
    return OptunaSearch(record)


def _check_unchanged(record: SearchRecord, sweep_id: str) -> None:
    """The spec file must still be what the search began with: its trials are compared with each other."""
    from nnlab.core.settings import changes_since

    overrides = [o for o in record.common if not o.startswith("repeats=")]
    spec, _ = load_spec(record.spec_path, overrides)
    changed = changes_since(record.spec, spec.resolved()) if record.spec else []
    if changed:
        raise SpecError(f"--resume {sweep_id}: {record.spec_path} changed since the search began ({changed[0]}"
                        f"{f' and {len(changed) - 1} more' if len(changed) > 1 else ''}); put it back, or start "
                        "a new search")


# --- pruning through the run's per-epoch reporter ---------------------------------------------------------

class Pruned(Interrupted):
    """Optuna's pruner stopped a trial's run after an epoch: the run ends as an interrupted one does (its best
    epoch kept), and run.json says which pruner stopped it where."""

    def __init__(self, pruner: str, epoch: int, monitor: str, value: float):
        super().__init__(signal.SIGINT)
        self.pruner, self.epoch, self.monitor, self.value = pruner, epoch, monitor, value

    @property
    def signal_name(self) -> str:  # run.json's error: "interrupted by Optuna's MedianPruner at epoch 3 (...)"
        return f"Optuna's {self.pruner} at epoch {self.epoch} ({self.monitor} {self.value:.4g})"


class _PruningReport:
    """run.session's Reporter for one trial: every epoch of the spec's first model (its first repeat) goes to
    the trial, and the pruner's verdict is asked after each. The rest of the Reporter is silent."""

    def __init__(self, trial: optuna.Trial, monitor: str, model: str):
        self.trial, self.monitor, self.model = trial, monitor, model
        self.path: Optional[Path] = None

    def run_created(self, path: Path) -> None:
        self.path = path

    def changes(self, previous: object, lines: object) -> None: ...
    def data_ready(self, spec: object, prepared: object, device: str) -> None: ...
    def model_started(self, name: str, kind: str, params: int, epochs: int, members: int) -> None: ...
    def model_finished(self, result: object) -> None: ...

    def epoch(self, record: EpochRecord) -> None:
        value = record.values.get(self.monitor)
        if record.model != self.model or record.member != 0 or value is None or not math.isfinite(value):
            return
        self.trial.report(float(value), record.epoch)
        if self.trial.should_prune():
            raise Pruned(type(self.trial.study.pruner).__name__, record.epoch, self.monitor, float(value))


# --- the search --------------------------------------------------------------------------------------

def _trial_value(result: UnitResult, monitor: str, maximize: bool) -> Optional[float]:
    """The trial's score: the best model's monitored validation metric in its run (the baseline left out)."""
    if result.path is None:
        return None
    try:
        summary = runstore.read_run(Path(result.path)).summary
    except NnlabError:
        return None
    if summary is None:
        return None
    scores = [model.score("val", metric_name(monitor)) for name, model in summary.models.items()
              if name != summary.baseline]
    scores = [s for s in scores if s is not None and math.isfinite(s)]
    return (max(scores) if maximize else min(scores)) if scores else None


class OptunaSearch:
    """One study, asked in batches. `plan` holds every trial's point (point i is trial i) for the sweep's
    table; `results` every finished trial's UnitResult, earlier runs' (resumed) included."""

    def __init__(self, record: SearchRecord, pruner: Optional[optuna.pruners.BasePruner] = None):
        self.record = record
        self.space = [spaces.Distribution(e.key, e.name, tuple(e.args)) for e in record.space]
        self.plan = grid.SweepPlan(record.sweep, Path(record.spec_path), record.monitor, [], 0, False, False,
                                   list(record.models), list(record.common), record.note, record.smoke)
        self.results: dict[int, UnitResult] = {}
        self.cut_off: list[int] = []  # trials an earlier, cut-off search left running: marked failed
        self.pruned: set[int] = set()  # trials the pruner stopped (their runs read interrupted)
        self._pruner = pruner
        self.study: Optional[optuna.Study] = None
        self._lock: Optional[RunLock] = None

    @property
    def id(self) -> str:
        return self.record.sweep

    @property
    def finished(self) -> int:
        return len(self.results)

    def open(self, store: Path) -> None:
        """Create (or reopen) the sweep's folder and its study; earlier trials become points and results."""
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)  # its INFO lines would drown the sweep's
        runstore.check_store(store)
        folder = sweep_path(store, self.id)
        folder.mkdir(parents=True, exist_ok=True)
        # One process asks a study at a time: two would both train up to N trials.
        self._lock, (pid, _) = try_lock(folder, self.id, "searched")
        if self._lock is None:
            raise RunError(f"--resume {self.id}: the search is running in PID {pid}; wait for it to end (or stop "
                           "it), then resume it")
        write_atomic(folder / SEARCH_FILE, to_json(self.record.model_dump(mode="json")))
        storage = f"sqlite:///{(folder / STUDY_FILE).resolve()}"
        earlier = optuna.create_study(storage=storage, study_name=self.id, load_if_exists=True,
                                      direction=self.record.direction)
        # A fresh seed after each earlier trial: a resumed search must not draw its first trials again.
        sampler = optuna.samplers.TPESampler(seed=self.record.seed + len(earlier.trials))
        self.study = optuna.create_study(storage=storage, study_name=self.id, load_if_exists=True,
                                         direction=self.record.direction, sampler=sampler,
                                         pruner=self._pruner or optuna.pruners.MedianPruner())
        for trial in self.study.get_trials(deepcopy=False):
            self.plan.points.append(self._point(trial.params))
            if trial.state == optuna.trial.TrialState.RUNNING:
                self.study.tell(trial.number, state=optuna.trial.TrialState.FAIL)  # killed: never finished
                self.cut_off.append(trial.number)
            elif trial.user_attrs.get("cut_off"):  # stopped by a signal, and marked failed then
                self.cut_off.append(trial.number)
            elif "status" in trial.user_attrs:
                a = trial.user_attrs
                if trial.state == optuna.trial.TrialState.PRUNED:
                    self.pruned.add(trial.number)
                self.results[trial.number] = UnitResult(trial.number, a["status"], a.get("run_id"), a.get("path"),
                                                        a.get("message", ""))

    def _point(self, params: dict[str, object]) -> grid.Point:
        return grid.Point(tuple((d.key, setting(d, params[d.key])) for d in self.space if d.key in params))

    def run(self, executor: Executor, stacks: int, store: Path, here: bool = True) -> Iterator[UnitResult]:
        """Ask, train and tell batch after batch until the study holds `trials` finished trials; yields each
        trial's result as it ends (its index is the trial's number). A batch of one trains in this process
        with the pruner when `here` (the local executor), else it goes to `executor` like any batch.
        Closing it early (an interrupt) marks the trials still training failed; a resume asks fresh ones."""
        import optuna

        assert self.study is not None, "open() first"
        distributions = {d.key: optuna_distribution(d) for d in self.space}
        asked: dict[int, optuna.Trial] = {}
        try:
            while self.finished < self.record.trials:
                for _ in range(min(self.record.batch, self.record.trials - self.finished)):
                    trial = self.study.ask(distributions)
                    asked[trial.number] = trial
                    while len(self.plan.points) <= trial.number:
                        self.plan.points.append(grid.Point())
                    self.plan.points[trial.number] = self._point(trial.params)
                batch = dataclasses.replace(self.plan, points=[self.plan.points[n] for n in asked])
                units = [_renumbered(unit, list(asked)) for unit in batch.units(store, stacks)]
                if len(asked) == 1 and here:  # alone: trains here, with the pruner reading every epoch
                    number, trial = next(iter(asked.items()))
                    results = iter([self._pruned_run(units[0], trial)])
                else:
                    results = executor.run(units)
                try:
                    for result in results:
                        self._tell(asked.pop(result.index), result)
                        yield result
                finally:
                    close = getattr(results, "close", None)
                    if close:
                        close()
        finally:
            for trial in asked.values():  # cut off: never told a value; a resume asks afresh
                trial.set_user_attr("cut_off", True)
                self.study.tell(trial, state=optuna.trial.TrialState.FAIL)
            self.close()

    def close(self) -> None:
        """Let another process ask the study (the lock also goes when this process ends, however it ends)."""
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def _pruned_run(self, unit: Unit, trial: optuna.Trial) -> UnitResult:
        report = _PruningReport(trial, self.record.monitor, self.record.models[0])
        try:
            return run_unit(unit, report)
        except KeyboardInterrupt as stop:
            pruned = getattr(stop, "cause", stop)
            if not isinstance(pruned, Pruned):
                raise
            run_id = None
            if report.path is not None:
                try:
                    run_id = runstore.read_run(report.path).id
                except NnlabError:
                    pass
            self.pruned.add(unit.index)
            return UnitResult(unit.index, "interrupted", run_id, str(report.path) if report.path else None,
                              f"pruned at epoch {pruned.epoch}")

    def _tell(self, trial: optuna.Trial, result: UnitResult) -> None:
        from optuna.trial import TrialState

        for key, value in (("status", result.status), ("run_id", result.run_id), ("path", result.path),
                           ("message", result.message)):
            trial.set_user_attr(key, value)
        self.results[trial.number] = result
        if trial.number in self.pruned:
            self.study.tell(trial, state=TrialState.PRUNED)
            return
        value = _trial_value(result, self.record.monitor, self.record.direction == "maximize")
        if value is None:
            self.study.tell(trial, state=TrialState.FAIL)
        else:
            self.study.tell(trial, value)


def _renumbered(unit: Unit, numbers: list[int]) -> Unit:
    """A batch's unit with its points' indices as trial numbers (stacked points included)."""
    return dataclasses.replace(unit, index=numbers[unit.index],
                               stacked=tuple(dataclasses.replace(u, index=numbers[u.index]) for u in unit.stacked))
