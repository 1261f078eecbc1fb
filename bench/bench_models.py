"""Epoch time of nnlab's one loop against a plain hand-written torch loop, for a GRU and a CNN.

    python bench/bench_models.py [--epochs 3] [--repeat 5] [--rows 2048] [--device cpu] [--threads 1]

Both contenders train the same network (same layers, same shapes) with Adam (lr 1e-3), batch 64, on the same
synthetic data: GRU(4 -> 64) over sequences [N, 50, 4] reading the last step; a CNN (Conv2d 16 and 32 channels,
3x3, max pool 2, global max pool) over images [N, 1, 28, 28]. Each epoch ends with a validation pass over 256
rows in both loops (nnlab always does one; a hand-written loop that reports progress does too). Reported: the
best of `--repeat` interleaved runs of `--epochs` epochs, per epoch, and the ratio nnlab / plain (the target is
1.15x or less). "plain loop + nnlab model" runs nnlab's model class in the plain loop, to tell the loop's cost
from the model code's. A benchmark, not a test: numbers depend on the machine and on what else runs on it.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nnlab.training import fit as train
from nnlab.core.inputs import InputInfo  # noqa: E402
from nnlab.models import build_model  # noqa: E402
from nnlab.training.optim import skip_dynamo_import  # noqa: E402
from nnlab.spec import CNNSpec, RNNSpec, TrainSpec  # noqa: E402

BATCH, LR, VAL_ROWS = 64, 1e-3, 256


class PlainGRU(nn.Module):
    def __init__(self):
        super().__init__()
        self.gru, self.head = nn.GRU(4, 64, batch_first=True), nn.Linear(64, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.gru(x)[0][:, -1])


def plain_cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2, ceil_mode=True),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2, ceil_mode=True),
        nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(32, 1))


CONTENDERS = {
    "gru": (RNNSpec(kind="rnn", cell="gru", hidden=64), InputInfo("sequence", (50, 4), 1), PlainGRU),
    "cnn": (CNNSpec(kind="cnn", channels=[16, 32], kernel=3, pool="max"), InputInfo("image", (1, 28, 28), 1),
            plain_cnn),
}


def synthetic(info: InputInfo, rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Noise with a label that depends on the inputs (so the loss moves), in float32."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(rows + 2 * VAL_ROWS, *info.shape)).astype(np.float32)
    y = (x.reshape(len(x), -1)[:, ::7].sum(1) > 0).astype(np.float32)
    return x, y


def nnlab_fit(spec, info: InputInfo, x: np.ndarray, y: np.ndarray, epochs: int, device: torch.device) -> float:
    parts = {"train": slice(2 * VAL_ROWS, None), "val": slice(0, VAL_ROWS), "test": slice(VAL_ROWS, 2 * VAL_ROWS)}
    problem = train.Problem.from_arrays("binary", {k: x[s] for k, s in parts.items()},
                                        {k: y[s] for k, s in parts.items()}, ["accuracy"], "val_loss", device)
    torch.manual_seed(0)
    model = build_model(spec, info)
    train_spec = TrainSpec(epochs=epochs, batch_size=BATCH, early_stopping=None, optimizer={"lr": LR})
    result = train.fit_stack([train.BuiltMember("bench", model, train_spec, 0)], problem, lambda record: None)[0]
    return sum(record.seconds for record in result.history)  # epochs only: not the final test pass


def plain_loop(make_model: Callable[[], nn.Module], x: np.ndarray, y: np.ndarray, epochs: int,
               device: torch.device) -> float:
    """The loop most people write without a DataLoader: tensors on the device, index slices, torch.optim.Adam,
    BCE, and a validation loss read once per epoch."""
    xt, yt = torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)
    x_val, y_val, x_train, y_train = xt[:VAL_ROWS], yt[:VAL_ROWS], xt[2 * VAL_ROWS:], yt[2 * VAL_ROWS:]
    torch.manual_seed(0)
    model, loss_fn = make_model().to(device), nn.BCEWithLogitsLoss()
    skip_dynamo_import()  # the same first-call saving nnlab gets, so that only the loops differ
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    start = time.perf_counter()
    for _ in range(epochs):
        model.train()
        order = torch.randperm(len(x_train), device=device)
        for i in range(0, len(x_train), BATCH):
            index = order[i:i + BATCH]
            loss = loss_fn(model(x_train[index]).squeeze(1), y_train[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            loss_fn(model(x_val).squeeze(1), y_val).item()
    return time.perf_counter() - start


def interleaved_best(repeat: int, runs: dict[str, Callable[[], float]]) -> dict[str, float]:
    """The best time of each contender over `repeat` rounds, one run of each per round: on a shared machine
    the load drifts, and interleaving exposes every contender to the same drift."""
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeat):
        for name, run in runs.items():
            times[name].append(run())
    return {name: min(values) for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--rows", type=int, default=2048, help="training rows")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads for every contender")
    options = parser.parse_args()
    device = torch.device(options.device)
    torch.set_num_threads(options.threads)
    print(f"{options.rows} training rows, batch {BATCH}, {options.epochs} epochs, best of {options.repeat}, "
          f"{device}, {options.threads} thread(s), torch {torch.__version__}")
    for name, (spec, info, make_plain) in CONTENDERS.items():
        x, y = synthetic(info, options.rows)
        ours_model = lambda: build_model(spec, info)  # noqa: E731
        nnlab_fit(spec, info, x, y, 1, device), plain_loop(make_plain, x, y, 1, device)  # warm-up
        best = interleaved_best(options.repeat, {
            "nnlab": lambda: nnlab_fit(spec, info, x, y, options.epochs, device),
            "plain": lambda: plain_loop(make_plain, x, y, options.epochs, device),
            "mixed": lambda: plain_loop(ours_model, x, y, options.epochs, device)})
        ours, plain, mixed = (best[k] / options.epochs for k in ("nnlab", "plain", "mixed"))
        print(f"  {name}: nnlab {ours * 1e3:8.1f} ms/epoch   plain loop {plain * 1e3:8.1f} ms/epoch   "
              f"ratio {ours / plain:4.2f}x   (plain loop + nnlab model {mixed * 1e3:8.1f} ms/epoch, "
              f"{mixed / plain:4.2f}x)")


if __name__ == "__main__":
    main()
