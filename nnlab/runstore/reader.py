"""Reading run folders back as typed records, tolerantly: a damaged entry is a warning, never a crash.

`Run.meta` is run.json as a `records.RunMeta`, `Run.summary` summary.json as a `records.RunSummary` (None
while a run has none, or when it is damaged); both are validated when read. What could not be read is a
one-line warning: on the run (`Run.warnings`) for its summary and metrics, from `list_runs` for a folder
that is not a readable run (symlink loops, unreadable files, wrong types, JSON nested past reason).
Whether a `running` run is still alive is `liveness.py`'s rule.
"""

from __future__ import annotations

import json
import math
import os
import re
from itertools import accumulate
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from nnlab.errors import RunError
from nnlab.core.files import DamagedFile, read_regular  # noqa: F401  (re-exported: the store's errors)
from nnlab.core.records import FORMAT_VERSION, EnsembleInfo, ModelInfo, RunMeta, RunSummary, parse_record
from nnlab.runstore.layout import (CURVES_FILE, ERRORS_DIR, METRICS_FILE, MODELS_DIR, PREDICTIONS_DIR, RUN_FILE, SPEC_FILE,
                                   SUMMARY_FILE, LAST_REF)
from nnlab.runstore.liveness import effective_status
from nnlab.core.jsonvalue import JSONObject, JSONValue

if TYPE_CHECKING:
    import pandas as pd
    import torch

MAX_JSON_BYTES = 64 * 2**20  # a run.json with a large spec is well under a megabyte
MAX_PREDICTIONS_BYTES = 1 * 2**30  # val and test rows only: a million rows of ten classes is about 200 MiB
MAX_WEIGHTS_BYTES = 4 * 2**30  # nnlab's networks are far smaller; a bound on what one file may make us read
MAX_JSON_DEPTH = 100  # deeper nesting is no run record (and would exhaust recursion in readers)


def read_json(path: Path) -> JSONValue:
    """A JSON file's value; DamagedFile (one line) when it cannot be read or parsed; FileNotFoundError
    passes through (a missing file is the caller's question)."""
    raw = read_regular(path, MAX_JSON_BYTES)
    try:
        data = json.loads(raw.decode("utf-8"))
    except RecursionError:
        raise DamagedFile(f"{path}: unreadable (JSON nested too deeply)") from None
    except ValueError as e:  # bad UTF-8 or bad JSON
        raise DamagedFile(f"{path}: unreadable ({str(e).splitlines()[0][:120]})") from None
    if _nested_too_deeply(raw):
        raise DamagedFile(f"{path}: unreadable (JSON nested deeper than {MAX_JSON_DEPTH} levels)")
    return data


_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKET = bytes(c for c in range(256) if c not in b"[]{}")


def _nested_too_deeply(raw: bytes) -> bool:
    """Whether a JSON text nests deeper than MAX_JSON_DEPTH: its brackets outside strings, counted without
    parsing (run.json is read for every run of a store, so the usual case is one count of brackets)."""
    if raw.count(b"[") + raw.count(b"{") <= MAX_JSON_DEPTH:
        return False
    brackets = _JSON_STRING.sub(b"", raw).translate(None, _NOT_BRACKET)
    return max(accumulate(1 if c in b"[{" else -1 for c in brackets), default=0) > MAX_JSON_DEPTH


