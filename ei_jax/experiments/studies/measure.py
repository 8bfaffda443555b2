"""Every measurement the studies make, in one place: exact pairwise measures, sampled vector EI.

* Dense layers ``y = f(x @ W + b)`` get the exact (infinite-sample) EI_parts and sensitivity
  of deep-ei's pairwise estimators (:mod:`ei_jax.exact`'s pure matrices), batched over seeds with
  ``jax.vmap``: no sampling noise, so the spread across seeds is the spread of the networks.
* Vector EI (and spans of several layers) are sampled with :func:`ei_jax.ei` with
  ``stderr=True``: the plug-in value and its standard error are stored.

Switching a study to another estimator is a change here only.
"""

import functools
import math
import warnings

import jax
import jax.numpy as jnp
import numpy as np

import ei_jax
from ei_jax._src.model.activations import default_range
from ei_jax._src.base.errors import SampleLimitedWarning
from ei_jax.exact import exact_ei_parts_matrix, exact_sensitivity_matrix


@functools.lru_cache(maxsize=64)
def _exact_fn(activation, in_range, out_range, bins):
    kw = dict(activation=activation, in_range=in_range, in_bins=bins, out_range=out_range,
              out_bins=bins)

    def one(kernel, bias):
        parts = exact_ei_parts_matrix(kernel, bias, **kw)
        sens = exact_sensitivity_matrix(kernel, bias, **kw)
        # NaN marks a pair whose outputs never fall in range: it carries no information.
        return jnp.sum(jnp.nan_to_num(parts)), jnp.sum(jnp.nan_to_num(sens))

    return jax.jit(jax.vmap(one))


def max_ei_parts(n_in: int, n_out: int, bins: int) -> float:
    """The largest possible EI_parts of an ``n_in -> n_out`` layer: ``n_in n_out log2(bins)``."""
    return n_in * n_out * math.log2(bins)


def exact_layer_measures(kernels, biases, *, activation, in_range, bins) -> dict[str, np.ndarray]:
    """Exact EI_parts, sensitivity, degeneracy and causal-plane point of a stack of layers.

    Args:
      kernels: ``(S, n_in, n_out)``, one layer per seed; biases: ``(S, n_out)`` or None.
      activation: the layer's activation name; in_range: ``(lo, hi)`` of its inputs.
      bins: bins per neuron (inputs and outputs, deep-ei's 8 by default).

    Returns:
      dict of ``(S,)`` float64 arrays (bits): ``ei_parts``, ``sensitivity``, ``degeneracy``
      (sensitivity - EI_parts), ``plane_x``, ``plane_y`` (:func:`ei_jax.rotate_causal_plane`).

    Example:
      >>> import jax.numpy as jnp
      >>> m = exact_layer_measures(jnp.full((2, 1, 1), 100.0), None, activation="identity",
      ...                 in_range=(0.0, 1.0), bins=4)
      >>> [round(float(v), 3) for v in m["ei_parts"]]   # 1 -> 1 identity-like map: log2(4)
      [2.0, 2.0]
    """
    kernels = jnp.asarray(kernels, jnp.float32)
    if biases is None:
        biases = jnp.zeros((kernels.shape[0], kernels.shape[2]), jnp.float32)
    out_range = tuple(float(v) for v in default_range(activation))
    if activation in (None, "identity"):
        out_range = _identity_range(np.asarray(kernels), np.asarray(biases), in_range)
    fn = _exact_fn(activation, tuple(float(v) for v in in_range), out_range, int(bins))
    parts, sens = (np.asarray(v, np.float64) for v in fn(kernels, jnp.asarray(biases, jnp.float32)))
    deg = sens - parts
    x, y = ei_jax.rotate_causal_plane(sens, deg)
    return dict(ei_parts=parts, sensitivity=sens, degeneracy=deg, plane_x=np.asarray(x, np.float64),
                plane_y=np.asarray(y, np.float64))


def _identity_range(kernels, biases, in_range):
    """A linear layer's output range: the extremes of ``x @ W + b`` over the input box."""
    lo, hi = in_range
    w = kernels
    top = np.sum(np.maximum(w * hi, w * lo), axis=1) + biases
    bot = np.sum(np.minimum(w * hi, w * lo), axis=1) + biases
    return float(bot.min()), float(top.max())


def sampled_ei(key, top, layer, *, in_layer=None, in_range, bins, samples) -> tuple[float, float, float]:
    """Sampled vector EI (bits) of ``layer`` (or the span ``in_layer .. layer``): the bias-corrected
    value, its standard error and the plug-in.

    Args:
      key: ``jax.random.key``; top: a topology; layer, in_layer: node names.
      in_range: the first measured layer's input range; bins: bins per neuron.
      samples: noise samples.

    Returns:
      ``(corrected, stderr, plugin)``: ``ei_jax.Estimate.corrected``, the standard error that
      belongs to it, and the plug-in estimate (``Estimate.value``, deep-ei's number).

    Example:
      >>> import jax, jax.numpy as jnp, flax.linen as nn
      >>> net = nn.Sequential([nn.Dense(1, use_bias=False), nn.sigmoid])
      >>> x0 = jnp.zeros((1, 1))
      >>> v = {"params": {"layers_0": {"kernel": jnp.array([[8.0]])}}}
      >>> top = ei_jax.topology_of(net, v, x0)
      >>> val, se, plugin = sampled_ei(jax.random.key(0), top, "layers_0", in_range=(-1.0, 1.0),
      ...                              bins=4, samples=20_000)
      >>> 1.0 < plugin <= 2.0 and abs(val - plugin) < 0.1   # a steep 1 -> 1 map: close to log2(4)
      True
    """
    kw = dict(in_layer=in_layer, in_range=in_range, in_bins=bins, out_bins=bins, samples=samples)
    with warnings.catch_warnings():
        # Wide layers' vector EI is sample-limited by construction (bins ** n_in input cells);
        # a study measures thousands of them, so it says so once, in its summary, instead.
        warnings.simplefilter("ignore", SampleLimitedWarning)
        est = ei_jax.ei(key, top, layer, stderr=True, **kw)
    return float(est.corrected), float(est.stderr), float(est.value)


def sampled_ei_parts(key, top, layer, *, in_layer=None, in_range, bins, samples) -> float:
    """Sampled EI_parts (bits) of a span ``in_layer .. layer`` (no exact form for spans).

    Example: the layer of :func:`sampled_ei`'s example.

      >>> import jax, jax.numpy as jnp, flax.linen as nn
      >>> v = {"params": {"layers_0": {"kernel": jnp.array([[8.0]])}}}
      >>> top = ei_jax.topology_of(nn.Sequential([nn.Dense(1, use_bias=False), nn.sigmoid]), v, jnp.zeros((1, 1)))
      >>> 1.0 < sampled_ei_parts(jax.random.key(0), top, "layers_0", in_range=(-1.0, 1.0),
      ...                        bins=4, samples=20_000) <= 2.0
      True
    """
    return float(ei_jax.ei_parts(key, top, layer, in_layer=in_layer, in_range=in_range,
                                 in_bins=bins, out_bins=bins, samples=samples))
