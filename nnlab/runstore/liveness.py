"""Whether a run that says `running` still runs.

run.json says `running` from the moment the folder exists until the run ends; a process killed by SIGKILL,
a power cut or a lost machine never writes its end. The rule, checked whenever a run is read:

- **On this host** (run.json's `host` is this machine's name): the run is alive while the process with its
  `pid` exists *and* that process started no later than the run (process start time from
  /proc/<pid>/stat, allowing `START_SLACK_SECONDS` for clock rounding). A PID reused by a later process
  therefore does not keep a dead run alive. Where /proc is missing (macOS), a live PID counts as alive.
- **On another host**: the run is alive while its last sign of life — run.json's `heartbeat_at` (the
  writer refreshes it at the end of an epoch, at most every 30 s), or metrics.csv's last change, whichever
  is later — is younger than `HEARTBEAT_TIMEOUT_SECONDS` (10 minutes). A run whose single epoch takes
  longer than that reads as interrupted from other hosts until its next heartbeat.

A dead run reads as `interrupted`; nothing is written (reading never changes the store).
"""

from __future__ import annotations

import os
import socket
import time
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Optional, TextIO

if TYPE_CHECKING:
    from nnlab.core.records import RunMeta

HEARTBEAT_TIMEOUT_SECONDS = 600.0
START_SLACK_SECONDS = 2.0
PROC = Path("/proc")


def effective_status(meta: RunMeta, metrics_file: Path) -> str:
    """`meta.status`, except `interrupted` for a `running` run whose process is gone (see the module doc)."""
    if meta.status != "running":
        return meta.status
    if meta.host == socket.gethostname():
        return "running" if process_alive(meta.pid, iso_seconds(meta.started_at)) else "interrupted"
    return "running" if _heard_from_lately(meta, metrics_file) else "interrupted"


def process_alive(pid: object, run_started: Optional[float]) -> bool:
    """Whether process `pid` exists and is the one that started a run at `run_started` (epoch seconds)."""
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False
    started = process_start_time(pid)
    if started is not None:
        return run_started is None or started <= run_started + START_SLACK_SECONDS
    if PROC.is_dir():
        return False  # /proc lists every live process: no entry, no process
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def process_start_time(pid: int) -> Optional[float]:
    """When process `pid` started (epoch seconds) from /proc; None where /proc or the process is missing."""
    boot = _boot_time()
    try:
        stat = (PROC / str(pid) / "stat").read_text()
    except (OSError, ValueError):
        return None
    # the command name (field 2) may hold spaces and parentheses: the fields after it follow the last ')'
    fields = stat[stat.rfind(")") + 2:].split()
    try:
        ticks = int(fields[19])  # field 22, starttime, in clock ticks since boot
    except (IndexError, ValueError):
        return None
    return None if boot is None else boot + ticks / os.sysconf("SC_CLK_TCK")


@lru_cache(maxsize=1)
def _boot_time() -> Optional[float]:
    try:
        for line in (PROC / "stat").read_text().splitlines():
            if line.startswith("btime "):
                return float(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


def _heard_from_lately(meta: RunMeta, metrics_file: Path) -> bool:
    signs = [iso_seconds(meta.heartbeat_at), iso_seconds(meta.started_at)]
    try:
        signs.append(metrics_file.stat().st_mtime)
    except OSError:
        pass
    known = [s for s in signs if s is not None]
    return bool(known) and time.time() - max(known) < HEARTBEAT_TIMEOUT_SECONDS


def iso_seconds(iso: object) -> Optional[float]:
    """An ISO time (UTC when it names no zone) as epoch seconds; None when it is not one."""
    if not isinstance(iso, str) or not iso:
        return None
    try:
        when = datetime.fromisoformat(iso)
    except ValueError:
        return None
    return (when if when.tzinfo else when.replace(tzinfo=timezone.utc)).timestamp()


# --- the run folder's lock: one process trains or resumes a run at a time ------------------------------

LOCK_FILE = ".lock"  # in the run folder; holds "<pid> <trained|resumed>" of the process that holds it


class RunLock:
    """An exclusive flock(2) on the run folder's lock file, held by the process that trains or resumes the
    run; the kernel drops it when that process ends, however it ends (SIGKILL included)."""

    def __init__(self, handle: TextIO):
        self._handle = handle

    def release(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


def lock_run(folder: Path, run_id: str, doing: str) -> RunLock:
    """Take run `run_id`'s lock for `doing` (trained, resumed). RunError, naming the holder's PID, when another
    process holds it. The file is never deleted: unlinking a lock file lets two processes lock two files."""
    from nnlab.errors import RunError

    lock, holder = try_lock(folder, run_id, doing)
    if lock is None:
        pid, what = holder
        raise RunError(f"--resume: run {run_id} is being {what} by PID {pid}; wait for it to end (or stop it), "
                       f"then resume it")
    return lock


def try_lock(folder: Path, run_id: str, doing: str) -> tuple[Optional[RunLock], tuple[str, str]]:
    """The run folder's lock, or None and (PID, what it does) of the process that holds it."""
    import fcntl

    from nnlab.errors import RunError

    try:
        handle = open(folder / LOCK_FILE, "a+")
    except OSError as e:
        raise RunError(f"run {run_id}: cannot open its lock file {folder / LOCK_FILE} ({e.strerror or e})") from None
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.seek(0)
        holder = handle.read().split()
        handle.close()
        pid = holder[0] if holder and holder[0].isdigit() else "?"
        what = holder[1] if len(holder) > 1 and holder[1] in ("trained", "resumed") else "used"
        return None, (pid, what)
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()} {doing}\n")
    handle.flush()
    return RunLock(handle), ("", "")
