"""Files that travel with a Ray task when the nodes share no file system (`--ship`): a spec and its data file
out to the worker, the run folder back to the driver. Torch-free and Ray-free: bytes in, bytes out.

Out: `bundle_spec` reads the spec file and the data file it names (after the unit's overrides) into a
`Bundle`, with their paths relative to the folder they share, so that the worker lays them out the same
way and the spec reads exactly as written (a relative `data.path` still points at the data). The driver
puts each bundle into Ray's object store once; every task of the sweep gets a reference, and each node
writes the files once, into a folder named by their digest.

Back: the worker trains into a store of its own and `pack_run` makes the finished run folder one tar
archive; the driver's `unpack_run` extracts it (refusing links and paths that leave the folder) into its
staging folder, from which it is renamed into the store whole, as runs from a shared store are.
"""

from __future__ import annotations

import hashlib
import io
import os
import secrets
import shutil
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from nnlab.core.files import path_kind
from nnlab.errors import NnlabError, describe
from nnlab.runstore.archive import check_members, extract, inside  # the one check of an archive's members


@dataclass(frozen=True)
class Bundle:
    """A spec file and its data file as bytes. `files`: (path relative to the bundle's root, content);
    `spec`: the spec's relative path; `overrides`: what the worker adds (an absolute data.path becomes the
    copy beside the spec, `_data/<name>`)."""

    digest: str
    files: tuple[tuple[str, bytes], ...]
    spec: str
    overrides: tuple[str, ...] = ()


def bundle_spec(spec_path: str | Path, overrides: list[str] | tuple[str, ...]) -> Bundle:
    """The spec at `spec_path` and the data file it reads with these overrides (none for a builtin set)."""
    return bundle_specs([(spec_path, overrides)])[0]


def bundle_specs(units: list[tuple[str | Path, list[str] | tuple[str, ...]]]) -> list[Bundle]:
    """One bundle per (spec path, overrides); units that read the same files share one Bundle (read once)."""
    made: dict[tuple, Bundle] = {}
    bundles = []
    for spec_path, overrides in units:
        layout = _layout(Path(spec_path).resolve(), list(overrides))
        if layout not in made:
            made[layout] = _bundle(*layout)
        bundles.append(made[layout])
    return bundles


def _layout(spec_path: Path, overrides: list[str]) -> tuple[tuple[tuple[str, Path], ...], tuple[str, ...]]:
    """Where the spec and its data file go in a bundle, relative to the folder they share; and the overrides
    the worker adds (an absolute data.path becomes the copy beside the spec)."""
    from nnlab.spec import load_spec

    spec, base_dir = load_spec(spec_path, overrides)
    if not spec.data.path:
        return ((spec_path.name, spec_path),), ()
    data = (base_dir / spec.data.path).resolve()
    if Path(spec.data.path).is_absolute():
        where = f"_data/{data.name}"
        return ((spec_path.name, spec_path), (where, data)), (f"data.path={where}",)
    root = Path(os.path.commonpath([spec_path.parent, data.parent]))
    return ((spec_path.relative_to(root).as_posix(), spec_path), (data.relative_to(root).as_posix(), data)), ()


def _bundle(files: tuple[tuple[str, Path], ...], overrides: tuple[str, ...]) -> Bundle:
    contents = tuple((name, _read(path, "the spec" if i == 0 else "data.path"))
                     for i, (name, path) in enumerate(files))
    digest = hashlib.sha256()
    for name, content in contents:
        digest.update(name.encode() + b"\0" + hashlib.sha256(content).digest())
    return Bundle(digest.hexdigest()[:16], contents, contents[0][0], overrides)


def unpack_bundle(bundle: Bundle, into: Path) -> Path:
    """Write the bundle under `into/<digest>/` unless a task on this node already did; the spec's path there.
    Written into a temporary folder first and renamed, so that tasks running side by side never read a
    half-written file."""
    root = into / bundle.digest
    if not root.is_dir():
        partial = into / f".{bundle.digest}-{secrets.token_hex(4)}"
        for name, content in bundle.files:
            target = inside(partial, name)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
        try:
            os.rename(partial, root)
        except OSError:  # another task on this node got there first: its copy is the same
            shutil.rmtree(partial, ignore_errors=True)
    return root / bundle.spec


def pack_run(folder: Path) -> bytes:
    """A finished run folder as one tar archive (plain: weights do not compress), its name at the top."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        tar.add(folder, arcname=folder.name)
    return buffer.getvalue()


def unpack_run(archive: bytes, into: Path, name: str = "a shipped run folder") -> Optional[Path]:
    """Extract a `pack_run` archive into the folder `into` (made if missing); the run folder, or None for an
    empty archive. Only a tar archive of plain files and folders below `into` is accepted; `name` says which
    archive in an error."""
    into.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(fileobj=io.BytesIO(archive), mode="r") as tar:
            members = check_members(tar.getmembers(), into, name)
            extract(tar, into, members)
    except (tarfile.TarError, EOFError) as e:  # never a tar archive, or one cut short
        raise NnlabError(f"{name} ({len(archive):,} bytes) is not a whole tar archive ({describe(e)})") from None
    tops = {Path(member.name).parts[0] for member in members}
    return into / tops.pop() if len(tops) == 1 else None


def _read(path: Path, what: str) -> bytes:
    if path_kind(path) is not None:  # a FIFO or a device would block or never end; a folder cannot be sent
        raise NnlabError(f"--ship: {what} {path} is not a regular file")
    try:
        return path.read_bytes()
    except OSError as e:
        raise NnlabError(f"--ship: cannot read {what} {path} ({e.strerror or e})") from None
