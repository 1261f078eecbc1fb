"""`tag`, `note`, `rm`, `restore`, `gc`, `archive`, `import`: keep the run store tidy and share runs (no torch).
The store operations are runstore's (tags, trash, gc, archive); which runs `rm` takes is report.filters'."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Optional

import typer

from nnlab.cli.base import RunsDirOption, app, fail, stdout, warn
from nnlab.cli.browse import Status
from nnlab.cli.filter_options import NoteFilterOption, WhereOption, run_filter
from nnlab.errors import NnlabError, RunError


def _say(line: str) -> None:
    stdout().print(line, markup=False, soft_wrap=True)


def _resolve(refs: list[str], runs_dir: Optional[Path]):
    from nnlab import runstore

    store = runstore.store_path(runs_dir)
    listed, warnings = runstore.list_runs(store)
    chosen = {}
    for ref in refs:
        run = runstore.resolve_run(ref, store, listed)
        chosen[run.folder] = run
    return store, list(chosen.values()), listed, warnings


def checked_tags(tags: Optional[list[str]]) -> list[str]:
    """`train/sweep --tag`, checked before anything trains (a bad tag: one line, exit 2)."""
    from nnlab.runstore.tags import check_tag

    try:
        return [check_tag(t, "--tag") for t in tags or []]
    except NnlabError as e:
        fail(e)
        raise


def tag_runs(paths: list[Optional[str | Path]], tags: list[str]) -> None:
    """Tag the runs a command just trained (`train/sweep --tag`); a run it cannot tag is a warning."""
    from nnlab.runstore.tags import tag_run

    for path in paths:
        if tags and path:
            try:
                tag_run(Path(path), tags)
            except NnlabError as e:
                warn([f"--tag: {e}"])


@app.command("tag")
def tag_command(
    args: list[str] = typer.Argument(..., metavar="RUN... TAG", show_default=False,
                                     help="One or more runs (id, prefix, folder, last, last~N), then the tag."),
    remove: bool = typer.Option(False, "--remove", help="Take the tag off instead."),
    runs_dir: Optional[Path] = RunsDirOption,
) -> None:
    """Tag runs (or take a tag off with --remove); `runs --tag T`, `compare --tag T` find them."""
    from nnlab.runstore.tags import check_tag, tag_run

    try:
        if len(args) < 2:
            raise NnlabError("tag: give one or more runs, then the tag: nnlab tag RUN... TAG")
        tag = check_tag(args[-1])
        _store, runs, _listed, warnings = _resolve(args[:-1], runs_dir)
        for run in runs:
            meta = tag_run(run.path, [tag], remove)
            _say(f"{run.folder}: tags {', '.join(meta.tags) or '(none)'}")
    except NnlabError as e:
        fail(e)
    warn(warnings)


@app.command("note")
def note_command(
    ref: str = typer.Argument(..., metavar="RUN", help="id, prefix, folder, last or last~N.", show_default=False),
    text: str = typer.Argument(..., help="The note, added with the time; earlier notes are kept.",
                               show_default=False),
    runs_dir: Optional[Path] = RunsDirOption,
) -> None:
    """Add a note to a run after it ran (`show` lists every note with its time; `runs --note TEXT` finds it)."""
    from nnlab.runstore.tags import note_run

    try:
        _store, (run,), _listed, warnings = _resolve([ref], runs_dir)
        meta = note_run(run.path, text)
    except NnlabError as e:
        fail(e)
    _say(f"{run.folder}: {len(meta.notes)} note(s)")
    warn(warnings)


@app.command("rm")
def rm_command(
    refs: Optional[list[str]] = typer.Argument(None, metavar="[RUN]...", show_default=False,
                                               help="Runs to remove (id, prefix, folder, last, last~N)."),
    status: Optional[Status] = typer.Option(None, "--status", help="The runs with this status.",
                                            show_default=False),
    smoke: bool = typer.Option(False, "--smoke", help="The smoke runs (train --smoke)."),
    older_than: Optional[str] = typer.Option(None, "--older-than", metavar="AGE", show_default=False,
                                             help="The runs started longer ago than AGE: 30d, 12h, 90m, 2w."),
    tag: Optional[list[str]] = typer.Option(None, "--tag", show_default=False,
                                            help="The runs with this tag (repeatable: all)."),
    where: Optional[list[str]] = WhereOption,
    note: Optional[str] = NoteFilterOption,
    dry_run: bool = typer.Option(False, "--dry-run", help="Only print what would move."),
    purge: bool = typer.Option(False, "--purge", help="Delete the trash for good (asks; --yes when not on a "
                                                      "terminal)."),
    yes: bool = typer.Option(False, "--yes", help="With --purge: do not ask."),
    runs_dir: Optional[Path] = RunsDirOption,
) -> None:
    """Move runs into the store's trash (readers no longer see them; `nnlab restore RUN` brings them back).

    Runs are named, or chosen by --status, --smoke, --older-than, --tag, --where, --note (all must hold; with
    RUN too, they narrow those runs). A running run is refused (nothing moves). `rm --purge` deletes the trash.
    """
    from nnlab import runstore
    from nnlab.runstore import trash

    try:
        store = runstore.store_path(runs_dir)
        if purge:
            _purge(store, yes, dry_run)
            return
        chosen_by = run_filter(where, tag, note)
        chosen_by.status = status.value if status else None
        chosen_by.smoke = True if smoke else None
        if older_than:
            from nnlab.report.filters import parse_age

            chosen_by.older_than = parse_age(older_than)
        if not refs and not chosen_by:
            raise NnlabError("rm: name the runs (RUN...) or choose them with --status, --smoke, --older-than, "
                             "--tag, --where or --note")
        store, runs, listed, warnings = _resolve(refs or [], runs_dir)
        runs = chosen_by.apply(runs if refs else listed)
        if not runs:
            _say("rm: no run matches; nothing moved")
            warn(warnings)
            return
        moved = trash.remove_runs(store, runs, dry_run)
    except NnlabError as e:
        fail(e)
    except OSError as e:
        fail(RunError(f"rm: {e.strerror or e}: {getattr(e, 'filename', '') or store}"))
    for item in moved:
        _say(f"{'would move' if dry_run else 'moved'} {item.run} -> {item.to}")
    if not dry_run:
        _say(f"{len(moved)} run(s) in the trash; bring one back with `nnlab restore RUN`, delete them for good "
             "with `nnlab rm --purge`")
    warn(warnings)


def _purge(store: Path, yes: bool, dry_run: bool) -> None:
    from nnlab.runstore import trash

    from nnlab.views.store import human_bytes

    folder = trash.trash_path(store)
    entries = [e for e in os.scandir(folder) if not e.name.startswith(".")] if folder.is_dir() else []
    if not entries:
        _say(f"rm --purge: the trash of {store} is empty")
        return
    runs = entries
    size = trash.folder_bytes(folder)
    if dry_run:
        _say(f"would delete {len(runs)} run(s) from the trash ({human_bytes(size)})")
        return
    if not yes:
        if not sys.stdin.isatty():
            raise NnlabError(f"rm --purge: this deletes {len(runs)} folder(s) in the trash for good; not on a "
                             "terminal, confirm with --yes")
        if not typer.confirm(f"delete {len(runs)} run(s) in the trash ({human_bytes(size)}) for good?"):
            _say("nothing deleted")
            return
    count, freed = trash.purge_trash(store)
    _say(f"deleted {count} run(s) from the trash: {human_bytes(freed)} ({freed:,} bytes) reclaimed")


@app.command("restore")
def restore_command(
    refs: list[str] = typer.Argument(..., metavar="RUN...", show_default=False,
                                     help="Runs in the trash (id, prefix, folder, last, last~N: newest removed)."),
    runs_dir: Optional[Path] = RunsDirOption,
) -> None:
    """Bring runs back from the trash (`nnlab rm` moved them there)."""
    from nnlab import runstore
    from nnlab.runstore import trash

    try:
        moved = trash.restore_runs(runstore.store_path(runs_dir), refs)
    except NnlabError as e:
        fail(e)
    for item in moved:
        _say(f"restored {item.run} -> {item.to}")


@app.command("gc")
def gc_command(
    dry_run: bool = typer.Option(False, "--dry-run", help="Only print what would be removed."),
    runs_dir: Optional[Path] = RunsDirOption,
) -> None:
    """Remove what no reader needs: staging folders left by killed processes, checkpoints of completed runs
    (their models stay), cached data beyond the limit; prints the bytes reclaimed."""
    from nnlab import runstore
    from nnlab.runstore import gc
    from nnlab.views.store import human_bytes

    store = runstore.store_path(runs_dir)
    try:
        freed = gc.collect(store, dry_run)
        cache = gc.cache_bytes(store)
    except NnlabError as e:
        fail(e)
    labels = {"staging": "staging folder", "checkpoints": "checkpoints", "cache": "cached file"}
    for item in freed:
        _say(f"{'would remove' if dry_run else 'removed'} {labels[item.what]} {item.path} ({human_bytes(item.bytes)})")
    total = sum(item.bytes for item in freed)
    if cache is None:
        _say("cache: none in this store")
    else:
        _say(f"cache: {human_bytes(cache)} kept (limit {human_bytes(gc.CACHE_LIMIT_BYTES)})")
    _say(f"{'would reclaim' if dry_run else 'reclaimed'} {human_bytes(total)} ({total:,} bytes)")


@app.command("archive")
def archive_command(
    refs: list[str] = typer.Argument(..., metavar="RUN...", show_default=False,
                                     help="Runs to archive (id, prefix, folder, last, last~N)."),
    out: Path = typer.Option(..., "--out", "-o", help="The archive to write (.tar.gz).", show_default=False),
    checkpoints: bool = typer.Option(False, "--checkpoints", help="Include the runs' checkpoints (to resume them "
                                                                  "elsewhere); left out by default."),
    runs_dir: Optional[Path] = RunsDirOption,
) -> None:
    """Write runs into one archive that `nnlab import` adds to another store (models, metrics, summary, spec)."""
    from nnlab.runstore import archive, trash
    from nnlab.views.store import human_bytes

    try:
        _store, runs, _listed, warnings = _resolve(refs, runs_dir)
        for run in runs:
            trash.refuse_running(run, "archive it")
        size = archive.write_archive(runs, out, checkpoints)
    except NnlabError as e:
        fail(e)
    _say(f"archived {len(runs)} run(s) into {out} ({human_bytes(size)})"
         + ("" if checkpoints else "; checkpoints left out (--checkpoints to include them)"))
    warn(warnings)


@app.command("import")
def import_command(
    archive_file: Path = typer.Argument(..., metavar="ARCHIVE", help="An archive `nnlab archive` wrote.",
                                        show_default=False),
    rename: bool = typer.Option(False, "--rename", help="Import a run whose id the store has under a new id "
                                                        "(refused by default)."),
    runs_dir: Optional[Path] = RunsDirOption,
) -> None:
    """Add the runs of an archive to this store; they read, compare and predict as where they were made."""
    from nnlab import runstore
    from nnlab.runstore import archive

    try:
        imported = archive.import_archive(archive_file, runstore.store_path(runs_dir), rename)
    except NnlabError as e:
        fail(e)
    except OSError as e:
        fail(RunError(f"import: {archive_file}: {e.strerror or e}"))
    for item in imported:
        _say(f"imported {item.original}" + (f" as {item.folder}" if item.folder != item.original else ""))
