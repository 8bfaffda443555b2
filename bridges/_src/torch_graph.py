"""A torch module with its own ``forward`` (a residual block), converted by running it once.

:func:`from_torch` reads an ``nn.Sequential`` module by module. A module whose ``forward`` is
custom -- a torchvision-style basic block ``relu(bn2(conv2(relu(bn1(conv1(x))))) + x)`` --
is only known by running it, so :func:`record` runs it once on an example input and records
its data flow: every call of a layer module (one :func:`bridges._src.torch_modules` converts:
Linear, Conv2d, BatchNorm, LayerNorm, pooling, Flatten, Dropout, an activation) and every
torch function called between them (``x + y``, ``torch.relu``, ``F.gelu``, ``torch.flatten``,
``x.view(len(x), -1)``), each tensor followed by identity. :class:`TorchGraph` replays that
record as a Flax linen module (parameters named by the torch module paths, ``.`` -> ``_``),
which :func:`ei_jax.topology_of` reads by tracing. Works only with linen.
"""

import flax.linen as nn

from bridges._src import flax_build, ir, torch_activations
from bridges._src.errors import UnsupportedModuleError

#: torch functions that add two tensors, and those that return their input unchanged.
_ADD = {"add", "add_", "__add__", "__radd__", "__iadd__"}
_SAME = {"contiguous", "clone", "detach"}


def _fname(func) -> str:
    return getattr(func, "__name__", type(func).__name__)


def _activation(name: str, kwargs: dict):
    """The registry name of a torch activation function called with ``kwargs``
    (``F.gelu(x, approximate="tanh")``: ``gelu_tanh``), or None if ``name`` is none."""
    base = name[:-1] if name.endswith("_") and not name.endswith("__") else name
    cands = torch_activations.candidates(base, function=True)
    if not cands:
        return None
    entry = torch_activations.select(cands, kwargs)
    if entry is None:
        raise UnsupportedModuleError(
            f"the forward pass calls {name} with {torch_activations.refusal(cands, kwargs)}.")
    return entry.name


def flax_name(path: str) -> str:
    """A torch module path as a Flax module name (``block.conv1`` -> ``block_conv1``)."""
    return path.replace(".", "_") or "root"


class TorchGraph(nn.Module):
    """Replays a recorded torch forward pass: ``nodes`` are ``(op, spec, ins, out)`` over value
    numbers (0 is the input); ``output`` the value returned."""

    nodes: tuple
    output: int

    @nn.compact
    def __call__(self, x):
        acts = flax_build.activation_functions(nn)
        env = {0: x}
        for op, spec, ins, out in self.nodes:
            a = env[ins[0]]
            if op == "add":
                v = a + env[ins[1]]
            elif isinstance(spec, flax_build.NORMS):
                v = flax_build.linen_norm(spec, name=flax_name(spec.name))[0](a)
            elif isinstance(spec, ir.WEIGHTED):
                v = flax_build.linen_weighted(spec, name=flax_name(spec.name))[0](a)
            elif isinstance(spec, ir.Activation):
                v = acts[spec.name](a)
            else:
                v = flax_build.structure(spec)(a)
            env[out] = v
        return env[self.output]


def _tensors(args, kwargs, torch):
    out = []
    for a in list(args) + list(kwargs.values()):
        if isinstance(a, torch.Tensor):
            out.append(a)
        elif isinstance(a, (tuple, list)):
            out += [b for b in a if isinstance(b, torch.Tensor)]
    return out


def _function_node(func, args, kwargs, res, torch):
    """``(op, spec)`` of a function call between layers, or ``("same", None)``."""
    name = _fname(func)
    tensors = _tensors(args, kwargs, torch)
    if name in _ADD and len(tensors) == 2 and kwargs.get("alpha", 1) == 1:
        return "add", None
    if name in _SAME:
        return "same", None
    if (act := _activation(name, kwargs)) is not None and len(tensors) == 1:
        return "layer", (None if act == "identity" else ir.Activation(act))
    inp = tensors[0] if tensors else None
    flat = (name == "flatten" and tuple(args[1:3]) in ((), (1,), (1, -1))
            and kwargs.get("start_dim", 1) == 1 and kwargs.get("end_dim", -1) == -1)
    viewed = name in ("view", "reshape") and inp is not None and res.dim() == 2 and \
        res.shape[0] == inp.shape[0]
    if flat or viewed:
        return "layer", ir.Flatten()
    raise UnsupportedModuleError(
        f"the forward pass calls {name} on tensors of shapes "
        f"{[tuple(t.shape) for t in tensors]}, which bridges cannot convert. Between layer "
        "modules bridges converts x + y, the registry's activation functions (torch.relu, "
        "F.gelu, ...), torch.flatten(x, 1) and x.view(len(x), -1)."
    )


