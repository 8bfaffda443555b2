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
        "after": (MaxPool(...), ...),   # structure layers between its activation and the next layer
        "full_shapes": ((1, ...), (1, ...)),  # whole input / output tensors in the probe
    }

The graph attribute ``top.graph["order"]`` lists the node names in order, edges link
consecutive layers, ``top.graph["before"]`` holds the structure layers applied to the model's
input before the first weight layer, and ``top.graph["input_shape"]`` the shape of ``x``.

**Convolutions** are measured over one receptive field (weight sharing makes every interior
position the same function): a conv node's input shape is one patch ``(1, kh, kw, in_channels)``
(input neurons in ``(h, w, c)`` order) and its output ``(1, out_channels)``, the outputs at one
position. Padding, stride and dilation only decide *where* patches are taken, so they do not
enter the measured map; border positions that see zero padding are not measured separately.
``full_shapes`` records the whole feature maps the probe saw.

**Pooling and flatten** (:class:`ei_jax.Flatten`, :class:`ei_jax.AvgPool`,
:class:`ei_jax.MaxPool`) are not nodes (they have no weights to measure): they are kept, in
order, in the ``"after"`` attribute of the weight layer they follow (and in
``top.graph["before"]`` if they come first). deep-ei made them nodes of their own; ei_jax keeps
only measurable layers, so ``for layer in top`` visits exactly the layers that have an EI.
A layer's activation is its output activation even when pooling sits between the two: an
activation after ``Flatten`` or ``MaxPool`` commutes with them (every supported activation is
monotone) and is recorded as the layer's; an activation after ``AvgPool`` does not commute and
is rejected. Pooling and flatten keep values inside the activation's range, so the next layer's
input activation (and default ``in_range``) is the activation before them -- where deep-ei,
whose Flatten/pool nodes break the chain, falls back to ``(-10, 10)``; pass
``in_range=(-10, 10)`` to reproduce deep-ei there.
"""

import contextlib

import jax.numpy as jnp
import networkx as nx
import numpy as np

from ei_jax._src import activations as _act
from ei_jax._src import layers as _layers
from ei_jax._src.errors import ShapeMismatchError, UnsupportedModuleError
from ei_jax._src.layer_maps import _APPLY, CONV, DENSE, stack_apply  # noqa: F401

# --- recording layer calls -----------------------------------------------------------------

class _Record:
    __slots__ = ("path", "module", "kind", "params", "x", "y")

    def __init__(self, path, module, kind, params, x, y):
        self.path, self.module, self.kind, self.params, self.x, self.y = path, module, kind, params, x, y


class _Op:
    """One call of a structure layer (:class:`ei_jax.Flatten`, ``AvgPool``, ``MaxPool``)."""

    __slots__ = ("layer", "x", "y")

    def __init__(self, layer, x, y):
        self.layer, self.x, self.y = layer, x, y


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


def _as_events(calls, make_record):
    """Call tuples ``(layer, x, y)`` in call order -> ``_Op`` / ``_Record`` events."""
    return [c if isinstance(c, _Record) else
            _Op(*c) if isinstance(c[0], _layers.STRUCTURE_TYPES) else make_record(*c) for c in calls]


def _record_linen(model, variables, x):
    import flax.linen as nn

    calls, unsupported = [], []

    def interceptor(next_fun, args, kwargs, context):
        out = next_fun(*args, **kwargs)
        mod = context.module
        if context.method_name != "__call__":
            return out
        kind = _kind_of_linen(mod)
        if kind is not None:
            calls.append(_Record(tuple(mod.path), type(mod).__name__, kind,
                                 _linen_params(variables, mod.path), args[0], out))
        elif type(mod).__module__.startswith("flax.linen.") and not isinstance(mod, nn.Sequential):
            unsupported.append((tuple(mod.path), type(mod).__name__))
        return out

    with nn.intercept_methods(interceptor), _layers.recording(calls):
        y = model.apply(variables, x)
    return _as_events(calls, None), unsupported, y


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
    with _patched_nnx_calls(calls), _layers.recording(calls):
        y = model(x)

    def make_record(mod, xin, yout):
        params = {"kernel": _nnx_value(mod.kernel)}
        if getattr(mod, "bias", None) is not None:
            params["bias"] = _nnx_value(mod.bias)
        return _Record(paths.get(id(mod), ("?",)), type(mod).__name__, _kind_of_nnx(mod),
                       params, xin, yout)

    return _as_events(calls, make_record), unsupported_types, y


def _split_events(events):
    """``(structure ops before the first layer, [(record, ops after it), ...])``."""
    before, chain = [], []
    for e in events:
        if isinstance(e, _Op):
            (chain[-1][1] if chain else before).append(e)
        else:
            chain.append((e, []))
    return before, chain


# --- activations between layers ------------------------------------------------------------

_SUPPORTED_BETWEEN = ("sigmoid, tanh, relu (flax.linen / flax.nnx / jax.nn functions) and "
                      "ei_jax.Flatten / ei_jax.AvgPool / ei_jax.MaxPool")


def _sequential_structure(layers, is_layer):
    """Reads a Sequential's layer list.

    Returns ``(leading structure layers, segments)`` with one segment per weight layer:
    ``[activation name or None, position, structure layers]``, where ``position`` is how many
    of the structure layers come before the activation.
    """
    lead, segs = [], []
    for item in layers:
        if is_layer(item):
            segs.append([None, 0, []])
            continue
        if isinstance(item, _layers.STRUCTURE_TYPES):
            (segs[-1][2] if segs else lead).append(item)
            continue
        name = _act.name_of_function(item)
        if name is ...:
            raise UnsupportedModuleError(
                f"Sequential contains {label_of(item)!r}, which ei_jax cannot measure through. "
                f"Supported between layers: {_SUPPORTED_BETWEEN}."
            )
        if not segs:
            raise UnsupportedModuleError(
                f"Sequential starts with activation {label_of(item)!r} before any Dense/Linear layer; "
                "remove it and pass the layer's in_range instead."
            )
        if name is None:  # identity
            continue
        seg = segs[-1]
        if seg[0] is not None:
            raise UnsupportedModuleError("Two activations in a row in a Sequential are not supported.")
        seg[0], seg[1] = name, len(seg[2])
    return lead, segs


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
            "relu or no activation between them, and ei_jax.Flatten / AvgPool / MaxPool."
        )
    return found


def _gaps(chain, i, y_final):
    """``(source, target)`` pairs along layer ``i``'s output path, one per gap around its ops."""
    r, ops = chain[i]
    nxt = chain[i + 1][0].x if i + 1 < len(chain) else y_final
    sources = [r.y] + [op.y for op in ops]
    targets = [op.x for op in ops] + [nxt]
    return list(zip(sources, targets))


