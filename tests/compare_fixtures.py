"""Hand-made run folders with known numbers, built as typed records (`records.RunMeta`, `RunSummary`,
`ModelResult`) and written through `runstore.RunWriter` as `nnlab train` writes them, and an in-process
`nnlab` for the browse commands (runs, compare, show)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any, Optional

from typer.testing import CliRunner

from nnlab import runstore
from nnlab.cli import app
from nnlab.core.records import GateResult, MemberResult, ModelResult, RunMeta, RunSummary
from nnlab.core.columns import epoch_columns

METRICS = ["accuracy"]
TRAIN = {"epochs": 3, "batch_size": 32, "optimizer": {"name": "adam", "lr": 0.001, "weight_decay": 0.0},
         "scheduler": None, "early_stopping": {"monitor": "val_loss", "patience": 8}, "grad_clip": None}


def make_spec(name: str = "exp", seed: int = 0, train: dict | None = None, models: list[dict] | None = None,
              baseline: Any = "default", **top: Any) -> dict:
    """A resolved spec: each model carries its train settings merged over the defaults, as the runner writes."""
    defaults = _merge(TRAIN, train or {})
    models = models if models is not None else [{"name": "mlp", "kind": "mlp", "hidden": [64, 32], "dropout": 0.0}]
    resolved = []
    for model in models:
        own = {k: v for k, v in model.items() if k != "train"}
        resolved.append({**own, "train": _merge(defaults, model.get("train") or {})})
    spec = {"name": name, "seed": seed,
            "data": {"path": "data.csv", "target": "y", "split": {"val": 0.15, "test": 0.15, "stratify": True}},
            "baseline": {"kind": "logistic", "l2": 1.0} if baseline == "default" else baseline,
            "train": defaults, "models": resolved, "metrics": METRICS, "monitor": "val_loss"}
    spec.update(top)
    return spec


def _merge(base: dict, over: dict) -> dict:
    merged = copy.deepcopy(base)
    for key, value in over.items():
        merged[key] = _merge(merged[key], value) if isinstance(value, dict) and isinstance(merged.get(key), dict) \
            else copy.deepcopy(value)
    return merged


def result(val_loss: float, test_loss: float, val_acc: float, test_acc: float, best_epoch: int = 1,
           epochs_run: int = 1, kind: str = "mlp", seconds: float = 1.0, status: str = "completed",
           diagnosis: list[str] | None = None, name: str = "", epochs_planned: Optional[int] = None) -> ModelResult:
    """One model's result (its name is set from the key by `write_run`)."""
    return ModelResult(name=name or kind, kind=kind, params=100, status=status, best_epoch=best_epoch,
                       epochs_run=epochs_run, epochs_planned=epochs_planned,
                       val={"loss": val_loss, "accuracy": val_acc}, test={"loss": test_loss, "accuracy": test_acc},
                       train_seconds=seconds, samples_per_second=1000.0, diagnosis=diagnosis or [])


def repeated(name: str, val_accs: list[float], test_accs: list[float], val_losses: Optional[list[float]] = None,
             kind: str = "mlp") -> ModelResult:
    """A model trained `len(val_accs)` times (seeds 0..N-1): means, sample sds (ddof=1) and the members."""
    import numpy as np

    val_losses = val_losses or [1 - a for a in val_accs]
    test_losses = [1 - a for a in test_accs]
    members = [MemberResult(member=i, seed=i, status="completed", best_epoch=1, epochs_run=1,
                            val={"loss": val_losses[i], "accuracy": val_accs[i]},
                            test={"loss": test_losses[i], "accuracy": test_accs[i]}) for i in range(len(val_accs))]

    def stats(values: list[float]) -> tuple[float, float]:
        return float(np.mean(values)), float(np.std(values, ddof=1))

    (vl, vls), (va, vas), (tl, tls), (ta, tas) = map(stats, (val_losses, val_accs, test_losses, test_accs))
    return ModelResult(name=name, kind=kind, params=100, status="completed", best_epoch=1, epochs_run=1,
                       val={"loss": vl, "accuracy": va}, test={"loss": tl, "accuracy": ta},
                       val_sd={"loss": vls, "accuracy": vas}, test_sd={"loss": tls, "accuracy": tas},
                       repeats=len(val_accs), members=members, train_seconds=1.0)


def write_run(store: Path, spec: dict, results: dict[str, ModelResult] | None = None, *, minute: int = 0,
              note: str = "", status: str = "completed", history: dict[str, list[float]] | None = None,
              summary: bool = True, expect: list[dict] | None = None, complete: bool = True, **meta: Any) -> Path:
    """A run folder. `results`: model -> `result(...)` (summary.json, unless summary=False); `history`:
    model -> validation losses per epoch (metrics.csv; by default each model's best epoch only); `minute`
    orders the runs (started at 2025-01-01 00:<minute>; a `running` run keeps its real start, since its
    process must have started before it). `meta`: more RunMeta fields (smoke, sweep, data_fingerprint)."""
    results = {name: r.model_copy(update={"name": name}) for name, r in (results or {}).items()}
    start = RunMeta(id="pending", name=spec["name"], seed=spec["seed"], note=note, device="cpu", spec=spec, **meta)
    writer = runstore.RunWriter(store, start, epoch_columns(METRICS))
    writer.__enter__()
    history = history or {m: [r.val["loss"]] for m, r in results.items()}
    for model, losses in history.items():
        for epoch, loss in enumerate(losses, start=1):
            writer.append_epoch({"model": model, "member": 0, "epoch": epoch, "train_loss": loss, "val_loss": loss,
                                 "train_accuracy": 1 - loss, "val_accuracy": 1 - loss, "lr": 0.001, "seconds": 0.5})
    if summary:
        writer.write_summary(RunSummary(
            task="binary", monitor="val_loss", baseline="baseline" if "baseline" in results else None,
            metrics=METRICS, models=results, expect=[GateResult(**g) for g in expect or []], complete=complete))
    if status != "running":
        writer.finish(status)
    else:
        writer._metrics.close()
    path = writer.path
    if status != "running":
        patch_meta(path, started_at=f"2025-01-01T00:{minute:02d}:00+00:00")
    return path


def patch_meta(path: Path, **fields: Any) -> None:
    """Change fields of a run's run.json as a later writer (or damage) would."""
    meta = json.loads((path / "run.json").read_text())
    meta.update(fields)
    (path / "run.json").write_text(json.dumps(meta))


def patch_summary(path: Path, change) -> None:
    """Apply `change(dict)` to a run's summary.json."""
    data = json.loads((path / "summary.json").read_text())
    change(data)
    (path / "summary.json").write_text(json.dumps(data))


def two_models(base: tuple[float, float, float, float], mlp: tuple[float, float, float, float]) -> dict:
    """Results of a baseline and an `mlp` with (val_loss, test_loss, val_acc, test_acc)."""
    return {"baseline": result(*base, kind="logistic"), "mlp": result(*mlp, best_epoch=2, epochs_run=3)}


def browse(store: Path, *args: str, columns: int = 100):
    """`nnlab ARGS --runs-dir STORE` in-process; the click Result (stdout, stderr, exit_code)."""
    return CliRunner().invoke(app, [*args, "--runs-dir", str(store)], catch_exceptions=False,
                              env={"COLUMNS": str(columns)})


def as_json(result) -> Any:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)
