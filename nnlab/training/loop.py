"""The one training loop: K members (K = 1 is one model) trained as one stack (`nnlab.training.stack`).

The data set lives on the device as tensors. Each member orders the rows by its own seeded permutation each
epoch; the permutations are laid out batch by batch, so a step's rows are one slice of indices and one
gather fetches every member's batch [K, B, ...]. Inside the step loop nothing is read back to the host: step losses and training outputs go into device buffers that are
read once per epoch, together with the validation metrics (the one sync point of an epoch). Members stop
on their own (early stopping, their epoch count, divergence): a stopped member's updates are masked and
its best weights kept. This module never prints or writes files: it returns results and calls `on_epoch`.

A stacked MLP's step uses no autograd (`Stack.forward_taped`/`backward`, `optim.build_loss_grad`): the same kernels
in the same order, so the numbers are autograd's bit for bit, at about 30 % less time a step; other modules,
autocast and losses without a written gradient go through autograd as before.
"""

from __future__ import annotations

import contextlib
import copy
import time
import warnings
from dataclasses import dataclass, fields
from typing import Iterator, Optional

import numpy as np
import torch

from nnlab.training import metrics as metric_fns
from nnlab.training.augment import augment_generator, augment_members
from nnlab.training.evaluation import as_target, outputs, predictions, read_members
from nnlab.core.columns import higher_is_better, prefixed, unprefixed
from nnlab.training.state import (BuiltMember, Cull, EpochRecord, FitInterrupted, FitResult, LoopState,
                                  MemberProgress, MemberStanding, OnEpoch, OnState, Problem)
from nnlab.core.interrupts import deferred
from nnlab.training.optim import Schedule, build_loss, build_loss_grad, make_step
from nnlab.training.placement import Placement
from nnlab.training.stack import Stack, build_stack
from nnlab.training.stopping import EarlyStopping, divergence, improved, prior_loss
from nnlab.spec import TrainSpec

@dataclass
class _MemberState(MemberProgress):
    """What the loop knows about one member between epochs (host side)."""

    spec: Optional[BuiltMember] = None
    schedule: Optional[Schedule] = None
    stopping: Optional[EarlyStopping] = None

    @property
    def active(self) -> bool:
        return self.status == "running"


