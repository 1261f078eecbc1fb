"""Hand-made run folders with known numbers, written through `runstore.RunWriter` as `nnlab train` writes them,
and an in-process `nnlab` for the browse commands (runs, compare, show)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from nnlab import runstore
from nnlab.cli import app

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
           diagnosis: list[str] | None = None) -> dict:
    """One model's entry of summary.json."""
    return {"kind": kind, "params": 100, "best_epoch": best_epoch, "epochs_run": epochs_run,
            "val": {"loss": val_loss, "accuracy": val_acc}, "test": {"loss": test_loss, "accuracy": test_acc},
            "train_seconds": seconds, "samples_per_second": 1000.0, "status": status, "message": None,
            "diagnosis": diagnosis or []}


def write_run(store: Path, spec: dict, results: dict[str, dict] | None = None, *, minute: int = 0,
              note: str = "", status: str = "completed", history: dict[str, list[float]] | None = None,
              summary: bool = True, expect: list[dict] | None = None) -> Path:
    """A run folder. `results`: model -> `result(...)` (summary.json, unless summary=False); `history`:
    model -> validation losses per epoch (metrics.csv; by default each model's best epoch only); `minute`
    orders the runs (started at 2025-01-01 00:<minute>)."""
    results = results or {}
    writer = runstore.RunWriter.create(store, spec["name"], spec, runstore.metric_columns(METRICS),
                                       {"seed": spec["seed"], "note": note, "device": "cpu"})
    history = history or {m: [r["val"]["loss"]] for m, r in results.items()}
    for model, losses in history.items():
        for epoch, loss in enumerate(losses, start=1):
            writer.append_epoch({"model": model, "epoch": epoch, "train_loss": loss, "val_loss": loss,
                                 "train_accuracy": 1 - loss, "val_accuracy": 1 - loss, "lr": 0.001, "seconds": 0.5})
    if summary:
        baseline = "baseline" if "baseline" in results else None
        writer.write_summary({"task": "binary", "monitor": "val_loss", "baseline": baseline, "metrics": METRICS,
                              "models": results, "expect": expect or []})
    if status != "running":
        writer.finish(status)
    writer.update(started_at=f"2025-01-01T00:{minute:02d}:00+00:00")
    return writer.path


def two_models(base: tuple[float, float, float, float], mlp: tuple[float, float, float, float]) -> dict:
    """summary.json models of a baseline and an `mlp` with (val_loss, test_loss, val_acc, test_acc)."""
    return {"baseline": result(*base, kind="logistic"), "mlp": result(*mlp, best_epoch=2, epochs_run=3)}


def browse(store: Path, *args: str):
    """`nnlab ARGS --runs-dir STORE` in-process; the click Result (stdout, stderr, exit_code)."""
    return CliRunner().invoke(app, [*args, "--runs-dir", str(store)], catch_exceptions=False,
                              env={"COLUMNS": "100"})


def as_json(result) -> Any:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)
