"""K members of one architecture as one model: every weight gets a leading member dimension.

The loop (`nnlab.training.loop`) trains a `Stack` and nothing else. Its parameters are the rows of one flat tensor
`params` [K, P] (the weights the layers use are views into it) and their gradients the rows of `grads`, so
that one optimizer step, one gradient clip and one early-stopping copy serve every member at once.

- `StackedMLP`: nn.Sequential MLPs (Linear, elementwise activation, Dropout; optionally a leading Flatten)
  as batched matmuls, `torch.baddbmm` on weights [K, out, in]. Each member draws its dropout masks from its
  own generator, seeded by its own seed, so member k of a stack equals the same member trained alone
  (which also goes through `StackedMLP`, with K = 1). Its training step has a hand-written backward
  (`forward_taped`, `backward`): the same aten kernels autograd would call, in the same order, so the
  gradients are bit for bit autograd's, without the engine's per-node cost (about a fifth of a step at K = 1).
- `FuncStack`: any other module without batch norm (CNNs 1-D and 2-D, GRU/LSTM/RNN, transformers, residual
  and text MLPs): `torch.func.functional_call` of one module with each member's weights, under `torch.vmap`
  over the members when K > 1 (K = 1 calls the module's own kernels). Dropout masks come from each member's
  own generator, supplied to the model's `models.dropout.Dropout` layers from outside the vmapped call
  (vmap's randomness draws all members' masks from one generator, which no member alone reproduces), so a
  member equals itself alone up to the rounding of batched kernels (within 1e-5 in the tests).
- `Single`: a module with batch norm (its running statistics are per-batch state that the stacked forms do
  not carry), K = 1, its parameters moved into the flat tensor. Its dropout uses torch's global generator.

`can_stack` (torch-free, in `nnlab.training.stacking`) says from the specs whether members can share a stack;
everything that cannot is trained one after another by the same loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import torch
from torch import nn

from nnlab.models.dropout import Dropout, supplied

from nnlab.training.stacking import STACKED_KINDS, can_stack, shared_train_settings

__all__ = ["STACKED_KINDS", "Stack", "StackedMLP", "FuncStack", "Single", "build_stack", "can_stack", "can_stack_modules",
           "shared_train_settings"]

ELEMENTWISE = (nn.ReLU, nn.Tanh, nn.Sigmoid, nn.GELU, nn.LeakyReLU)


# --- the structure of an MLP ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Layer:
    key: str  # the module's state-dict prefix in its nn.Sequential ("0" -> "0.weight", "0.bias")
    n_in: int
    n_out: int
    activation: Optional[nn.Module]
    dropout: float


def mlp_layers(model: nn.Module) -> tuple[Optional[list[Layer]], bool, str]:
    """An nn.Sequential of Linear, activation and Dropout modules as layers; (None, _, reason) otherwise.
    Also says whether it starts with nn.Flatten."""
    if not isinstance(model, nn.Sequential):
        return None, False, f"a {type(model).__name__} model has no stacked form"
    modules = list(model.named_children())
    flatten = bool(modules) and isinstance(modules[0][1], nn.Flatten)
    layers: list[dict] = []
    for key, module in modules[1:] if flatten else modules:
        if isinstance(module, nn.Linear):
            layers.append({"key": key, "n_in": module.in_features, "n_out": module.out_features,
                           "activation": None, "dropout": None})
        elif type(module) in ELEMENTWISE and layers and layers[-1]["activation"] is layers[-1]["dropout"] is None:
            layers[-1]["activation"] = module  # in order: Linear, activation, Dropout (not subclasses: their
            # forward may differ from the kernel whose backward StackedMLP applies)
        elif isinstance(module, nn.Dropout) and layers and layers[-1]["dropout"] is None:
            layers[-1]["dropout"] = float(module.p)
        else:
            return None, flatten, f"a {type(module).__name__} layer has no stacked form"
    if not layers:
        return None, flatten, "no Linear layer"
    return [Layer(**{**layer, "dropout": layer["dropout"] or 0.0}) for layer in layers], flatten, ""


def _signature(layers: list[Layer], flatten: bool) -> tuple:
    """What members must share: shapes and activations; dropout rates may differ."""
    return flatten, tuple((l.n_in, l.n_out, repr(l.activation)) for l in layers)


def can_stack_modules(models: list[nn.Module]) -> tuple[bool, str]:
    """Whether these modules can share one stack (StackedMLP or FuncStack); if not, why."""
    if not all(mlp_layers(m)[0] is not None for m in models):
        return can_stack_functionally(models)
    parsed = [mlp_layers(m) for m in models]
    for layers, _, reason in parsed:
        if layers is None:
            return False, reason
    if len({_signature(layers, flatten) for layers, flatten, _ in parsed}) > 1:
        return False, "the members' layers differ in shape or activation"
    return True, ""


# --- stacks -----------------------------------------------------------------------------------------

class Stack:
    """K members. `params`, `grads`: [K, P]; `penalized`: bool [P], the weights L1 applies to (not biases)."""

    k: int
    params: torch.Tensor
    grads: torch.Tensor
    penalized: torch.Tensor
    generators: tuple[torch.Generator, ...] | list[torch.Generator] = ()  # per member, where the stack draws dropout

    has_backward = False  # whether `forward_taped` and `backward` replace autograd in training

    def __call__(self, x: torch.Tensor, training: bool) -> torch.Tensor:
        """[K, B, ...] -> [K, B, n_outputs]."""
        raise NotImplementedError

    def forward_taped(self, x: torch.Tensor) -> tuple[torch.Tensor, list]:
        """Training forward without autograd: outputs [K, B, n_outputs] and what `backward` needs."""
        raise NotImplementedError

    def backward(self, grad: torch.Tensor, tape: list) -> None:
        """Write every parameter's gradient into `grads` (all of it: no zeroing needed), from the outputs'
        gradient [K, B, n_outputs]."""
        raise NotImplementedError

    def outputs(self, x: torch.Tensor) -> torch.Tensor:
        """Evaluation: one split's rows [N, ...], the same for every member -> [K, N, n_outputs]."""
        raise NotImplementedError

    def buffers(self) -> dict[str, torch.Tensor]:
        """State besides the parameters (batch-norm statistics), copied with the best weights."""
        return {}

    def load_buffers(self, buffers: dict[str, torch.Tensor]) -> None:
        pass

    def member_states(self) -> list[dict[str, torch.Tensor]]:
        """Each member's state dict as its own module names it, on the CPU; also loaded into the modules."""
        raise NotImplementedError

    def generator_states(self) -> list[torch.Tensor]:
        """Each member's own dropout generator state (none for a stack that draws no dropout itself)."""
        return [g.get_state() for g in self.generators]

    def load_generator_states(self, states: list[torch.Tensor]) -> None:
        for g, state in zip(self.generators, states):
            g.set_state(state)

    def keep(self, rows: list[int]) -> None:
        """Only the members at `rows` (in this order) stay: the member dimension of every weight, gradient,
        dropout rate and generator shrinks to them, so later steps cost what a stack of these would. A kept
        member goes on exactly as before (its generators are the same objects)."""
        raise NotImplementedError(f"a {type(self).__name__} cannot drop members")

    def _kept_params(self, rows: list[int]) -> None:
        index = torch.tensor(rows, device=self.params.device)
        with torch.no_grad():
            self.params = self.params.detach().index_select(0, index)
        self.grads = torch.zeros_like(self.params)
        self.generators = [self.generators[r] for r in rows]
        self.k = len(rows)


