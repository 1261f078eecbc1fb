"""The baseline's fit against scikit-learn's LogisticRegression (lbfgs) on the same preprocessed rows.

    python bench/bench_baseline.py [--repeat 7] [--clock cpu] [--threads 1]

Spambase (`experiments/spam.yaml`: 57 standardized columns, dense) and SMS (`experiments/sms.yaml`: TF-IDF over
the training vocabulary, sparse CSR), both prepared by nnlab's own data module, C = 1/l2 = 1. Timed, the
contenders taking turns, best of `--repeat`:

- nnlab's solver alone (`models.linear.fit_convex`, from the train rows as float64 tensors);
- nnlab's whole `train.fit_baseline` (the solver, then train/val/test loss and metrics, validation
  probabilities: what a run waits for);
- scikit-learn at its default tol=1e-4, which stops a few 1e-6 above the minimum;
- scikit-learn at the loosest tol of 1e-5 ... 1e-8 whose objective is within 1e-7 of the minimum: the same
  accuracy nnlab's fit is held to (tests/test_baseline.py).

The gap column is each solution's objective minus the minimum (the lowest of scikit-learn at tol=1e-12 and
the contenders'; scikit-learn's lbfgs stops about 9e-8 above nnlab's minimum on Spambase whatever its tol). scikit-learn runs with
as many BLAS threads as torch has (threadpoolctl). A benchmark, not a test: numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch
import yaml
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nnlab.training import fit as train
from nnlab.data import prepare  # noqa: E402
from nnlab.core.inputs import SparseRows  # noqa: E402
from nnlab.models import build_baseline  # noqa: E402
try:
    from nnlab.models.linear import fit_convex  # noqa: E402
except ImportError:  # an older tree (L-BFGS through autograd): time its fit_baseline alone
    fit_convex = None
from nnlab.spec import BaselineSpec, DataSpec  # noqa: E402

warnings.filterwarnings("ignore", ".*[Ss]parse.*")


def problem_of(name: str) -> tuple[train.Problem, object, np.ndarray]:
    path = ROOT / "experiments" / f"{name}.yaml"
    raw = yaml.safe_load(path.read_text())
    prepared = prepare(DataSpec(**raw["data"]), path.parent, raw["seed"])
    problem = train.Problem.from_arrays(prepared.task, prepared.baseline_x, prepared.y, list(raw["metrics"]),
                                        "val_loss", torch.device("cpu"), 1.0, prepared.n_outputs)
    x = prepared.baseline_x["train"]
    if isinstance(x, SparseRows):
        x = sp.csr_matrix((x.values, x.indices, x.indptr), shape=x.shape)
    return problem, x, prepared.y["train"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall")
    parser.add_argument("--threads", type=int, default=0, help="torch and BLAS threads (0: torch's default)")
    parser.add_argument("--data", nargs="+", default=["spam", "sms"])
    args = parser.parse_args()
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    threads = args.threads or torch.get_num_threads()
    torch.set_num_threads(threads)
    print(f"torch {torch.__version__}, {threads} thread(s), {args.clock} clock, best of {args.repeat}")
    for name in args.data:
        problem, x_sk, y_sk = problem_of(name)
        x64 = x_sk.astype(np.float64)

        def objective(w: np.ndarray, b: float) -> float:
            z = np.asarray(x64 @ w).ravel() + b
            return float(np.mean(np.logaddexp(0, z) - y_sk * z) + w @ w / (2 * len(y_sk)))

        def sk(tol: float) -> tuple[float, float]:
            with threadpool_limits(threads):
                model = LogisticRegression(C=1.0, tol=tol, max_iter=10000).fit(x_sk, y_sk)
            return model.coef_.ravel(), model.intercept_[0]

        minimum = objective(*sk(1e-12))  # lowered below by any contender that gets lower
        same_tol = next(t for t in (1e-5, 1e-6, 1e-7, 1e-8) if objective(*sk(t)) - minimum <= 1e-7)
        x_t, y_t = problem.x["train"], problem.y["train"]

        def solver() -> tuple[float, float]:
            w, b = fit_convex(x_t.double(), y_t, problem.task, problem.n_outputs, 1.0, 500)
            return w.numpy().ravel(), float(b[0])

        def whole() -> tuple[float, float]:
            model = build_baseline(int(x_t.shape[1]), problem.n_outputs)
            train.fit_baseline("baseline", model, problem, BaselineSpec(l2=1.0), lambda record: None)
            return model.weight.detach().double().numpy().ravel(), model.bias.item()

        contenders = {**({"nnlab solver": solver} if fit_convex else {}), "nnlab fit_baseline": whole, "sklearn tol=1e-4": lambda: sk(1e-4),
                      f"sklearn tol={same_tol:g} (gap<=1e-7)": lambda: sk(same_tol)}
        best = {k: float("inf") for k in contenders}
        gaps = {}
        for _ in range(args.repeat + 1):  # the first round warms up
            for label, fn in contenders.items():
                started = clock()
                out = fn()
                best[label] = min(best[label], clock() - started)
                gaps[label] = objective(*out)
        minimum = min(minimum, *gaps.values())
        print(f"\n{name}: {x_t.shape[0]} rows x {x_t.shape[1]} columns ({'sparse' if x_t.layout != torch.strided else 'dense'})")
        reference = best[f"sklearn tol={same_tol:g} (gap<=1e-7)"]
        for label in contenders:
            print(f"  {label:34s} {best[label] * 1e3:7.1f} ms  {best[label] / reference:5.2f}x  gap {gaps[label] - minimum:.1e}")


if __name__ == "__main__":
    main()