def record(module, x) -> TorchGraph:
    """Runs ``module(x)`` once (eval mode, no gradients) and returns its :class:`TorchGraph`."""
    import torch
    from torch.overrides import TorchFunctionMode

    from bridges._src.torch_modules import _convert, layer_module

    paths = {m: p for p, m in module.named_modules()}
    numbers, alive, nodes, depth = {id(x): 0}, [x], [], [0]

    def number(t):
        if id(t) not in numbers:
            raise UnsupportedModuleError(
                f"the forward pass reads a tensor of shape {tuple(t.shape)} that is neither its "
                "input nor computed from it by the layers (a constant or a parameter used "
                "outside a layer module), which bridges cannot convert.")
        return numbers[id(t)]

    def add(op, spec, ins, res):
        if op == "same" or (op == "layer" and spec is None):
            numbers[id(res)] = ins[0]
        else:
            numbers[id(res)] = len(alive)
            nodes.append((op, spec, tuple(ins), len(alive)))
        alive.append(res)

    class Recorder(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            res = func(*args, **kwargs)
            if depth[0] == 0 and isinstance(res, torch.Tensor):
                ins = [number(t) for t in _tensors(args, kwargs, torch)]
                op, spec = _function_node(func, args, kwargs, res, torch)
                add(op, spec, ins, res)
            return res

    def pre(m, args):
        depth[0] += 1

    def post(m, args, res):
        depth[0] -= 1
        if depth[0] == 0:
            specs = []
            depth[0] += 1   # reading the weights is not part of the forward pass
            try:
                _convert(m, paths[m], specs)
            finally:
                depth[0] -= 1
            add("layer", specs[0] if specs else None, [number(_tensors(args, {}, torch)[0])], res)

    handles = []
    try:
        for m in module.modules():
            if layer_module(m):
                handles += [m.register_forward_pre_hook(pre), m.register_forward_hook(post)]
        with torch.no_grad(), Recorder():
            y = module(x)
    finally:
        for h in handles:
            h.remove()
    if not isinstance(y, torch.Tensor):
        raise UnsupportedModuleError(f"{type(module).__name__}'s forward returns "
                                     f"{type(y).__name__}; bridges converts one output tensor.")
    graph = TorchGraph(tuple(nodes), number(y))
    ir.check_network([n[1] for n in nodes], f"torch module {type(module).__name__}",
                     UnsupportedModuleError)
    return graph


def variables(graph: TorchGraph) -> dict:
    """The linen variables of a :class:`TorchGraph` (its specs' weights and statistics)."""
    params, stats = {}, {}
    for _, spec, _, _ in graph.nodes:
        if isinstance(spec, flax_build.NORMS):
            v = flax_build.linen_norm(spec)[1]
            params[flax_name(spec.name)] = v["params"]
            if "batch_stats" in v:
                stats[flax_name(spec.name)] = v["batch_stats"]
        elif isinstance(spec, ir.WEIGHTED):
            params[flax_name(spec.name)] = flax_build.linen_weighted(spec)[1]
    return {"params": params, **({"batch_stats": stats} if stats else {})}


def graph_from_torch(module, x):
    """``(TorchGraph, variables)`` of a torch module with a custom ``forward``, traced on ``x``
    (a torch tensor, or an array: NCHW images as torch takes them)."""
    import torch

    if not isinstance(x, torch.Tensor):
        import numpy as np

        x = torch.as_tensor(np.asarray(x, np.float32))
    graph = record(module, x)
    return graph, variables(graph)

