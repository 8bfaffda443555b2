"""Builds Flax networks (linen or NNX) from the layer specs of :mod:`bridges._src.ir`.

Layouts (each checked by output equality in ``tests/test_bridges.py``):

* ``Linear`` weight ``[out, in]`` -> ``Dense``/``Linear`` kernel ``[in, out]`` (transpose).
* ``Conv2d`` weight ``OIHW`` -> ``Conv`` kernel ``HWIO``; torch's symmetric zero padding
  becomes explicit ``((top, bottom), (left, right))`` padding.
* Images are NHWC in Flax (NCHW in torch): a ``Flatten`` becomes
  ``ei_jax.Flatten(channels_first=True)``, which transposes NHWC -> NCHW before flattening, so
  the Dense after it keeps the torch Linear's weight order.
* Pooling becomes ``ei_jax.AvgPool`` / ``ei_jax.MaxPool`` (torch's semantics, NHWC).

The result is always a ``Sequential`` of those layers and activations, which
:func:`ei_jax.topology_of` reads directly.
"""

import jax.numpy as jnp
import numpy as np

import ei_jax
from bridges._src import ir, ir_state
from bridges._src.errors import UnknownApiError

APIS = ("linen", "nnx")


def activation_functions(module) -> dict:
    """``{name: function}`` of the registry's activations with a Flax function, from ``module``
    (``flax.linen`` or ``flax.nnx``)."""
    out = {a.name: getattr(module, a.flax_name) for a in ei_jax.activations()
           if a.flax_name is not None}
    # a torch activation without a Flax counterpart (GELU's erf form): the registry's function
    out.update({a.name: a.fn for a in ei_jax.activations()
                if a.flax_name is None and a.torch_modules and a.name != "identity"})
    return out


def check_api(api) -> str:
    """``api`` itself if it is ``"linen"`` or ``"nnx"``; else :class:`UnknownApiError`."""
    if api not in APIS:
        raise UnknownApiError(f"api must be one of {APIS}. Got {api!r}: pass api='linen' or api='nnx'.")
    return api


def _kernel(layer) -> np.ndarray:
    if isinstance(layer, ir.Linear):
        return layer.weight.T
    return layer.weight.transpose(2, 3, 1, 0)  # OIHW -> HWIO


def _structure(layer):
    if isinstance(layer, ir.Flatten):
        return ei_jax.Flatten(channels_first=True)
    cls = ei_jax.AvgPool if layer.kind == "avg" else ei_jax.MaxPool
    extra = {"count_include_pad": layer.count_include_pad} if layer.kind == "avg" else {}
    return cls(layer.window, layer.stride, layer.padding, **extra)


def _ones(a, n):
    return jnp.ones((n,), jnp.float32) if a is None else jnp.asarray(a)


def _zeros(a, n):
    return jnp.zeros((n,), jnp.float32) if a is None else jnp.asarray(a)


def linen_norm(layer, name=None):
    """``(module, {collection: variables})`` of a BatchNorm / LayerNorm spec in linen."""
    import flax.linen as nn

    n = layer.features
    if isinstance(layer, ir_state.BatchNorm):
        mod = nn.BatchNorm(use_running_average=True, epsilon=layer.eps, name=name)
        return mod, {"params": {"scale": _ones(layer.weight, n), "bias": _zeros(layer.bias, n)},
                     "batch_stats": {"mean": jnp.asarray(layer.running_mean),
                                     "var": jnp.asarray(layer.running_var)}}
    mod = nn.LayerNorm(epsilon=layer.eps, use_scale=layer.weight is not None,
                       use_bias=layer.bias is not None, name=name)
    p = {k: jnp.asarray(v) for k, v in (("scale", layer.weight), ("bias", layer.bias)) if v is not None}
    return mod, {"params": p}


def linen_weighted(layer, name=None):
    """``(module, params)`` of a Linear / Conv2d spec in linen."""
    import flax.linen as nn

    use_bias = layer.bias is not None
    if isinstance(layer, ir.Linear):
        mod = nn.Dense(int(layer.weight.shape[0]), use_bias=use_bias, name=name)
    else:
        mod = nn.Conv(int(layer.weight.shape[0]), tuple(int(k) for k in layer.weight.shape[2:]),
                      strides=layer.stride, padding=layer.padding,
                      kernel_dilation=layer.dilation, use_bias=use_bias, name=name)
    p = {"kernel": jnp.asarray(_kernel(layer))}
    if use_bias:
        p["bias"] = jnp.asarray(layer.bias)
    return mod, p


NORMS = (ir_state.BatchNorm, ir_state.LayerNorm)


#: The linen/NNX module of a structure spec (Flatten, Pool): no parameters.
structure = _structure


