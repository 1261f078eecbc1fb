"""Runs as one archive and back: `nnlab archive RUN... -o runs.tar.gz` and `nnlab import runs.tar.gz`, and the
one check of a tar archive's members that `--ship` (sweeps/executors/shipping.py) uses as well: plain files
and folders only (no links, devices or FIFOs), every name relative and inside the folder it is extracted to.

An archive holds each run folder under its name, as the store has it, without its checkpoints (unless asked),
its lock and its disk reserve. An import extracts into a hidden staging folder of the store (locked, so that
`nnlab gc` leaves it alone while it lives), checks that each top folder is a readable run and that its id is
new to the store, then renames each into place: an imported run is the same files the first machine read."""

from __future__ import annotations

import os
import secrets
import shutil
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional

from nnlab.errors import NnlabError, RunError, describe
from nnlab.runstore.layout import CHECKPOINTS_DIR, IMPORTING_PREFIX, RESERVE_FILE, RUN_FILE, to_json, write_atomic
from nnlab.runstore.liveness import LOCK_FILE, try_lock
from nnlab.runstore.reader import Run, list_runs, read_run

MAX_IMPORT_BYTES = 64 * 2**30  # an archive's files, unpacked; also the archive file itself
MAX_IMPORT_MEMBERS = 200_000
LEFT_OUT = (LOCK_FILE, RESERVE_FILE)  # process state of the machine that made the run, not the run


def inside(root: Path, name: str, what: str = "a shipped file name") -> Path:
    """root/name, refusing a name that would leave root (absolute, or through ..)."""
    path = Path(name)
    if path.is_absolute() or ".." in path.parts or name.startswith(("/", "\\")):
        raise NnlabError(f"{what} leaves its folder: {name!r}")
    return root / path


def check_members(members: Iterable[tarfile.TarInfo], into: Path, name: str, what: str = "a shipped file name",
                  max_bytes: Optional[int] = None) -> list[tarfile.TarInfo]:
    """The members of a tar archive, each a plain file or folder whose name stays inside `into`; NnlabError
    naming the archive (`name`) and the member otherwise, or when the files hold more than `max_bytes`."""
    checked, total = [], 0
    for member in members:
        if not (member.isfile() or member.isdir()):
            raise NnlabError(f"{name} holds {member.name!r}, which is not a plain file")
        inside(into, member.name, what)
        total += member.size
        if max_bytes is not None and total > max_bytes:
            raise NnlabError(f"{name}: its files hold more than {max_bytes:,} bytes unpacked; refused")
        checked.append(member)
    return checked


def extract(tar: tarfile.TarFile, into: Path, members: list[tarfile.TarInfo]) -> None:
    tar.extractall(into, members=members, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))


# --- archive ------------------------------------------------------------------------------------------

def write_archive(runs: list[Run], out: Path, checkpoints: bool = False) -> int:
    """Write `runs` into the gzip'd tar `out` (replaced in one step); the bytes written."""
    out = out if out.suffixes else out.with_suffix(".tar.gz")
    tmp = out.with_name(f".{out.name}.{secrets.token_hex(4)}.tmp")

    def keep(info: tarfile.TarInfo) -> Optional[tarfile.TarInfo]:
        parts = Path(info.name).parts
        leaf = parts[-1]
        if info.issym() or info.islnk() or not (info.isfile() or info.isdir()):
            return None  # a run folder holds none; one planted there does not travel
        if leaf in LEFT_OUT or (leaf.startswith(".") and leaf.endswith(".tmp")):
            return None
        if not checkpoints and len(parts) > 1 and parts[1] == CHECKPOINTS_DIR:
            return None
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        return info

    try:
        with tarfile.open(tmp, "x:gz") as tar:
            for run in runs:
                tar.add(run.path, arcname=run.folder, filter=keep)
        os.replace(tmp, out)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise RunError(f"archive: cannot write {out} ({e.strerror or e})") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return out.stat().st_size


# --- import -------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Imported:
    original: str  # the folder name in the archive
    folder: str  # its name in this store (another with --rename when that one was taken)


