"""Benchmark: `nnlab runs` filtered (--where, --tag, --note) on a store of 1,000 runs; the goal is under 2 s.

Writes N runs (default 1,000) through `runstore.RunWriter` (tests/compare_fixtures.write_run: a baseline
and an mlp each, a summary, one metrics row per model), tags every tenth run and notes every seventh, then
times each filtered listing in a fresh process (wall clock, as a user waits for it) and prints the numbers.

    python bench/bench_store_filters.py               # 1,000 runs in a temp dir
    python bench/bench_store_filters.py --runs 200

A benchmark, not a test: it prints, it does not assert.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

QUERIES = [
    ["runs"],
    ["runs", "--where", "val_loss<0.2", "--where", "model=mlp"],
    ["runs", "--tag", "keep"],
    ["runs", "--note", "promising"],
    ["runs", "--where", "train.optimizer.lr>=0.001", "--where", "status=completed", "--tag", "keep"],
]


def build(store: Path, count: int) -> None:
    from compare_fixtures import make_spec, two_models, write_run
    from nnlab.core.records import RunNote

    for i in range(count):
        loss = 0.1 + (i % 50) / 100
        path = write_run(store, make_spec(f"exp{i % 20}", seed=i, train={"optimizer": {"lr": 0.0005 * (1 + i % 4)}}),
                         two_models((0.6, 0.6, 0.7, 0.7), (loss, loss, 1 - loss, 1 - loss)), minute=i % 60)
        if i % 10 == 0 or i % 7 == 0:
            from nnlab.runstore.tags import edit_meta

            edit_meta(path, lambda m, i=i: m.model_copy(update={
                "tags": ["keep"] if i % 10 == 0 else [],
                "notes": [RunNote(time="2025-01-01T00:00:00+00:00", text="promising")] if i % 7 == 0 else []}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "runs"
        started = time.perf_counter()
        build(store, args.runs)
        print(f"wrote {args.runs} runs in {time.perf_counter() - started:.1f} s")
        for query in QUERIES:
            took = []
            for _ in range(3):
                t0 = time.perf_counter()
                done = subprocess.run([sys.executable, "-m", "nnlab.cli", *query, "-f", "csv", "--runs-dir", str(store)],
                                      capture_output=True, text=True)
                took.append(time.perf_counter() - t0)
            rows = max(0, len(done.stdout.splitlines()) - 1)
            print(f"{' '.join(query):<90} {rows:5d} runs  best {min(took):.2f} s  (exit {done.returncode})")


if __name__ == "__main__":
    main()
