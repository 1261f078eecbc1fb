"""Benchmark: how long `nnlab runs` and `nnlab compare` take on a large run store.

Generates a store of N runs (default 1,000), each with a baseline and M neural models (default 5) trained
for E epochs (default 50), written through `runstore.RunWriter` as `nnlab train` writes them (typed
records: `RunMeta`, `RunSummary` rewritten after each model), with a
resolved spec of the real shape and a different learning rate, dropout and seed per run. Then times each
command in a fresh process (wall clock, as a user waits for it) and prints the numbers. The goal is under
2 seconds for listing and for comparing.

    python bench/bench_store.py                  # 1,000 runs x 5 models x 50 epochs in a temp dir
    python bench/bench_store.py --runs 200 --keep /tmp/store   # keep the store to look at it

A benchmark, not a test: it prints, it does not assert.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from nnlab import runstore
from nnlab.core.records import ModelResult, RunMeta, RunSummary
from nnlab.core.columns import epoch_columns

METRICS = ["accuracy", "f1", "roc_auc"]
TRAIN = {"epochs": 50, "batch_size": 64,
         "optimizer": {"name": "adam", "lr": 0.001, "momentum": 0.0, "weight_decay": 0.0}, "l1": 0.0,
         "scheduler": None, "early_stopping": {"monitor": None, "patience": 8, "min_delta": 0.0},
         "grad_clip": None, "loss": "auto", "class_weights": None, "device": "auto", "precision": "auto"}


def make_spec(i: int, n_models: int, epochs: int, rng: random.Random) -> dict:
    lr = rng.choice([1e-4, 3e-4, 1e-3, 3e-3, 1e-2])
    train = {**TRAIN, "epochs": epochs, "optimizer": {**TRAIN["optimizer"], "lr": lr}}
    # each model carries its own merged train settings, as the runner writes them (no YAML aliases)
    models = [{"name": f"mlp{m}", "train": copy.deepcopy(train), "kind": "mlp", "hidden": [64 * (m + 1), 32],
               "activation": "relu", "dropout": rng.choice([0.0, 0.1, 0.3]), "norm": "none"}
              for m in range(n_models)]
    return {"schema_version": 1, "name": f"bench{i % 4}", "seed": i,
            "data": {"path": "../data/spambase.csv", "builtin": None, "target": "spam", "task": "auto",
                     "positive": None, "split": {"val": 0.15, "test": 0.15, "stratify": True},
                     "scale": "standard", "include": None, "exclude": [], "impute": None, "max_categories": 20},
            "baseline": {"kind": "logistic", "l2": 1.0, "max_iter": 500}, "train": train, "models": models,
            "metrics": METRICS, "monitor": "val_loss", "expect": {"baseline.test.accuracy": ">= 0.90"}}


def write_run(store: Path, i: int, n_models: int, epochs: int, rng: random.Random) -> None:
    spec = make_spec(i, n_models, epochs, rng)
    meta = RunMeta(id="pending", name=spec["name"], seed=i, note=f"bench run {i}: lr {spec['train']['optimizer']['lr']}",
                   device="cpu", spec=spec)
    results = {}
    with runstore.RunWriter(store, meta, epoch_columns(METRICS)) as writer:
        for model, n_epochs in [("baseline", 1), *[(m["name"], epochs) for m in spec["models"]]]:
            best = None
            for epoch in range(1, n_epochs + 1):
                loss = 0.25 + 0.5 * math.exp(-epoch / 8) + rng.random() * 0.02
                row = {"model": model, "member": 0, "epoch": epoch, "train_loss": loss * 0.9, "val_loss": loss,
                       "lr": 1e-3, "seconds": 0.05}
                row.update({f"{split}_{m}": 0.9 - loss / 10 + rng.random() * 0.01 for split in ("train", "val")
                            for m in METRICS})
                writer.append_epoch(row)
                best = row if best is None or row["val_loss"] < best["val_loss"] else best
            results[model] = ModelResult(
                name=model, kind="logistic" if model == "baseline" else "mlp", params=58 + 6000, status="completed",
                best_epoch=best["epoch"], epochs_run=n_epochs, epochs_planned=n_epochs,
                val={"loss": best["val_loss"], **{m: best[f"val_{m}"] for m in METRICS}},
                test={"loss": best["val_loss"] * 1.02, **{m: best[f"val_{m}"] - 0.003 for m in METRICS}},
                train_seconds=0.05 * n_epochs, samples_per_second=50000.0)
            writer.write_summary(RunSummary(task="binary", monitor="val_loss", baseline="baseline", metrics=METRICS,
                                            models=results, complete=model == spec["models"][-1]["name"]))
    # distinct start times, one minute apart, so that `last` and the newest-first order mean something
    run_file = writer.path / "run.json"
    data = json.loads(run_file.read_text())
    data.update(started_at=_minutes_after(i), finished_at=_minutes_after(i, 0.5), duration_seconds=30.0)
    run_file.write_text(json.dumps(data))


def _minutes_after(i: int, extra: float = 0.0) -> str:
    from datetime import datetime, timedelta, timezone

    start = datetime(2025, 1, 1, tzinfo=timezone.utc)
    return (start + timedelta(minutes=i + extra)).isoformat(timespec="seconds")


def timed(args: list[str], store: Path, repeat: int) -> tuple[float, float, int]:
    """Best and median wall seconds of `nnlab ARGS` in a fresh process, and its output size in bytes."""
    env = {**os.environ, runstore.RUNS_DIR_ENV: str(store), "COLUMNS": "100"}
    times, size = [], 0
    for _ in range(repeat):
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "nnlab.cli", *args], env=env, capture_output=True)
        times.append(time.perf_counter() - start)
        if done.returncode != 0:
            raise SystemExit(f"nnlab {' '.join(args)} failed ({done.returncode}): {done.stderr.decode()[-500:]}")
        size = len(done.stdout)
    return min(times), statistics.median(times), size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--models", type=int, default=5, help="neural models per run (plus the baseline)")
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3, help="timings per command (best and median shown)")
    parser.add_argument("--keep", type=Path, help="write the store here and keep it (default: a temp dir)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        store = args.keep or Path(tmp) / "runs"
        if not (store.is_dir() and any(store.iterdir())):
            start = time.perf_counter()
            rng = random.Random(0)
            for i in range(args.runs):
                write_run(store, i, args.models, args.epochs, rng)
            print(f"wrote {args.runs} runs x ({args.models} models x {args.epochs} epochs + baseline) "
                  f"to {store} in {time.perf_counter() - start:.1f}s")
        n = sum(1 for _ in store.iterdir())
        commands = [["--help"], ["runs"], ["runs", "--format", "csv"], ["compare"],
                    ["compare", "--last", str(n), "--format", "csv"], ["compare", "--last", str(n)],
                    ["compare", "--name", "bench1", "--format", "json"], ["compare", "last", "last~1"],
                    ["show", "last"]]
        print(f"{'command':<48} {'best s':>7} {'median s':>9} {'output':>10}")
        for command in commands:
            best, median, size = timed(command, store, args.repeat)
            flag = "" if best < 2 else "  (over 2 s)"
            print(f"nnlab {' '.join(command):<42} {best:7.2f} {median:9.2f} {size:>9,}B{flag}")


if __name__ == "__main__":
    main()