@dataclass
class Run:
    """A run folder read back. `meta` is run.json; the summary and metrics are read on first use."""

    path: Path
    meta: RunMeta
    warnings: list[str] = field(default_factory=list)

    @property
    def id(self) -> str:
        return self.meta.id

    @property
    def folder(self) -> str:
        """The folder's name: unique in a store, even where a copied folder repeats another run's id."""
        return self.path.name

    @property
    def name(self) -> str:
        return self.meta.name

    @property
    def note(self) -> str:
        return self.meta.note or ""

    @property
    def started_at(self) -> str:
        return self.meta.started_at or ""

    @property
    def smoke(self) -> bool:
        return bool(self.meta.smoke)

    @cached_property
    def status(self) -> str:
        """run.json's status, except that a `running` run whose process is gone reads as `interrupted`."""
        return effective_status(self.meta, self.path / METRICS_FILE)

    @cached_property
    def spec(self) -> JSONObject:
        """The resolved spec: from run.json, else (a run.json without it) from spec.yaml."""
        if self.meta.spec:
            return self.meta.spec
        from nnlab.errors import SpecError
        from nnlab.core.yamlfile import read_spec_file  # the one bounded YAML reader: a spec.yaml may be hostile

        try:
            spec = read_spec_file(self.path / SPEC_FILE) if (self.path / SPEC_FILE).exists() else {}
        except SpecError as e:
            self.warnings.append(f"{self.folder}: {e}")
            return {}
        return spec if isinstance(spec, dict) else {}

    @cached_property
    def summary(self) -> Optional[RunSummary]:
        """summary.json, validated; None while the run has none, or (with a warning) when it is damaged."""
        path = self.path / SUMMARY_FILE
        try:
            data = read_json(path)
        except FileNotFoundError:
            return None
        except DamagedFile as e:
            self.warnings.append(f"{self.folder}: {e}; its models are read from {METRICS_FILE}")
            return None
        summary, problem = parse_record(RunSummary, _upgrade_summary(data), str(path))
        if problem:
            self.warnings.append(f"{self.folder}: {problem}; its models are read from {METRICS_FILE}")
            return None
        if summary.format_version > FORMAT_VERSION:
            self.warnings.append(f"{self.folder}: {path.name} format version {summary.format_version} is newer "
                                 f"than this nnlab reads ({FORMAT_VERSION}); upgrade nnlab")
            return None
        return summary  # type: ignore[return-value]

    def metrics(self) -> pd.DataFrame:
        """metrics.csv as a pandas DataFrame: numeric columns as numbers, `member` 0 where an older run has
        none; a last line that a crash cut short, binary bytes and rows that do not parse are dropped."""
        from nnlab.runstore.history import read_history

        frame, problems = read_history(self.path / METRICS_FILE)
        for problem in problems:
            if problem not in self.warnings:
                self.warnings.append(problem)
        return frame

    def files(self) -> dict[str, Path]:
        """The files this run has, by what they hold."""
        found = {"run": self.path / RUN_FILE, "spec": self.path / SPEC_FILE, "metrics": self.path / METRICS_FILE,
                 "summary": self.path / SUMMARY_FILE, "curves": self.path / CURVES_FILE}
        found = {k: p for k, p in found.items() if _is_file(p)}
        for kind, folder in (("model", MODELS_DIR), ("errors", ERRORS_DIR), ("predictions", PREDICTIONS_DIR)):
            try:
                entries = sorted(p for p in (self.path / folder).iterdir() if not p.name.startswith("."))
            except OSError:  # absent, a file where the folder should be, a loop, unreadable
                continue
            for p in entries:
                found[f"{kind}:{p.name}"] = p
        return found

    def model_info(self, model: str) -> ModelInfo:
        """models/<model>.json; DamagedFile when it is no regular JSON file within MAX_JSON_BYTES, KeyError or
        ValueError (ModelInfo.parse) when it lacks a key or holds a value of the wrong type."""
        info = read_json(self.path / MODELS_DIR / f"{model}.json")
        if not isinstance(info, dict):
            raise DamagedFile(f"{model}.json: not a JSON object")
        return ModelInfo.parse(info)

    def ensemble_info(self, model: str) -> EnsembleInfo:
        """models/<model>.json of an ensemble; DamagedFile as `model_info`, ValueError when it is no
        EnsembleInfo."""
        from pydantic import ValidationError

        info = read_json(self.path / MODELS_DIR / f"{model}.json")
        try:
            return EnsembleInfo.model_validate(info)
        except ValidationError as e:
            first = e.errors()[0]
            raise ValueError(f"{'.'.join(map(str, first['loc']))}: {first['msg']}") from None

    def predictions(self, model: str) -> Optional[pd.DataFrame]:
        """predictions/<model>.csv as a pandas DataFrame (`split,row,target,prediction`, classification also
        `confidence` and `p_<label>` per class; labels stay text); None, with a warning when it is damaged,
        where the run has none (older runs, a model that never finished an epoch)."""
        import io

        import pandas as pd

        path = self.path / PREDICTIONS_DIR / f"{model}.csv"
        try:
            raw = read_regular(path, MAX_PREDICTIONS_BYTES)
            frame = pd.read_csv(io.BytesIO(raw), dtype={"split": str, "target": str, "prediction": str},
                                keep_default_na=False)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except (DamagedFile, ValueError) as e:  # ValueError: pandas' parser errors
            self.warnings.append(f"{self.folder}: {PREDICTIONS_DIR}/{model}.csv: {e}")
            return None
        if "confidence" not in frame.columns:  # regression: the target's units
            for column in ("target", "prediction"):
                if column in frame.columns:
                    frame[column] = pd.to_numeric(frame[column], errors="coerce")
        return frame

    def load_weights(self, model: str) -> dict[str, torch.Tensor]:
        """models/<model>.safetensors, read as the JSON files are (a regular file within MAX_WEIGHTS_BYTES)."""
        from safetensors.torch import load

        return load(read_regular(self.path / MODELS_DIR / f"{model}.safetensors", MAX_WEIGHTS_BYTES))


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:
        return False


