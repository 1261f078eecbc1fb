"""What a model will be before it exists: its layers with output shapes and parameter counts (like Keras'
`model.summary()`), and the memory training it needs. Both come from a dry forward pass of two examples.
The model is built on PyTorch's meta device, where tensors have shapes but no storage, so `hidden:
[100000000]` costs nothing to look at. A model of normal size then gets uninitialised CPU storage for the pass.
Why not stay on meta: meta kernels of many ops (initialisers, addmm) run through Python reference code whose
first call imports torch._dynamo (1.5-2.5 s per process), while a CPU pass over two examples takes milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from nnlab.core.inputs import InputInfo
from nnlab.models import registry

BYTES_PER_VALUE = 4  # float32
# Weights, their gradients and Adam's two moment estimates: four float32 copies of every parameter.
COPIES_PER_PARAM = 4
# Outputs kept for the backward pass, plus the gradients flowing back through them; those are freed layer by
# layer, so about half of them are alive at the peak (measured against autograd's saved tensors in the tests).
ACTIVATION_FACTOR = 1.5
# Up to these sizes the dry pass runs on CPU storage rather than on the meta device: 200 MB of parameters, and
# inputs small enough that two examples' activations stay small too (a 180x180 RGB image is 97,200 values).
MATERIALIZE_PARAMS = 50_000_000
MATERIALIZE_INPUT_VALUES = 100_000
DRY_BATCH = 2  # batch norm refuses a batch of one in train mode
# Modules shown whole: their parameters are used by functional calls, not through their submodules.
ATOMIC = (nn.MultiheadAttention, nn.RNNBase)


@dataclass(frozen=True)
class LayerRow:
    name: str  # the module's path in the model, e.g. blocks.0.conv
    type: str  # its class, e.g. Conv1d
    output_shape: tuple[int, ...]  # one example's output, batch dimension left out
    params: int  # parameters this layer owns (a module called twice counts them once)


class _SkipMetaFills(TorchFunctionMode):
    """Skips initialisers and value fills on meta tensors: they have no values to fill, and skipping them
    keeps the build off the reference code that imports torch._dynamo."""

    FILLS = {"normal_", "uniform_", "fill_", "zero_", "copy_"}

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        target = args[0] if args else kwargs.get("tensor")
        fills = getattr(func, "__module__", None) == "torch.nn.init" or getattr(func, "__name__", "") in self.FILLS
        if fills and isinstance(target, torch.Tensor) and target.is_meta:
            return target
        return func(*args, **kwargs)


def _dry_model(model_spec: Any, info: InputInfo) -> nn.Module:
    with _SkipMetaFills(), torch.device("meta"):
        model = registry.build_model(model_spec, info)
    params = sum(p.numel() for p in model.parameters())
    if params <= MATERIALIZE_PARAMS and info.n_features <= MATERIALIZE_INPUT_VALUES:
        # Shapes are all the pass reads; the values stay unset. (Not `to_empty`: its empty_like of a meta
        # tensor runs reference code that imports sympy, 0.5 s.)
        model = model._apply(lambda t: torch.empty(t.shape, dtype=t.dtype, device="cpu"))
    model.train()  # train mode: PyTorch's eval-only fused paths would skip the submodules' hooks
    return model


def _dry_run(model: nn.Module, info: InputInfo, visit: Callable[[str, nn.Module, Any], None]) -> None:
    """One forward pass of DRY_BATCH examples; `visit(name, module, output)` per shown layer, in call order."""
    shown = _shown_layers(model)
    hooks = [m.register_forward_hook(lambda mod, _, out: visit(shown[mod], mod, out)) for m in shown]
    # Text beside table columns travels as one float32 row: the ids, then the columns (nnlab.data.mixed).
    dtype = torch.int64 if info.kind == "text" and not info.mixed else torch.float32
    shape = (info.shape[0] + info.table_width,) if info.mixed else info.shape
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # two examples: a woken thread pool costs more than the arithmetic
    try:
        with torch.no_grad():
            device = next(model.parameters()).device
            model(torch.zeros((DRY_BATCH, *shape), dtype=dtype, device=device))
    finally:
        torch.set_num_threads(threads)
        for hook in hooks:
            hook.remove()


def _shown_layers(model: nn.Module) -> dict[nn.Module, str]:
    """Leaf modules and atomic ones (whose submodules are then hidden), with their names."""
    shown: dict[nn.Module, str] = {}
    hidden: list[str] = []
    for name, module in model.named_modules():
        if any(name.startswith(prefix) for prefix in hidden):
            continue
        if isinstance(module, ATOMIC):
            hidden.append(f"{name}.")
            shown[module] = name
        elif next(module.children(), None) is None:
            shown[module] = name or type(module).__name__
    return shown


def _first_tensor(output: Any) -> torch.Tensor:
    while isinstance(output, (tuple, list)):
        output = output[0]
    return output


def layer_table(model_spec: Any, info: InputInfo) -> list[LayerRow]:
    """The layers of the model in the order a forward pass calls them, with one example's output shape."""
    model = _dry_model(model_spec, info)
    rows: list[LayerRow] = []
    counted: set[int] = set()

    def visit(name: str, module: nn.Module, output: Any) -> None:
        params = [p for p in module.parameters() if id(p) not in counted]
        counted.update(id(p) for p in params)
        shape = tuple(_first_tensor(output).shape[1:])
        rows.append(LayerRow(name, type(module).__name__, shape, sum(p.numel() for p in params)))

    _dry_run(model, info, visit)
    return rows


def count_params_of(rows: list[LayerRow]) -> int:
    """The model's parameter count from its layer table (each parameter is in exactly one row)."""
    return sum(row.params for row in rows)


def estimate_memory(model_spec: Any, info: InputInfo, batch_size: int) -> int:
    """Bytes that training with Adam at `batch_size` needs: four float32 copies of the parameters, and
    every shown layer's output 1.5 times (kept for backward, and part of its gradient). Every output grows with the
    batch, so the dry pass's values per example are scaled to `batch_size`."""
    model = _dry_model(model_spec, info)
    per_example = [info.n_features]  # the batch itself

    def visit(name: str, module: nn.Module, output: Any) -> None:
        per_example.append((_first_tensor(output).numel() + _hidden_values(module, output)) // DRY_BATCH)

    _dry_run(model, info, visit)
    params = sum(p.numel() for p in model.parameters())
    return int(BYTES_PER_VALUE * (COPIES_PER_PARAM * params + ACTIVATION_FACTOR * batch_size * sum(per_example)))


def _hidden_values(module: nn.Module, output: Any) -> int:
    """Values an atomic layer keeps for backward besides its output: attention weights, recurrent gates."""
    out = _first_tensor(output)
    if isinstance(module, nn.MultiheadAttention):
        return out.shape[0] * module.num_heads * out.shape[1] ** 2
    if isinstance(module, nn.RNNBase):
        return out.numel() * {"GRU": 3, "LSTM": 4}.get(module.mode, 1)
    return 0
