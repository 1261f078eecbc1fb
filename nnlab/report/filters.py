"""Finding runs: `--where 'val_loss<0.2' --where 'model=mlp'`, `--tag T`, `--note TEXT` (and `rm`'s
`--status`, `--smoke`, `--older-than 30d`), one `RunFilter` for `runs`, `compare`, `report` and `rm`.

A `--where` condition reads KEY OP VALUE with OP one of `<`, `<=`, `>`, `>=`, `=` (`==`), `!=`. KEY is
- a run field: id, name, status, sweep, smoke, seed, tags, note;
- a model field: model, kind, best_epoch, epochs_run, repeats, params, or a score `val_<metric>` /
  `test_<metric>` (val_loss, test_accuracy...);
- a setting of the resolved spec by its dotted key (train.epochs, train.optimizer.lr, data.path).
All conditions hold together, and the model conditions for one model of the run: `val_loss<0.2` with
`model=mlp` keeps the runs whose mlp has a validation loss under 0.2. `=` on text is a glob (`model=mlp*`);
on `tags` it asks whether the run has that tag. A key no run has is an error naming it (a typo is not
"no match"); a malformed condition is a one-line error naming the filter.
"""

from __future__ import annotations

import math
import operator
import re
import time
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Callable, Iterable, Optional, Union

from nnlab.core.messages import shorten
from nnlab.core.settings import flatten
from nnlab.errors import NnlabError
from nnlab.report.rows import model_rows
from nnlab.runstore import Run
from nnlab.runstore.liveness import iso_seconds

Value = Union[str, float, int, bool, None, list]

_CONDITION = re.compile(r"^\s*([A-Za-z_][\w.\-]*?)\s*(<=|>=|!=|==|=|<|>)\s*(.*?)\s*$")
_OPS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}
RUN_KEYS = ("id", "name", "status", "sweep", "smoke", "seed", "tags", "note")
MODEL_KEYS = ("model", "kind", "best_epoch", "epochs_run", "repeats", "params")
_RUNS_READ, _MODELS_READ = "\0runs", "\0models"  # marks in `seen`: some run's (model) fields were read
_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_AGE_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


@dataclass(frozen=True)
class Condition:
    text: str  # as given, for messages
    key: str
    op: str
    value: str
    number: Optional[float]  # the value as a number, where it reads as one

    @classmethod
    def parse(cls, text: str) -> Condition:
        found = _CONDITION.match(text) if isinstance(text, str) else None
        if not found or not found.group(3):
            raise NnlabError(f"--where {shorten(repr(text), 60)}: expected KEY OP VALUE with OP one of <, <=, >, "
                             ">=, =, != (e.g. 'val_loss<0.2' or 'model=mlp')")
        key, op, value = found.groups()
        number = _number(value)
        if op in _OPS and number is None:
            raise NnlabError(f"--where {shorten(repr(text), 60)}: '{op}' compares numbers; "
                             f"{shorten(repr(value))} is not a number")
        return cls(text, key, "=" if op == "==" else op, value, number)

    @property
    def on_model(self) -> bool:
        return self.key in MODEL_KEYS or self.key.startswith(("val_", "test_"))

    def holds(self, fields: dict[str, Value]) -> bool:
        have = fields.get(self.key)
        if self.op in _OPS:
            return isinstance(have, (int, float)) and not isinstance(have, bool) and not math.isnan(have) \
                and _OPS[self.op](float(have), self.number)  # type: ignore[arg-type]
        equal = self._equal(have)
        return equal if self.op == "=" else not equal

    def _equal(self, have: Value) -> bool:
        if isinstance(have, list):
            return any(self._equal(item) for item in have)
        if isinstance(have, bool) or self.value.lower() in ("true", "false"):
            return str(have).lower() == self.value.lower()
        if isinstance(have, (int, float)) and self.number is not None:
            return not math.isnan(have) and float(have) == self.number
        return have is not None and fnmatchcase(str(have), self.value)


def parse_age(text: str, where: str = "--older-than") -> float:
    """`30d`, `12h`, `90m`, `45s`, `2w` as seconds; NnlabError naming `where` otherwise."""
    found = _AGE.match(text) if isinstance(text, str) else None
    if not found:
        raise NnlabError(f"{where}: {shorten(repr(text))} is not an age; write a number and a unit, e.g. 30d, "
                         "12h, 90m, 45s or 2w")
    return float(found.group(1)) * _AGE_SECONDS[found.group(2)]


