"""Several sweep points trained as one stack, each written to its own run folder.

Points that differ only in settings members of a stack may differ in (learning rate, weight decay,
momentum, dropout, L1, gradient clipping, epochs, early stopping, scheduler) train their models together:
every model of every point becomes members of one stacked model, one loop runs them all, and each point's
results go to its own run folder exactly as `nnlab train` of that point alone would write them (each
member equals the same member trained alone). Everything else about a point (its baseline, gates, summary)
is that point's own.
"""

from __future__ import annotations

import dataclasses
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from nnlab import runstore
from nnlab.core.interrupts import deferred
from nnlab.run.members import ModelsInterrupted, ModelToTrain, build_and_fit, stack_groups
from nnlab.core.columns import epoch_columns
from nnlab.run.session import Outcome, Plan, Session, run_meta
from nnlab.spec import ModelSpec
from nnlab.sweeps.halving import Halving, StackHalving, keep_all
from nnlab.training.stacking import can_stack

if TYPE_CHECKING:
    import torch

    from nnlab.training.state import EpochRecord

def can_train_together(plans: list[Plan]) -> bool:
    """Same data and split, the same models in the same order, and each model stackable across the points."""
    first = plans[0]
    same = all(p.prepared.fingerprint == first.prepared.fingerprint
               and p.metrics == first.metrics and p.spec.monitor == first.spec.monitor
               and p.spec.repeats == first.spec.repeats
               and [m.name for m in p.spec.models] == [m.name for m in first.spec.models] for p in plans)
    kind = first.prepared.info.kind
    return same and all(can_stack([p.spec.models[i] for p in plans], kind)[0]
                        for i in range(len(first.spec.models)))


def execute_points(plans: list[Plan], store: Path, notes: list[str], sweep: Optional[str],
                   halving: Optional[Halving] = None) -> list[Outcome]:
    """Train the points of `plans` as one stack; one run folder per point. A failure or an interrupt ends
    every point's run with that status (each keeps what finished). With `halving`, the worst points of each
    stack stop at its rungs (sweeps.halving)."""
    from nnlab.training.placement import resolve_device

    device = resolve_device(plans[0].spec.models[0].train.device)
    runstore.check_store(store)
    with ExitStack() as stack:
        sessions = []
        for plan, note in zip(plans, notes):
            writer = stack.enter_context(runstore.RunWriter(store, run_meta(plan, note, sweep, device),
                                                            epoch_columns(plan.metrics)))
            sessions.append(Session(plan, writer, None))
        for session in sessions:
            if session.spec.baseline:
                session.train_baseline(device)
        for groups in zip(*(stack_groups(s.spec.models, s.info.kind) for s in sessions)):
            _train_across(sessions, groups, device, halving)
        for session in sessions:
            session.finish()
    return [Outcome(s.writer.id, s.writer.path, s.summary) for s in sessions]


def _train_across(sessions: list[Session], groups: tuple[list[ModelSpec], ...], device: torch.device,
                  halving: Optional[Halving] = None) -> None:
    """One stack of every point's models of this group; each model's members are named `<model>@<point>`
    inside the loop (`@` is not allowed in a model name) and routed back to their point's run."""
    owners: dict[str, tuple[Session, ModelToTrain]] = {}
    runs = []
    for i, (session, group) in enumerate(zip(sessions, groups)):
        for own in session.models_to_train(group):
            inside = dataclasses.replace(own, name=f"{own.name}@{i}")
            owners[inside.name] = (session, own)
            runs.append(inside)

    def on_epoch(record: EpochRecord) -> None:
        session, own = owners[record.model]
        session.on_epoch(dataclasses.replace(record, model=own.name))

    first = sessions[0]
    # Without halving the cull stops nobody, but points that stop on their own still leave the stack.
    cull = StackHalving(halving, max(run.epochs for run in runs), first.spec.monitor) if halving else keep_all
    try:
        fits = build_and_fit(runs, first.info, first.problem_on(device), on_epoch, lambda run, params: None,
                             cull=cull)
    except KeyboardInterrupt as stop:
        done = stop.fits if isinstance(stop, ModelsInterrupted) else {}
        with deferred():
            for name, (session, own) in owners.items():
                if name in done:
                    session.record_model(own, done[name])
        raise
    for name, (session, own) in owners.items():
        session.record_model(own, fits[name])
