"""The one training loop, for every model kind and device, and the baseline's full-batch L-BFGS fit.

The data set lives on the device as tensors; a batch is an index slice of a seeded permutation. Inside the
step loop nothing is read back to the host: step losses and training outputs are written into device
buffers and read once per epoch, together with the validation metrics (the one sync point per epoch).
This module never prints or writes files: it returns results and calls `on_epoch` once per epoch.
"""

from __future__ import annotations

import contextlib
import math
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import numpy as np
import torch
from torch import nn

from nnlab import metrics as metric_fns
from nnlab.errors import SpecError
from nnlab.inputs import SparseRows
from nnlab.optim import LossFn, build_loss, build_optimizer, build_scheduler, make_step, skip_dynamo_import
from nnlab.spec import BaselineSpec, TrainSpec

EVAL_BATCH = 65_536  # rows per forward pass when evaluating: large, but bounded for big tables


@dataclass
class Problem:
    """What every fit needs to know about the data: tensors on the device, the task and how to score it."""

    task: str
    x: dict[str, torch.Tensor]
    y: dict[str, torch.Tensor]
    metrics: list[str]
    monitor: str
    target_std: float = 1.0

    @classmethod
    def from_arrays(cls, task: str, x: dict[str, np.ndarray | SparseRows], y: dict[str, np.ndarray],
                    metrics: list[str], monitor: str, device: torch.device, target_std: float = 1.0,
                    n_outputs: int = 1) -> Problem:
        """Dense arrays become dense tensors, SparseRows sparse CSR tensors (only the baseline reads those)."""
        # Moved to the device once; every batch after this is a slice of these tensors.
        return cls(task, {k: _tensor(v, device) for k, v in x.items()},
                   {k: torch.from_numpy(v).to(device) for k, v in y.items()}, metrics, monitor, target_std,
                   n_outputs)

    n_outputs: int = 1  # classes for multiclass, else 1


def _tensor(values: np.ndarray | SparseRows, device: torch.device) -> torch.Tensor:
    if not isinstance(values, SparseRows):
        return torch.from_numpy(values).to(device)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Sparse CSR tensor support is in beta")
        return torch.sparse_csr_tensor(torch.from_numpy(values.indptr).long(), torch.from_numpy(values.indices).long(),
                                       torch.from_numpy(values.values).float(), values.shape,
                                       check_invariants=False).to(device)


@dataclass
class EpochRecord:
    model: str
    epoch: int
    values: dict[str, float]  # train_loss, val_loss, train_<metric>, val_<metric>
    lr: Optional[float]
    seconds: float


@dataclass
class FitResult:
    name: str
    status: str  # completed | diverged | failed | interrupted
    best_epoch: int
    epochs_run: int
    val: dict[str, float]
    test: dict[str, float]
    train_seconds: float
    samples_per_second: float
    history: list[EpochRecord] = field(default_factory=list)
    message: Optional[str] = None
    stop_reason: Optional[str] = None
    state: Optional[dict[str, torch.Tensor]] = None  # best weights, on the CPU
    val_probabilities: Optional[np.ndarray] = None  # `predict` on val: probabilities, or standardized values


OnEpoch = Callable[[EpochRecord], None]


class FitInterrupted(KeyboardInterrupt):
    """Ctrl-C or a signal arrived during a fit. `result` is what was trained so far: status "interrupted", the
    best epoch's validation scores, best weights and validation probabilities (best_epoch 0 and no state when
    no epoch finished); no test evaluation. `cause` is the KeyboardInterrupt that arrived (it may carry the
    signal)."""

    def __init__(self, result: FitResult, cause: BaseException):
        super().__init__(f"{result.name}: interrupted after {result.epochs_run} epoch(s)")
        self.result, self.cause = result, cause


