"""``topology_of``: the layers of a Flax (linen or NNX) network as a ``networkx.DiGraph``.

Each node is one weight layer (``Dense``/``Linear`` or ``Conv``), in the order the network
applies them, with deep-ei's node layout plus what ei_jax needs to measure it alone::

    top.nodes[name] == {
        "input":  {"activation": "sigmoid" | "tanh" | "relu" | None, "shape": (1, n_in)},
        "output": {"activation": ..., "shape": (1, n_out)},
        "kind": "dense" | "conv",
        "module": "Dense",              # class name
        "path": ("layers_0",),          # module path in the model
        "params": {"kernel": ..., "bias": ...},
        "apply": apply(params, x),      # pre-activation output of this layer alone
    }

The graph attribute ``top.graph["order"]`` lists the node names in order, and edges link
consecutive layers. A convolution is measured over one receptive field (weight sharing
makes every position the same function): its input shape is one patch
``(1, kh, kw, in_channels)`` and its output ``(1, out_channels)``.
"""

import contextlib
import functools
import math
from typing import Any

import jax
import jax.numpy as jnp
import networkx as nx
import numpy as np

from ei_jax._src import activations as _act
from ei_jax._src.errors import ShapeMismatchError, UnsupportedModuleError

DENSE = "dense"
CONV = "conv"


# --- pure layer functions ------------------------------------------------------------------

def dense_apply(params, x):
    """``x @ kernel + bias`` for x ``(C, n_in)``, kernel ``(n_in, n_out)``."""
    y = x @ params["kernel"]
    if "bias" in params:
        y = y + params["bias"]
    return y


def conv_patch_apply(params, x):
    """One receptive field of a convolution: patches ``(C, kh, kw, c_in)`` -> ``(C, c_out)``."""
    y = jnp.einsum("bhwc,hwco->bo", x, params["kernel"])
    if "bias" in params:
        y = y + params["bias"]
    return y


_APPLY = {DENSE: dense_apply, CONV: conv_patch_apply}


@functools.lru_cache(maxsize=None)
def stack_apply(kinds: tuple[str, ...], acts: tuple[Any, ...]):
    """Returns ``apply(params_tuple, x)`` composing layers ``kinds`` with activations ``acts``.

    Cached on its (hashable) arguments so that the same structure always gives the same
    function object, and jitted measures are compiled once per structure.
    """
    fns = tuple(_APPLY[k] for k in kinds)
    act_fns = tuple(a if callable(a) else _act.function_of(a) for a in acts)

    def apply(params, x):
        for fn, act, p in zip(fns, act_fns, params):
            if x.ndim > 2 and fn is dense_apply:
                x = x.reshape(x.shape[0], -1)
            x = act(fn(p, x))
        return x

    return apply


# --- recording layer calls -----------------------------------------------------------------

class _Record:
    __slots__ = ("path", "module", "kind", "params", "x", "y")

    def __init__(self, path, module, kind, params, x, y):
        self.path, self.module, self.kind, self.params, self.x, self.y = path, module, kind, params, x, y


def _kind_of_linen(module) -> str | None:
    import flax.linen as nn

    if type(module) is nn.Dense:
        return DENSE
    if type(module) is nn.Conv:
        return CONV
    return None


def _linen_params(variables, path):
    node = variables["params"]
    for p in path:
        node = node[p]
    return {k: jnp.asarray(v) for k, v in node.items()}


def _record_linen(model, variables, x):
    import flax.linen as nn

    records, unsupported = [], []

    def interceptor(next_fun, args, kwargs, context):
        out = next_fun(*args, **kwargs)
        mod = context.module
        if context.method_name != "__call__":
            return out
        kind = _kind_of_linen(mod)
        if kind is not None:
            records.append(_Record(tuple(mod.path), type(mod).__name__, kind,
                                   _linen_params(variables, mod.path), args[0], out))
        elif type(mod).__module__.startswith("flax.linen.") and not isinstance(mod, nn.Sequential):
            unsupported.append((tuple(mod.path), type(mod).__name__))
        return out

    with nn.intercept_methods(interceptor):
        y = model.apply(variables, x)
    return records, unsupported, y


def _kind_of_nnx(module) -> str | None:
    from flax import nnx

    if type(module) is nnx.Linear:
        return DENSE
    if type(module) is nnx.Conv:
        return CONV
    return None


def _nnx_value(v):
    return jnp.asarray(v[...])


@contextlib.contextmanager
def _patched_nnx_calls(records):
    from flax import nnx

    originals = {cls: cls.__call__ for cls in (nnx.Linear, nnx.Conv)}

    def make(orig):
        def wrapper(self, x, *args, **kwargs):
            y = orig(self, x, *args, **kwargs)
            records.append((self, x, y))
            return y

        return wrapper

    try:
        for cls, orig in originals.items():
            cls.__call__ = make(orig)
        yield
    finally:
        for cls, orig in originals.items():
            cls.__call__ = orig


