"""`nnlab train --log-to mlflow[:URI]`: the run streamed to MLflow as each epoch ends.

`MlflowStream` wraps the train command's Reporter: every call goes on to it unchanged, and a copy of what
the run reports (the run folder, each model's start, each epoch's metrics.csv row, each result) goes on a
queue. One background thread empties the queue into MLflow, into the same MLflow runs, tags and names as
`nnlab export` writes (mlflow_export.py), so the training thread only enqueues and never waits on the
network. When the run ends, `close` lets the thread finish with a full export of the run folder (params,
artifacts, statuses, any epoch it missed), for a bounded time. A tracking store that cannot be reached, or
fails mid-run, gives one warning and the thread stops logging: training goes on, the run folder keeps
everything, and `nnlab export RUN --to mlflow` adds what is missing later.
"""

from __future__ import annotations

import queue
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Optional

from nnlab.core.settings import Settings
from nnlab.errors import NnlabError
from nnlab.export import mlflow_export
from nnlab.export.mlflow_export import MEMBER_TAG, PARENT_TAG, Tracking, failure_reason, run_tags

if TYPE_CHECKING:
    from nnlab.core.records import ModelResult
    from nnlab.run.session import Reporter
    from nnlab.training.state import EpochRecord

CLOSE_SECONDS = 30.0  # how long the end of a run waits for the queue to empty before it says so
SCHEME = "mlflow"


def parse_log_to(value: str) -> Optional[str]:
    """`mlflow` -> None (MLflow's default store, $MLFLOW_TRACKING_URI), `mlflow:URI` -> URI."""
    name, _, uri = value.partition(":")
    if name != SCHEME or (_ and not uri):
        raise NnlabError(f"--log-to: expected mlflow or mlflow:URI (mlflow:http://127.0.0.1:5000, "
                         f"mlflow:sqlite:///mlflow.db); got {value[:60]!r}")
    return uri or None


class MlflowStream:
    """A Reporter that also streams the run to MLflow from a background thread (see the module's doc)."""

    def __init__(self, inner: Reporter, uri: Optional[str], warn: Callable[[str], None]):
        mlflow_export.quick_failing_http()
        self.inner, self.uri, self.warn = inner, uri, warn
        self.events: queue.Queue[tuple] = queue.Queue()
        self.failed = False
        self.path: Optional[Path] = None
        self.thread = threading.Thread(target=self._work, name="nnlab-mlflow", daemon=True)
        self.thread.start()

    def __getattr__(self, name: str) -> object:  # the train command reads its report's run_path
        return getattr(self.inner, name)

    def run_created(self, path: Path) -> None:
        self.inner.run_created(path)
        self.path = path
        self.events.put(("run", path))

    def changes(self, previous: Optional[str], lines: list[str]) -> None:
        self.inner.changes(previous, lines)

    def data_ready(self, spec: object, prepared: object, device: str) -> None:
        self.inner.data_ready(spec, prepared, device)  # type: ignore[arg-type]

    def model_started(self, name: str, kind: str, params: int, epochs: int, members: int = 1) -> None:
        self.inner.model_started(name, kind, params, epochs, members)
        self.events.put(("model", name, kind, members))

    def epoch(self, record: EpochRecord) -> None:
        self.inner.epoch(record)
        values = {**record.values, "lr": record.lr, "seconds": record.seconds}
        self.events.put(("epoch", record.model, record.member, record.epoch, values, int(time.time() * 1000)))

    def model_finished(self, result: ModelResult) -> None:
        self.inner.model_finished(result)
        self.events.put(("finished", result.name))

    def close(self, timeout: float = CLOSE_SECONDS) -> None:
        """After training: let the thread complete the export, waiting at most `timeout` seconds."""
        self.events.put(("end",))
        self.thread.join(timeout)
        if self.thread.is_alive() and not self.failed:
            self._fail(f"not done after {timeout:.0f} s")

    def _fail(self, why: str) -> None:
        if not self.failed:
            self.failed = True
            where = self.uri or "(MLflow's default store)"
            later = f"nnlab export {self.path.name} --to mlflow" if self.path else "nnlab export RUN --to mlflow"
            self.warn(f"--log-to mlflow: {where}: {why}; training goes on and the run folder keeps everything: "
                      f"add it to MLflow later with `{later}" + (f" --tracking-uri {self.uri}`" if self.uri else "`"))

    def _work(self) -> None:
        state = _Streaming(self.uri)
        while True:
            event = self.events.get()
            if self.failed:
                if event[0] == "end":
                    return
                continue
            try:
                if state.handle(event):
                    return
            except Exception as e:  # noqa: BLE001 - the store down, gone, refusing: never the training's problem
                self._fail(failure_reason(e))


class _Streaming:
    """The worker's state: the run, its MLflow runs by (model, member), each model's member count."""

    def __init__(self, uri: Optional[str]):
        self.uri = uri
        self.tracking: Optional[Tracking] = None
        self.errors: tuple[type[BaseException], ...] = (OSError,)
        self.run = None
        self.known: dict[tuple[str, Optional[str]], str] = {}
        self.members: dict[str, int] = {}
        self.start = 0

    def handle(self, event: tuple) -> bool:
        """Do one event; True at the end."""
        from nnlab import runstore

        kind = event[0]
        if kind == "run":
            self.run = runstore.read_run(event[1])
            self.tracking = Tracking(self.uri, self.run.name or "nnlab")
            self.errors = self.tracking.errors
            self.start = mlflow_export.millis(self.run.started_at) or int(time.time() * 1000)
            self.known = self.tracking.exported(self.run.id)
        elif self.tracking is None or self.run is None:
            return kind == "end"
        elif kind == "model":
            _, name, model_kind, members = event
            self.members[name] = members
            self._open(name, None, model_kind)
            for member in range(members if members > 1 else 0):
                self._open(name, member, model_kind)
        elif kind == "epoch":
            from mlflow.entities import Metric

            _, name, member, epoch, values, stamp = event
            target = self._open(name, member if self.members.get(name, 1) > 1 else None, None)
            metrics = [Metric(mlflow_export.param_key(k), float(v), stamp, epoch) for k, v in values.items()
                       if v is not None and v == v]
            self.tracking.client.log_batch(target, metrics=metrics)
        elif kind == "finished":
            pass  # the result's scores and status come with the full export at the end
        elif kind == "end":
            mlflow_export.export_run(self.tracking, runstore.read_run(self.run.path))
            return True
        return False

    def _open(self, name: str, member: Optional[int], model_kind: Optional[str]) -> str:
        assert self.tracking is not None and self.run is not None
        key = (name, None if member is None else str(member))
        if key in self.known:
            return self.known[key]
        tags = run_tags(self.run, name, model_kind, "running")
        if member is not None:
            tags.update({MEMBER_TAG: str(member), PARENT_TAG: self._open(name, None, model_kind)})
        label = f"{self.run.id}:{name}" + (f"#{member}" if member is not None else "")
        mlrun, _ = self.tracking.open_run(self.known, name, member, label, self.start, tags)
        settings = Settings.of(self.run.spec)
        own = settings.baseline if name == "baseline" else settings.models.get(name, {})
        self.tracking.log_params(mlrun, {**settings.shared, **own}, True)
        return mlrun