class StackedMLP(Stack):
    def __init__(self, models: list[nn.Sequential], seeds: list[int], device: torch.device):
        parsed = [mlp_layers(m) for m in models]
        self.models, self.k, self.flatten = models, len(models), parsed[0][1]
        self.keys = [[layer.key for layer in layers] for layers, _, _ in parsed]
        self.layers: list[Layer] = parsed[0][0]
        self.sizes = [layer.n_out * layer.n_in + layer.n_out for layer in self.layers]
        self.params = torch.zeros(self.k, sum(self.sizes), device=device)
        self.grads = torch.zeros_like(self.params)
        self.penalized = torch.zeros(sum(self.sizes), dtype=torch.bool, device=device)
        offset = 0
        for i, (layer, size) in enumerate(zip(self.layers, self.sizes)):
            w_end = offset + layer.n_out * layer.n_in
            with torch.no_grad():
                for k, (member, keys) in enumerate(zip(models, self.keys)):
                    linear = member.get_submodule(keys[i])
                    self.params[k, offset:w_end].copy_(linear.weight.reshape(-1))
                    self.params[k, w_end:offset + size].copy_(linear.bias)
            self.penalized[offset:w_end] = True
            offset += size
        dropouts = [[layer.dropout for layer in layers] for layers, _, _ in parsed]
        self.dropout_rates = [[d[i] for d in dropouts] for i in range(len(self.layers))]
        self.generators = [torch.Generator(device=device).manual_seed(seed) for seed in seeds]
        self._bind()

    def _bind(self) -> None:
        """The layers' weights and biases as views of `params` (their gradients views of `grads`)."""
        self.weights, self.biases, self.weight_grads, self.bias_grads = [], [], [], []
        offset = 0
        for layer, size in zip(self.layers, self.sizes):
            w_end = offset + layer.n_out * layer.n_in
            weight = self.params[:, offset:w_end].view(self.k, layer.n_out, layer.n_in)
            bias = self.params[:, w_end:offset + size]
            self.weight_grads.append(self.grads[:, offset:w_end].view(self.k, layer.n_out, layer.n_in))
            self.bias_grads.append(self.grads[:, w_end:offset + size])
            self.weights.append(_leaf(weight, self.weight_grads[-1]))
            self.biases.append(_leaf(bias, self.bias_grads[-1]))
            offset += size
        self.dropout = [torch.tensor(rates, device=self.params.device).reshape(-1, 1, 1)
                        for rates in self.dropout_rates]
        # What the taped step reads, made once: views of `params` without autograd (they follow its in-place
        # updates), the bias as [K, 1, out] and the weight as W [K, out, in] and W^T [K, in, out].
        self.plain = [(b.detach().unsqueeze(1), w.detach(), w.detach().transpose(1, 2))
                      for w, b in zip(self.weights, self.biases)]

    def keep(self, rows: list[int]) -> None:
        self._kept_params(rows)
        self.models, self.keys = [self.models[r] for r in rows], [self.keys[r] for r in rows]
        self.dropout_rates = [[rates[r] for r in rows] for rates in self.dropout_rates]
        self._bind()

    def __call__(self, x: torch.Tensor, training: bool) -> torch.Tensor:
        h = x.flatten(2) if self.flatten else x
        for i, layer in enumerate(self.layers):
            h = torch.baddbmm(self.biases[i].unsqueeze(1), h, self.weights[i].transpose(1, 2))
            if layer.activation is not None:
                h = layer.activation(h)
            if training and any(self.dropout_rates[i]):
                h = h * self._dropout_mask(i, h)
        return h

    has_backward = True

    def forward_taped(self, x: torch.Tensor) -> tuple[torch.Tensor, list]:
        h = x.flatten(2) if self.flatten else x
        tape = []
        with torch.no_grad():
            for i, layer in enumerate(self.layers):
                bias, _, weight_t = self.plain[i]
                z = torch.baddbmm(bias, h, weight_t)
                a = _ACTIVATIONS[type(layer.activation)].forward(layer.activation, z) if layer.activation else z
                mask = self._dropout_mask(i, a) if any(self.dropout_rates[i]) else None
                tape.append((h, z, a, mask))
                h = a * mask if mask is not None else a
        return h, tape

    def backward(self, grad: torch.Tensor, tape: list) -> None:
        # Autograd's own formulas (derivatives.yaml) for mul, the activation and baddbmm, in its order; the
        # weight gradient is computed transposed and copied, as autograd's TransposeBackward does.
        with torch.no_grad():
            for i in reversed(range(len(self.layers))):
                h, z, a, mask = tape[i]
                activation = self.layers[i].activation
                if mask is not None:
                    grad = grad * mask
                if activation is not None:
                    grad = _ACTIVATIONS[type(activation)].backward(activation, grad, z, a)
                self.bias_grads[i].copy_(grad.sum(1))
                self.weight_grads[i].copy_(torch.bmm(h.transpose(1, 2), grad).transpose(1, 2))
                if i:
                    grad = torch.bmm(grad, self.plain[i][1])

    def _dropout_mask(self, i: int, h: torch.Tensor) -> torch.Tensor:
        """Inverted dropout, each member's mask from its own generator (a member without dropout here
        draws nothing, exactly as when it trains alone)."""
        # Drawn into the rows of one tensor and turned into the mask in place: the same numbers as
        # torch.rand per member and (uniform >= p) / (1 - p), without a stack copy and two temporaries.
        uniform = torch.empty(h.shape, device=h.device, dtype=h.dtype)
        for row, g, p in zip(uniform, self.generators, self.dropout_rates[i]):
            row.uniform_(generator=g) if p > 0 else row.fill_(1.0)
        rate = self.dropout[i]
        if uniform.dtype != rate.dtype:  # autocast: out of place, so the mask is promoted to float32 as always
            return (uniform >= rate).to(h.dtype) / (1 - rate)
        return uniform.ge_(rate).div_(1 - rate)

    def outputs(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1) if self.flatten else x
        return self(x.unsqueeze(0).expand(self.k, *x.shape), training=False)

    def member_states(self) -> list[dict[str, torch.Tensor]]:
        states = []
        for k, (model, keys) in enumerate(zip(self.models, self.keys)):
            state = {}
            for key, weight, bias in zip(keys, self.weights, self.biases):
                state[f"{key}.weight"] = weight[k].detach().cpu().clone()
                state[f"{key}.bias"] = bias[k].detach().cpu().clone()
            model.load_state_dict(state)
            states.append(state)
        return states