def _record_nnx(model, x):
    from flax import nnx

    paths, unsupported_types = {}, []
    for path, node in nnx.iter_graph(model):
        if isinstance(node, nnx.Module):
            paths.setdefault(id(node), tuple(path))
            if type(node).__module__.startswith("flax.nnx.nn.") and _kind_of_nnx(node) is None:
                unsupported_types.append((tuple(path), type(node).__name__))
    calls = []
    with _patched_nnx_calls(calls):
        y = model(x)
    records = []
    for mod, xin, yout in calls:
        params = {"kernel": _nnx_value(mod.kernel)}
        if getattr(mod, "bias", None) is not None:
            params["bias"] = _nnx_value(mod.bias)
        records.append(_Record(paths.get(id(mod), ("?",)), type(mod).__name__, _kind_of_nnx(mod),
                               params, xin, yout))
    return records, unsupported_types, y


# --- activations between layers ------------------------------------------------------------

def _sequential_activations(layers, is_layer):
    """Activations after each weight layer of a Sequential, read from its layer list."""
    acts, seen = [], False
    for item in layers:
        if is_layer(item):
            acts.append(None)
            seen = True
            continue
        name = _act.name_of_function(item)
        if name is ...:
            label = getattr(item, "__name__", type(item).__name__)
            raise UnsupportedModuleError(
                f"Sequential contains {label!r}, which ei_jax cannot measure through. Supported "
                "between layers: sigmoid, tanh, relu (flax.linen / flax.nnx / jax.nn functions)."
            )
        if not seen:
            raise UnsupportedModuleError(
                f"Sequential starts with activation {label_of(item)!r} before any Dense/Linear layer; "
                "remove it and pass the layer's in_range instead."
            )
        if acts[-1] is not None:
            raise UnsupportedModuleError("Two activations in a row in a Sequential are not supported.")
        acts[-1] = name
    return acts


def label_of(item):
    return getattr(item, "__name__", type(item).__name__)


def _matches(a, b):
    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
    if a.size != b.size:
        return False
    return bool(np.allclose(a.reshape(b.shape), b, rtol=1e-5, atol=1e-6))


def _infer_activation(z, target, where: str):
    """Which known activation maps pre-activation ``z`` to ``target``."""
    found = [n for n in ("identity", "sigmoid", "tanh", "relu") if _matches(_act.function_of(
        None if n == "identity" else n)(jnp.asarray(z)), target)]
    if not found:
        raise UnsupportedModuleError(
            f"Between {where} the network does something ei_jax cannot measure through (a skip "
            "connection, normalisation, dropout, a reshape of a non-flat tensor, or an unknown "
            "activation). Supported: chains of Dense/Linear (or Conv) layers with sigmoid, tanh, "
            "relu or no activation between them."
        )
    return found


# --- building the graph --------------------------------------------------------------------

def _name(path) -> str:
    parts = []
    for p in path:
        if isinstance(p, int) and parts:
            parts[-1] = f"{parts[-1]}_{p}"
        else:
            parts.append(str(p))
    return "/".join(parts)


def _build(records, acts, x_shape):
    if not records:
        raise UnsupportedModuleError(
            "No Dense/Linear or Conv layer was called by the model; nothing to measure."
        )
    seen = set()
    top = nx.DiGraph()
    order = []
    for i, r in enumerate(records):
        name = _name(r.path) or r.module
        if name in seen:
            raise UnsupportedModuleError(
                f"Layer {name!r} ({r.module}) is applied more than once; ei_jax measures each "
                "layer as one map and cannot measure a shared (reused) layer."
            )
        seen.add(name)
        kernel = r.params["kernel"]
        if r.kind == DENSE:
            in_shape = (1, int(kernel.shape[0]))
            out_shape = (1, int(kernel.shape[1]))
        else:
            in_shape = (1, *(int(d) for d in kernel.shape[:3]))
            out_shape = (1, int(kernel.shape[3]))
        top.add_node(name, **{
            "input": {"activation": acts[i - 1] if i > 0 else None, "shape": in_shape},
            "output": {"activation": acts[i], "shape": out_shape},
            "kind": r.kind,
            "module": r.module,
            "path": r.path,
            "params": r.params,
            "apply": _APPLY[r.kind],
        })
        if order:
            top.add_edge(order[-1], name)
        order.append(name)
    top.graph["order"] = order
    top.graph["input_shape"] = tuple(x_shape)
    return top


def _activations_by_probing(records, y_final):
    acts = []
    for i, r in enumerate(records):
        nxt = records[i + 1].x if i + 1 < len(records) else y_final
        where = (f"{_name(r.path)!r} and {_name(records[i + 1].path)!r}" if i + 1 < len(records)
                 else f"{_name(r.path)!r} and the model's output")
        cands = _infer_activation(r.y, nxt, where)
        if len(cands) > 1:
            raise UnsupportedModuleError(
                f"Cannot tell the activation after {_name(r.path)!r} from a probe (candidates "
                f"{cands}). Write the model as a Sequential, or initialise it with random weights "
                "before calling topology_of."
            )
        acts.append(None if cands[0] == "identity" else cands[0])
    return acts


