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
        "apply": apply(params, x),      # public: the pure pre-activation map of this layer alone
        "after": (MaxPool(...), ...),   # structure layers between its activation and the next layer
    }

``"apply"`` is :func:`~ei_jax._src.model.layer_maps.dense_apply` or
:func:`~ei_jax._src.model.layer_maps.conv_patch_apply`, a pure ``apply(params, x)`` mapping a batch
``(C, *input shape[1:])`` to ``(C, n_out)``: ``act(node["apply"](node["params"], x))`` is the
layer alone, ready for the pure core (:mod:`ei_jax.core`). The graph attribute
``top.graph["order"]`` lists the node names in order; edges link consecutive layers.

**Convolutions** are measured over one receptive field (weight sharing makes every interior
position the same function): a conv node's input shape is one patch ``(1, kh, kw, in_channels)``
(input neurons in ``(h, w, c)`` order) and its output ``(1, out_channels)``, the outputs at one
position. Padding, stride and dilation only decide *where* patches are taken, so they do not
enter the measured map; border positions that see zero padding are not measured separately.

**Pooling and flatten** (:class:`ei_jax.Flatten`, :class:`ei_jax.AvgPool`,
:class:`ei_jax.MaxPool`) are not nodes (they have no weights to measure): they are kept, in
order, in the ``"after"`` attribute of the weight layer they follow (structure layers before
the first weight layer are allowed and not kept). deep-ei made them nodes of their own; ei_jax
keeps only measurable layers, so ``for layer in top`` visits exactly the layers that have an EI.
A layer's activation is its output activation even when pooling sits between the two: an
activation after ``Flatten`` or ``MaxPool`` commutes with them (every supported activation is
monotone) and is recorded as the layer's; an activation after ``AvgPool`` does not commute and
is rejected. Pooling and flatten keep values inside the activation's range, so the next layer's
input activation (and default ``in_range``) is the activation before them -- where deep-ei,
whose Flatten/pool nodes break the chain, falls back to ``(-10, 10)``; pass
``in_range=(-10, 10)`` to reproduce deep-ei there.

