"""Degeneracy and the causal plane: a layer's point (sensitivity, degeneracy).

Degeneracy is sensitivity minus EI (EI_parts, or vector EI with ``versus="vector"``); the
paper plots the plane rotated by 45 degrees, so that the horizontal axis is EI / sqrt 2.
"""

import warnings

from ei_jax._src.base import checks
from ei_jax._src.base.errors import DefaultRangeWarning
from ei_jax._src.info.causal_plane_point import CausalPlanePoint, difference
from ei_jax._src.measures.pairwise import ei_parts, sensitivity
from ei_jax._src.measures.vector import ei


def causal_plane(key, topology, layer, *, versus="parts", in_layer=None, samples=None, threshold=0.05,
                 sensitivity_samples=None, batch_size=None, in_range=None, in_bins=64, out_range=None,
                 out_bins=64, activation=None, clip=False, progress=None,
                 stderr=False) -> CausalPlanePoint:
    """Sensitivity, degeneracy and EI of a layer: its point in the causal plane.

    Sensitivity is measured with ``key`` and ``sensitivity_samples`` samples per input
    (default: ``samples``, or deep-ei's 500 when ``samples`` is None); EI (``versus="parts"``:
    EI_parts, ``"vector"``: vector EI) with the same ``key`` and ``samples`` (automatic mode
    with ``threshold`` when None). ``degeneracy = sensitivity - EI``.

    Returns:
      :class:`CausalPlanePoint`.

    Example:
      >>> import jax, jax.numpy as jnp, flax.linen as nn, ei_jax
      >>> net = nn.Dense(3, use_bias=False)
      >>> x0 = jnp.zeros((1, 3))
      >>> top = ei_jax.topology_of(net, net.init(jax.random.key(0), x0), x0)
      >>> p = ei_jax.causal_plane(jax.random.key(1), top, "Dense", samples=5000, in_range=(0, 1),
      ...                         in_bins=8, out_range=(0, 1), out_bins=8, activation="sigmoid")
      >>> abs(p.x - p.ei / 2 ** 0.5) < 1e-12 and abs(p.sensitivity - p.degeneracy - p.ei) < 1e-12
      True
    """
    checks.check_choice("versus", versus, ("parts", "vector"))
    checks.check_flags(progress, clip=clip, stderr=stderr)
    common = dict(in_layer=in_layer, batch_size=batch_size, in_range=in_range, in_bins=in_bins,
                  out_range=out_range, out_bins=out_bins, activation=activation, clip=clip,
                  progress=progress, stderr=stderr)
    with warnings.catch_warnings():
        # The range default is reported once, by the first measure.
        s_samples = sensitivity_samples if sensitivity_samples is not None else (samples or 500)
        s = sensitivity(key, topology, layer, samples=s_samples, **common)
        warnings.simplefilter("ignore", DefaultRangeWarning)
        measure = ei_parts if versus == "parts" else ei
        e = measure(key, topology, layer, samples=samples, threshold=threshold, **common)
    return CausalPlanePoint(s, difference(s, e), e, versus)


def degeneracy(key, topology, layer, *, versus="parts", **kwargs):
    """Degeneracy = sensitivity - EI (``versus="parts"``: EI_parts; ``"vector"``: vector EI).

    Same arguments as :func:`causal_plane`; returns a float (bits), or an
    :class:`ei_jax.Estimate` with ``stderr=True``.

    Example:
      >>> import jax, jax.numpy as jnp, flax.linen as nn, ei_jax
      >>> net = nn.Dense(3, use_bias=False)
      >>> x0 = jnp.zeros((1, 3))
      >>> top = ei_jax.topology_of(net, net.init(jax.random.key(0), x0), x0)
      >>> d = ei_jax.degeneracy(jax.random.key(1), top, "Dense", samples=5000, in_range=(0, 1),
      ...                       in_bins=8, out_range=(0, 1), out_bins=8, activation="sigmoid")
      >>> isinstance(d, float)
      True
    """
    return causal_plane(key, topology, layer, versus=versus, **kwargs).degeneracy
