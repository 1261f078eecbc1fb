"""Reading a file that should be a regular file: the one check (a folder, a FIFO, a device or a socket is
named, never opened for reading: a FIFO would wait forever, /dev/zero never ends) and the one bounded reader.
Used by the run store (run files, model files), the data reader, the spec reader, --ship, --resume and
the API."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Callable, Optional

# What a path that is not a regular file is, as a message names it.
SPECIAL_FILES: list[tuple[Callable[[int], bool], str]] = [
    (stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")]


class DamagedFile(Exception):
    """A file that exists but cannot be read as what it should be; the message is one line."""


def special_kind(mode: int) -> Optional[str]:
    """None for a regular file; else what it is (`a folder`, `a named pipe (FIFO)`, ..., `not a regular file`)."""
    if stat.S_ISREG(mode):
        return None
    return next((what for is_kind, what in SPECIAL_FILES if is_kind(mode)), "not a regular file")


def path_kind(path: Path) -> Optional[str]:
    """None when `path` is a regular file (links followed); else what it is instead: `missing`, what
    `special_kind` names, or `unreadable (...)`. Only a stat: nothing is opened."""
    try:
        mode = path.stat().st_mode
    except (FileNotFoundError, NotADirectoryError):
        return "missing"
    except OSError as e:
        return f"unreadable ({e.strerror or e})"
    return special_kind(mode)


def read_regular(path: Path, limit: int) -> bytes:
    """A regular file's bytes, at most `limit` of them; DamagedFile (one line) for a folder, a FIFO (reading
    it would wait forever), a device such as /dev/zero (endless) or a larger file. Opened without blocking
    and checked on the open descriptor, so a file swapped after a check is still checked.
    FileNotFoundError and NotADirectoryError pass through."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except (FileNotFoundError, NotADirectoryError):
        raise
    except OSError as e:
        raise DamagedFile(f"{path}: unreadable ({e.strerror or e})") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise DamagedFile(f"{path}: not a regular file")
        if info.st_size > limit:
            raise DamagedFile(f"{path}: larger than {limit / 2**20:g} MiB")
        with os.fdopen(fd, "rb", closefd=False) as handle:
            raw = handle.read(limit + 1)
    except OSError as e:
        raise DamagedFile(f"{path}: unreadable ({e.strerror or e})") from None
    finally:
        os.close(fd)
    if len(raw) > limit:  # it grew while being read
        raise DamagedFile(f"{path}: larger than {limit / 2**20:g} MiB")
    return raw
