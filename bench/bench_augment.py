"""The cost of `train.augment` per epoch: the digits CNN (experiments/digits.yaml) with flip + crop + noise
against none, one member and 5 stacked members.

    python bench/bench_augment.py [--epochs 3] [--repeat 5] [--device cpu|cuda]

The same data, split and model as `nnlab train experiments/digits.yaml` (via bench_stack's helpers), trained in
this process on one CPU thread (or the GPU), no early stopping, after a warm-up; best of `--repeat`, runs taken
round-robin. Augmentation: `{flip: horizontal, crop: {pad: 1}, noise: 0.05}` (pad 1 on 8x8 images, as pad 4
on 32x32). Target (issue 18): under 20 % more time per epoch. A benchmark, not a test.

Measured on the shared 2-core development machine (torch 2.13 CPU, 1 thread), 2026-12-04, 3 epochs, best of 3:

    1 member:  none 0.112 s/epoch, flip+crop+noise 0.126 s/epoch: +12.1 % wall, +17.2 % CPU
    5 members: none 0.479 s/epoch, flip+crop+noise 0.509 s/epoch:  +6.3 % wall,  +6.0 % CPU

Most of the cost is the crop's gather (one advanced index a batch); flip and noise are one elementwise op each.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_stack import family_fit, family_members, family_problem  # noqa: E402
from nnlab.spec.augment import AugmentSpec  # noqa: E402

AUGMENT = AugmentSpec(flip="horizontal", crop={"pad": 1}, noise=0.05)


def group(spec: object, info: object, k: int, epochs: int, augment: bool) -> list:
    members = family_members(spec, info, "cnn", k, epochs)
    if augment:
        for m in members:
            m.train = m.train.model_copy(update={"augment": AUGMENT})
    return members


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    options = parser.parse_args()
    device = torch.device(options.device)
    torch.set_num_threads(1)
    problem, info, spec = family_problem("experiments/digits.yaml", device)
    family_fit(problem, group(spec, info, 2, 1, True))  # warm-up
    runs = {(k, a): [] for k in (1, 5) for a in (False, True)}
    for _ in range(options.repeat):
        for (k, a), samples in runs.items():
            samples.append(family_fit(problem, group(spec, info, k, options.epochs, a)))
    print(f"digits CNN, {len(problem.x['train'])} training rows, {options.epochs} epochs, best of {options.repeat}, "
          + (torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU, 1 thread"))
    for k in (1, 5):
        (plain_wall, plain_cpu), (aug_wall, aug_cpu) = (
            (min(s[0] for s in runs[k, a]), min(s[1] for s in runs[k, a])) for a in (False, True))
        print(f"  {k} member(s): none {plain_wall / options.epochs:.3f} s/epoch, flip+crop+noise "
              f"{aug_wall / options.epochs:.3f} s/epoch: +{100 * (aug_wall / plain_wall - 1):.1f} % wall, "
              f"+{100 * (aug_cpu / plain_cpu - 1):.1f} % CPU (target < 20 %)")


if __name__ == "__main__":
    main()
