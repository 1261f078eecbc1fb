"""A packed random search, with and without halving, against one model: Spambase, the spam MLP.

    python bench/bench_search.py [--points 32] [--epochs 40] [--rungs 3] [--keep 0.5] [--data PATH]

The spec is experiments/spam.yaml with its `mlp` model only (57-64-32-1, Adam, batch 64, the spec's early
stopping) and no baseline, so that a point is one model. The search draws `--points` points of
lr ~ loguniform(1e-4, 1e-2), weight decay ~ loguniform(1e-6, 1e-2) and dropout ~ uniform(0, 0.5) (the
sweep's seeded sampler), which differ only in stackable settings and so train as one stack
(grid.SweepPlan.units; memory allows far more than 32 such members). Everything runs in this process on one
CPU thread, through what `nnlab sweep` runs (plan, units, the local executor, a run folder per point):

    one model      the spec's own point trained alone (a sweep unit of one point), best of 3
    search         the `--points` points, packed
    halving        the same points with --halving --rungs R --keep K: stopped points leave the stack

Printed: each wall time and its ratio to one model (targets, issue 17: the search <= 6x, halving <= half the
search), and the best point's val_loss of the search and of the halving search. A benchmark, not a test:
numbers depend on the machine; run it once.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nnlab.core.records import RunSummary  # noqa: E402
from nnlab.spec import parse_yaml  # noqa: E402
from nnlab.sweeps import space as search  # noqa: E402
from nnlab.sweeps.executors.local import LocalExecutor  # noqa: E402
from nnlab.sweeps.halving import Halving  # noqa: E402

SPACE = ["train.optimizer.lr=loguniform(1e-4,1e-2)", "train.optimizer.weight_decay=loguniform(1e-6,1e-2)",
         "models.mlp.dropout=uniform(0,0.5)"]


def spam_spec(folder: Path, data: Path, epochs: int) -> Path:
    """experiments/spam.yaml with its `mlp` model only, no baseline and no gates, reading `data`."""
    spec = parse_yaml((ROOT / "experiments" / "spam.yaml").read_text(), "spam.yaml")
    spec["models"] = [m for m in spec["models"] if m["name"] == "mlp"]
    spec["data"]["path"] = str(data.resolve())
    spec["train"]["epochs"] = epochs
    spec["baseline"] = False
    spec.pop("expect", None)
    path = folder / "spam-search.yaml"
    path.write_text(json.dumps(spec))
    return path


def timed_sweep(spec: Path, store: Path, points: int, halving: Halving | None) -> tuple[float, list[RunSummary]]:
    started = time.perf_counter()  # planning included: checking every point is part of what a sweep costs
    plan = search.plan_search(spec, SPACE, points, [], False, None, "", False)
    results = list(LocalExecutor(1).run(plan.units(store, 1, halving=halving)))
    seconds = time.perf_counter() - started
    assert all(r.status == "completed" for r in results), [r.message for r in results if r.status != "completed"]
    return seconds, [RunSummary.model_validate_json((Path(r.path) / "summary.json").read_text()) for r in results]


def timed_one(spec: Path, store: Path) -> float:
    from nnlab.sweeps.executors.units import Unit, run_units

    started = time.perf_counter()
    [result] = run_units(Unit(0, str(spec), (), str(store)))
    assert result.status == "completed", result.message
    return time.perf_counter() - started


def best(summaries: list[RunSummary]) -> float:
    return min(s.models["mlp"].val["loss"] for s in summaries)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--points", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--rungs", type=int, default=3)
    parser.add_argument("--keep", type=float, default=0.5)
    default_data = next((p for p in (ROOT / "data" / "spambase.csv", ROOT.parent / "shared" / "data" / "spambase.csv")
                         if p.is_file()), ROOT / "data" / "spambase.csv")
    parser.add_argument("--data", type=Path, default=default_data)
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        spec = spam_spec(folder, args.data, args.epochs)
        timed_one(spec, folder / "warm-up")  # imports, kernels, the allocator
        one = min(timed_one(spec, folder / f"one-{i}") for i in range(3))  # short: the best of 3
        full, full_runs = timed_sweep(spec, folder / "search", args.points, None)
        halved, halved_runs = timed_sweep(spec, folder / "halving", args.points, Halving(args.rungs, args.keep))
    stopped = sum(s.models["mlp"].halved is not None for s in halved_runs)
    epochs = lambda runs: sum(s.models["mlp"].epochs_run for s in runs)
    print(f"Spambase, spam MLP 57-64-32-1, {args.points} points (lr, weight decay, dropout), one CPU thread, "
          f"torch {torch.__version__}")
    print(f"one model                {one:7.2f} s   1.00x")
    print(f"search, packed           {full:7.2f} s  {full / one:5.2f}x   ({epochs(full_runs)} member-epochs; "
          "target <= 6x)")
    print(f"search with halving      {halved:7.2f} s  {halved / one:5.2f}x   ({epochs(halved_runs)} member-epochs, "
          f"{stopped} points stopped; {halved / full:.2f} of the search, target <= 0.5)")
    print(f"best val_loss: search {best(full_runs):.4f}, with halving {best(halved_runs):.4f} "
          f"(difference {best(halved_runs) - best(full_runs):+.4f})")


if __name__ == "__main__":
    main()