def _where(chain, i):
    r = chain[i][0]
    return (f"{_name(r.path)!r} and {_name(chain[i + 1][0].path)!r}" if i + 1 < len(chain)
            else f"{_name(r.path)!r} and the model's output")


def _probe_segment(chain, i, y_final):
    """``(activation, position)`` after layer ``i``, inferred from the recorded values."""
    found = []
    for j, (src, tgt) in enumerate(_gaps(chain, i, y_final)):
        cands = _infer_activation(src, tgt, _where(chain, i))
        if j > 0 and "identity" in cands:
            continue
        if len(cands) > 1:
            raise UnsupportedModuleError(
                f"Cannot tell the activation after {_name(chain[i][0].path)!r} from a probe (candidates "
                f"{cands}). Write the model as a Sequential, or initialise it with random weights "
                "before calling topology_of."
            )
        if cands[0] != "identity":
            found.append((cands[0], j))
    if len(found) > 1:
        raise UnsupportedModuleError(
            f"Two activations ({found[0][0]}, {found[1][0]}) follow {_name(chain[i][0].path)!r}; "
            "ei_jax measures a layer as one weight map and one activation."
        )
    return found[0] if found else (None, 0)


def _verify_segment(chain, i, y_final, act, pos):
    """Checks that layer ``i``'s output, activated at ``pos``, feeds the next layer."""
    for j, (src, tgt) in enumerate(_gaps(chain, i, y_final)):
        z = _act.function_of(act if j == pos else None)(jnp.asarray(src))
        if not _matches(z, tgt):
            raise UnsupportedModuleError(
                f"The output of {_name(chain[i][0].path)!r} does not feed the next layer directly."
            )


def _check_activation_position(chain, i, act, pos):
    ops = chain[i][1]
    for op in ops[:pos]:
        if not isinstance(op.layer, _layers.COMMUTES_WITH_ACTIVATION):
            raise UnsupportedModuleError(
                f"The activation {act!r} after {_name(chain[i][0].path)!r} comes after "
                f"{type(op.layer).__name__}; ei_jax measures a layer as activation(W x + b), and an "
                "activation after average pooling does not commute with it. Apply the activation "
                "before the pooling (or use MaxPool)."
            )


# --- building the graph --------------------------------------------------------------------

def _name(path) -> str:
    parts = []
    for p in path:
        if isinstance(p, int) and parts:
            parts[-1] = f"{parts[-1]}_{p}"
        else:
            parts.append(str(p))
    return "/".join(parts)


def _build(chain, acts, before, x_shape):
    if not chain:
        raise UnsupportedModuleError(
            "No Dense/Linear or Conv layer was called by the model; nothing to measure."
        )
    seen = set()
    top = nx.DiGraph()
    order = []
    for i, (r, ops) in enumerate(chain):
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
            "after": tuple(op.layer for op in ops),
            "full_shapes": ((1, *r.x.shape[1:]), (1, *r.y.shape[1:])),
        })
        if order:
            top.add_edge(order[-1], name)
        order.append(name)
    top.graph["order"] = order
    top.graph["before"] = tuple(op.layer for op in before)
    top.graph["input_shape"] = tuple(x_shape)
    return top