def resolve_device(name: str) -> torch.device:
    """`auto` is cuda, then mps, then cpu; a named device that is not there is a spec error."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda" and (not torch.cuda.is_available() or (device.index or 0) >= torch.cuda.device_count()):
        raise SpecError(f"train.device: '{name}' is not available here (CUDA devices: "
                        f"{torch.cuda.device_count() if torch.cuda.is_available() else 'none'}); use auto or cpu")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise SpecError("train.device: 'mps' is not available here; use auto or cpu")
    return device


def resolve_precision(precision: str, device: torch.device) -> Optional[torch.dtype]:
    """The autocast dtype, or None for plain fp32."""
    if precision == "auto":
        return torch.bfloat16 if device.type == "cuda" and torch.cuda.is_bf16_supported() else None
    if precision == "fp16" and device.type != "cuda":
        raise SpecError(f"train.precision: fp16 needs a CUDA device; this model trains on {device.type}")
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


SMALL_STEP_WORK = 20_000_000  # rows per step x parameters below which one CPU thread beats several


@contextlib.contextmanager
def cpu_threads_for(model: nn.Module, rows_per_step: int, device: torch.device):
    """One intra-op thread for small CPU steps: waking a thread pool costs more than such a step's
    arithmetic, and on a busy machine spinning threads are many times slower still."""
    before = torch.get_num_threads()
    small = device.type == "cpu" and rows_per_step * sum(p.numel() for p in model.parameters()) < SMALL_STEP_WORK
    if small:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def fit(name: str, model: nn.Module, problem: Problem, train: TrainSpec, seed: int,
        on_epoch: OnEpoch) -> FitResult:
    """Train with minibatches; keep the weights of the best epoch by `problem.monitor`; test them once."""
    with cpu_threads_for(model, train.batch_size, problem.x["train"].device):
        return _fit(name, model, problem, train, seed, on_epoch)


class _Step:
    """One optimisation step with every setting resolved once: loss, optimizer, precision, clipping, L1."""

    def __init__(self, model: nn.Module, problem: Problem, train: TrainSpec, device: torch.device):
        self.model, self.train = model, train
        self.loss_fn = build_loss(problem.task, train, problem.y["train"], problem.n_outputs)
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.penalized = [p for p in self.params if p.dim() > 1]  # L1 on weights, not biases or norm scales
        self.optimizer = build_optimizer(train.optimizer, self.params)
        dtype = resolve_precision(train.precision, device)
        self.autocast = torch.autocast(device.type, dtype=dtype) if dtype else contextlib.nullcontext()
        self.scaler = torch.amp.GradScaler(device.type) if dtype == torch.float16 else None
        # fp16 needs GradScaler, which steps the optimizer itself; otherwise the lean functional step.
        self.optimizer_step = make_step(self.optimizer, device) if self.scaler is None else None

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with self.autocast:
            outputs = self.model(x)
            loss = self.loss_fn(outputs, y)
        objective = loss + self.train.l1 * sum(p.abs().sum() for p in self.penalized) if self.train.l1 else loss
        for p in self.params:
            p.grad = None
        if self.scaler:
            self.scaler.scale(objective).backward()
            self.scaler.unscale_(self.optimizer)
        else:
            objective.backward()
        if self.train.grad_clip:
            nn.utils.clip_grad_norm_(self.params, self.train.grad_clip, foreach=True)
        if self.scaler:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer_step()
        return loss.detach(), outputs.detach()


@dataclass
class _EarlyStopping:
    monitor: str
    patience: int
    min_delta: float
    best: Optional[float] = None
    stale: int = 0

    def should_stop(self, values: dict[str, float], epoch: int) -> Optional[str]:
        """Record an epoch; say why training stops, or None to go on."""
        current = values[self.monitor]
        if _improved(current, self.best, metric_fns.higher_is_better(self.monitor), self.min_delta):
            self.best, self.stale = current, 0
            return None
        self.stale += 1
        if self.stale < self.patience:
            return None
        return (f"{self.monitor} did not improve for {self.stale} epochs (best {self.best:.4g} at epoch "
                f"{epoch - self.stale}); stopped at epoch {epoch}")


def _fit(name: str, model: nn.Module, problem: Problem, train: TrainSpec, seed: int,
         on_epoch: OnEpoch) -> FitResult:
    device = problem.x["train"].device
    model.to(device)
    x, y = problem.x["train"], problem.y["train"]
    n = len(x)
    generator = torch.Generator().manual_seed(seed)
    bounds = _batch_bounds(n, train.batch_size)
    sizes = torch.tensor([end - start for start, end in bounds], dtype=torch.float32, device=device)
    step = _Step(model, problem, train, device)
    higher = metric_fns.higher_is_better(problem.monitor)
    scheduler = build_scheduler(train, step.optimizer, higher)
    es = train.early_stopping
    stopping = _EarlyStopping(es.monitor or problem.monitor, es.patience, es.min_delta) if es else None
    prior_loss = _prior_loss(problem, step.loss_fn)
    step_losses = torch.zeros(len(bounds), device=device)
    train_outputs = torch.zeros(n, problem.n_outputs, device=device)
    best: dict[str, Any] = {"score": None, "epoch": 0, "state": None, "values": {}}
    history: list[EpochRecord] = []
    status, message, stop_reason = "completed", None, None
    started = time.perf_counter()
    try:
        for epoch in range(1, train.epochs + 1):
            epoch_start = time.perf_counter()
            model.train()
            # One gather per epoch puts the rows in a fresh seeded order; each batch is then a contiguous slice.
            order = torch.randperm(n, generator=generator).to(device, non_blocking=True)
            x_epoch, y_epoch = x.index_select(0, order), y.index_select(0, order)
            for i, (start, end) in enumerate(bounds):
                step_losses[i], train_outputs[start:end] = step(x_epoch[start:end], y_epoch[start:end])
            # The one host sync of the epoch: every train and validation number is read here at once.
            non_finite = ~torch.isfinite(step_losses)
            train_values = {"loss": (step_losses * sizes).sum() / n, **metric_fns.compute(
                problem.task, problem.metrics, train_outputs, y_epoch, problem.target_std)}
            values = _read({**_prefixed("train", train_values),
                            **_prefixed("val", evaluate(model, problem, "val", step.loss_fn, step.autocast)),
                            "bad_step": torch.where(non_finite.any(), non_finite.float().argmax(), -1)})
            bad_step = int(values.pop("bad_step"))
            blowup = _divergence(epoch, bad_step, step_losses, values, history, prior_loss, train)
            diverged = blowup is not None
            score = values[problem.monitor]
            if not diverged and _improved(score, best["score"], higher, 0.0):
                best = {"score": score, "epoch": epoch, "values": values,
                        "state": {k: v.detach().clone() for k, v in model.state_dict().items()}}
            # Recorded after the best weights are kept: an interrupt inside on_epoch keeps this epoch.
            history.append(EpochRecord(name, epoch, values, step.optimizer.param_groups[0]["lr"],
                                       time.perf_counter() - epoch_start))
            on_epoch(history[-1])
            if diverged:
                status, message = "diverged", blowup
                break
            if scheduler is not None:
                with warnings.catch_warnings():
                    # The scheduler cannot see steps taken through make_step, so it warns that none were taken.
                    warnings.filterwarnings("ignore", r"Detected call of `lr_scheduler\.step\(\)` before")
                    scheduler.step(score) if train.scheduler.name == "plateau" else scheduler.step()
            stop_reason = stopping.should_stop(values, epoch) if stopping else None
            if stop_reason:
                break
    except KeyboardInterrupt as cause:
        # What trained so far is kept: the best epoch's weights and scores; nothing is tested.
        result = _result(name, model, problem, "interrupted", best, history, time.perf_counter() - started,
                         step.autocast, test=False)
        result.message = f"interrupted during epoch {len(history) + 1}"
        raise FitInterrupted(result, cause) from cause
    result = _result(name, model, problem, status, best, history, time.perf_counter() - started, step.autocast,
                     test=True, loss_fn=step.loss_fn)
    result.message, result.stop_reason = message, stop_reason
    return result


def _result(name: str, model: nn.Module, problem: Problem, status: str, best: dict[str, Any],
            history: list[EpochRecord], seconds: float, autocast: Any, test: bool,
            loss_fn: Optional[LossFn] = None) -> FitResult:
    """The result of a fit: the best epoch's weights loaded into `model`, scored on val (and test if asked)."""
    trained = best["state"] is not None
    if trained:
        model.load_state_dict(best["state"])
    n = len(problem.x["train"])
    return FitResult(
        name, status, best["epoch"], len(history), _unprefixed("val", best["values"]),
        _read(evaluate(model, problem, "test", loss_fn, autocast)) if trained and test else {}, seconds,
        n * len(history) / seconds if seconds > 0 else 0.0, history,
        state={k: v.cpu() for k, v in best["state"].items()} if trained else None,
        val_probabilities=predict(model, problem, "val", autocast) if trained else None)


