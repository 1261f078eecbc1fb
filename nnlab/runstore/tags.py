"""Tags and notes added to a run after the fact (`nnlab tag`, `nnlab note`, `train --tag`), written into its
run.json atomically while holding the run folder's lock, so that a training or resuming process (which holds
it for the whole run) never rewrites run.json over an edit, and two edits never lose one another."""

from __future__ import annotations

import re
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable

from nnlab.core.messages import shorten
from nnlab.core.records import RunMeta, RunNote
from nnlab.errors import NnlabError, RunError
from nnlab.runstore.layout import RUN_FILE, now_iso, to_json, write_atomic
from nnlab.runstore.liveness import try_lock

if TYPE_CHECKING:
    from nnlab.runstore.reader import Run

TAG = re.compile(r"^[\w.:+/@-]{1,64}$")  # one word: filters and tables read a tag as one token
MAX_NOTE_CHARS = 4000


def check_tag(tag: str, where: str = "tag") -> str:
    """`tag` when it is one: 1-64 letters, digits or . _ : + / @ -; else NnlabError naming it."""
    if not isinstance(tag, str) or not TAG.match(tag):
        raise NnlabError(f"{where}: {shorten(repr(tag), 70)} is not a tag; a tag is 1 to 64 letters, digits or "
                         "any of . _ : + / @ - (no spaces)")
    return tag


def with_tags(tags: Iterable[str], added: Iterable[str]) -> list[str]:
    """`tags` then each of `added` not already there, in order."""
    return list(dict.fromkeys([*tags, *added]))


def edit_meta(folder: Path, change: Callable[[RunMeta], RunMeta], doing: str = "edited") -> RunMeta:
    """Read the run's run.json, apply `change` and write it back atomically, holding the run's lock; RunError
    when a process trains or resumes the run (it rewrites run.json as it goes)."""
    from nnlab.runstore.reader import read_run

    run = read_run(folder)
    refuse_running(run, "change it")
    lock, (pid, what) = try_lock(folder, run.id, doing)
    if lock is None:
        raise RunError(f"run {run.folder} is being {what} by PID {pid}; change it once that process has ended")
    try:
        meta = change(read_run(folder).meta)  # read again under the lock: what the last writer left
        write_atomic(folder / RUN_FILE, to_json(meta.model_dump(mode="json")))
        return meta
    finally:
        lock.release()


def refuse_running(run: "Run", then: str) -> None:
    """RunError when `run` still runs (a live PID on this host, or a recent heartbeat from another)."""
    if run.status == "running":
        where = f"PID {run.meta.pid} on this host" if run.meta.host == socket.gethostname() else \
            f"on {run.meta.host or 'another host'}"
        raise RunError(f"run {run.folder} is running ({where}); {then} once it has ended (or stop it)")


def tag_run(folder: Path, tags: list[str], remove: bool = False) -> RunMeta:
    """Add `tags` to the run (or remove them), keeping its other tags in their order."""
    for tag in tags:
        check_tag(tag)

    def change(meta: RunMeta) -> RunMeta:
        kept = [t for t in meta.tags if t not in tags] if remove else with_tags(meta.tags, tags)
        return meta.model_copy(update={"tags": kept})

    return edit_meta(folder, change, "tagged")


def note_run(folder: Path, text: str) -> RunMeta:
    """Append a note, with the time it was added; earlier notes (and the run's own `--note`) are kept."""
    text = text.strip()
    if not text:
        raise NnlabError("note: the text is empty; give what you want to remember about the run")
    if len(text) > MAX_NOTE_CHARS:
        raise NnlabError(f"note: {len(text):,} characters; a note holds at most {MAX_NOTE_CHARS:,}")

    def change(meta: RunMeta) -> RunMeta:
        return meta.model_copy(update={"notes": [*meta.notes, RunNote(time=now_iso(), text=text)]})

    return edit_meta(folder, change, "noted")
