"""`nnlab show RUN` for people: status, note, what the spec trained, each model's results (`mean ± sd` with
repeats; where an interrupted model stopped), its verdicts and gates, how far an unfinished run got, what
the store knows about its data, and its files. Smoke runs say so, with the epochs really run."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from rich.console import Group, RenderableType
from rich.text import Text

from nnlab.core.verdicts import without_advice
from nnlab.views.grid import Col, Grid
from nnlab.core.numbers import format_value, stored_float
from nnlab.core.records import ModelResult, RunSummary
from nnlab.core.columns import metric_column, monitor_metric
from nnlab.views.perclass import per_class_parts
from nnlab.views.train_report import not_stacked_line
from nnlab.report.rows import model_rows, planned_epochs, progress, run_metrics, run_monitor, unfinished
from nnlab.runstore import Run
from nnlab.core.settings import flatten
from nnlab.views.tables import SMOKE_STYLE, STATUS_STYLES, duration, metric_cell, seconds, started_local, status_styles
from nnlab.core.jsonvalue import JSONObject, JSONValue


def show_view(run: Run, store_notes: Optional[list[str]] = None) -> Group:
    """One run: status, note, what the spec trained, each model's results, how far it got, its files."""
    meta, summary, status = run.meta, run.summary, run.status
    head = Text.assemble((run.folder, "bold"), "  ", (status, STATUS_STYLES.get(status, "")),
                         *([("  smoke", SMOKE_STYLE)] if run.smoke else []),
                         f"  started {started_local(run.started_at, True)}",
                         f"  took {duration(stored_float(meta.duration_seconds))}"
                         if meta.duration_seconds is not None else "")
    parts: list[RenderableType] = [head]
    if run.note:
        parts.append(Text(f"note: {run.note}"))
    for added in meta.notes:  # `nnlab note`, oldest first, each with when it was added
        parts.append(Text(f"note {started_local(added.time, True)}: {added.text}"))
    if meta.tags:
        parts.append(Text("tags: " + ", ".join(meta.tags)))
    if meta.error:
        parts.append(Text(f"error: {meta.error}", style="red"))
    facts = [f"seed {meta.seed if meta.seed is not None else run.spec.get('seed')}", f"device {meta.device or '?'}"]
    if meta.git_commit:
        facts.append(f"git {str(meta.git_commit)[:10]}")
    if meta.sweep:
        facts.append(f"sweep {meta.sweep}")
    parts.append(Text("  ".join(facts), style="dim"))
    if run.smoke:
        parts.append(Text(smoke_line(run), style=SMOKE_STYLE))
    parts.append(Text("\n".join(spec_lines(run.spec, summary))))
    parts.append(_models_grid(run))
    parts.extend(per_class_parts(summary))
    parts.extend(_result_lines(run, summary))
    if unfinished(run):
        parts.append(_progress(run, status))
    parts.extend(Text(line, style="dim") for line in store_notes or [])
    files = [str(path.relative_to(run.path)) for path in run.files().values()]
    parts.append(Text(f"\nfiles in {_short_path(run.path)}{os.sep}\n" + "\n".join(f"  {name}" for name in files),
                      overflow="fold"))
    return Group(*parts)


def smoke_line(run: Run) -> str:
    """What a smoke run is, and the epochs each model really ran against those the spec plans."""
    planned = planned_epochs(run)
    ran = [f"{r['model']} {r['epochs_run']}" + (f" of {planned[r['model']]}" if planned.get(r["model"]) else "")
           for r in model_rows(run)]
    return ("smoke run (train --smoke): a quick pipeline check on a small training sample, not a result: its "
            "numbers are a smoke check only, with no verdict on the models; epochs run: " + (", ".join(ran) or "none"))


