"""What `nnlab train` shows: the data summary, a progress bar per model, the results table and verdicts.

Rich renderables are built here; the console they go to is the caller's. Progress bars show only on a
terminal; elsewhere (CI, tests, pipes) each finished model gets one plain line instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Protocol

from rich import box
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from nnlab.core.verdicts import without_advice
from nnlab.core.numbers import format_spread, format_value
from nnlab.core.columns import best_value
from nnlab.core.records import DataSummary, ModelResult, RunSummary
from nnlab.report.check import gate_line  # one line for a gate, in train and in check


class _Spec(Protocol):  # what the report reads of nnlab.spec.Spec (the read side does not import the train side)
    name: str
    monitor: str

    @property
    def default_model(self) -> bool: ...


class _Prepared(Protocol):  # ... of nnlab.data.Prepared
    summary: Optional[DataSummary]


class _Epoch(Protocol):  # ... of nnlab.training.state.EpochRecord
    values: dict[str, float]


def fmt(value: Optional[float]) -> str:
    """A number as every nnlab table shows it (numbers.format_value); `-` where there is none."""
    return "-" if value is None else format_value(value) or "nan"


def describe_input(data: DataSummary) -> str:
    """`57 features`, `text · 64 tokens · vocabulary 7,285`, `sequence 96 × 1`, `image 1 × 8 × 8`."""
    kind, shape = data.input.kind, data.input.shape
    if kind == "text":
        beside = f" · beside {data.columns - 1} column(s)" if data.columns > 1 else ""  # text beside a table
        return f"text · {shape[0]} tokens · vocabulary {data.input.vocab_size:,}{beside}"
    if kind in ("sequence", "image"):
        return f"{kind} {' × '.join(map(str, shape))}"
    return f"{data.features} features"


class TrainReport:
    """Implements nnlab.run.session.Reporter for a console."""

    def __init__(self, console: Console, progress: Optional[bool] = None, note: str = ""):
        self.console = console
        self.note = note  # a run that says why it changed several things needs no reminder to
        self.show_progress = console.is_terminal if progress is None else progress
        self.progress: Optional[Progress] = None
        self.task_id: Optional[TaskID] = None
        self.monitor = "val_loss"
        self.run_path: Optional[Path] = None

    def run_created(self, path: Path) -> None:
        self.run_path = path

    def data_ready(self, spec: _Spec, prepared: _Prepared, device: str) -> None:
        s = prepared.summary
        assert s is not None, "nnlab.data.prepare always sums up the data"
        self.monitor = spec.monitor
        say = lambda text: self.console.print(text, markup=False, soft_wrap=True)  # noqa: E731
        say(f"{spec.name}: {s.source} · {s.rows} rows · {describe_input(s)} · {s.task} ({s.task_reason})")
        if s.classes is not None:
            total = sum(s.classes.values())
            counts = [f"{c}: {n} ({n / total:.1%})" for c, n in s.classes.items()]
            shown = counts if len(counts) <= 6 else counts[:5] + [f"... {len(counts) - 5} more"]
            positive = f" · positive class {s.positive}" if s.positive is not None else ""
            say(f"  classes {', '.join(shown)}{positive}")
        split = s.split
        say(f"  split train {split['train']} / val {split['val']} / test {split['test']} · device {device}")
        images = s.images
        if images:  # image files: what decoding did (data/images.py)
            size = "x".join(map(str, images["size"]))
            skipped = f", {images['skipped']} skipped (bad files, listed in summary.json)" if images["skipped"] else ""
            say(f"  {images['files']} image files ({images['resized']} resized to {size}){skipped}"
                f"{' · decoded images read from the cache' if images['cached'] else ''}")
        if s.vectors:  # data.text.vectors: how much of the vocabulary the file covers (data/text.py)
            v = s.vectors
            say(f"  word vectors {v['file']}: {v['covered']:,} of {v['words']:,} vocabulary words covered "
                f"({v['dim']}-d{', frozen' if v['frozen'] else ''}; the others start random)")
        if spec.default_model:
            say("  no models in the spec: training the baseline and a first network (MLP 64-32, ReLU, "
                "Adam lr 1e-3), the usual first step")

    def changes(self, previous: Optional[str], lines: list[str]) -> None:
        """What changed since the newest earlier run of this spec: one change at a time reads clearly."""
        if previous is None:
            return
        say = lambda text: self.console.print(text, markup=False, soft_wrap=True)  # noqa: E731
        if not lines:
            say(f"  no setting changed since {previous}")
            return
        say(f"  changed since {previous}: {'; '.join(lines)}")
        if len(lines) > 1 and not self.note.strip():
            say(f"  {len(lines)} settings changed at once: their effects cannot be told apart "
                "(say why with --note)")

    def model_started(self, name: str, kind: str, params: int, epochs: int, members: int = 1) -> None:
        if not self.show_progress:
            return
        epochs *= members
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(bar_width=24),
                                 TextColumn("{task.completed}/{task.total}"), TextColumn("{task.fields[numbers]}"),
                                 TimeElapsedColumn(), TimeRemainingColumn(), console=self.console, transient=True)
        self.progress.start()
        self.task_id = self.progress.add_task(
            f"{name} ({kind}, {params:,} params{f', {members} members' if members > 1 else ''})", total=epochs,
            numbers="")

    def epoch(self, record: _Epoch) -> None:
        if self.progress is None:
            return
        v = record.values
        numbers = f"loss {fmt(v['train_loss'])} · val {fmt(v['val_loss'])}"
        if self.monitor != "val_loss":
            numbers += f" · {self.monitor} {fmt(v.get(self.monitor))}"
        self.progress.update(self.task_id, advance=1, numbers=numbers)

    def model_finished(self, result: ModelResult) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None
        metric = self.monitor.removeprefix("val_")
        trained = (f"{len(result.ensemble)} member(s)" if result.ensemble is not None
                   else f"best epoch {result.best_epoch}/{result.epochs_run}")
        self.console.print(f"  {result.name}: {result.status}, {trained}, "
                           f"val {metric} {score(result, 'val', metric)}, {result.train_seconds:.2f}s",
                           markup=False, soft_wrap=True)


def score(result: ModelResult, split: str, metric: str) -> str:
    """`0.9304`, or `0.9304 ± 0.0041` for a model trained as several members."""
    value, spread = result.score(split, metric), result.spread(split, metric)
    return fmt(value) if result.repeats == 1 or value is None else format_spread(value, spread)


def results_table(summary: RunSummary) -> Table:
    """One row per model: parameters, best epoch, the monitored validation value, the test metrics (touched
    once, with the best weights), the difference to the baseline on the first metric, training seconds."""
    monitor = summary.monitor.removeprefix("val_")
    tests = summary.metrics or ["loss"]
    key = tests[0]
    models = summary.models
    baseline = summary.baseline_result
    repeats = max((m.repeats for m in models.values()), default=1)
    title = f"best epoch by {summary.monitor}; test set evaluated once"
    if repeats > 1:
        title += f"; mean ± sd over {repeats} members"
    table = Table(title=title, title_justify="left",
                  box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True, show_edge=False)
    columns = ["model", "params", "epoch", f"val\n{monitor}", *[f"test\n{m}" for m in tests], f"Δ {key}\nvs base".replace("accuracy", "acc"),
               "sec"]
    for column in columns:
        table.add_column(column, justify="left" if column == "model" else "right", no_wrap=True)
    cells_for = {f"val\n{monitor}": ("val", monitor), **{f"test\n{m}": ("test", m) for m in tests}}
    best = {col: best_value([e.score(split, m) for e in models.values()], m) for col, (split, m) in cells_for.items()}
    for name, entry in models.items():
        row = [name if entry.status == "completed" else f"{name} ({entry.status})", f"{entry.params:,}",
               f"{entry.best_epoch}/{entry.epochs_run}" if entry.ensemble is None else "-"]
        for col, (split, m) in cells_for.items():
            value = entry.score(split, m)
            highlight = value is not None and value == best[col] and len(models) > 1
            row.append(f"[bold green]{score(entry, split, m)}[/]" if highlight else score(entry, split, m))
        ours = entry.score("test", key)
        theirs = baseline.score("test", key) if baseline else None
        row.append("" if entry is baseline or ours is None or theirs is None else f"{ours - theirs:+.4f}")
        row.append(f"{entry.train_seconds:.2f}")
        table.add_row(*row)
    return table


def verdict_lines(summary: RunSummary, smoke: bool = False) -> list[str]:
    """What the run says below its table; a smoke run's numbers judge nothing, so it gets no fit verdict or
    advice, only what happened."""
    stacked = [name for name, entry in summary.models.items() if entry.stacked]
    lines = [f"stacked: {', '.join(stacked)} trained together as one stack of members (sec is the stack's "
             "time; each member's numbers equal a run of its own)"] if stacked else []
    lines += [not_stacked_line(entry) for entry in summary.models.values() if entry.not_stacked]
    lines += [f"{name}: {note}" for name, entry in summary.models.items()
              for note in (without_advice(entry.diagnosis) if smoke else entry.diagnosis)]
    if smoke:
        lines.append("smoke run: its numbers are a smoke check only (a small training sample, few epochs), so no "
                     "verdict on the models")
    lines += [gate_line(gate, summary.models) for gate in summary.expect]
    return lines


def not_stacked_line(model: ModelResult) -> str:
    """`one after another: cnn's 5 repeats (a CNN model has no stacked form; sec adds them up)`."""
    return f"one after another: {model.name}'s {model.repeats} repeats ({model.not_stacked}; sec adds them up)"