def _probe_input(x):
    x = jnp.asarray(x)
    if x.ndim < 2:
        raise ShapeMismatchError(
            f"x must be a batch of inputs with a leading batch axis, e.g. jnp.zeros((1, n_in)). Got shape {x.shape}."
        )
    return jax.random.normal(jax.random.key(20201027), (8, *x.shape[1:]), jnp.float32) * 2.0


def _check_chain_input(records, xp):
    first = records[0]
    if not _matches(first.x, xp):
        raise UnsupportedModuleError(
            f"The first layer {_name(first.path)!r} does not receive the model's input unchanged; "
            "ei_jax needs the model to start with a Dense/Linear or Conv layer."
        )


def topology_of(model, *args):
    """The layers of a Flax network, in order, as a ``networkx.DiGraph``.

    Call ``topology_of(model, variables, x)`` for a Flax **linen** module and
    ``topology_of(model, x)`` for a Flax **NNX** module. ``x`` is a batch of valid inputs
    (e.g. ``jnp.zeros((1, n_in))``); only its shape is used (the network is probed with
    random inputs of that shape).

    Supported: ``Sequential`` (linen or NNX) of ``Dense``/``Linear`` or ``Conv`` layers and
    the activations sigmoid, tanh and relu; a single ``Dense``/``Linear``; custom modules
    that call such layers one after another with those activations between them.
    Anything else (skip connections, a layer used twice, attention, normalisation) raises
    :class:`UnsupportedModuleError` naming the module.

    Returns:
      ``networkx.DiGraph`` whose nodes are layer names (the module paths, e.g.
      ``"layers_0"``), with deep-ei's node layout (see the module docstring).

    Example:
      >>> import jax, jax.numpy as jnp, flax.linen as nn
      >>> from ei_jax import topology_of
      >>> net = nn.Sequential([nn.Dense(10, use_bias=False), nn.sigmoid,
      ...                      nn.Dense(5, use_bias=False), nn.tanh])
      >>> x0 = jnp.zeros((1, 20))
      >>> top = topology_of(net, net.init(jax.random.key(0), x0), x0)
      >>> list(top)
      ['layers_0', 'layers_2']
      >>> top.nodes["layers_2"]["input"], top.nodes["layers_2"]["output"]["activation"]
      ({'activation': 'sigmoid', 'shape': (1, 10)}, 'tanh')
    """
    import flax.linen as nn
    from flax import nnx

    if isinstance(model, nn.Module):
        if len(args) != 2:
            raise TypeError("For a linen module call topology_of(model, variables, x).")
        variables, x = args
        if not isinstance(variables, dict) and not hasattr(variables, "keys") or "params" not in variables:
            raise TypeError(
                "variables must be the dict returned by model.init(key, x), with a 'params' entry."
            )
        xp = _probe_input(x)
        records, unsupported, y = _record_linen(model, variables, xp)
        if isinstance(model, nn.Sequential):
            acts = _sequential_activations(model.layers, lambda m: _kind_of_linen(m) is not None)
            if len(acts) != len(records):
                raise UnsupportedModuleError(_nested_message(unsupported))
        else:
            _fail_on_unsupported(unsupported)
            acts = None
    elif isinstance(model, nnx.Module):
        if len(args) != 1:
            raise TypeError("For an NNX module call topology_of(model, x).")
        (x,) = args
        xp = _probe_input(x)
        records, unsupported, y = _record_nnx(model, xp)
        if isinstance(model, nnx.Sequential):
            acts = _sequential_activations(list(model.layers), lambda m: _kind_of_nnx(m) is not None)
            if len(acts) != len(records):
                raise UnsupportedModuleError(_nested_message(unsupported))
        else:
            _fail_on_unsupported(unsupported)
            acts = None
    else:
        raise TypeError(
            f"topology_of expects a flax.linen or flax.nnx module. Got {type(model).__name__}. "
            "For a PyTorch module, convert it first with bridges.from_torch."
        )
    _fail_on_unsupported(unsupported)
    if not records:
        _build(records, [], x.shape)
    _check_chain_input(records, xp)
    if acts is None:
        acts = _activations_by_probing(records, y)
    else:
        # Verify the declared chain really is what the model computes.
        for i, r in enumerate(records):
            nxt = records[i + 1].x if i + 1 < len(records) else y
            z = _act.function_of(acts[i])(jnp.asarray(r.y))
            if not _matches(z, nxt):
                raise UnsupportedModuleError(
                    f"The output of {_name(r.path)!r} does not feed the next layer directly."
                )
    return _build(records, acts, x.shape)


def _fail_on_unsupported(unsupported):
    if unsupported:
        path, name = unsupported[0]
        raise UnsupportedModuleError(
            f"Module {name} at {_name(path) or '<root>'!r} is not supported. ei_jax measures "
            "Dense/Linear and Conv layers with sigmoid, tanh, relu or no activation."
        )


def _nested_message(unsupported):
    if unsupported:
        path, name = unsupported[0]
        return f"Module {name} at {_name(path)!r} is not supported inside the Sequential."
    return "The Sequential contains nested modules ei_jax cannot measure layer by layer."


def in_features(top: nx.DiGraph, name: str) -> int:
    """Number of input neurons of a node."""
    return math.prod(top.nodes[name]["input"]["shape"][1:])
