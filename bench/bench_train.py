"""Training speed on Spambase with a 57-64-32-1 MLP: nnlab's loop against the usual alternatives.

    python bench/bench_train.py [--epochs 20] [--repeat 3]

Every contender trains the same network (Adam, lr 1e-3, batch 64, no early stopping) for the same
number of epochs on the same standardized training split, in this process, after a warm-up. Reported:
the best of `--repeat` wall-clock times and the ratio to nnlab. Then `nnlab train experiments/spam.yaml`
is timed end to end in a fresh process (imports included), and `nnlab --help` for the start-up cost.
PyTorch Lightning is timed when it is installed. A benchmark, not a test: numbers depend on the machine.
scikit-learn runs with one BLAS thread (threadpoolctl), as torch does here; nnlab also computes train and
validation accuracy, f1 and roc_auc every epoch, which the others do not.

Measured on the shared 2-core development machine, `--clock cpu --repeat 5` (CPU seconds, 20 epochs):
nnlab loop 0.147 s (0.144 ms a step), lean torch loop 0.330 s (2.24x), DataLoader loop 0.510 s (3.46x),
scikit-learn MLPClassifier 0.226 s (1.54x nnlab's time; before this commit series the two were even, about
0.21 s each; over several runs the ratio was 1.4-1.7x). End to end, `nnlab train experiments/spam.yaml`
2.89 s CPU, `nnlab --help` 0.16 s; bench/README.md says where the end-to-end time goes.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nnlab.training import fit as train
from nnlab.models import build_model  # noqa: E402
from nnlab.core.inputs import InputInfo  # noqa: E402
from nnlab.spec import MLPSpec, TrainSpec  # noqa: E402

BATCH, LR = 64, 1e-3
clock = time.perf_counter  # --clock cpu: process CPU time, steadier than wall time on a shared machine


def spambase() -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Spambase split 70/15/15 by a seeded permutation and standardized on train: the benchmark reads the file
    itself so that it measures the loop alone, whatever the data module does."""
    frame = pd.read_csv(ROOT / "data" / "spambase.csv")
    x_all = frame.drop(columns=["spam"]).to_numpy(np.float32)
    y_all = frame["spam"].to_numpy(np.float32)
    order = np.random.default_rng(0).permutation(len(frame))
    n_val = n_test = int(0.15 * len(frame))
    rows = {"val": order[:n_val], "test": order[n_val:n_val + n_test], "train": order[n_val + n_test:]}
    mean, std = x_all[rows["train"]].mean(0), x_all[rows["train"]].std(0) + 1e-12
    return ({k: (x_all[r] - mean) / std for k, r in rows.items()}, {k: y_all[r] for k, r in rows.items()})


def train_spec(epochs: int) -> TrainSpec:
    return TrainSpec(epochs=epochs, batch_size=BATCH, optimizer={"name": "adam", "lr": LR}, early_stopping=None)


def mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(57, 64), nn.ReLU(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 1))


def nnlab_loop(data, epochs: int) -> float:
    problem = train.Problem.from_arrays("binary", *data, ["accuracy", "f1", "roc_auc"], "val_loss",
                                        torch.device("cpu"))
    torch.manual_seed(0)
    model = build_model(MLPSpec(kind="mlp", hidden=[64, 32]), InputInfo("table", (57,), 1))
    start = clock()
    train.fit_stack([train.BuiltMember("mlp", model, train_spec(epochs), 0)], problem, lambda record: None)[0]
    return clock() - start


