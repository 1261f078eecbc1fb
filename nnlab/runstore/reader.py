"""Reading run folders back, tolerantly: a folder that is not a readable run is a warning, never a crash."""

from __future__ import annotations

import io
import json
import os
import socket
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml

from nnlab.errors import RunError
from nnlab.runstore.layout import (CURVES_FILE, ERRORS_DIR, FORMAT_VERSION, METRICS_FILE, MODELS_DIR, RUN_FILE,
                                   SPEC_FILE, SUMMARY_FILE, _LAST_REF)


@dataclass
class Run:
    """A run folder read back. `meta` is run.json; the rest is read on first use."""

    path: Path
    meta: dict[str, Any]
    warnings: list[str] = field(default_factory=list)

    @property
    def id(self) -> str:
        return self.meta["id"]

    @property
    def name(self) -> str:
        return self.meta.get("name", "")

    @property
    def note(self) -> str:
        return self.meta.get("note") or ""

    @property
    def started_at(self) -> str:
        return self.meta.get("started_at") or ""

    @property
    def status(self) -> str:
        """run.json's status, except that a `running` run whose process is gone reads as `interrupted`."""
        status = self.meta.get("status", "running")
        if status == "running" and self.meta.get("host") == socket.gethostname() and not _pid_alive(
                self.meta.get("pid")):
            return "interrupted"
        return status

    @cached_property
    def spec(self) -> dict[str, Any]:
        """The resolved spec: from run.json, else (a run.json without it) from spec.yaml."""
        if isinstance(self.meta.get("spec"), dict):
            return self.meta["spec"]
        try:
            spec = yaml.safe_load((self.path / SPEC_FILE).read_text())
        except (OSError, yaml.YAMLError):
            return {}
        return spec if isinstance(spec, dict) else {}

    @cached_property
    def summary(self) -> dict[str, Any] | None:
        """summary.json, or None while the run is unfinished (or if it was damaged)."""
        try:
            data = json.loads((self.path / SUMMARY_FILE).read_text())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def metrics(self) -> Any:
        """metrics.csv as a pandas DataFrame; a last line that a crash cut short is dropped."""
        import pandas as pd

        try:
            text = (self.path / METRICS_FILE).read_text()
        except OSError:
            return pd.DataFrame(columns=["model", "epoch"])
        if not text.endswith("\n"):
            text = text[: text.rfind("\n") + 1]  # every row is written whole with its newline: drop a cut one
        try:
            frame = pd.read_csv(io.StringIO(text), on_bad_lines="skip")
        except (ValueError, pd.errors.EmptyDataError):
            return pd.DataFrame(columns=["model", "epoch"])
        if "epoch" in frame:
            frame = frame[pd.to_numeric(frame["epoch"], errors="coerce").notna()]
        return frame

    def files(self) -> dict[str, Path]:
        """The files this run has, by what they hold."""
        found = {"run": self.path / RUN_FILE, "spec": self.path / SPEC_FILE, "metrics": self.path / METRICS_FILE,
                 "summary": self.path / SUMMARY_FILE, "curves": self.path / CURVES_FILE}
        found = {k: p for k, p in found.items() if p.exists()}
        for kind, folder in (("model", MODELS_DIR), ("errors", ERRORS_DIR)):
            for p in sorted((self.path / folder).glob("*")) if (self.path / folder).is_dir() else []:
                found[f"{kind}:{p.name}"] = p
        return found

    def model_info(self, model: str) -> dict[str, Any]:
        return json.loads((self.path / MODELS_DIR / f"{model}.json").read_text())

    def load_weights(self, model: str) -> dict[str, Any]:
        from safetensors.torch import load_file

        return load_file(str(self.path / MODELS_DIR / f"{model}.safetensors"))


def curves_path(run: Run) -> Path:
    return run.path / CURVES_FILE


def _pid_alive(pid: Any) -> bool:
    if not isinstance(pid, int):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_run(path: Path) -> Run:
    """Read one run folder; RunError says why it is not a readable run."""
    try:
        meta = json.loads((path / RUN_FILE).read_text())
    except FileNotFoundError:
        raise RunError(f"{path}: not a run folder (no {RUN_FILE})") from None
    except (OSError, ValueError) as e:
        raise RunError(f"{path / RUN_FILE}: unreadable ({e})") from None
    if not isinstance(meta, dict) or "id" not in meta:
        raise RunError(f"{path / RUN_FILE}: not an nnlab run record")
    version = meta.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise RunError(f"{path}: run format version {version!r} is newer than this nnlab reads "
                       f"({FORMAT_VERSION}); upgrade nnlab")
    return Run(path, meta)


def list_runs(store: Path) -> tuple[list[Run], list[str]]:
    """Every readable run in the store, newest first, and one warning per folder that is not one."""
    runs: list[Run] = []
    warnings: list[str] = []
    if not store.is_dir():
        return runs, warnings
    for entry in os.scandir(store):
        if entry.name.startswith(".") or not entry.is_dir():
            continue
        try:
            runs.append(read_run(Path(entry.path)))
        except RunError as e:
            warnings.append(f"skipped {e}")
    runs.sort(key=lambda r: (r.started_at, r.id), reverse=True)
    return runs, warnings


def resolve_run(ref: str, store: Path) -> Run:
    """A run from a reference: a path to its folder, its id, a unique id prefix, `last` or `last~N`."""
    as_path = Path(ref)
    if (as_path / RUN_FILE).exists():
        return read_run(as_path)
    runs, _ = list_runs(store)
    last = _LAST_REF.match(ref)
    if last:
        back = int(last.group(1) or 0)
        if back >= len(runs):
            raise RunError(f"run '{ref}': the store {store} has {len(runs)} run(s)")
        return runs[back]
    exact = [r for r in runs if r.id == ref]
    matches = exact or [r for r in runs if r.id.startswith(ref)]
    if len(matches) == 1:
        return matches[0]
    if matches:
        listed = ", ".join(r.id for r in matches[:8]) + (" ..." if len(matches) > 8 else "")
        raise RunError(f"run '{ref}' is ambiguous: it matches {len(matches)} runs ({listed})")
    known = ", ".join(r.id for r in runs[:5]) + (" ..." if len(runs) > 5 else "")
    raise RunError(f"run '{ref}': no such run in {store} "
                   + (f"(newest: {known}; or use last, last~N)" if runs else "(the store is empty)"))