def import_archive(archive: Path, store: Path, rename: bool = False,
                   max_bytes: int = MAX_IMPORT_BYTES) -> list[Imported]:
    """Add the runs of `archive` to `store`; RunError (nothing added) for an archive that is not one, holds a
    member that is no plain file or leaves its folder, is too large, or repeats a run id the store has
    (unless `rename`: the run then gets a new id, `<id>-<4 hex>`)."""
    name = f"import: {archive}"
    try:
        size = archive.stat().st_size
    except OSError as e:
        raise RunError(f"{name}: cannot read it ({e.strerror or e})") from None
    if not archive.is_file():
        raise RunError(f"{name}: not a regular file")
    if size > max_bytes:
        raise RunError(f"{name}: {size:,} bytes; an archive to import holds at most {max_bytes:,}")
    store.mkdir(parents=True, exist_ok=True)
    staging = store / f"{IMPORTING_PREFIX}{secrets.token_hex(4)}"
    staging.mkdir()
    lock, _ = try_lock(staging, staging.name, "imported")  # `nnlab gc` leaves a held staging folder alone
    try:
        tops = _extract_runs(archive, staging, name, max_bytes)
        return _place(staging, tops, store, name, rename)
    finally:
        if lock is not None:
            lock.release()
        shutil.rmtree(staging, ignore_errors=True)


def _extract_runs(archive: Path, staging: Path, name: str, max_bytes: int) -> list[str]:
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = []
            for member in tar:  # read one by one: a bomb of millions of entries is refused early
                members.append(member)
                if len(members) > MAX_IMPORT_MEMBERS:
                    raise NnlabError(f"{name}: more than {MAX_IMPORT_MEMBERS:,} entries; refused")
            checked = check_members(members, staging, name, f"{name}: a member", max_bytes)
            tops = list(dict.fromkeys(Path(m.name).parts[0] for m in checked if Path(m.name).parts))
            for member in checked:
                if len(Path(member.name).parts) == 1 and not member.isdir():
                    raise NnlabError(f"{name}: {member.name!r} is a file at the top; an nnlab archive holds run "
                                     "folders")
                if any(part.startswith(".") for part in Path(member.name).parts[:1]):
                    raise NnlabError(f"{name}: {member.name!r}: a hidden top folder is no run")
            extract(tar, staging, checked)
    except NnlabError as e:
        raise RunError(str(e)) from None
    except (tarfile.TarError, EOFError, OSError, ValueError) as e:  # not a tar archive, cut short, bad gzip
        raise RunError(f"{name}: not a whole nnlab archive (.tar.gz) ({describe(e)})") from None
    if not tops:
        raise RunError(f"{name}: holds no run folder")
    return tops


def _place(staging: Path, tops: list[str], store: Path, name: str, rename: bool) -> list[Imported]:
    runs = []
    for top in tops:
        try:
            runs.append(read_run(staging / top))
        except RunError as e:
            raise RunError(f"{name}: {top} is not a readable run ({str(e).replace(str(staging) + os.sep, '')})") \
                from None
    listed = list_runs(store)[0]
    taken = {r.id for r in listed} | {r.folder for r in listed}
    plan = []
    for run in runs:
        new = run.folder
        if run.id in taken or run.folder in taken or os.path.lexists(store / run.folder):
            if not rename:
                raise RunError(f"{name}: run {run.folder} exists in {store} already; nothing was imported "
                               "(--rename imports it under a new id)")
            new = _fresh_id(run.id, taken, store)
        taken |= {new}
        plan.append((run, new))
    for run, new in plan:
        if new != run.folder:
            write_atomic(run.path / RUN_FILE, to_json(run.meta.model_copy(update={"id": new}).model_dump(mode="json")))
        os.rename(run.path, store / new)
    return [Imported(run.folder, new) for run, new in plan]


def _fresh_id(run_id: str, taken: set[str], store: Path) -> str:
    while True:
        new = f"{run_id}-{secrets.token_hex(2)}"
        if new not in taken and not os.path.lexists(store / new):
            return new