def lean_torch_loop(x, y, epochs: int) -> float:
    """The hand-written loop most people would write without a DataLoader: index slices, torch.optim.Adam."""
    torch.manual_seed(0)
    model, loss_fn = mlp(), nn.BCEWithLogitsLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    start = clock()
    for _ in range(epochs):
        order = torch.randperm(len(x))
        for i in range(0, len(x), BATCH):
            index = order[i:i + BATCH]
            loss = loss_fn(model(x[index]).squeeze(1), y[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return clock() - start


def dataloader_loop(x, y, epochs: int) -> float:
    """The textbook loop: TensorDataset + DataLoader(shuffle=True)."""
    from torch.utils.data import DataLoader, TensorDataset

    torch.manual_seed(0)
    model, loss_fn = mlp(), nn.BCEWithLogitsLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    loader = DataLoader(TensorDataset(x, y), batch_size=BATCH, shuffle=True)
    start = clock()
    for _ in range(epochs):
        for xb, yb in loader:
            loss = loss_fn(model(xb).squeeze(1), yb)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return clock() - start


def sklearn_mlp(x, y, epochs: int) -> float:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    model = MLPClassifier(hidden_layer_sizes=(64, 32), batch_size=BATCH, learning_rate_init=LR, max_iter=epochs,
                          n_iter_no_change=epochs + 1, tol=0.0, random_state=0)
    from threadpoolctl import threadpool_limits  # scikit-learn's own dependency

    start = clock()
    with warnings.catch_warnings(), threadpool_limits(1):  # one BLAS thread, as every other contender
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(x, y)
    return clock() - start


def lightning_loop(x, y, epochs: int) -> float | None:
    try:
        import lightning as L
    except ImportError:
        return None
    from torch.utils.data import DataLoader, TensorDataset

    class Module(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.net, self.loss_fn = mlp(), nn.BCEWithLogitsLoss()

        def training_step(self, batch, _):
            xb, yb = batch
            return self.loss_fn(self.net(xb).squeeze(1), yb)

        def configure_optimizers(self):
            return torch.optim.Adam(self.parameters(), lr=LR)

    trainer = L.Trainer(max_epochs=epochs, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    start = clock()
    trainer.fit(Module(), DataLoader(TensorDataset(x, y), batch_size=BATCH, shuffle=True))
    return clock() - start


def best_of(repeat: int, fn, *args) -> float | None:
    times = [fn(*args) for _ in range(repeat)]
    return None if times[0] is None else min(times)


def end_to_end(args: list[str], cpu: bool | None = None) -> float:
    """A fresh process's wall time, or with --clock cpu (or cpu=True) its CPU time (user + system, read from
    the child)."""
    cpu = clock is not time.perf_counter if cpu is None else cpu
    with tempfile.TemporaryDirectory() as store:
        wall, before = time.perf_counter(), os.times()
        subprocess.run([sys.executable, "-m", "nnlab.cli", *args, "--runs-dir", store] if args[0] == "train"
                       else [sys.executable, "-m", "nnlab.cli", *args], cwd=ROOT, check=True,
                       capture_output=True)
        after = os.times()
        if not cpu:
            return time.perf_counter() - wall
        return (after.children_user - before.children_user) + (after.children_system - before.children_system)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--loop-only", action="store_true", help="time nnlab's loop and the lean loop only")
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall")
    options = parser.parse_args()
    global clock
    clock = time.process_time if options.clock == "cpu" else time.perf_counter
    data = spambase()
    x, y = torch.from_numpy(data[0]["train"]), torch.from_numpy(data[1]["train"])
    torch.set_num_threads(1)  # the same thread count for every contender (nnlab picks 1 for a model this small)
    nnlab_loop(data, 1), lean_torch_loop(x, y, 1)  # warm-up: first-call costs are not training speed
    results = {
        "nnlab loop": best_of(options.repeat, nnlab_loop, data, options.epochs),
        "lean torch loop (torch.optim.Adam)": best_of(options.repeat, lean_torch_loop, x, y, options.epochs)}
    if not options.loop_only:
        results.update({
            "DataLoader loop": best_of(options.repeat, dataloader_loop, x, y, options.epochs),
            "scikit-learn MLPClassifier": best_of(options.repeat, sklearn_mlp, x.numpy(), y.numpy(), options.epochs),
            "PyTorch Lightning": best_of(1, lightning_loop, x, y, options.epochs)})
    steps = options.epochs * -(-len(x) // BATCH)
    print(f"Spambase, {len(x)} training rows, MLP 57-64-32-1, {options.epochs} epochs x batch {BATCH} "
          f"({steps} steps), best of {options.repeat}, {options.clock} time, torch {torch.__version__}, 1 thread")
    ours = results["nnlab loop"]
    for name, seconds in results.items():
        if seconds is None:
            print(f"  {name:38s}  not installed")
        else:
            print(f"  {name:38s} {seconds:7.3f} s  {seconds / steps * 1e3:6.3f} ms/step  {seconds / ours:5.2f}x nnlab")
    if options.loop_only:
        return
    print(f"  end to end: nnlab train experiments/spam.yaml  {end_to_end(['train', 'experiments/spam.yaml']):.2f} s"
          f"   nnlab --help  {end_to_end(['--help']):.2f} s")


if __name__ == "__main__":
    main()
