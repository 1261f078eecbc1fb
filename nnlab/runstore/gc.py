"""`nnlab gc` and `runs --du`: what the store's disk holds, and removing what no reader needs.

- staging folders (`.creating-…`, `.importing-…`) whose creator is dead: nobody holds their lock, and the
  process run.json names is gone (no run.json yet: older than STAGING_GRACE_SECONDS);
- checkpoints of completed runs (`--resume` needs them only while a run is unfinished); the models stay;
- decoded data cached under `.cache/`, oldest first, down to CACHE_LIMIT_BYTES.

A run folder is changed only while holding its lock, so a run being trained, resumed or edited is left
alone."""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from nnlab.runstore.layout import CACHE_DIR, CHECKPOINTS_DIR, IMPORTING_PREFIX, RUN_FILE, STAGING_PREFIX
from nnlab.runstore.liveness import iso_seconds, process_alive, try_lock
from nnlab.runstore.reader import DamagedFile, Run, list_runs, read_json
from nnlab.runstore.trash import folder_bytes

CACHE_LIMIT_BYTES = 2 * 2**30  # decoded data kept under .cache/ beyond this is removed, oldest first
STAGING_GRACE_SECONDS = 3600.0  # a staging folder without run.json is its creator's for this long


@dataclass(frozen=True)
class Freed:
    what: str  # "staging", "checkpoints", "cache"
    path: Path
    bytes: int


@dataclass(frozen=True)
class Usage:
    run: str
    bytes: int
    checkpoint_bytes: int


def disk_usage(runs: list[Run]) -> list[Usage]:
    """Each run's size on disk and how much of it its checkpoints hold."""
    return [Usage(run.folder, folder_bytes(run.path), folder_bytes(run.path / CHECKPOINTS_DIR)) for run in runs]


def collect(store: Path, dry_run: bool = False, cache_limit: int = CACHE_LIMIT_BYTES) -> list[Freed]:
    """Remove (or with `dry_run` list) what no reader needs; what was freed, item by item."""
    freed = [*_staging(store, dry_run), *_checkpoints(store, dry_run)]
    freed.extend(_cache(store / CACHE_DIR, cache_limit, dry_run))
    return freed


def _staging(store: Path, dry_run: bool) -> list[Freed]:
    try:
        entries = [Path(e.path) for e in os.scandir(store)
                   if e.name.startswith((STAGING_PREFIX, IMPORTING_PREFIX)) and e.is_dir(follow_symlinks=False)]
    except OSError:
        return []
    freed = []
    for folder in sorted(entries):
        lock, _holder = try_lock(folder, folder.name, "collected") if (folder / ".lock").exists() else (None, None)
        if lock is None and (folder / ".lock").exists():
            continue  # its creator holds it: still being made
        try:
            if not _creator_gone(folder):
                continue
            size = folder_bytes(folder)
            if not dry_run:
                shutil.rmtree(folder, ignore_errors=True)
            freed.append(Freed("staging", folder, size))
        finally:
            if lock is not None:
                lock.release()
    return freed


def _creator_gone(folder: Path) -> bool:
    """Whether the process that made a staging folder has ended (its lock is free already)."""
    try:
        meta = read_json(folder / RUN_FILE)
    except (FileNotFoundError, DamagedFile, OSError):
        meta = None
    if isinstance(meta, dict) and isinstance(meta.get("pid"), int):
        return not process_alive(meta["pid"], iso_seconds(meta.get("started_at")))
    try:
        age = time.time() - folder.stat().st_mtime
    except OSError:
        return False
    return age > STAGING_GRACE_SECONDS


def _checkpoints(store: Path, dry_run: bool) -> list[Freed]:
    freed = []
    for run in list_runs(store)[0]:
        folder = run.path / CHECKPOINTS_DIR
        if run.status != "completed" or not folder.is_dir():
            continue
        lock, _holder = try_lock(run.path, run.id, "collected")
        if lock is None:
            continue  # resumed or edited right now: left for the next gc
        try:
            size = folder_bytes(folder)
            if not dry_run:
                shutil.rmtree(folder, ignore_errors=True)
            freed.append(Freed("checkpoints", folder, size))
        finally:
            lock.release()
    return freed


def _cache(cache: Path, limit: int, dry_run: bool) -> list[Freed]:
    """The cache's oldest files (by last change) removed until it holds at most `limit` bytes."""
    if not cache.is_dir():
        return []
    files: list[tuple[float, int, Path]] = []
    for root, _dirs, names in os.walk(cache):
        for name in names:
            path = Path(root) / name
            try:
                stat = path.lstat()
            except OSError:
                continue
            files.append((stat.st_mtime, stat.st_size, path))
    total = sum(size for _, size, _ in files)
    freed = []
    for _mtime, size, path in sorted(files):
        if total <= limit:
            break
        if not dry_run:
            path.unlink(missing_ok=True)
        total -= size
        freed.append(Freed("cache", path, size))
    return freed


def cache_bytes(store: Path) -> Optional[int]:
    """What the cache holds; None when the store has none."""
    cache = store / CACHE_DIR
    return folder_bytes(cache) if cache.is_dir() else None
