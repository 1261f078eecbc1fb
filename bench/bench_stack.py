"""Stacked members against one model and against members one after another: Spambase, MLP 57-64-32-1.

    python bench/bench_stack.py [--epochs 20] [--repeat 3] [--dropout 0.0] [--device cpu|cuda] [--end-to-end]

Every run trains repeats of the same network (Adam, lr 1e-3, batch 64, no early stopping, seeds 0..K-1) on
the same standardized training split, in this process, on one CPU thread (or on the GPU with --device cuda,
where the CPU time is the host's and the wall-clock time is the one to read), after a warm-up. Reported: the
best of `--repeat` wall-clock and process CPU times (runs taken round-robin) of 1 member, 5 and 10 stacked
members, and 5 members one after another, each as a ratio to one member; on a shared machine the CPU time
is the steadier number. Targets (issue 8): 5 stacked <= 1.5x one model, 10 stacked <= 2x.
With --end-to-end it also times what a user runs, in fresh processes (imports, data, baseline, run folder
included): `nnlab train experiments/spam.yaml` against the same with `--repeats 5` (its two MLPs, 10
members in one stack). A benchmark, not a test: numbers depend on the machine.

Measured on the shared 2-core development machine (AMD EPYC with AVX-512, torch 2.13 CPU), CPU time, best of 5,
2026-11-22 (the numbers vary by about 10 % between sessions):

                                    dropout 0.0         dropout 0.3
    1 member                        0.128 s  1.00x      0.177 s  1.00x
    5 members stacked               0.279 s  2.19x      0.404 s  2.29x
    10 members stacked              0.480 s  3.77x      0.710 s  4.02x
    5 members one after another     0.644 s  5.05x      0.901 s  5.09x
    matrix products alone, 10       0.241 s  1.89x
    end to end (--end-to-end, CPU): nnlab train experiments/spam.yaml 2.35 s; with --repeats 5 3.21 s (1.37x)

The targets (5 stacked <= 1.5x, 10 stacked <= 2x) are missed, and on this CPU they cannot be met without
making one model slower. One member takes 0.13 ms a step, a tenth of the prototype's (about 1.2 ms) the targets
were set against, so there is little fixed cost left for members to share. The matrix products alone of 10
members take 1.9x one member's whole training (they run at about 90 GFLOP/s, near this core's single-thread
gemm peak of 99 GFLOP/s measured on 1024x1024), and the rest of a step (activations and their gradients,
Adam over K x 5825 weights, the batch gathers, each member's dropout masks from its own mt19937 generator)
grows with K too. Writing t_K = (matrix products of K members) + (fixed cost) + K x (per-member
elementwise cost), the 10-member target would need a fixed cost larger than one member's whole step today.
Two threads do not close the gap either: 10 stacked then take 0.37 s of wall time (2.8x). On a GPU a step is
kernel launches whatever K is, so stacking should come close to free there (`--device cuda`); that was not
measured, as no GPU was lent to this project's sessions.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_train import BATCH, LR, end_to_end, spambase  # noqa: E402
from nnlab.training import fit as train
from nnlab.core.inputs import InputInfo  # noqa: E402
from nnlab.models import build_model  # noqa: E402
from nnlab.spec import MLPSpec, TrainSpec  # noqa: E402


def members(k: int, epochs: int, dropout: float) -> list[train.BuiltMember]:
    spec = TrainSpec(epochs=epochs, batch_size=BATCH, optimizer={"name": "adam", "lr": LR}, early_stopping=None)
    out = []
    for seed in range(k):
        torch.manual_seed(seed)
        model = build_model(MLPSpec(kind="mlp", hidden=[64, 32], dropout=dropout), InputInfo("table", (57,), 1))
        out.append(train.BuiltMember("mlp", model, spec, seed, seed))
    return out


def stacked(problem: train.Problem, k: int, epochs: int, dropout: float) -> tuple[float, float]:
    group = members(k, epochs, dropout)
    wall, cpu = time.perf_counter(), time.process_time()
    train.fit_stack(group, problem, lambda record: None)  # ends reading results: the device has finished
    return time.perf_counter() - wall, time.process_time() - cpu


def sequential(problem: train.Problem, k: int, epochs: int, dropout: float) -> tuple[float, float]:
    group = members(k, epochs, dropout)
    wall, cpu = time.perf_counter(), time.process_time()
    for m in group:
        train.fit_stack([m], problem, lambda record: None)
    return time.perf_counter() - wall, time.process_time() - cpu


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_floor(k: int, steps: int, device: torch.device) -> float:
    """Seconds of the stack's matrix products alone (3 forward baddbmm, 5 backward bmm a step, the shapes of
    57-64-32-1 at batch 64): the arithmetic no loop can avoid, to set the ratios against. CPU time on the
    CPU; wall-clock time, synchronized, on a GPU."""
    sizes = [(57, 64), (64, 32), (32, 1)]
    weights = [torch.randn(k, n_out, n_in, device=device) for n_in, n_out in sizes]
    biases = [torch.randn(k, 1, n_out, device=device) for _, n_out in sizes]
    x = torch.randn(k, BATCH, 57, device=device)
    clock = time.process_time if device.type == "cpu" else time.perf_counter
    _synchronize(device)
    start = clock()
    for _ in range(steps):
        acts = [x]
        for w, b in zip(weights, biases):
            acts.append(torch.baddbmm(b, acts[-1], w.transpose(1, 2)))
        grad = torch.ones_like(acts[-1])
        for i in reversed(range(len(weights))):
            torch.bmm(grad.transpose(1, 2), acts[i])  # the weights' gradient
            if i:
                grad = torch.bmm(grad, weights[i])  # the input's gradient
    _synchronize(device)
    return clock() - start


# --- every family: the digits CNN and the SMS GRU (issue 18) ------------------------------------------

FAMILIES = {"digits cnn": ("experiments/digits.yaml", "cnn"), "sms gru": ("experiments/sms.yaml", "gru")}
ARITHMETIC = ("aten::mkldnn_convolution", "aten::convolution_backward", "aten::bmm", "aten::baddbmm", "aten::mm",
              "aten::addmm", "aten::_convolution", "aten::slow_conv", "aten::thnn_conv")


def family_problem(path: str, device: torch.device) -> tuple[train.Problem, InputInfo, object]:
    """The spec's data as `nnlab train` prepares it (the same split and preprocessing)."""
    from nnlab import data as data_mod
    from nnlab.spec import load_spec
    from nnlab.spec.checks import check_for_task

    spec, base = load_spec(ROOT / path)
    prepared = data_mod.prepare(spec.data, base, spec.seed)
    metrics = check_for_task(spec, prepared.task)
    problem = train.Problem.from_arrays(prepared.task, prepared.x, prepared.y, metrics, spec.monitor, device,
                                        prepared.preprocessor.target.std, prepared.n_outputs)
    return problem, prepared.info, spec