def _probe_input(x):
    x = jnp.asarray(x)
    if x.ndim < 2:
        raise ShapeMismatchError(
            f"x must be a batch of inputs with a leading batch axis, e.g. jnp.zeros((1, n_in)). Got shape {x.shape}."
        )
    # NumPy, not jax.random: no compilation for each new input shape.
    probe = np.random.default_rng(20201027).normal(0.0, 2.0, (8, *x.shape[1:]))
    return jnp.asarray(probe, jnp.float32)


def _check_chain_input(before, chain, xp):
    sources = [xp] + [op.y for op in before]
    targets = [op.x for op in before] + [chain[0][0].x]
    if not all(_matches(s, t) for s, t in zip(sources, targets)):
        raise UnsupportedModuleError(
            f"The first layer {_name(chain[0][0].path)!r} does not receive the model's input unchanged; "
            "ei_jax needs the model to start with a Dense/Linear or Conv layer (optionally after "
            "ei_jax.Flatten / AvgPool / MaxPool)."
        )


def _declared(model_layers, is_layer, before, chain, unsupported):
    """Activations of a Sequential, checked against what the probe recorded."""
    lead, segs = _sequential_structure(model_layers, is_layer)
    if len(segs) != len(chain):
        raise UnsupportedModuleError(_nested_message(unsupported))
    recorded = [[op.layer for op in before]] + [[op.layer for op in ops] for _, ops in chain]
    declared = [lead] + [seg[2] for seg in segs]
    if recorded != declared:
        raise UnsupportedModuleError(_nested_message(unsupported))
    return [(seg[0], seg[1]) for seg in segs]


def topology_of(model, *args):
    """The layers of a Flax network, in order, as a ``networkx.DiGraph``.

    Call ``topology_of(model, variables, x)`` for a Flax **linen** module and
    ``topology_of(model, x)`` for a Flax **NNX** module. ``x`` is a batch of valid inputs
    (e.g. ``jnp.zeros((1, n_in))``, or ``(1, height, width, channels)`` images); only its
    shape is used (the network is probed with random inputs of that shape).

    Supported: ``Sequential`` (linen or NNX) of ``Dense``/``Linear`` or ``Conv`` layers, the
    activations sigmoid, tanh and relu, and the structure layers :class:`ei_jax.Flatten`,
    :class:`ei_jax.AvgPool` and :class:`ei_jax.MaxPool` between them; a single
    ``Dense``/``Linear``; custom modules that call such layers one after another with those
    activations between them. Anything else (skip connections, a layer used twice, attention,
    normalisation) raises :class:`UnsupportedModuleError` naming the module. Pooling and
    flatten are kept as the ``"after"`` attribute of the layer they follow, and convolutions
    are measured over one receptive field (see the module docstring).

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

      A small convolutional network (images are NHWC):

      >>> from ei_jax import Flatten, MaxPool
      >>> cnn = nn.Sequential([nn.Conv(4, (3, 3)), nn.relu, MaxPool(2), Flatten(), nn.Dense(3)])
      >>> x0 = jnp.zeros((1, 8, 8, 1))
      >>> top = topology_of(cnn, cnn.init(jax.random.key(0), x0), x0)
      >>> top.nodes["layers_0"]["input"]["shape"], top.nodes["layers_0"]["output"]["shape"]
      ((1, 3, 3, 1), (1, 4))
      >>> top.nodes["layers_0"]["after"], top.nodes["layers_4"]["input"]
      ((MaxPool(window=(2, 2), strides=(2, 2), padding=((0, 0), (0, 0))), Flatten(channels_first=False)), {'activation': 'relu', 'shape': (1, 64)})
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
        events, unsupported, y = _record_linen(model, variables, xp)
        is_layer = lambda m: _kind_of_linen(m) is not None  # noqa: E731
        # A bare layer has no activation after it: no probing needed (a zero layer is ambiguous).
        seq_layers = model.layers if isinstance(model, nn.Sequential) else [model] if is_layer(model) else None
    elif isinstance(model, nnx.Module):
        if len(args) != 1:
            raise TypeError("For an NNX module call topology_of(model, x).")
        (x,) = args
        xp = _probe_input(x)
        events, unsupported, y = _record_nnx(model, xp)
        is_layer = lambda m: _kind_of_nnx(m) is not None  # noqa: E731
        seq_layers = (list(model.layers) if isinstance(model, nnx.Sequential)
                      else [model] if is_layer(model) else None)
    else:
        raise TypeError(
            f"topology_of expects a flax.linen or flax.nnx module. Got {type(model).__name__}. "
            "For a PyTorch module, convert it first with bridges.from_torch."
        )
    before, chain = _split_events(events)
    if seq_layers is not None:
        declared = _declared(seq_layers, is_layer, before, chain, unsupported)
    _fail_on_unsupported(unsupported)
    if not chain:
        _build(chain, [], before, x.shape)
    _check_chain_input(before, chain, xp)
    acts = []
    for i in range(len(chain)):
        if seq_layers is not None:
            act, pos = declared[i]
            # Verify the declared chain really is what the model computes.
            _verify_segment(chain, i, y, act, pos)
        else:
            act, pos = _probe_segment(chain, i, y)
        _check_activation_position(chain, i, act, pos)
        acts.append(act)
    return _build(chain, acts, before, x.shape)


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