# The blow-up rule. A model has diverged when, at the end of an epoch, (a) a step's loss or the validation loss
# is NaN or infinite, or (b) the train or validation loss is over BLOWUP_VS_PRIOR times the loss of predicting
# the training split's prior (class frequencies; the mean for regression) — a thousand times worse than knowing
# nothing — or (c) it is over BLOWUP_VS_FIRST times the first epoch's and worse than the prior's. Training
# stops there; the best epoch before it is kept.
BLOWUP_VS_PRIOR = 1000.0
BLOWUP_VS_FIRST = 100.0


def _prior_loss(problem: Problem, loss_fn: LossFn) -> float:
    """The loss of a model that ignores its input and predicts the training split's prior."""
    y = problem.y["train"]
    with torch.inference_mode():
        if problem.task == "binary":
            p = y.float().mean().clamp(1e-6, 1 - 1e-6)
            outputs = torch.log(p / (1 - p)).expand(len(y), 1)
        elif problem.task == "multiclass":
            freq = torch.bincount(y, minlength=problem.n_outputs).float() / len(y)
            outputs = freq.clamp(min=1e-6).log().expand(len(y), problem.n_outputs)
        else:
            outputs = y.float().mean().expand(len(y), 1)
        return float(loss_fn(outputs, y.to(outputs.dtype) if y.is_floating_point() else y))


