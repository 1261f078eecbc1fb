"""Which models can train as members of one stack, decided from their specs alone. Torch-free, so that
planning a run (and `validate`) can say which models will stack and why others will not."""

from __future__ import annotations

from typing import TYPE_CHECKING

from nnlab.core.keys import model_part

if TYPE_CHECKING:
    from nnlab.spec import ModelSpec, TrainSpec

STACKED_KINDS = ("mlp", "resmlp", "cnn", "rnn", "transformer")  # model kinds with a stacked form
SHARED_TRAIN_SETTINGS = ("batch_size", "optimizer.name", "loss", "class_weights", "precision", "device")
MEMBER_FIELDS = ("name", "train", "dropout")  # what members of one stack may differ in, of a model spec


def can_stack(model_specs: list[ModelSpec], input_kind: str = "table") -> tuple[bool, str]:
    """Whether these models can train as members of one stack; if not, the reason in words. Members may
    differ in seed, learning rate, weight decay, momentum, dropout, L1, grad_clip, epochs, early stopping
    and scheduler; they must share the architecture and the settings in SHARED_TRAIN_SETTINGS. A plain
    table MLP stacks as batched matrix products (`stack.StackedMLP`), every other model without batch
    norm through torch.func (`stack.FuncStack`), where dropout on or off is part of the architecture."""
    first = model_specs[0]
    plain_mlp = first.kind == "mlp" and input_kind != "text" and first.norm == "none"
    for spec in model_specs:
        name = spec.name or spec.kind
        if spec.kind not in STACKED_KINDS:
            return False, f"{name}: kind '{spec.kind}' has no stacked form (only {', '.join(STACKED_KINDS)})"
        if getattr(spec, "norm", "none") == "batchnorm":
            return False, f"{name}: batchnorm layers do not stack"
        if spec.kind != first.kind:
            return False, f"different architectures: kind {first.kind} ({first.name or first.kind}) vs {spec.kind} ({name})"
        for field in type(spec).model_fields:
            if field not in MEMBER_FIELDS and getattr(spec, field) != getattr(first, field):
                return False, (f"different architectures: {field} {getattr(first, field)} "
                               f"({first.name or first.kind}) vs {getattr(spec, field)} ({name})")
        if not plain_mlp and (spec.dropout > 0) != (first.dropout > 0):
            return False, (f"different architectures: dropout {first.dropout} ({first.name or first.kind}) "
                           f"vs {spec.dropout} ({name}): one has dropout layers, the other none")
    return shared_train_settings([s.train for s in model_specs if s.train is not None])


def shared_train_settings(trains: list[TrainSpec]) -> tuple[bool, str]:
    for setting in SHARED_TRAIN_SETTINGS:
        values = [_setting(t, setting) for t in trains]
        if any(v != values[0] for v in values):
            return False, f"different train.{setting}: {', '.join(dict.fromkeys(map(str, values)))}"
    return True, ""


def _setting(train: TrainSpec, dotted: str) -> object:
    # Not a dotted spec key (core.keys): an attribute path on one model's TrainSpec, with no models list in it.
    value: object = train
    for part in dotted.split("."):
        value = getattr(value, part)
    return value


# Settings whose values stacked members may differ in: everything else must be the same in every point.
STACKABLE_KEYS = ("train.optimizer.lr", "train.optimizer.weight_decay", "train.optimizer.momentum", "train.l1",
                  "train.grad_clip", "train.epochs", "train.early_stopping", "train.scheduler",
                  "train.threshold")  # threshold: read after training, never by the loop
STACKABLE_MODEL_FIELDS = ("dropout",)


def stackable_key(key: str) -> bool:
    """Whether a sweep key only changes what members of one stack may differ in (`models.mlp.dropout`,
    `train.optimizer.lr`, `models.0.train.l1`)."""
    inside = model_part(key)  # which model `models.<name|index>` means does not matter here: any may differ
    if inside is not None:
        rest = inside[1]
        return rest in STACKABLE_MODEL_FIELDS or stackable_key(rest)
    return any(key == k or key.startswith(k + ".") for k in STACKABLE_KEYS)