def to_linen(layers):
    """``(flax.linen.Sequential, variables)`` for the layer specs."""
    import flax.linen as nn

    acts = activation_functions(nn)
    modules, params, stats = [], {}, {}
    for layer in layers:
        if isinstance(layer, NORMS):
            mod, v = linen_norm(layer)
            params[f"layers_{len(modules)}"] = v["params"]
            if "batch_stats" in v:
                stats[f"layers_{len(modules)}"] = v["batch_stats"]
            modules.append(mod)
        elif isinstance(layer, ir.WEIGHTED):
            mod, params[f"layers_{len(modules)}"] = linen_weighted(layer)
            modules.append(mod)
        elif isinstance(layer, ir.Activation):
            modules.append(acts[layer.name])
        else:
            modules.append(_structure(layer))
    return nn.Sequential(modules), {"params": params, **({"batch_stats": stats} if stats else {})}


def _constant(value):
    """An initializer returning ``value`` (no random draw, so no compile per shape)."""
    array = jnp.asarray(value)

    def init(key, shape, dtype=jnp.float32):
        del key
        assert tuple(shape) == array.shape, (shape, array.shape)
        return array.astype(dtype)

    return init


def _nnx_norm(layer, rngs):
    from flax import nnx

    n = layer.features
    if isinstance(layer, ir_state.BatchNorm):
        mod = nnx.BatchNorm(n, use_running_average=True, epsilon=layer.eps, rngs=rngs)
        mod.mean[...] = jnp.asarray(layer.running_mean)
        mod.var[...] = jnp.asarray(layer.running_var)
    else:
        mod = nnx.LayerNorm(n, epsilon=layer.eps, use_scale=layer.weight is not None,
                            use_bias=layer.bias is not None, rngs=rngs)
    if layer.weight is not None:
        mod.scale[...] = jnp.asarray(layer.weight)
    if layer.bias is not None:
        mod.bias[...] = jnp.asarray(layer.bias)
    return mod


def to_nnx(layers):
    """A ``flax.nnx.Sequential`` holding the layer specs' weights."""
    from flax import nnx

    acts = activation_functions(nnx)
    rngs = nnx.Rngs(0)  # required by the constructors; the initializers ignore it
    modules = []
    for layer in layers:
        if isinstance(layer, NORMS):
            modules.append(_nnx_norm(layer, rngs))
        elif isinstance(layer, ir.WEIGHTED):
            use_bias = layer.bias is not None
            inits = {"kernel_init": _constant(_kernel(layer))}
            if use_bias:
                inits["bias_init"] = _constant(layer.bias)
            if isinstance(layer, ir.Linear):
                out_f, in_f = (int(d) for d in layer.weight.shape)
                mod = nnx.Linear(in_f, out_f, use_bias=use_bias, rngs=rngs, **inits)
            else:
                out_f, in_f, kh, kw = (int(d) for d in layer.weight.shape)
                mod = nnx.Conv(in_f, out_f, (kh, kw), strides=layer.stride, padding=layer.padding,
                               kernel_dilation=layer.dilation, use_bias=use_bias, rngs=rngs, **inits)
            modules.append(mod)
        elif isinstance(layer, ir.Activation):
            modules.append(acts[layer.name])
        else:
            modules.append(_structure(layer))
    return nnx.Sequential(*modules)


def build(layers, api: str):
    """linen: ``(model, variables)``; NNX: the module."""
    return to_linen(layers) if check_api(api) == "linen" else to_nnx(layers)


def linear_chain(state, activation, *, ordered: bool, source: str, remedy: str = ir.TORCH_REMEDY):
    """A plain chain of Linear layers, from a state dict and activation names, as a linen network.

    :func:`ir.linear_stack` (the one rebuild of a dense chain from weights) followed by
    :func:`to_linen`; ``ei-jax measure`` uses it for torch, safetensors and Flax checkpoints.

    Args:
      state: ``{"0.weight": (out, in), "0.bias": (out,), ...}`` NumPy arrays.
      activation: one name used after every layer, or one per layer (``"identity"`` for none).
      ordered: ``state`` is in forward order; otherwise layers sort by name in natural order.
      source: the file, for messages.
      remedy: what messages tell the user to do when the weights are not a plain chain.

    Returns:
      ``(model, variables, names, n_in)``: a ``flax.linen.Sequential``, its variables, the
      Linear layers' names in ``state`` and the first layer's input width.

    Example:
      >>> import numpy as np
      >>> model, variables, names, n_in = linear_chain(
      ...     {"0.weight": np.ones((2, 3), np.float32)}, "tanh", ordered=True, source="x")
      >>> names, n_in, sorted(variables["params"])
      (['0'], 3, ['layers_0'])
    """
    layers = ir.linear_stack(state, activation, ordered=ordered, source=source, remedy=remedy)
    model, variables = to_linen(layers)
    linears = [layer for layer in layers if isinstance(layer, ir.Linear)]
    return model, variables, [layer.name for layer in linears], int(linears[0].weight.shape[1])
