"""Ctrl-C and SIGTERM as exceptions that name their signal, and sections where they wait.

`nnlab train` turns SIGINT and SIGTERM into `Interrupted` (a KeyboardInterrupt), so a run ends as
`interrupted` and keeps what it finished. While the run store writes something that must not be cut in
half (creating the folder, the final status, a model's result), signals are deferred: the handler notes
the signal and `deferred()` raises it when the section ends. Repeated Ctrl-C during the final writes
therefore cannot leave a half-written run.

SIGHUP (the terminal closed) is handled like SIGTERM, unless the process was started ignoring it (nohup).
As its own process, `nnlab` installs `install_at_start`'s handlers from its first import on, so that a
signal during start-up ends it with one line and exit 130, not a traceback from inside an import or a
bare -15; a command that trains replaces them with `handled`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from typing import Iterator, Optional

HANDLED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
INTERRUPTED_EXIT = 130  # what `nnlab` exits with when a signal stopped it, whichever signal it was


class Interrupted(KeyboardInterrupt):
    """A signal asked the run to stop."""

    def __init__(self, signum: int = signal.SIGINT):
        super().__init__(signum)
        self.signum = signum

    @property
    def signal_name(self) -> str:
        return signal_name(self.signum)


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


class _State:
    depth = 0  # nesting of deferred() sections
    pending: Optional[int] = None  # a signal that arrived inside one
    stopping = False  # an Interrupted was raised: later signals only repeat the request and are ignored
    began = False  # a command put `handled` in place once (start-up is over)


def _handler(signum: int, frame: object) -> None:
    if _State.stopping:
        return
    if _State.depth > 0:
        _State.pending = _State.pending or signum
        return
    _State.stopping = True
    raise Interrupted(signum)


@contextlib.contextmanager
def handled(own_process: bool = False) -> Iterator[None]:
    """Install the handlers for the duration of a command, then restore the previous ones. In a process of
    its own (`own_process`), once interrupted, later signals are ignored until it exits, so that a storm of
    them cannot cut its shutdown short."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread (e.g. a test runner's worker)
        return
    _State.began = True
    previous = {signum: signal.getsignal(signum) for signum in _handled_here()}
    for signum in previous:
        signal.signal(signum, _handler)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, signal.SIG_IGN if own_process and _State.stopping else handler)
        _State.depth, _State.pending, _State.stopping = 0, None, False


def _handled_here() -> list[int]:
    """HANDLED, less a SIGHUP this process was started ignoring (`nohup nnlab train ...` must go on)."""
    return [s for s in HANDLED if not (s == signal.SIGHUP and signal.getsignal(s) == signal.SIG_IGN)]


def install_at_start() -> None:
    """When this process is the `nnlab` command (not a test runner or a notebook importing it): a signal from
    now on until a command installs `handled` ends the process, one line on stderr, exit 130."""
    if threading.current_thread() is not threading.main_thread() or not _is_nnlab_command():
        return
    for signum in _handled_here():
        signal.signal(signum, _at_start)


def _is_nnlab_command() -> bool:
    argv = list(getattr(sys, "orig_argv", sys.argv))
    if "-m" in argv[:-1] and argv[argv.index("-m") + 1] in ("nnlab", "nnlab.cli"):
        return True
    return bool(sys.argv) and os.path.basename(sys.argv[0]) == "nnlab"


def _at_start(signum: int, frame: object) -> None:
    if _State.stopping:  # a storm: the first one is already ending the process
        return
    _State.stopping = True
    line = f"interrupted by {signal_name(signum)}" + ("" if _State.began else
                                                       " before any run was started or changed")
    try:
        os.write(2, f"{line}\n".encode())
    except OSError:
        pass
    raise SystemExit(INTERRUPTED_EXIT)


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Signals that arrive inside wait until the outermost section ends, then raise `Interrupted`."""
    _State.depth += 1
    try:
        yield
    finally:
        _State.depth -= 1
    if _State.depth == 0 and _State.pending is not None:
        signum, _State.pending = _State.pending, None
        _State.stopping = True
        raise Interrupted(signum)


def interrupted_name(error: BaseException) -> str:
    """The signal behind a KeyboardInterrupt: SIGTERM, SIGINT (a plain KeyboardInterrupt is Ctrl-C)."""
    error = getattr(error, "cause", None) or error  # a fit's interrupt carries the one that arrived
    return error.signal_name if isinstance(error, Interrupted) else "SIGINT"
