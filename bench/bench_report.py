"""Benchmark: `nnlab report` of 200 runs: how long it takes and how large the file is (goal: under 10 s and
under 30 MB).

Trains two real runs on Spambase (a baseline and two MLPs for 20 epochs, one of them with 3 repeats), so
every file the report reads is as `nnlab train` writes it (metrics.csv, summary.json with per-class results,
predictions, errors), then copies them into a store of N runs (default 200), each copy with its own id,
start time and note. Times `nnlab report --last N` in a fresh process (wall clock, as a user waits) and
prints the seconds and the file's size.

    python bench/bench_report.py                 # 200 runs in a temp dir
    python bench/bench_report.py --runs 50 --keep /tmp/store

A benchmark, not a test: it prints, it does not assert.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
SPEC = {"name": "bench", "seed": 0, "data": {"path": str(ROOT / "data" / "spambase.csv"), "target": "spam"},
        "train": {"epochs": 20, "batch_size": 64}, "metrics": ["accuracy", "f1"],
        "models": [{"name": "mlp", "kind": "mlp", "hidden": [64, 32]},
                   {"name": "mlp-dropout", "kind": "mlp", "hidden": [64, 32], "dropout": 0.3}]}


def nnlab(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nnlab.cli", *args], capture_output=True, text=True, check=True)


def build(store: Path, n: int) -> None:
    store.parent.mkdir(parents=True, exist_ok=True)
    seed_store = store.parent / "seed-runs"
    spec = store.parent / "spec.yaml"
    spec.write_text(yaml.safe_dump(SPEC, sort_keys=False))
    nnlab("train", str(spec), "--runs-dir", str(seed_store), "--no-progress")
    nnlab("train", str(spec), "--repeats", "3", "--runs-dir", str(seed_store), "--no-progress")
    seeds = sorted(seed_store.iterdir())
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    for i in range(n):
        source = seeds[i % len(seeds)]
        run_id = f"bench-{i:04d}-{source.name[-4:]}"
        shutil.copytree(source, store / run_id)
        meta = json.loads((store / run_id / "run.json").read_text())
        meta.update(id=run_id, started_at=(start + timedelta(minutes=i)).isoformat(), note=f"copy {i} of {source.name}")
        (store / run_id / "run.json").write_text(json.dumps(meta))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--keep", type=Path, help="build the store here and keep it")
    args = parser.parse_args()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="nnlab-bench-report-"))
    store = folder / "runs"
    try:
        if not store.exists():
            build(store, args.runs)
        out = folder / "report.html"
        began = time.perf_counter()
        nnlab("report", "--last", str(args.runs), "--runs-dir", str(store), "-o", str(out))
        took = time.perf_counter() - began
        print(f"nnlab report --last {args.runs}: {took:.2f} s, {out.stat().st_size / 2**20:.1f} MB "
              f"(goal: under 10 s and 30 MB)")
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
