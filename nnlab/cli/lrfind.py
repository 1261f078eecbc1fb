"""`lr-find`: the learning-rate range test of one model of a spec, as one stack of copies (training/lrfind.py),
recorded as a run folder (lr_find.csv, run.json's `lr_find`, each copy's epochs in metrics.csv)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer

from nnlab.cli.base import RunsDirOption, app, fail, interrupt_handling, stderr, stdout
from nnlab.core.messages import listing, shorten
from nnlab.errors import NnlabError, SpecError

if TYPE_CHECKING:
    from nnlab.training.lrfind import LRCurve

MAX_RATES = 64
MAX_STEPS = 100_000
BAR_WIDTH = 40


@app.command("lr-find")
def lr_find(
    spec: Path = typer.Argument(..., help="The experiment spec (YAML).", show_default=False),
    model: Optional[str] = typer.Option(None, "--model", "-m", show_default=False,
                                        help="The spec's model to test (default: its first)."),
    set_: list[str] = typer.Option([], "--set", help="Override a spec value: KEY.PATH=VALUE (YAML). Repeatable."),
    low: float = typer.Option(1e-6, "--min", help="The smallest learning rate tried."),
    high: float = typer.Option(1.0, "--max", help="The largest learning rate tried."),
    rates: int = typer.Option(16, "--rates", help=f"How many rates, log-spaced from --min to --max (3 to "
                                                  f"{MAX_RATES}): one copy of the model each, in one stack."),
    steps: int = typer.Option(300, "--steps", help="Training steps of every copy (rounded up to whole epochs)."),
    note: str = typer.Option("", "--note", help="A note kept with the run."),
    runs_dir: Optional[Path] = RunsDirOption,
) -> None:
    """Learning-rate range test: train copies of one model side by side, each at its own rate, and suggest one.

    Every copy starts from the same weights and sees the same batches; only its (fixed) learning rate
    differs. The table shows each rate's final training loss (averaged over its last quarter of epochs); the
    suggestion is where that loss falls fastest as the rate grows, before it diverges (Smith 2017; fastai's
    and Lightning's lr_find). The curve is kept as a run (lr_find.csv).

    Exit codes: 0 ok, 2 bad input, 130 interrupted.
    """
    try:
        _check_range(low, high, rates, steps)
    except NnlabError as e:
        fail(e)
    with interrupt_handling():
        try:
            curve, path = _find(spec, model, set_, low, high, rates, steps, note, runs_dir)
        except NnlabError as e:
            fail(e)
        except KeyboardInterrupt as stop:
            from nnlab.core import interrupts

            stderr().print(f"interrupted by {interrupts.interrupted_name(stop)}: lr-find stopped; its run is marked "
                           "interrupted", markup=False)
            raise typer.Exit(130)
    out = stdout()
    for line in curve_lines(curve):
        out.print(line, markup=False, soft_wrap=True)
    out.print(f"run: {path}", markup=False, soft_wrap=True)


def _check_range(low: float, high: float, rates: int, steps: int) -> None:
    """The options alone, before the spec or torch is read: one line naming the option."""
    if not (math.isfinite(low) and low > 0):
        raise NnlabError(f"--min: a learning rate above 0; got {low:g}")
    if not (math.isfinite(high) and high > low):
        raise NnlabError(f"--max: a learning rate above --min ({low:g}); got {high:g}")
    if not 3 <= rates <= MAX_RATES:
        raise NnlabError(f"--rates: from 3 to {MAX_RATES} (the curve needs three points to have a slope); got {rates}")
    if not 1 <= steps <= MAX_STEPS:
        raise NnlabError(f"--steps: from 1 to {MAX_STEPS:,}; got {steps:,}")


def _find(spec_path: Path, model: Optional[str], overrides: list[str], low: float, high: float, count: int,
          steps: int, note: str, runs_dir: Optional[Path]) -> tuple[LRCurve, Path]:
    from nnlab import runstore
    from nnlab.core.columns import epoch_columns
    from nnlab.run import session as runner
    from nnlab.spec import load_spec
    from nnlab.training import lrfind
    from nnlab.training.placement import resolve_device
    from nnlab.training.state import EpochRecord, Problem

    checked, _ = load_spec(spec_path, overrides)  # the model is named before any data is read
    names = [m.name for m in checked.models]
    if not names:
        raise SpecError(f"{spec_path.name}: models: no neural model to test (the list is empty)")
    if model is not None and model not in names:
        raise SpecError(f"--model: no model '{shorten(model)}' in {spec_path.name}; expected one of {listing(names)}")
    plan = runner.plan(spec_path, overrides)
    chosen = next(m for m in plan.spec.models if m.name == (model or names[0]))
    epochs = lrfind.epochs_for(steps, len(plan.prepared.y["train"]), chosen.train.batch_size)
    # the run records what it trains: this model alone, for these epochs at a fixed rate, no baseline
    chosen.train = chosen.train.model_copy(update={"epochs": epochs, "scheduler": None, "early_stopping": None})
    plan.spec.models, plan.spec.baseline = [chosen], None
    device = resolve_device(chosen.train.device)
    store = runstore.store_path(runs_dir)
    runstore.check_store(store)
    tried = lrfind.log_rates(low, high, count)
    data = plan.prepared
    problem = Problem.from_arrays(data.task, data.x, data.y, plan.metrics, plan.spec.monitor, device,
                                  data.preprocessor.target.std, data.n_outputs)
    settings = {"model": chosen.name, "min": low, "max": high, "rates": count, "steps": steps}
    # named apart from the spec's training runs, so that `train`'s "changes since" and compare's groups skip it
    meta = runner.run_meta(plan, note, None, device).model_copy(
        update={"name": f"{plan.spec.name}-lr-find", "lr_find": settings})
    with runstore.RunWriter(store, meta, epoch_columns(plan.metrics)) as writer:
        def on_epoch(record: EpochRecord) -> None:
            writer.append_epoch({"model": record.model, "member": record.member, "epoch": record.epoch,
                                 **record.values, "lr": record.lr, "seconds": round(record.seconds, 6)})

        curve = lrfind.range_test(chosen, data.info, problem, tried, steps, plan.spec.seed, on_epoch)
        rows = [{"lr": rate, "loss": loss, "val_loss": val, "status": status, "suggested": rate == curve.suggested}
                for rate, loss, val, status in zip(curve.rates, curve.losses, curve.val_losses, curve.statuses)]
        writer.save_lr_curve(rows, {**settings, "epochs": curve.epochs, "steps_run": curve.steps,
                                    "stacked": curve.stacked, "suggested_lr": curve.suggested})
    return curve, writer.path


def curve_lines(curve: LRCurve) -> list[str]:
    """The curve as text: a line per rate with its loss and a bar as long as the loss (shortest at the lowest
    loss), the suggested rate marked; then the suggestion and how to use it."""
    how = "as one stack" if curve.stacked else "one after another (the model does not stack)"
    lines = [f"lr-find {curve.model}: {len(curve.rates)} rates from {curve.rates[0]:g} to {curve.rates[-1]:g}, "
             f"{curve.steps} steps each ({curve.epochs} epoch(s)), {how}",
             f"{'lr':>10}  {'train loss':>10}"]
    finite = [loss for loss in curve.losses if math.isfinite(loss)]
    lowest, highest = (min(finite), max(finite)) if finite else (0.0, 0.0)
    for rate, loss, status in zip(curve.rates, curve.losses, curve.statuses):
        if not math.isfinite(loss):
            lines.append(f"{rate:>10.3g}  {status:>10}")
            continue
        share = (loss - lowest) / (highest - lowest) if highest > lowest else 0.0
        bar = "#" * (1 + round(share * (BAR_WIDTH - 1)))
        mark = "  <- suggested" if rate == curve.suggested else ""
        lines.append(f"{rate:>10.3g}  {loss:>10.4f}  {bar}{mark}")
    if finite:  # the other common reading (fastai's "minimum"): the lowest loss, usually a rate too high to keep
        best = curve.losses.index(lowest)
        lines.append(f"lowest loss {lowest:.4f} at lr {curve.rates[best]:g}")
    if curve.suggested is None:
        lines.append("no suggestion: the loss does not fall as the rate grows before it diverges; try a wider "
                     "--min/--max or more --steps")
    else:
        lines.append(f"suggested lr: {curve.suggested:g} (the steepest descent of the smoothed loss before it "
                     f"diverges); try: --set models.{curve.model}.train.optimizer.lr={curve.suggested:g}")
    return lines
