"""Generate data/signals.csv: short noisy signals holding two local events, 4 to 10 steps apart, at a random
position. Each event is a bump or a dip at random; the label says whether the pair agrees ("same": bump-bump or
dip-dip) or not ("mixed": bump-dip or dip-bump).

Every time step has the same mean (zero) in both classes, so a linear model on the raw values sits at chance,
and an MLP must learn the pair at every position separately; a convolution (one detector slid over time) or a
recurrent network (which reads in order and remembers the first event) finds it wherever it is. Deterministic: `python data/make_signals.py` rewrites the same file byte for byte.

Columns: t0 ... t95 (one value per time step: a sequence of T=96 steps with F=1 feature, `data.sequence:
{steps: 96}`) and `pattern` (the label: same or mixed). 2000 rows, 1000 per class.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

ROWS, STEPS, SEED = 2000, 96, 20261122
WIDTH, GAPS, AMPLITUDE, NOISE = 1.5, (4, 10), 1.6, 0.6


def make_signals(rows: int = ROWS, steps: int = STEPS, seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.arange(rows) % 2  # 1: same, 0: mixed
    rng.shuffle(labels)
    first_sign = rng.choice([-1.0, 1.0], size=(rows, 1))
    second_sign = np.where(labels[:, None] == 1, first_sign, -first_sign)
    time = np.arange(steps)[None, :]
    gap = rng.integers(GAPS[0], GAPS[1] + 1, size=(rows, 1))
    start = rng.integers(4, steps - GAPS[1] - 4, size=(rows, 1))  # the first event's position, anywhere
    first = np.exp(-0.5 * ((time - start) / WIDTH) ** 2)
    second = np.exp(-0.5 * ((time - start - gap) / WIDTH) ** 2)
    amplitude = AMPLITUDE * rng.uniform(0.7, 1.3, size=(rows, 1))
    drift = rng.normal(0, 0.3, size=(rows, 1))  # a level that differs per signal
    values = amplitude * (first_sign * first + second_sign * second) + drift + rng.normal(0, NOISE, size=(rows, steps))
    return values, labels


def main() -> None:
    values, labels = make_signals()
    names = np.where(labels == 1, "same", "mixed")
    lines = [",".join([*(f"t{i}" for i in range(values.shape[1])), "pattern"])]
    lines += [",".join([*(f"{v:.3f}" for v in row), name]) for row, name in zip(values, names)]
    (Path(__file__).parent / "signals.csv").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