def family_members(spec: object, info: InputInfo, name: str, k: int, epochs: int) -> list[train.BuiltMember]:
    model = next(m for m in spec.models if m.name == name)
    settings = model.train.model_copy(update={"epochs": epochs, "early_stopping": None})
    out = []
    for seed in range(k):
        torch.manual_seed(seed)
        out.append(train.BuiltMember(name, build_model(model, info), settings, seed, seed))
    return out


def family_fit(problem: train.Problem, group: list[train.BuiltMember]) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    train.fit_stack(group, problem, lambda record: None)
    _synchronize(problem.device)
    return time.perf_counter() - wall, time.process_time() - cpu


def arithmetic_share(problem: train.Problem, group: list[train.BuiltMember]) -> tuple[float, float]:
    """(seconds in matrix products and convolutions, seconds in everything else) of one epoch, by the
    profiler's self CPU time: what grows with the members' arithmetic against per-op dispatch and the rest."""
    from torch.profiler import profile

    with profile() as prof:
        train.fit_stack(group, problem, lambda record: None)
    heavy = rest = 0.0
    for event in prof.key_averages():
        seconds = event.self_cpu_time_total / 1e6
        if event.key.startswith(ARITHMETIC):
            heavy += seconds
        else:
            rest += seconds
    return heavy, rest


