"""What the store knows about each run's data: how often a test split has been looked at, and data files
that changed under a spec name.

Each run records a fingerprint of its data in run.json (`RunMeta.data_fingerprint`: the file's sha256, its
rows, the split seed and fractions; image files' size, channels and skip_bad and the word vectors' sha256 where
they are read). Two runs evaluated the same test split when their fingerprints are
equal apart from where the file lay (`path`); every run that reports test scores on a split spends some of
its independence, so `show` and `compare` say "test split seen by 37 runs". A data file changed when a run
and the newest earlier run of the same name read the same `data.path` and their sha256 differ.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Optional

from nnlab.core.records import data_identity
from nnlab.runstore import Run

HASH_KEYS = ("sha256", "file_sha256", "hash")
READING_KEYS = ("image", "vectors")  # data.prepared's reading facts: part of which data a run read


def split_key(run: Run) -> Optional[str]:
    """The identity of the test split a run evaluated; None for a run without a fingerprint."""
    fingerprint = run.meta.data_fingerprint
    if not isinstance(fingerprint, dict) or not fingerprint:
        return None
    if isinstance(fingerprint.get("split"), str):
        return fingerprint["split"]  # the writer's own hash of everything below
    return json.dumps(data_identity(fingerprint), sort_keys=True, default=str)


def data_key(run: Run) -> tuple[str, str]:
    """Which data a run read, and a name for it (`churn.csv -> churned`): the file's identity from the
    fingerprint (its sha256, rows and columns, wherever it lay) and the target, else (an older run) the
    spec's data path. Not the split: runs that differ only in their seed read the same data."""
    fingerprint = run.meta.data_fingerprint if isinstance(run.meta.data_fingerprint, dict) else {}
    data = run.spec.get("data") if isinstance(run.spec.get("data"), dict) else {}
    source = data.get("path") or (f"builtin {data['builtin']}" if data.get("builtin") else None)
    digest = data_hash(run)
    what = {"file": [digest, fingerprint.get("rows"), fingerprint.get("columns")] if digest else source,
            "target": data.get("target"),
            # how the file was read into the input: image files' size/channels/skip_bad, the word vectors' file
            **{key: fingerprint[key] for key in READING_KEYS if fingerprint.get(key) is not None}}
    shown = str(source).replace("\\", "/").rsplit("/", 1)[-1] if source else "?"
    return json.dumps(what, sort_keys=True, default=str), f"{shown} -> {data.get('target', '?')}"


def data_hash(run: Run) -> Optional[str]:
    fingerprint = run.meta.data_fingerprint or {}
    return next((str(fingerprint[k]) for k in HASH_KEYS if fingerprint.get(k)), None)


def data_path(run: Run) -> Optional[str]:
    data = run.spec.get("data")
    path = data.get("path") if isinstance(data, dict) else None
    return str(path) if path else None


class StoreFacts:
    """Counted once over the whole store; asked per run."""

    def __init__(self, store_runs: list[Run]):
        self._seen = Counter(k for k in map(split_key, store_runs) if k is not None)
        self._changes = _data_changes(store_runs)

    def split_seen(self, run: Run) -> Optional[int]:
        """How many runs in the store evaluated the same test split as `run` (itself included)."""
        key = split_key(run)
        return self._seen[key] if key is not None else None

    def data_changed(self, run: Run) -> Optional[str]:
        """A line when `run`'s data file differs from the newest earlier run of its name, else None."""
        return self._changes.get(str(run.path))

    def lines(self, runs: list[Run]) -> list[str]:
        """What to say about `runs`: the test splits they evaluated and data files that changed."""
        counts = sorted({n for n in (self.split_seen(r) for r in runs) if n})
        lines = []
        if counts:
            shown = counts[0] if len(counts) == 1 else f"{counts[0]}–{counts[-1]}"
            lines.append(f"test split seen by {shown} run(s) in this store (choose on validation: every look "
                         "at a test score spends some of its honesty)")
        lines.extend(line for line in map(self.data_changed, runs) if line)
        return lines


def _data_changes(store_runs: list[Run]) -> dict[str, str]:
    """Each run whose data file has another sha256 than the newest earlier run of its name on that path."""
    changes: dict[str, str] = {}
    last: dict[tuple[str, str], tuple[str, Run]] = {}
    for run in sorted(store_runs, key=lambda r: (r.started_at, r.folder)):
        path, digest = data_path(run), data_hash(run)
        if path is None or digest is None:
            continue
        earlier = last.get((run.name, path))
        if earlier and earlier[0] != digest:
            changes[str(run.path)] = (f"{run.folder}: data file {path} changed since run {earlier[1].folder} "
                                      f"(sha256 {earlier[0][:12]} → {digest[:12]})")
        last[(run.name, path)] = (digest, run)
    return changes