def can_stack_functionally(models: list[nn.Module]) -> tuple[bool, str]:
    """FuncStack's condition: no batch norm, every dropout a `models.dropout.Dropout`, and the same modules
    and weight shapes in every member (dropout rates may differ)."""
    for module in models[0].modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            return False, f"a {type(module).__name__} layer has no stacked form"
        if isinstance(module, nn.Dropout) and not isinstance(module, Dropout):
            return False, f"a {type(module).__name__} layer draws from torch's generator and has no stacked form"
    shape = lambda m: ([(name, type(x).__name__) for name, x in m.named_modules()],
                       [(name, tuple(p.shape), p.requires_grad) for name, p in m.named_parameters()])
    if any(shape(m) != shape(models[0]) for m in models[1:]):
        return False, "the members' layers differ in shape"
    return True, ""


class FuncStack(Stack):
    """K members of one architecture through torch.func: member k's weights are row k of every parameter."""

    def __init__(self, models: list[nn.Module], seeds: list[int], device: torch.device):
        self.models = [m.to(device) for m in models]
        self.k, self.base = len(models), self.models[0]
        named = [dict(m.named_parameters()) for m in self.models]
        trainable = [name for name, p in named[0].items() if p.requires_grad]
        total = sum(named[0][name].numel() for name in trainable)
        dtype = named[0][trainable[0]].dtype if trainable else torch.float32
        self.params = torch.zeros(self.k, total, device=device, dtype=dtype)
        self.grads = torch.zeros_like(self.params)
        self.penalized = torch.zeros(total, dtype=torch.bool, device=device)
        self.layout = [(name, named[0][name].shape) for name in trainable]  # the order of a row of `params`
        offset = 0
        for name, shape in self.layout:
            end = offset + named[0][name].numel()
            with torch.no_grad():
                for k in range(self.k):
                    self.params[k, offset:end].copy_(named[k][name].reshape(-1))
            self.penalized[offset:end] = len(shape) > 1
            offset = end
        # Frozen weights are each member's too (stacked, no gradient); buffers are the base module's.
        self.frozen = {name: torch.stack([n[name].detach() for n in named]) for name, p in named[0].items()
                       if not p.requires_grad}
        self._bind()
        self.rates = [{name: m.p for name, m in model.named_modules() if isinstance(m, Dropout)}
                      for model in self.models]
        self.names = {id(m): name for name, m in self.base.named_modules()}
        self.generators = [torch.Generator(device=device).manual_seed(seed) for seed in seeds]
        self.sites: dict[tuple, list[tuple[str, torch.Size, torch.dtype]]] = {}  # input shape -> dropout calls

    def _bind(self) -> None:
        """Each trainable weight as a view [K, *shape] of `params` (its gradient a view of `grads`)."""
        self.weights: dict[str, torch.Tensor] = {}
        offset = 0
        for name, shape in self.layout:
            end = offset + shape.numel()
            self.weights[name] = _leaf(self.params[:, offset:end].view(self.k, *shape),
                                       self.grads[:, offset:end].view(self.k, *shape))
            offset = end
        self.weights.update(self.frozen)

    def keep(self, rows: list[int]) -> None:
        self._kept_params(rows)
        index = torch.tensor(rows, device=self.params.device)
        self.frozen = {name: w.index_select(0, index) for name, w in self.frozen.items()}
        self.models, self.rates = [self.models[r] for r in rows], [self.rates[r] for r in rows]
        self._bind()

    def __call__(self, x: torch.Tensor, training: bool) -> torch.Tensor:
        self.base.train(training)
        if self.k == 1:
            weights = {name: w[0] for name, w in self.weights.items()}
            supply = self._drawing_supply() if training else None
            with supplied(supply):
                return torch.func.functional_call(self.base, weights, (x[0],)).unsqueeze(0)
        masks = self._masks(x) if training else []

        def member(weights: dict[str, torch.Tensor], x: torch.Tensor, masks: list[torch.Tensor]) -> torch.Tensor:
            taken = iter(masks)
            with supplied(lambda module, h: h * next(taken), batched=True):
                return torch.func.functional_call(self.base, weights, (x,))

        return torch.vmap(member, in_dims=(0, 0, 0))(self.weights, x, masks)

    def outputs(self, x: torch.Tensor) -> torch.Tensor:
        self.base.eval()
        if self.k == 1:
            return torch.func.functional_call(self.base, {n: w[0] for n, w in self.weights.items()}, (x,)).unsqueeze(0)

        def member(weights: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
            with supplied(None, batched=True):
                return torch.func.functional_call(self.base, weights, (x,))

        return torch.vmap(member, in_dims=(0, None))(self.weights, x)

    def _mask(self, name: str, shape: torch.Size, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        """Every member's inverted-dropout mask [K, *shape] for one call of the Dropout named `name`, row k from
        member k's generator (a member without dropout there draws nothing, as alone)."""
        rates = [r[name] for r in self.rates]
        uniform = torch.empty((self.k, *shape), device=device, dtype=dtype)
        for row, g, p in zip(uniform, self.generators, rates):
            row.uniform_(generator=g) if p > 0 else row.fill_(1.0)
        rate = torch.tensor(rates, device=device, dtype=dtype).reshape(-1, *[1] * len(shape))
        return uniform.ge_(rate).div_(1 - rate)

    def _drawing_supply(self) -> Callable[[nn.Module, torch.Tensor], torch.Tensor]:
        """K = 1: each mask drawn as the model asks for it."""
        return lambda module, h: h * self._mask(self.names[id(module)], h.shape, h.dtype, h.device)[0]

    def _masks(self, x: torch.Tensor) -> list[torch.Tensor]:
        """K > 1: the masks of one training forward, drawn before it in the order the model will ask for them.
        Which Dropout calls a forward makes, and their shapes, are learnt once per input shape by a forward of
        member 0 that records them (a Dropout may be called more than once, as between an RNN's layers)."""
        key = (tuple(x.shape[1:]), x.dtype)
        if key not in self.sites:
            calls: list[tuple[str, torch.Size, torch.dtype]] = []

            def record(module: nn.Module, h: torch.Tensor) -> torch.Tensor:
                calls.append((self.names[id(module)], h.shape, h.dtype))
                return h

            with torch.no_grad(), supplied(record):
                torch.func.functional_call(self.base, {n: w[0].detach() for n, w in self.weights.items()}, (x[0],))
            self.sites[key] = calls
        return [self._mask(name, shape, dtype, x.device) for name, shape, dtype in self.sites[key]]

    def member_states(self) -> list[dict[str, torch.Tensor]]:
        states = []
        for k, model in enumerate(self.models):
            state = {name: (self.weights[name][k] if name in self.weights else value).detach().cpu().clone()
                     for name, value in model.state_dict().items()}
            model.load_state_dict(state)
            states.append(state)
        return states


class Single(Stack):
    """One module of any kind as a stack of one: its parameters become views into `params` [1, P]."""

    def __init__(self, model: nn.Module, device: torch.device):
        self.model, self.k = model.to(device), 1
        trainable = [p for p in model.parameters() if p.requires_grad]
        total = sum(p.numel() for p in trainable)
        dtype = trainable[0].dtype if trainable else torch.float32
        self.params = torch.zeros(1, total, device=device, dtype=dtype)
        self.grads = torch.zeros_like(self.params)
        self.penalized = torch.zeros(total, dtype=torch.bool, device=device)
        offset = 0
        for p in trainable:
            end = offset + p.numel()
            with torch.no_grad():
                self.params[0, offset:end].copy_(p.reshape(-1))
            p.data = self.params[0, offset:end].view_as(p)
            p.grad = self.grads[0, offset:end].view_as(p)
            self.penalized[offset:end] = p.dim() > 1
            offset = end

    def keep(self, rows: list[int]) -> None:
        assert rows == [0], "a Single is one member"

    def __call__(self, x: torch.Tensor, training: bool) -> torch.Tensor:
        self.model.train(training)
        return self.model(x[0]).unsqueeze(0)

    def outputs(self, x: torch.Tensor) -> torch.Tensor:
        return self(x.unsqueeze(0), training=False)

    def buffers(self) -> dict[str, torch.Tensor]:
        return {name: b.detach().clone() for name, b in self.model.named_buffers()}

    def load_buffers(self, buffers: dict[str, torch.Tensor]) -> None:
        with torch.no_grad():
            for name, b in self.model.named_buffers():
                b.copy_(buffers[name])

    def member_states(self) -> list[dict[str, torch.Tensor]]:
        return [{k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()}]


@dataclass(frozen=True)
class _Activation:
    """An elementwise activation's forward (what the module's forward calls) and autograd's backward kernel
    for it: (module, grad, input, output) -> the input's gradient."""

    forward: Callable[[nn.Module, torch.Tensor], torch.Tensor]
    backward: Callable[[nn.Module, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


_ACTIVATIONS: dict[type, _Activation] = {
    nn.ReLU: _Activation(lambda m, z: torch.relu(z), lambda m, g, z, a: torch.ops.aten.threshold_backward(g, a, 0)),
    nn.Tanh: _Activation(lambda m, z: torch.tanh(z), lambda m, g, z, a: torch.ops.aten.tanh_backward(g, a)),
    nn.Sigmoid: _Activation(lambda m, z: torch.sigmoid(z), lambda m, g, z, a: torch.ops.aten.sigmoid_backward(g, a)),
    nn.GELU: _Activation(lambda m, z: torch.nn.functional.gelu(z, approximate=m.approximate),
                         lambda m, g, z, a: torch.ops.aten.gelu_backward(g, z, approximate=m.approximate)),
    nn.LeakyReLU: _Activation(lambda m, z: torch.nn.functional.leaky_relu(z, m.negative_slope),
                              lambda m, g, z, a: torch.ops.aten.leaky_relu_backward(g, z, m.negative_slope, False)),
}
assert set(_ACTIVATIONS) == set(ELEMENTWISE), "every activation that stacks has a backward"


def _leaf(view: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """A view of the flat parameters that autograd treats as a leaf, its gradient a view of the flat
    gradients: backward adds into `grads` in place."""
    view.requires_grad_()
    view.grad = grad
    return view


def build_stack(models: list[nn.Module], seeds: list[int], device: torch.device) -> Stack:
    """The stacked form of these members when they have one, else (one member) the module as it is."""
    if all(mlp_layers(m)[0] is not None for m in models) and can_stack_modules(models)[0]:
        return StackedMLP(models, seeds, device)
    if can_stack_functionally(models)[0]:
        return FuncStack(models, seeds, device)
    assert len(models) == 1, "members without a stacked form train one at a time"
    return Single(models[0], device)