def families(options: argparse.Namespace, device: torch.device) -> None:
    for label, (path, name) in FAMILIES.items():
        problem, info, spec = family_problem(path, device)
        family_fit(problem, family_members(spec, info, name, 2, 1))  # warm-up
        runs = {"1 member": 1, "5 members stacked": 5}
        samples: dict[str, list[tuple[float, float]]] = {run: [] for run in runs}
        for _ in range(options.repeat):
            for run, k in runs.items():
                samples[run].append(family_fit(problem, family_members(spec, info, name, k, options.family_epochs)))
        wall = {run: min(s[0] for s in got) for run, got in samples.items()}
        cpu = {run: min(s[1] for s in got) for run, got in samples.items()}
        print(f"{label} ({path}, model {name}), {len(problem.x['train'])} training rows, {options.family_epochs} "
              f"epochs, best of {options.repeat}, " + (torch.cuda.get_device_name(device) if device.type == "cuda"
                                                       else "CPU, 1 thread"))
        for run in runs:
            print(f"  {run:30s} {wall[run]:7.3f} s {wall[run] / wall['1 member']:5.2f}x   "
                  f"{cpu[run]:7.3f} s {cpu[run] / cpu['1 member']:5.2f}x")
        print(f"  target: 5 stacked <= 2.5x one member (one after another: 5x): "
              f"{wall['5 members stacked'] / wall['1 member']:.2f}x wall, "
              f"{cpu['5 members stacked'] / cpu['1 member']:.2f}x CPU")
        if device.type == "cpu":
            for k in (1, 5):
                heavy, rest = arithmetic_share(problem, family_members(spec, info, name, k, 1))
                print(f"  profile of 1 epoch, {k} member(s): matrix products and convolutions {heavy:.3f} s, "
                      f"everything else {rest:.3f} s")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--dropout", type=float, default=0.0)
    parser.add_argument("--device", default="cpu", help="cpu (one thread) or cuda")
    parser.add_argument("--end-to-end", action="store_true",
                        help="also time `nnlab train experiments/spam.yaml` with and without --repeats 5")
    parser.add_argument("--families", action="store_true",
                        help="time --repeats 5 of the digits CNN and the SMS GRU against one member instead")
    parser.add_argument("--family-epochs", type=int, default=3)
    options = parser.parse_args()
    device = torch.device(options.device)
    if options.families:
        torch.set_num_threads(1)
        families(options, device)
        return
    x, y = spambase()
    problem = train.Problem.from_arrays("binary", x, y, ["accuracy", "f1", "roc_auc"], "val_loss", device)
    torch.set_num_threads(1)  # on a GPU too: the host thread only launches kernels
    stacked(problem, 2, 1, options.dropout)  # warm-up: first-call costs are not training speed
    runs = {"1 member": (stacked, 1), "5 members stacked": (stacked, 5), "10 members stacked": (stacked, 10),
            "5 members one after another": (sequential, 5)}
    # Round-robin, so that a busy moment on a shared machine hits every contender alike; the best of each.
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in runs}
    for _ in range(options.repeat):
        for name, (fn, k) in runs.items():
            samples[name].append(fn(problem, k, options.epochs, options.dropout))
    wall = {name: min(s[0] for s in got) for name, got in samples.items()}
    cpu = {name: min(s[1] for s in got) for name, got in samples.items()}
    print(f"Spambase, {len(x['train'])} training rows, MLP 57-64-32-1 (dropout {options.dropout}), "
          f"{options.epochs} epochs x batch {BATCH}, best of {options.repeat}, torch {torch.__version__}, "
          + (torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU, 1 thread"))
    print(f"  {'':30s} {'wall':>9s} {'ratio':>6s}   {'CPU':>9s} {'ratio':>6s}")
    for name in runs:
        print(f"  {name:30s} {wall[name]:7.3f} s {wall[name] / wall['1 member']:5.2f}x   "
              f"{cpu[name]:7.3f} s {cpu[name] / cpu['1 member']:5.2f}x")
    steps = options.epochs * -(-len(x["train"]) // BATCH)
    floors = {k: matmul_floor(k, steps, device) for k in (1, 5, 10)}
    own = cpu if device.type == "cpu" else wall
    print(f"  matrix products alone ({'CPU' if device.type == 'cpu' else 'wall'}): " + ", ".join(
        f"{k} member(s) {t:.3f} s = {t / own['1 member']:.2f}x one member's whole training" for k, t in floors.items()))
    for label, times in (("wall", wall), ("CPU", cpu)):
        one = times["1 member"]
        print(f"  targets ({label}): 5 stacked <= 1.5x: {times['5 members stacked'] / one:.2f}x; "
              f"10 stacked <= 2x: {times['10 members stacked'] / one:.2f}x")
    if options.end_to_end:
        command = ["train", "experiments/spam.yaml"]
        once, five = [], []
        for _ in range(options.repeat):  # round-robin, best of each, CPU time of the child process
            once.append(end_to_end(command, cpu=True))
            five.append(end_to_end([*command, "--repeats", "5"], cpu=True))
        print(f"  end to end (CPU, fresh process): nnlab train experiments/spam.yaml {min(once):.2f} s; "
              f"with --repeats 5 {min(five):.2f} s = {min(five) / min(once):.2f}x")


if __name__ == "__main__":
    main()