@dataclass
class RunFilter:
    """What `--where`, `--tag`, `--note` (and rm's `--status`, `--smoke`, `--older-than`) ask of a run."""

    conditions: list[Condition] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)  # every one of them
    note: Optional[str] = None  # a part of the run's note or of a later note (any case)
    status: Optional[str] = None
    smoke: Optional[bool] = None
    older_than: Optional[float] = None  # seconds since the run started

    @classmethod
    def parse(cls, where: Iterable[str] = (), tags: Iterable[str] = (), note: Optional[str] = None,
              status: Optional[str] = None, smoke: Optional[bool] = None,
              older_than: Optional[str] = None) -> RunFilter:
        """Raises NnlabError (one line, naming the filter) for a malformed condition or age."""
        return cls([Condition.parse(c) for c in where or ()], list(tags or ()), note or None, status, smoke,
                   parse_age(older_than) if older_than else None)

    def __bool__(self) -> bool:
        return bool(self.conditions or self.tags or self.note or self.status or self.smoke is not None
                    or self.older_than is not None)

    def apply(self, runs: list[Run]) -> list[Run]:
        """The runs that pass, in their order. NnlabError for a `--where` key that none of `runs` has."""
        if not self:
            return runs
        seen: set[str] = set()
        now = time.time()
        kept = [run for run in runs if self._keeps(run, seen, now)]
        # a key is unknown when runs were looked at for it and none had it (not when other filters left none)
        unknown = [c for c in self.conditions if c.key not in seen and (_MODELS_READ if c.on_model else _RUNS_READ) in seen]
        if unknown:
            raise NnlabError(f"--where {shorten(repr(unknown[0].text), 60)}: no run has a field "
                             f"'{shorten(unknown[0].key)}'; fields: {', '.join(RUN_KEYS + MODEL_KEYS)}, scores "
                             "val_<metric> and test_<metric> (val_loss), and the spec's settings (train.epochs)")
        return kept

    def _keeps(self, run: Run, seen: set[str], now: float) -> bool:
        meta = run.meta
        if self.status and run.status != self.status:
            return False
        if self.smoke is not None and run.smoke != self.smoke:
            return False
        if any(tag not in meta.tags for tag in self.tags):
            return False
        if self.note and not any(self.note.lower() in text.lower()
                                 for text in [meta.note or "", *(n.text for n in meta.notes)]):
            return False
        if self.older_than is not None:
            started = iso_seconds(meta.first_started_at or meta.started_at)
            if started is None or now - started < self.older_than:
                return False
        if not self.conditions:
            return True
        settings = flatten(run.spec) if any(not c.on_model and c.key not in RUN_KEYS for c in self.conditions) \
            else {}  # flattening 1,000 specs costs: only when a condition reads a setting
        fields: dict[str, Value] = {**settings, "id": run.folder, "name": run.name, "status": run.status,
                                    "sweep": meta.sweep, "smoke": run.smoke, "seed": meta.seed, "tags": meta.tags,
                                    "note": meta.note}
        on_run = [c for c in self.conditions if not c.on_model]
        seen.update([_RUNS_READ, *(c.key for c in on_run if c.key in fields)])
        if not all(c.holds(fields) for c in on_run):
            return False
        on_model = [c for c in self.conditions if c.on_model]
        if not on_model:
            return True
        results = run.summary.models if run.summary else {}
        matched = False
        seen.add(_MODELS_READ)
        for row in model_rows(run):
            result = results.get(row["model"])
            row = {**row, "params": result.params if result else None}
            seen.update(c.key for c in on_model if c.key in row)
            matched = matched or all(c.holds(row) for c in on_model)
        return matched


def filter_runs(runs: list[Run], where: Iterable[str] = (), tags: Iterable[str] = (),
                note: Optional[str] = None) -> list[Run]:
    """The one function the read commands (runs, compare, report) and the API filter with."""
    return RunFilter.parse(where, tags, note).apply(runs)


def _number(text: str) -> Optional[float]:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None