def _result_lines(run: Run, summary: Optional[RunSummary]) -> list[Text]:
    """Where interrupted models stopped, each model's verdicts and message, and the gates."""
    lines: list[Text] = []
    if summary is None:
        return lines
    for name, result in summary.models.items():
        cut_off = result.status == "interrupted"
        if cut_off:  # said once: where it stopped, and that its fit has no verdict
            lines.append(Text(interrupted_line(result, run), style="yellow"))
        if result.repeats > 1 and result.members:
            lines.append(Text(members_line(result, monitor_metric(run_monitor(run))), style="dim"))
        if result.not_stacked:
            lines.append(Text(not_stacked_line(result), style="dim"))
        # older runs stored fit verdicts for cut-off models, and every run stores them for smoke runs
        said = without_advice(result.diagnosis, result.message) if cut_off or run.smoke else \
            [line for line in result.diagnosis if line != result.message]
        lines.extend(Text(f"{name}: {line}") for line in said)
        if result.message and not cut_off:
            lines.append(Text(f"{name}: {result.message}", style="red"))
    for gate in summary.expect:
        mark, style = ("pass", "green") if gate.passed else ("MISS", "red")
        got = "missing" if gate.value is None else format_value(stored_float(gate.value))
        lines.append(Text.assemble((mark, style), f"  {gate.key} {gate.rule}  (got {got})"))
    return lines


def members_line(result: ModelResult, metric: str) -> str:
    """`mlp members (seed: val_loss): 0: 0.3120, 1: 0.3050, 2: 0.3301`: each repeat's own number."""
    values = ", ".join(f"{m.seed}: {format_value(stored_float(m.val.get(metric)))}" + (
        f" ({m.status})" if m.status != "completed" else "") for m in result.members)
    return f"{result.name} members (seed: {metric_column('val', metric)}): {values}"


def interrupted_line(result: ModelResult, run: Run) -> str:
    """`mlp: interrupted at epoch 7 of 40; best epoch 5: val_loss 0.3120, val_accuracy 0.8810; cut off, so no
    verdict on its fit`."""
    planned = result.epochs_planned or planned_epochs(run).get(result.name)
    scores = ", ".join(f"{metric_column('val', m)} {format_value(stored_float(v))}"
                       for m, v in result.val.items() if v is not None)
    return (f"{result.name}: interrupted at epoch {result.epochs_run}" + (f" of {planned}" if planned else "")
            + (f"; best epoch {result.best_epoch}" + (f": {scores}" if scores else "") if result.best_epoch else
               "; no finished epoch") + "; cut off, so no verdict on its fit")


def _short_path(path: Path) -> str:
    """A path relative to the working directory when it lies below it (`runs/spam-...`), else as it is."""
    try:
        return str(path.resolve().relative_to(os.getcwd()))
    except (ValueError, OSError, RuntimeError):  # RuntimeError: a symlink loop
        return str(path)


def spec_lines(spec: JSONObject, summary: Optional[RunSummary] = None) -> list[str]:
    """The spec in a few lines: data, baseline (its resolved kind), models, training defaults, metrics."""
    data = _dict(spec.get("data"))
    split = _dict(data.get("split"))
    source = data.get("path") or (f"builtin {data['builtin']}" if data.get("builtin") else "?")
    task = summary.task if summary else data.get("task", "auto")
    kind = next((k for k in ("text", "sequence", "image") if isinstance(data.get(k), dict)), None)
    read_as = [f"{kind} {_pairs(data[kind])}"] if kind else []
    if kind != "text":  # token ids are not scaled
        read_as.append(f"scale {data.get('scale', '?')}")
    lines = [f"data     {source} -> {data.get('target', '?')} ({task}); "
             f"val {split.get('val', '?')}, test {split.get('test', '?')}; {'; '.join(read_as)}"]
    baseline = spec.get("baseline")
    resolved = summary.baseline_result if summary else None
    if isinstance(baseline, dict) and resolved is not None:
        baseline = {**baseline, "kind": resolved.kind}  # `auto` as what it became (softmax, logistic, linear)
    lines.append("baseline " + (_pairs(baseline) if isinstance(baseline, dict) else "none"))
    train = _dict(spec.get("train"))
    optimizer = _dict(train.get("optimizer"))
    lines.append(f"train    {train.get('epochs', '?')} epochs, batch {train.get('batch_size', '?')}, "
                 f"{optimizer.get('name', '?')} lr {format_value(optimizer.get('lr'), None)}"
                 + (f", scheduler {train['scheduler'].get('name')}" if isinstance(train.get("scheduler"), dict) else "")
                 + (f", augment {augment_text(train['augment'])}" if isinstance(train.get("augment"), dict) else ""))
    for model in spec.get("models") if isinstance(spec.get("models"), list) else []:
        if isinstance(model, dict):
            hidden = ("name", "kind", "train") + (() if kind == "text" else ("embedding",))  # embeddings read text
            own = _pairs({k: v for k, v in model.items() if k not in hidden})
            changed = _changed(train, _dict(model.get("train")))
            extra = f"; {_pairs(flatten(changed, 'train'))}" if changed else ""
            lines.append(f"model    {model.get('name')}: {model.get('kind')} {own}{extra}")
    metrics = spec.get("metrics") if isinstance(spec.get("metrics"), list) else []
    lines.append(f"metrics  {', '.join(map(str, metrics))}; monitor {spec.get('monitor', 'val_loss')}")
    return lines