def _divergence(epoch: int, bad_step: int, step_losses: torch.Tensor, values: dict[str, float],
                history: list[EpochRecord], prior_loss: float, train: TrainSpec) -> Optional[str]:
    """Why this epoch counts as a blow-up, or None. `history` holds the epochs before this one."""
    fix = f"try a lower learning rate (train.optimizer.lr is {train.optimizer.lr:g}) or set train.grad_clip"
    if bad_step >= 0 or not math.isfinite(values["val_loss"]):
        where = f"epoch {epoch}, step {bad_step + 1}" if bad_step >= 0 else f"epoch {epoch}"
        kind = "NaN" if bad_step < 0 or math.isnan(step_losses[bad_step].item()) else "infinite"
        return f"loss became {kind} at {where}: {fix}"
    for split in ("train", "val"):
        loss = values[f"{split}_loss"]
        first = history[0].values[f"{split}_loss"] if history else loss
        if loss > BLOWUP_VS_PRIOR * prior_loss or (loss > BLOWUP_VS_FIRST * first and loss > prior_loss):
            versus = (f"{BLOWUP_VS_PRIOR:g}x the {prior_loss:.4g} of predicting the prior"
                      if loss > BLOWUP_VS_PRIOR * prior_loss else f"{BLOWUP_VS_FIRST:g}x epoch 1's {first:.4g}")
            return f"loss blew up at epoch {epoch}: {split} loss {loss:.4g} is over {versus}; {fix}"
    return None


def fit_baseline(name: str, model: nn.Module, problem: Problem, spec: BaselineSpec,
                 on_epoch: OnEpoch) -> FitResult:
    with cpu_threads_for(model, len(problem.x["train"]), problem.x["train"].device):
        return _fit_baseline(name, model, problem, spec, on_epoch)


