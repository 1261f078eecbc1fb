"""`nnlab rm`, `restore`, `rm --purge`: runs moved into the store's trash (layout.TRASH_DIR, hidden, so every
reader skips it) and back, each by one rename while holding the run's lock; a running run is refused. A
reader that listed a run before it moved reads it as gone (a one-line error or warning), never a traceback.
Only `purge` deletes, and only what is in the trash."""

from __future__ import annotations

import os
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path

from nnlab.errors import RunError
from nnlab.runstore.layout import TRASH_DIR
from nnlab.runstore.liveness import try_lock
from nnlab.runstore.reader import Run, list_runs, resolve_run
from nnlab.runstore.tags import refuse_running

PURGING_PREFIX = ".purging-"  # the trash renamed aside while it is deleted: a new `rm` gets a fresh one


def trash_path(store: Path) -> Path:
    return store / TRASH_DIR


def folder_bytes(path: Path) -> int:
    """The bytes of the files under `path` (links not followed); 0 when it is gone."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total


@dataclass(frozen=True)
class Moved:
    run: str  # the folder's name in the store
    to: Path


def check_removable(runs: list[Run]) -> None:
    """RunError naming the first run that still runs: `rm` then moves none of them."""
    for run in runs:
        refuse_running(run, "remove it")


def remove_runs(store: Path, runs: list[Run], dry_run: bool = False) -> list[Moved]:
    """Move `runs` into the trash (after checking that none runs); with `dry_run`, only say where to."""
    check_removable(runs)
    trash = trash_path(store)
    moved = []
    for run in runs:
        target = _free_name(trash, run.folder)
        if dry_run:
            moved.append(Moved(run.folder, target))
            continue
        trash.mkdir(exist_ok=True)
        lock, (pid, what) = try_lock(run.path, run.id, "removed")
        if lock is None:
            raise RunError(f"run {run.folder} is being {what} by PID {pid}; remove it once that process has ended"
                           + (f" (moved before it: {', '.join(m.run for m in moved)})" if moved else ""))
        try:
            os.rename(run.path, target)
        finally:
            lock.release()
        moved.append(Moved(run.folder, target))
    return moved


def _free_name(trash: Path, folder: str) -> Path:
    """trash/<folder>, or trash/<folder>~N when a run of that folder name was removed before."""
    target, n = trash / folder, 1
    while os.path.lexists(target):
        n += 1
        target = trash / f"{folder}~{n}"
    return target


def _home_name(trashed: str) -> str:
    """The folder name a trashed run had in the store (`_free_name` undone)."""
    head, _, n = trashed.rpartition("~")
    return head if head and n.isdigit() else trashed


def trashed_runs(store: Path) -> tuple[list[Run], list[str]]:
    return list_runs(trash_path(store))


def restore_runs(store: Path, refs: list[str]) -> list[Moved]:
    """Move the runs that `refs` name in the trash back into the store, under the folder name they had.
    Every reference is resolved (and every target checked) before any run moves."""
    trash = trash_path(store)
    listed = trashed_runs(store)[0]
    if not listed:
        raise RunError(f"restore: the trash of {store} is empty")
    chosen = [resolve_run(ref, trash, listed) for ref in refs]
    plan = []
    for run in {r.folder: r for r in chosen}.values():
        home = store / _home_name(run.folder)
        if os.path.lexists(home):
            raise RunError(f"restore: {home} exists already; rename or remove it first")
        plan.append((run, home))
    for run, home in plan:
        os.rename(run.path, home)
    return [Moved(run.folder, home) for run, home in plan]


def purge_trash(store: Path) -> tuple[int, int]:
    """Delete the trash: (runs deleted, bytes freed). Renamed aside first, so that a `rm` running meanwhile
    makes a new trash instead of losing its runs into this deletion."""
    trash = trash_path(store)
    if not trash.is_dir():
        return 0, 0
    count = sum(1 for entry in os.scandir(trash) if not entry.name.startswith("."))
    doomed = store / f"{PURGING_PREFIX}{secrets.token_hex(4)}"
    os.rename(trash, doomed)
    freed = folder_bytes(doomed)
    shutil.rmtree(doomed, ignore_errors=True)
    return count, freed