How: the model runs once on a random probe batch while its layer calls are recorded
(:mod:`ei_jax._src.model.recording`); the activations between layers are read from a Sequential's
layer list or inferred from the recorded values (:mod:`ei_jax._src.model.activation_inference`).
"""

import jax.numpy as jnp
import networkx as nx
import numpy as np

from ei_jax._src.model import activation_inference as _inf
from ei_jax._src.model import recording as _rec
from ei_jax._src.model import sources as _sources
from ei_jax._src.base.errors import EIJaxError, InvalidCallError, NonFiniteParamsError, ShapeMismatchError, UnsupportedModuleError
from ei_jax._src.model.layer_maps import DENSE, apply_of

__all__ = ["topology_of"]


def topology_of(model, *args):
    """The layers of a Flax network, in order, as a ``networkx.DiGraph``.

    Call ``topology_of(model, variables, x)`` for a Flax **linen** module and
    ``topology_of(model, x)`` for a Flax **NNX** module. Only the shape of ``x`` is used: the
    network is probed once with random inputs of that shape.

    Supported: ``Sequential`` (linen or NNX) of ``Dense``/``Linear`` or ``Conv`` layers, the
    activations sigmoid, tanh and relu, and the structure layers :class:`ei_jax.Flatten`,
    :class:`ei_jax.AvgPool` and :class:`ei_jax.MaxPool` between them; a single
    ``Dense``/``Linear``; custom modules that call such layers one after another with those
    activations between them; a ``SimpleCell`` (linen or NNX): its recurrent transition
    ``h_t -> h_{t+1}`` as one dense layer (:func:`ei_jax._src.model.recurrent.cell_topology`). Anything else
    (BatchNorm, LayerNorm, skip connections, GELU, Flax's pooling), an equinox module
    ``topology_of(model, x)`` and a plain function ``topology_of(fn, params, x)`` take the
    *traced* path: the forward pass is traced and cut at its dense products and
    convolutions, one node of kind ``"traced"`` per layer (see the networks guide and
    :mod:`ei_jax._src.model.traced_topology`). An NNX topology reads the module's current
    weights whenever a layer is measured. Pooling and flatten are kept
    as the ``"after"`` attribute of the layer they follow, and convolutions are measured over
    one receptive field (see the module docstring).

    Args:
      model: a ``flax.linen.Module`` or a ``flax.nnx.Module``.
      *args: ``(variables, x)`` for linen, where ``variables`` is ``model.init(key, x)``
        (a dict with a ``"params"`` entry); ``(x,)`` for NNX. ``x``: a batch of valid inputs,
        ``(B, n_in)`` or images ``(B, height, width, channels)``, ``B >= 1``.

    Returns:
      ``networkx.DiGraph`` whose nodes are layer names (the module paths, e.g.
      ``"layers_0"``), in order, with deep-ei's node layout (see the module docstring):
      ``"input"["shape"]`` is ``(1, n_in)`` (dense) or ``(1, kh, kw, c_in)`` (conv), and
      ``"output"["shape"]`` is ``(1, n_out)``.

    Raises:
      NonFiniteParamsError: a layer's parameters hold NaN or infinity.
      UnsupportedModuleError: the network is not such a chain of layers.
      InvalidCallError: the arguments do not fit the kind of model.
      ShapeMismatchError: ``x`` has no batch axis.

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

      Each node's ``"apply"`` is the layer alone, a pure function of ``(params, x)``:

      >>> node = top.nodes["layers_0"]
      >>> node["apply"](node["params"], jnp.ones((3, 20))).shape
      (3, 10)

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

    from ei_jax._src.model import recurrent as _recurrent

    nnx = _rec.loaded_nnx()
    nnx_module = nnx is not None and isinstance(model, nnx.Module)

    if _recurrent.is_cell(model):  # a SimpleCell: its one-step transition (see recurrent.py)
        return _recurrent.cell_topology(model, *args)
    if _sources.is_equinox(model):
        return _sources.equinox_topology(model, *args)
    if not (isinstance(model, nn.Module) or nnx_module) and callable(model) and \
            type(model).__module__.split(".")[0] != "torch":
        return _sources.function_topology(model, *args)
    try:
        top = _sequential(model, args)
    except (UnsupportedModuleError, Exception) as refused:  # the traced path measures what this one refuses
        if isinstance(refused, EIJaxError) and not isinstance(refused, UnsupportedModuleError):
            raise
        try:
            top = (_sources.linen_topology(model, *args) if isinstance(model, nn.Module)
                   else _sources.nnx_topology(model, *args) if nnx_module else None)
        except Exception:  # noqa: BLE001 - the Sequential path's message says more
            raise refused from None
        if top is None:
            raise
        return top
    if nnx_module:
        _sources.attach_live(top, model)
    return top


def _sequential(model, args):
    """Today's path: a Sequential-like chain of Dense/Conv layers recorded call by call."""
    import flax.linen as nn

    nnx = _rec.loaded_nnx()
    if isinstance(model, nn.Module):
        if len(args) != 2:
            raise InvalidCallError(
                f"For a linen module call topology_of(model, variables, x). Got {len(args)} "
                "argument(s) after the model; pass variables = model.init(key, x) and x."
            )
        variables, x = args
        if not hasattr(variables, "keys") or "params" not in variables:
            raise InvalidCallError(
                "variables must be the dict returned by model.init(key, x), with a 'params' entry. "
                f"Got {type(variables).__name__}."
            )
        xp = _probe_input(x)
        events, unsupported, y = _rec.record_linen(model, variables, xp)
        is_layer = lambda m: _rec.kind_of_linen(m) is not None  # noqa: E731
        # A bare layer has no activation after it: no probing needed (a zero layer is ambiguous).
        seq_layers = model.layers if isinstance(model, nn.Sequential) else [model] if is_layer(model) else None
    elif nnx is not None and isinstance(model, nnx.Module):
        if len(args) != 1:
            raise InvalidCallError(
                f"For an NNX module call topology_of(model, x). Got {len(args)} arguments after the "
                "model; NNX modules hold their own parameters, so pass no variables."
            )
        (x,) = args
        xp = _probe_input(x)
        events, unsupported, y = _rec.record_nnx(model, xp)
        is_layer = lambda m: _rec.kind_of_nnx(m) is not None  # noqa: E731
        seq_layers = (list(model.layers) if isinstance(model, nnx.Sequential)
                      else [model] if is_layer(model) else None)
    else:
        raise UnsupportedModuleError(
            f"topology_of expects a flax.linen or flax.nnx module. Got {type(model).__name__}. "
            "For a PyTorch module, convert it first with bridges.from_torch. "
            f"{_inf.PURE_CORE_WAY_OUT}"
        )
    before, chain = _rec.split_events(events)
    _check_finite(chain)
    if seq_layers is not None:
        declared = _inf.declared_activations(seq_layers, is_layer, before, chain, unsupported)
    _fail_on_unsupported(unsupported)
    if not chain:
        raise UnsupportedModuleError(
            "No Dense/Linear or Conv layer was called by the model; nothing to measure. "
            f"{_inf.PURE_CORE_WAY_OUT}"
        )
    _inf.check_chain_input(before, chain, xp)
    acts = []
    for i in range(len(chain)):
        if seq_layers is not None:
            act, pos = declared[i]
            # Verify the declared chain really is what the model computes.
            _inf.verify_segment(chain, i, y, act, pos)
        else:
            act, pos = _inf.probe_segment(chain, i, y)
        _inf.check_activation_position(chain, i, act, pos)
        acts.append(act)
    return _build(chain, acts)


def _probe_input(x):
    x = jnp.asarray(x)
    if x.ndim < 2:
        raise ShapeMismatchError(
            f"x must be a batch of inputs with a leading batch axis, e.g. jnp.zeros((1, n_in)). Got shape {x.shape}."
        )
    # NumPy, not jax.random: no compilation for each new input shape.
    probe = np.random.default_rng(20201027).normal(0.0, 2.0, (8, *x.shape[1:]))
    return jnp.asarray(probe, jnp.float32)


def _check_finite(chain):
    """NaN/inf weights would make every layer look unmatched: say so, naming the layer."""
    from ei_jax._src.base.checks import not_traced  # traced weights: the user's jax.jit
    not_traced("ei_jax.topology_of", [r.params for r, _ in chain])
    for r, _ in chain:
        bad = [k for k, v in r.params.items() if not np.all(np.isfinite(np.asarray(v)))]
        if bad:
            raise NonFiniteParamsError(
                f"Layer {_rec.layer_name(r.path) or r.module!r} ({r.module}) has NaN or infinite values "
                f"in its {' and '.join(repr(k) for k in bad)}; expected finite weights. A diverged "
                "training run gives such weights: measure a checkpoint with finite weights (e.g. an "
                "earlier one)."
            )


def _fail_on_unsupported(unsupported):
    if unsupported:
        path, name = unsupported[0]
        raise UnsupportedModuleError(
            f"Module {name} at {_rec.layer_name(path) or '<root>'!r} is not supported. ei_jax measures "
            "Dense/Linear and Conv layers with sigmoid, tanh, relu or no activation. "
            f"{_inf.PURE_CORE_WAY_OUT}"
        )


def _shapes(kind, kernel):
    """``(input shape, output shape)`` of one node: a dense row or a conv receptive field."""
    if kind == DENSE:
        return (1, int(kernel.shape[0])), (1, int(kernel.shape[1]))
    return (1, *(int(d) for d in kernel.shape[:3])), (1, int(kernel.shape[3]))


def _build(chain, acts):
    seen = set()
    top = nx.DiGraph()
    order = []
    for i, (r, ops) in enumerate(chain):
        name = _rec.layer_name(r.path) or r.module
        if name in seen:
            raise UnsupportedModuleError(
                f"Layer {name!r} ({r.module}) is applied more than once; ei_jax measures each "
                "layer as one map and cannot measure a shared (reused) layer. Give each use its "
                f"own layer, or: {_inf.PURE_CORE_WAY_OUT}"
            )
        seen.add(name)
        in_shape, out_shape = _shapes(r.kind, r.params["kernel"])
        top.add_node(name, **{
            "input": {"activation": acts[i - 1] if i > 0 else None, "shape": in_shape},
            "output": {"activation": acts[i], "shape": out_shape},
            "kind": r.kind,
            "module": r.module,
            "path": r.path,
            "params": r.params,
            "apply": apply_of(r.kind),
            "after": tuple(op.layer for op in ops),
        })
        if order:
            top.add_edge(order[-1], name)
        order.append(name)
    top.graph["order"] = order
    return top
