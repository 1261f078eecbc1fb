"""`nnlab export RUN --to tensorboard DIR`: TensorBoard event files with the scalars of metrics.csv.

    DIR/<run folder>/<model>/             a model's epochs (step = epoch) and its `summary/...` scores at
                                          the best epoch
    DIR/<run folder>/<model>/member-<k>/  each member's, for a model trained with repeats

Written with TensorBoard's own record writer and event protos (no torch, no TensorFlow), one file per
folder with a fixed name, replaced whole (layout.write_atomic): exporting again rewrites it, never adds
a second file TensorBoard would read twice.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Iterable, Optional

from nnlab.errors import RunError, describe
from nnlab.export.mlflow_export import millis
from nnlab.export.scalars import Member, model_scalars
from nnlab.runstore import Run
from nnlab.runstore.layout import write_atomic

EVENTS_FILE = "events.out.tfevents.0.nnlab"  # TensorBoard reads any file with 'tfevents' in its name


def _events(scalars: list[tuple[int, float, dict[str, float]]]) -> bytes:
    """(step, wall time, tag -> value) as the bytes of an event file."""
    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.compat.proto.summary_pb2 import Summary
    from tensorboard.summary.writer.record_writer import RecordWriter

    out = io.BytesIO()
    writer = RecordWriter(out)
    first = scalars[0][1] if scalars else 0.0
    writer.write(Event(wall_time=first, file_version="brain.Event:2").SerializeToString())
    for step, wall, values in scalars:
        summary = Summary(value=[Summary.Value(tag=tag, simple_value=value) for tag, value in values.items()])
        writer.write(Event(wall_time=wall, step=step, summary=summary).SerializeToString())
    return out.getvalue()


def _member_steps(member: Member, start: float) -> list[tuple[int, float, dict[str, float]]]:
    steps, elapsed = [], 0.0
    for epoch in sorted(member.epochs):
        elapsed += member.epochs[epoch].get("seconds", 0.0)
        steps.append((epoch, start + elapsed, member.epochs[epoch]))
    return steps


def _write(folder: Path, steps: list[tuple[int, float, dict[str, float]]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / EVENTS_FILE
    write_atomic(path, _events(steps))
    return path


def export_run(run: Run, logdir: Path, models: Optional[list[str]] = None) -> list[str]:
    start = (millis(run.meta.first_started_at or run.started_at) or 0) / 1000
    end = (millis(run.meta.finished_at) or 0) / 1000 or start
    lines = []
    for scalars in model_scalars(run, models):
        folder = logdir / run.folder / scalars.name
        result = scalars.result
        nested = len(scalars.members) > 1 or (result is not None and result.repeats > 1)
        best = [(result.best_epoch, end, scalars.summary_scores())] if result and scalars.summary_scores() else []
        try:
            if nested:
                for member in scalars.members.values():
                    _write(folder / f"member-{member.member}", _member_steps(member, start))
                _write(folder, best)
            else:
                steps = [s for m in scalars.members.values() for s in _member_steps(m, start)]
                _write(folder, steps + best)
        except OSError as e:
            raise RunError(f"--to tensorboard: cannot write {folder} ({describe(e)})") from None
        members = f" and {len(scalars.members)} member folders" if nested else ""
        lines.append(f"{scalars.name}: {folder}{members}")
    return lines


def export_runs(runs: Iterable[Run], logdir: Path, models: Optional[list[str]] = None) -> list[str]:
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        raise RunError("--to tensorboard: needs the tensorboard extra: pip install -e '.[tensorboard]' in the "
                       "nnlab checkout") from None
    if logdir.exists() and not logdir.is_dir():
        raise RunError(f"--to tensorboard: {logdir} is a file; give a folder for the event files")
    lines = []
    for run in runs:
        lines.append(f"{run.folder} -> TensorBoard {logdir}:")
        lines += [f"  {line}" for line in export_run(run, logdir, models)]
    return lines