def augment_text(augment: JSONObject) -> str:
    """`flip horizontal, crop pad 4, noise 0.05`: the augmentations a spec switches on (train.augment)."""
    parts = []
    for name, value in augment.items():
        if isinstance(value, dict):
            parts.append(f"{name} " + " ".join(f"{k} {format_value(v, None)}" for k, v in value.items()))
        elif value is not None:
            parts.append(f"{name} {format_value(value, None)}")
    return ", ".join(parts) or "none"


def _dict(value: JSONValue) -> JSONObject:
    return value if isinstance(value, dict) else {}


def _pairs(settings: JSONObject) -> str:
    return " ".join(f"{k}={format_value(v, None)}" for k, v in settings.items())


def _changed(base: JSONObject, merged: JSONObject) -> JSONObject:
    """The parts of a model's merged train settings that differ from the spec's train defaults."""
    out = {}
    for key, value in merged.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            inner = _changed(base[key], value)
            if inner:
                out[key] = inner
        elif base.get(key, object()) != value:
            out[key] = value
    return out


def _models_grid(run: Run) -> Grid | Text:
    rows = model_rows(run)
    if not rows:
        return Text("no model has finished an epoch yet", style="yellow")
    results = run.summary.models if run.summary else {}
    watched = monitor_metric(run_monitor(run))
    repeated = any((r.get("repeats") or 1) > 1 for r in rows)
    cols = [Col("model", [r["model"] for r in rows], min_width=8, max_width=20, priority=9),
            Col("kind", [str(r.get("kind") or "") for r in rows], min_width=8, priority=3),
            Col("params", [_given(results[r["model"]].params if r["model"] in results else None, None)
                           for r in rows], right=True, priority=2),
            Col("ep", [f"{r.get('best_epoch')}/{r.get('epochs_run')}" for r in rows], right=True, priority=5)]
    if repeated:
        cols.append(Col("N", [str(r.get("repeats") or 1) for r in rows], right=True, priority=5))
    cols.append(Col(watched, [metric_cell(r, metric_column("val", watched)) for r in rows], right=True, priority=8,
                    group="val"))
    for metric in run_metrics(run):
        cols.append(Col(metric, [metric_cell(r, metric_column("test", metric)) for r in rows], right=True,
                        priority=7 if metric == watched else 4, group="test"))
    cols.append(Col("secs", [seconds(r.get("train_seconds")) for r in rows], right=True, priority=3))
    cols.append(Col("samples/s", [_given(results[r["model"]].samples_per_second if r["model"] in results else None, 0)
                                  for r in rows], right=True, priority=1))
    statuses = [str(r.get("status")) for r in rows]
    cols.append(Col("status", statuses, status_styles(statuses), min_width=9, priority=6))
    title = "\nmodels (ep: best/run; metrics at the best epoch" + ("; mean ± sd over N repeats)" if repeated else ")")
    return Grid(cols, title=title)


def _given(value: object, digits: Optional[int]) -> str:
    """A summary number, or nothing where the summary has none (an unfinished run)."""
    return "" if value is None else format_value(value, digits)


def _progress(run: Run, status: str) -> Grid | Text:
    rows = progress(run)
    started = [r for r in rows if r["epochs_done"]]
    if not started:
        return Text(f"\n{status}: no epoch recorded yet", style="yellow")
    current = started[-1]
    planned = current["epochs_planned"]
    verb = "is at" if status == "running" else "stopped at"
    summarized = run.summary is not None
    head = (f"\n{status}" + ("" if summarized else ", no summary yet") + f": {verb} {current['model']} epoch "
            f"{current['epochs_done']}"
            + (f" of {planned}" if planned else ""))
    return Grid([Col("model", [r["model"] for r in rows], priority=9),
                 Col("epochs", [f"{r['epochs_done']}/{r['epochs_planned']}" if r["epochs_planned"] else
                                str(r["epochs_done"]) for r in rows], right=True),
                 Col("last val_loss", [format_value(r["val_loss"]) for r in rows], right=True)], title=head)