def _upgrade_summary(data: JSONValue) -> JSONValue:
    """An older summary.json as today's shape: each model's entry gains its `name` from its key."""
    if isinstance(data, dict) and isinstance(data.get("models"), dict):
        models = {key: ({"name": str(key), **entry} if isinstance(entry, dict) and "name" not in entry else entry)
                  for key, entry in data["models"].items()}
        return {**data, "models": models}
    return data


def curves_path(run: Run) -> Path:
    return run.path / CURVES_FILE


def read_run(path: Path) -> Run:
    """Read one run folder; RunError (one line) says why it is not a readable run."""
    try:
        data = read_json(path / RUN_FILE)
    except FileNotFoundError:
        raise RunError(f"{path}: not a run folder (no {RUN_FILE})") from None
    except NotADirectoryError:
        raise RunError(f"{path}: a file, not a run folder") from None
    except DamagedFile as e:
        raise RunError(str(e)) from None
    if not isinstance(data, dict) or "id" not in data:
        raise RunError(f"{path / RUN_FILE}: not an nnlab run record")
    version = data.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version > FORMAT_VERSION:
        raise RunError(f"{path}: run format version {version!r} is newer than this nnlab reads "
                       f"({FORMAT_VERSION}); upgrade nnlab")
    meta, problem = parse_record(RunMeta, data, str(path / RUN_FILE))
    if problem:
        raise RunError(problem)
    warnings = []
    took = meta.duration_seconds  # type: ignore[union-attr]
    if took is not None and not (math.isfinite(took) and took >= 0):  # 1e999 and Infinity parse as inf
        warnings.append(f"{path / RUN_FILE}: duration_seconds {took} is not a number of seconds; "
                        "its duration is shown as unknown")
        meta.duration_seconds = None  # type: ignore[union-attr]
    return Run(path, meta, warnings)  # type: ignore[arg-type]


def list_runs(store: Path) -> tuple[list[Run], list[str]]:
    """Every readable run in the store, newest first, and one warning per entry that is not one."""
    runs: list[Run] = []
    warnings: list[str] = []
    try:
        entries = sorted(os.scandir(store), key=lambda e: e.name)
    except FileNotFoundError:
        return runs, warnings
    except NotADirectoryError:
        return runs, [f"the run store {store} is a file, not a folder"]
    except OSError as e:
        return runs, [f"the run store {store} is unreadable ({e.strerror or e})"]
    for entry in entries:
        if entry.name.startswith("."):
            continue  # runs being created, temporary files
        try:
            runs.append(read_run(Path(entry.path)))
        except RunError as e:
            if os.path.lexists(entry.path):  # else it was moved away (`nnlab rm`) as it was listed: not damage
                warnings.append(f"skipped {e}")
        except OSError as e:  # a symlink loop or an unreadable folder met on the way
            warnings.append(f"skipped {entry.path}: unreadable ({e.strerror or e})")
    runs.sort(key=lambda r: (r.started_at, r.id, r.folder), reverse=True)
    return runs, warnings


def resolve_run(ref: str, store: Path, listed: Optional[list[Run]] = None) -> Run:
    """A run from a reference: a path to its folder, its folder name or id, a unique prefix of either,
    `last` or `last~N`. An exact folder name wins over an id that a copied folder repeats; a reference that
    still matches several runs is an error listing their folders. `listed`: the store's runs, when the
    caller has listed them already."""
    as_path = Path(ref)
    if _is_file(as_path / RUN_FILE):
        return read_run(as_path)
    runs = listed if listed is not None else list_runs(store)[0]
    last = LAST_REF.match(ref)
    if last:
        back = int(last.group(1) or 0)
        if back >= len(runs):
            raise RunError(f"run '{ref}': the store {store} has {len(runs)} run(s)")
        return runs[back]
    for matches in ([r for r in runs if r.folder == ref], [r for r in runs if r.id == ref],
                    [r for r in runs if r.folder.startswith(ref) or r.id.startswith(ref)]):
        if len(matches) == 1:
            return matches[0]
        if matches:
            listed = ", ".join(str(r.path) for r in matches[:8]) + (" ..." if len(matches) > 8 else "")
            raise RunError(f"run '{ref}' is ambiguous: it matches {len(matches)} runs ({listed}); "
                           "name one by its folder")
    known = ", ".join(r.folder for r in runs[:5]) + (" ..." if len(runs) > 5 else "")
    raise RunError(f"run '{ref}': no such run in {store} "
                   + (f"(newest: {known}; or use last, last~N)" if runs else "(the store is empty)"))