class Loop:
    """One stack of members in training: everything an epoch reads and changes."""

    def __init__(self, members: list[BuiltMember], problem: Problem, placement: Placement,
                 cull: Optional[Cull] = None):
        self.problem, self.device, self.cull = problem, placement.device, cull
        self.autocast, self.scaler = placement.autocast(), placement.new_loss_scale()
        self.stack: Stack = build_stack([m.model for m in members], [m.seed for m in members], self.device)
        first = members[0].train  # the settings members share (stack.SHARED_TRAIN_SETTINGS)
        self.loss_fn = build_loss(problem.task, first, problem.y["train"], problem.n_outputs)
        self.loss_grad = build_loss_grad(problem.task, first, problem.y["train"], problem.n_outputs)
        self.step = make_step([m.train.optimizer for m in members], self.stack.params, self.stack.grads,
                              [m.train.grad_clip for m in members])
        l1 = [m.train.l1 for m in members]
        self.l1 = (torch.tensor(l1, device=self.device).reshape(-1, 1) * self.stack.penalized) if any(l1) else None
        higher = higher_is_better(problem.monitor)
        self.members = [_MemberState(spec=m, schedule=Schedule(m.train, higher),
                                     stopping=_stopping(m.train, problem.monitor)) for m in members]
        self.step.set_lrs([m.schedule.lr for m in self.members])
        self.orders = [torch.Generator().manual_seed(m.seed) for m in members]
        # Training batches only, each member from its own generator (train.augment; None: off).
        self.augments = [m.train.augment for m in members]
        self.augment_rng = [augment_generator(m.seed, self.device) for m in members]
        self.best_params = self.stack.params.clone()
        self.n = len(problem.x["train"])
        self.bounds = _batch_bounds(self.n, first.batch_size)
        self.sizes = torch.tensor([e - s for s, e in self.bounds], dtype=torch.float32, device=self.device)
        self.step_losses = torch.zeros(len(self.bounds), len(members), device=self.device)
        self.train_outputs = torch.zeros(len(members), self.n, problem.n_outputs, device=self.device)
        self.prior_loss = prior_loss(problem, self.loss_fn)
        self.epoch, self.stepped = 0, False
        # The stack's own backward where it has one (bit for bit autograd's, cheaper); autocast needs autograd.
        self.taped = self.stack.has_backward and placement.dtype is None
        self.max_epochs = max(m.train.epochs for m in members)
        self.rows = list(range(len(members)))  # each row's place among the members the loop was given
        self.retired: dict[int, FitResult] = {}  # members that left the stack (a cull), by that place

    @property
    def running(self) -> bool:
        return self.epoch < self.max_epochs and any(m.active for m in self.members)

    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.taped:
            outputs, tape = self.stack.forward_taped(x)
            losses, grad = self._loss_and_grad(outputs, y)
            self.stack.backward(grad, tape)
        else:
            losses, outputs = self._autograd_step(x, y)
        if self.l1 is not None:  # L1's subgradient, as autograd would add it for l1 * |w|.sum()
            self.stack.grads.addcmul_(self.l1, self.stack.params.sign())
        self.step(self.scaler.unscale(self.stack.grads) if self.scaler else None)
        return losses.detach(), outputs.detach()

    def _loss_and_grad(self, outputs: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The members' losses [K] and their gradient by the outputs [K, B, O], which starts the backward."""
        if self.loss_grad is not None and self.scaler is None:
            return self.loss_grad(outputs, y)
        outputs.requires_grad_()  # autograd for the loss alone
        with torch.enable_grad():
            losses = self.loss_fn(outputs, y)
            grad, = torch.autograd.grad(self.scaler.scale(losses.sum()) if self.scaler else losses.sum(), outputs)
        return losses, grad

    def _autograd_step(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with self.autocast:
            outputs = self.stack(x, training=True)
            losses = self.loss_fn(outputs, y)  # [K]: members' gradients do not mix in the sum
        self.stack.grads.zero_()
        objective = losses.sum()
        backward = (self.scaler.scale(objective) if self.scaler else objective).backward
        if self.stepped:
            backward()
        else:  # torch warns once per process about the stacked weights' layout; see _quiet_layout_warning
            self.stepped = True
            with _quiet_layout_warning():
                backward()
        return losses, outputs

    def run_epoch(self, on_epoch: OnEpoch) -> None:
        started = time.perf_counter()
        self.epoch += 1
        x, y, k = self.problem.x["train"], self.problem.y["train"], self.stack.k
        # Each member's seeded order of the rows, laid out batch by batch ([K, B] blocks one after another), so
        # that a batch's row indices are one contiguous slice and one gather fetches every member's rows.
        orders = torch.stack([torch.randperm(self.n, generator=g) for g in self.orders]).to(self.device)
        blocks = torch.cat([orders[:, start:end].reshape(-1) for start, end in self.bounds]) if k > 1 else orders[0]
        for i, (start, end) in enumerate(self.bounds):
            rows = blocks[k * start:k * end]
            batch = augment_members(x.index_select(0, rows).view(k, end - start, *x.shape[1:]), self.augment_rng,
                                    self.augments)
            self.step_losses[i], self.train_outputs[:, start:end] = self.train_step(
                batch, y.index_select(0, rows).view(k, -1))
        values, bad_steps = self._epoch_values(orders)
        seconds = time.perf_counter() - started
        # An epoch is kept whole or not at all: a signal that arrives while its best weights, history and
        # metrics rows are recorded waits until they are (else an interrupted model could report a best
        # epoch past its last logged one).
        with deferred():
            self._keep_best(values, bad_steps)
            records = []
            for k, m in enumerate(self.members):
                if values[k]:  # trained this epoch (diverged in it included)
                    m.seconds += seconds
                    m.history.append(EpochRecord(m.spec.name, self.epoch, values[k], m.schedule.lr, seconds,
                                                 m.spec.member))
                    records.append(m.history[-1])
            for record in records:
                on_epoch(record)
            self._stop_or_go_on(values)
            self._apply_cull()

    def _epoch_values(self, orders: torch.Tensor) -> tuple[list[dict[str, float]], list[int]]:
        """The one host sync of the epoch: every member's train and validation numbers, read at once.
        `orders` [K, N]: the rows each member saw, in the order of its training outputs."""
        p = self.problem
        y_epoch = p.y["train"][orders]
        val_outputs = outputs(self.stack, p.x["val"], self.autocast)
        y_val = p.y["val"]
        val_losses = self.loss_fn(val_outputs, as_target(y_val, val_outputs).expand(self.stack.k, *y_val.shape))
        train_losses = (self.step_losses * self.sizes[:, None]).sum(0) / self.n
        non_finite = ~torch.isfinite(self.step_losses)
        bad = torch.where(non_finite.any(0), non_finite.float().argmax(0), -1)
        # Every member's metrics in one batched call per split (members that stopped are computed and not read).
        columns = {"train_loss": train_losses,
                   **prefixed("train", metric_fns.compute_stacked(p.task, p.metrics, self.train_outputs, y_epoch,
                                                                   p.target_std)),
                   "val_loss": val_losses,
                   **prefixed("val", metric_fns.compute_stacked(p.task, p.metrics, val_outputs, y_val,
                                                                 p.target_std)),
                   "bad_step": bad}
        values = read_members(columns, [m.active for m in self.members])
        return values, [int(v.pop("bad_step", -1)) for v in values]

    def _keep_best(self, values: list[dict[str, float]], bad_steps: list[int]) -> None:
        higher = higher_is_better(self.problem.monitor)
        better = []
        for k, m in enumerate(self.members):
            if not m.active:
                continue
            blowup = divergence(self.epoch, bad_steps[k], self.step_losses[:, k], values[k], m.history,
                                 self.prior_loss, m.spec.train)
            if blowup:
                m.status, m.message = "diverged", blowup
            elif improved(values[k][self.problem.monitor], m.best_score, higher, 0.0):
                m.best_score, m.best_epoch, m.best_values = values[k][self.problem.monitor], self.epoch, values[k]
                m.best_buffers = self.stack.buffers()
                better.append(k)
        if better:
            rows = torch.tensor(better, device=self.device)
            self.best_params.index_copy_(0, rows, self.stack.params.index_select(0, rows))

    def _stop_or_go_on(self, values: list[dict[str, float]]) -> None:
        for k, m in enumerate(self.members):
            if not m.active:
                continue
            m.schedule.step(values[k][self.problem.monitor])
            m.stop_reason = m.stopping.should_stop(values[k], self.epoch) if m.stopping else None
            if m.stop_reason or self.epoch >= m.spec.train.epochs:
                m.status = "completed"
        self.step.set_lrs([m.schedule.lr for m in self.members])
        if any(not m.active for m in self.members):
            self.step.set_active([m.active for m in self.members])

    def _apply_cull(self) -> None:
        """With a cull: members it stops end here as completed with its reason; then every member that no
        longer trains (stopped by it, early stopping, its epochs or divergence) leaves the stack with its
        result (tested now, from its best epoch), so that the remaining epochs cost what a stack of the live
        members would. Without one, stopped members stay in the stack, masked, as always."""
        if self.cull is None:
            return
        standings = [MemberStanding(m.spec.name, m.spec.member, m.active, m.best_score) for m in self.members]
        for row, stop in self.cull(self.epoch, standings).items():
            m = self.members[row]
            m.status, m.stop_reason, m.halved = "completed", stop.reason, stop
        leaving = [k for k, m in enumerate(self.members) if not m.active]
        if not leaving or len(leaving) == len(self.members):
            return  # nobody leaves, or nobody goes on: the end of training gives every result as always
        for k, result in zip(leaving, self._results_of(leaving, restore=True)):
            self.retired[self.rows[k]] = result
        self._keep([k for k, m in enumerate(self.members) if m.active])

    def _keep(self, rows: list[int]) -> None:
        """Compact the member dimension to `rows`: the stack, the optimizer's per-member state, every
        per-member tensor and generator of the loop."""
        index = torch.tensor(rows, device=self.device)
        self.stack.keep(rows)
        self.step.keep(rows, self.stack.params, self.stack.grads)
        self.best_params = self.best_params.index_select(0, index)
        if self.l1 is not None:
            self.l1 = self.l1.index_select(0, index)
        pick = lambda items: [items[r] for r in rows]
        self.members, self.orders, self.rows = pick(self.members), pick(self.orders), pick(self.rows)
        self.augments, self.augment_rng = pick(self.augments), pick(self.augment_rng)
        self.step_losses = torch.zeros(len(self.bounds), len(rows), device=self.device)
        self.train_outputs = torch.zeros(len(rows), self.n, self.problem.n_outputs, device=self.device)

    def state(self) -> LoopState:
        """A copy of everything needed to continue after this epoch (see LoopState)."""
        cpu = lambda t: t.detach().to("cpu", copy=True)
        # Shallow copies: epoch records and best values are never changed once made; lists and dicts are new.
        progress = [MemberProgress(**{f.name: copy.copy(getattr(m, f.name)) for f in fields(MemberProgress)})
                    for m in self.members]
        for p, m in zip(progress, self.members):
            p.stopping_best, p.stopping_stale = (m.stopping.best, m.stopping.stale) if m.stopping else (None, 0)
            p.best_buffers = {k: cpu(v) for k, v in m.best_buffers.items()}
        return LoopState(
            [m.spec.name for m in self.members], self.epoch, cpu(self.stack.params), cpu(self.best_params),
            {k: cpu(v) for k, v in self.stack.buffers().items()},
            {k: cpu(v) if isinstance(v, torch.Tensor) else v for k, v in self.step.state_dict().items()},
            [m.schedule.state_dict() for m in self.members], progress, [g.get_state() for g in self.orders],
            self.stack.generator_states(), torch.get_rng_state(),
            torch.cuda.get_rng_state_all() if self.device.type == "cuda" else None,
            self.scaler.state_dict() if self.scaler else None, [g.get_state() for g in self.augment_rng])

    def load_state(self, state: LoopState) -> None:
        names = [m.spec.name for m in self.members]
        if state.names != names or tuple(state.params.shape) != tuple(self.stack.params.shape):
            raise ValueError(f"a saved loop state of {state.names} does not fit the members {names}")
        with torch.no_grad():
            self.stack.params.copy_(state.params)
            self.best_params.copy_(state.best_params)
        self.stack.load_buffers(state.buffers)
        self.step.load_state_dict(state.optimizer)
        for m, schedule, progress in zip(self.members, state.schedules, state.members):
            m.schedule.load_state_dict(schedule)
            for f in fields(MemberProgress):
                setattr(m, f.name, copy.copy(getattr(progress, f.name)))
            if m.stopping:
                m.stopping.best, m.stopping.stale = progress.stopping_best, progress.stopping_stale
        for g, rng in zip(self.orders, state.order_rng):
            g.set_state(rng)
        self.stack.load_generator_states(state.dropout_rng)
        torch.set_rng_state(state.torch_rng)
        if state.cuda_rng is not None:
            torch.cuda.set_rng_state_all(state.cuda_rng)
        for g, rng in zip(self.augment_rng, state.augment_rng or []):
            g.set_state(rng)
        if self.scaler and state.loss_scale:
            self.scaler.load_state_dict(state.loss_scale)
        self.epoch = state.epoch

    def results(self, interrupted: bool) -> list[FitResult]:
        """Every member's result with its best weights: tested unless the fit was interrupted while it ran;
        members that left the stack early (a cull) included, all in the order the loop was given them."""
        for m in self.members:
            if m.active:
                m.status = "interrupted" if interrupted else "completed"
        here = dict(zip(self.rows, self._results_of(list(range(len(self.members))), restore=False)))
        done = {**self.retired, **here}
        return [done[row] for row in sorted(done)]

    def _results_of(self, rows: list[int], restore: bool) -> list[FitResult]:
        """The results of the members at `rows` from their best epochs' weights. `restore`: the stack goes on
        training afterwards, so its current weights are put back."""
        current = self.stack.params.clone() if restore else None
        with torch.no_grad():
            self.stack.params.copy_(self.best_params)
        trained = [m.best_epoch > 0 for m in self.members]
        tested = [t and m.status != "interrupted" for t, m in zip(trained, self.members)]
        buffers = next((m.best_buffers for m in self.members if m.best_buffers), None)
        if buffers:  # only a Single (K = 1) has buffers
            self.stack.load_buffers(buffers)
        states = self.stack.member_states()
        wanted = any(tested[k] for k in rows)
        test, test_outputs = self._test_values() if wanted else ([{} for _ in self.members], None)
        val_outputs = predictions(self.stack, self.problem, "val", self.autocast) if any(trained) else None
        results = []
        for k in rows:
            m = self.members[k]
            results.append(FitResult(
                m.spec.name, m.status, m.best_epoch, len(m.history), unprefixed("val", m.best_values),
                test[k] if tested[k] else {}, m.seconds,
                self.n * len(m.history) / m.seconds if m.seconds > 0 else 0.0, m.history,
                m.message or (f"interrupted during epoch {len(m.history) + 1}" if m.status == "interrupted" else None),
                m.stop_reason, states[k] if trained[k] else None, val_outputs[k] if trained[k] else None,
                m.spec.member, test_outputs[k] if tested[k] and test_outputs is not None else None, m.halved))
        if current is not None:
            with torch.no_grad():
                self.stack.params.copy_(current)
        return results

    def _test_values(self) -> tuple[list[dict[str, float]], list[np.ndarray]]:
        """Each member's test scores, and its test probabilities on the host (the final metrics read them)."""
        p = self.problem
        out = outputs(self.stack, p.x["test"], self.autocast)
        y = p.y["test"]
        losses = self.loss_fn(out, as_target(y, out).expand(self.stack.k, *y.shape))
        columns = {"loss": losses, **metric_fns.compute_stacked(p.task, p.metrics, out, y, p.target_std)}
        return (read_members(columns, [True] * self.stack.k),
                [metric_fns.probabilities(p.task, out[k]).cpu().numpy() for k in range(self.stack.k)])


@contextlib.contextmanager
def _quiet_layout_warning() -> Iterator[None]:
    """Stacked weights are strided views of the flat parameters, and their gradients accumulate in place into
    the flat gradients, as intended; torch warns about that layout on the first backward of a process."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "grad and param do not obey the gradient layout contract")
        yield


def run_epochs(members: list[BuiltMember], problem: Problem, on_epoch: OnEpoch, placement: Placement,
               on_state: Optional[OnState] = None, resume: Optional[LoopState] = None,
               cull: Optional[Cull] = None) -> list[FitResult]:
    """Train members that share a stack (K = 1 included) epoch by epoch to the end; results in member order.
    `on_state` receives a LoopState after every epoch; `resume` continues from one; `cull` may stop members
    after an epoch, who then leave the stack. An interrupt raises FitInterrupted with every member's result
    so far."""
    loop = Loop(members, problem, placement, cull)
    if resume is not None:
        loop.load_state(resume)
    elif len(members) == 1:
        _start_generators(members[0])
    try:
        while loop.running:
            loop.run_epoch(on_epoch)
            if on_state is not None:
                on_state(loop.state())
    except KeyboardInterrupt as cause:
        # What trained so far is kept: each member's best epoch's weights and scores; nothing is tested.
        raise FitInterrupted(loop.results(interrupted=True), cause) from cause
    return loop.results(interrupted=False)


def _start_generators(member: BuiltMember) -> None:
    """Torch's global generators as building this member left them (a Single's dropout draws from them)."""
    if member.torch_rng is not None:
        torch.set_rng_state(member.torch_rng)
    if member.cuda_rng is not None:
        torch.cuda.set_rng_state_all(member.cuda_rng)


def _stopping(train: TrainSpec, monitor: str) -> Optional[EarlyStopping]:
    es = train.early_stopping
    return EarlyStopping(es.monitor or monitor, es.patience, es.min_delta) if es else None


def _batch_bounds(n: int, batch_size: int) -> list[tuple[int, int]]:
    bounds = [(start, min(start + batch_size, n)) for start in range(0, n, batch_size)]
    if len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] == 1:
        # A batch of one breaks batch norm and is a noisy step: fold it into the previous batch.
        bounds[-2:] = [(bounds[-2][0], n)]
    return bounds