def _fit_baseline(name: str, model: nn.Module, problem: Problem, spec: BaselineSpec,
                  on_epoch: OnEpoch) -> FitResult:
    """Full-batch L-BFGS on the convex objective scikit-learn uses: mean loss + l2/(2n)·||W||² (C = 1/l2);
    for regression, Ridge's sum of squares + l2·||W||² up to the same scale. Fitted in float64."""
    started = time.perf_counter()
    device = problem.x["train"].device
    model.to(device=device, dtype=torch.float64)
    x, y = problem.x["train"].double(), problem.y["train"]
    y_fit = y if problem.task == "multiclass" else y.double()
    n = len(x)
    loss_fn = build_loss(problem.task, TrainSpec(), y, problem.n_outputs)
    data_loss = (lambda out, t: 0.5 * loss_fn(out, t)) if problem.task == "regression" else loss_fn
    skip_dynamo_import()
    optimizer = torch.optim.LBFGS(model.parameters(), lr=1, max_iter=spec.max_iter, history_size=20,
                                  tolerance_grad=1e-9, tolerance_change=1e-12, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        model.weight.grad = model.bias.grad = None
        objective = data_loss(model(x), y_fit) + spec.l2 / (2 * n) * model.weight.pow(2).sum()
        objective.backward()
        return objective

    history: list[EpochRecord] = []
    try:
        # LBFGS.step's wrapper only turns grad mode off and marks a torch.compile graph break; calling the
        # function it wraps skips importing torch._dynamo (2.5 s). The closure turns grad mode back on.
        with torch.no_grad():
            getattr(torch.optim.LBFGS.step, "__wrapped__", torch.optim.LBFGS.step)(optimizer, closure)
        model.float()
        train_values = evaluate(model, problem, "train", loss_fn, contextlib.nullcontext())
        val_values = evaluate(model, problem, "val", loss_fn, contextlib.nullcontext())
        values = _read({**_prefixed("train", train_values), **_prefixed("val", val_values)})
        history.append(EpochRecord(name, 1, values, None, time.perf_counter() - started))
        on_epoch(history[0])
        finite = math.isfinite(values["train_loss"]) and math.isfinite(values["val_loss"])
        test = _read(evaluate(model, problem, "test", loss_fn, contextlib.nullcontext()))
    except KeyboardInterrupt as cause:
        model.float()
        best = {"epoch": 1, "values": history[0].values, "state": model.state_dict()} if history else \
            {"epoch": 0, "values": {}, "state": None}
        result = _result(name, model, problem, "interrupted", best, history, time.perf_counter() - started,
                         contextlib.nullcontext(), test=False)
        result.message = "interrupted during the L-BFGS fit" if not history else "interrupted after the fit"
        raise FitInterrupted(result, cause) from cause
    seconds = time.perf_counter() - started
    return FitResult(name, "completed" if finite else "diverged", 1, 1, _unprefixed("val", values), test,
                     seconds, n / seconds if seconds > 0 else 0.0, history,
                     None if finite else "the L-BFGS fit did not converge to finite values",
                     state={k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
                     val_probabilities=predict(model, problem, "val", contextlib.nullcontext()))


def _outputs(model: nn.Module, x: torch.Tensor, autocast: Any) -> torch.Tensor:
    model.eval()
    with torch.inference_mode(), autocast:
        if x.layout != torch.strided:  # sparse rows cannot be sliced; they are small by being sparse
            return model(x).float()
        return torch.cat([model(x[i:i + EVAL_BATCH]).float() for i in range(0, len(x), EVAL_BATCH)])


def evaluate(model: nn.Module, problem: Problem, split: str, loss_fn: LossFn, autocast: Any
             ) -> dict[str, torch.Tensor]:
    """Loss and metrics of one split, as device tensors (read them with `_read`)."""
    outputs = _outputs(model, problem.x[split], autocast)
    target = problem.y[split]
    with torch.inference_mode():
        loss = loss_fn(outputs, target.to(outputs.dtype) if target.is_floating_point() else target)
        return {"loss": loss, **metric_fns.compute(problem.task, problem.metrics, outputs, target,
                                                   problem.target_std)}


def predict(model: nn.Module, problem: Problem, split: str, autocast: Any) -> np.ndarray:
    """Model units, on the host: probabilities (binary: of the positive class [N]; multiclass [N, K]) or, for
    regression, STANDARDIZED predictions (the data's preprocessing turns them into the target's units)."""
    return metric_fns.probabilities(problem.task, _outputs(model, problem.x[split], autocast)).cpu().numpy()


def _batch_bounds(n: int, batch_size: int) -> list[tuple[int, int]]:
    bounds = [(start, min(start + batch_size, n)) for start in range(0, n, batch_size)]
    if len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] == 1:
        # A batch of one breaks batch norm and is a noisy step: fold it into the previous batch.
        bounds[-2:] = [(bounds[-2][0], n)]
    return bounds


def _prefixed(split: str, values: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {f"{split}_{k}": v for k, v in values.items()}


def _unprefixed(split: str, values: dict[str, float]) -> dict[str, float]:
    return {k[len(split) + 1:]: v for k, v in values.items() if k.startswith(f"{split}_")}


def _read(values: dict[str, torch.Tensor]) -> dict[str, float]:
    """Device tensors -> floats with one transfer."""
    if not values:
        return {}
    numbers = torch.stack([v.detach().float().reshape(()) for v in values.values()]).cpu().tolist()
    return dict(zip(values, numbers))


def _improved(score: float, best: Optional[float], higher: bool, min_delta: float) -> bool:
    if math.isnan(score):
        return False
    if best is None:
        return True
    return score > best + min_delta if higher else score < best - min_delta
