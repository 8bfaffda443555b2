"""The pure maps of the weight layers ei_jax measures, and their composition.

A topology node (see :func:`ei_jax.topology_of`) is one weight layer of kind :data:`DENSE`
or :data:`CONV`; its ``"apply"`` attribute is the matching pure function here,
``apply(params, x)``, the layer's *pre-activation* output for a batch ``x``:

* :func:`dense_apply`: ``x @ kernel + bias``, ``(C, n_in) -> (C, n_out)``.
* :func:`conv_patch_apply`: a convolution on one receptive field (weight sharing makes every
  interior position the same map), ``(C, kh, kw, c_in) -> (C, c_out)``.

:func:`stack_apply` composes such layers with their activations into the one map a span of
layers ``in_layer .. layer`` computes. Nothing here depends on Flax: params are plain dicts
``{"kernel": ..., "bias": ...}`` (``"bias"`` optional) in Flax's layout.
"""

import functools
from typing import Any

import jax
import jax.numpy as jnp

from ei_jax._src.model import activations as _act

__all__ = ["CONV", "DENSE", "apply_of", "conv_patch_apply", "dense_apply", "stack_apply"]

#: Kind of a fully connected layer (``flax.linen.Dense`` / ``flax.nnx.Linear``).
DENSE = "dense"
#: Kind of a 2-d convolution (``flax.linen.Conv`` / ``flax.nnx.Conv``), measured on one patch.
CONV = "conv"


def dense_apply(params: dict, x: jax.Array) -> jax.Array:
    """Pre-activation output of a dense layer, ``y = x @ kernel + bias``.

    Args:
      params: ``{"kernel": (n_in, n_out)}``, optionally with ``"bias": (n_out,)``.
      x: inputs ``(C, n_in)``.

    Returns:
      ``(C, n_out)``, ``y[c, j] = sum_i x[c, i] kernel[i, j] + bias[j]``.

    Example:
      >>> import jax.numpy as jnp
      >>> from ei_jax._src.model.layer_maps import dense_apply
      >>> params = {"kernel": jnp.array([[1.0, 0.0], [1.0, 2.0]]), "bias": jnp.array([0.5, 0.0])}
      >>> dense_apply(params, jnp.array([[1.0, 1.0]]))
      Array([[2.5, 2. ]], dtype=float32)
    """
    y = x @ params["kernel"]
    if "bias" in params:
        y = y + params["bias"][None, :]
    return y


def conv_patch_apply(params: dict, x: jax.Array) -> jax.Array:
    """Pre-activation output of a convolution at one position, from its receptive field.

    Args:
      params: ``{"kernel": (kh, kw, c_in, c_out)}`` (Flax's layout), optionally with
        ``"bias": (c_out,)``.
      x: patches ``(C, kh, kw, c_in)``, one receptive field each (NHWC order).

    Returns:
      ``(C, c_out)``, ``y[c, o] = sum_{h, w, i} x[c, h, w, i] kernel[h, w, i, o] + bias[o]``.

    Example:
      >>> import jax.numpy as jnp
      >>> from ei_jax._src.model.layer_maps import conv_patch_apply
      >>> params = {"kernel": jnp.ones((2, 2, 1, 3))}           # 2x2 window, 1 -> 3 channels
      >>> conv_patch_apply(params, jnp.arange(4.0).reshape(1, 2, 2, 1))
      Array([[6., 6., 6.]], dtype=float32)
    """
    y = jnp.einsum("bhwc,hwco->bo", x, params["kernel"])
    if "bias" in params:
        y = y + params["bias"][None, :]
    return y


_APPLY = {DENSE: dense_apply, CONV: conv_patch_apply}


def apply_of(kind: str):
    """The pure map of a layer kind: :func:`dense_apply` or :func:`conv_patch_apply`.

    Args:
      kind: :data:`DENSE` (``"dense"``) or :data:`CONV` (``"conv"``).

    Returns:
      ``apply(params, x)``, the layer's pre-activation output (shapes as the function named).

    Example:
      >>> from ei_jax._src.model.layer_maps import apply_of
      >>> apply_of("dense").__name__, apply_of("conv").__name__
      ('dense_apply', 'conv_patch_apply')
    """
    return _APPLY[kind]


@functools.lru_cache(maxsize=None)
def stack_apply(kinds: tuple[str, ...], acts: tuple[Any, ...]):
    """The map of a chain of layers: ``x -> act_k(layer_k(... act_1(layer_1(x))))``.

    Cached on its (hashable) arguments so that the same structure always gives the same
    function object, and jitted measures are compiled once per structure. An input of rank
    above 2 is flattened (row-major) before a dense layer, as after ``Flatten``.

    Args:
      kinds: layer kinds in order, each :data:`DENSE` or :data:`CONV`.
      acts: one activation per layer: a canonical name (``"sigmoid"``, ``"tanh"``,
        ``"relu"``), ``None`` for none, or a callable.

    Returns:
      ``apply(params_tuple, x)`` with one params dict per layer, mapping ``x`` ``(C, *in_shape)``
      (the first layer's input) to the last layer's activated output ``(C, n_out)``.

    Example:
      >>> import jax.numpy as jnp
      >>> from ei_jax._src.model.layer_maps import DENSE, stack_apply
      >>> f = stack_apply((DENSE, DENSE), ("relu", None))
      >>> p1 = {"kernel": jnp.array([[1.0, -1.0]])}              # 1 -> 2
      >>> p2 = {"kernel": jnp.array([[1.0], [1.0]])}             # 2 -> 1
      >>> f((p1, p2), jnp.array([[3.0], [-2.0]]))                # relu(3, -3) = (3, 0) ...
      Array([[3.],
             [2.]], dtype=float32)
      >>> f is stack_apply((DENSE, DENSE), ("relu", None))
      True
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
