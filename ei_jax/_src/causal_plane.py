"""Degeneracy and the causal plane: a layer's point (sensitivity, degeneracy).

Degeneracy is sensitivity minus EI (EI_parts, or vector EI with ``versus="vector"``); the
paper plots the plane rotated by 45 degrees, so that the horizontal axis is EI / sqrt 2.
"""

import dataclasses
import math
import warnings

import numpy as np

from ei_jax._src import checks
from ei_jax._src.errors import DefaultRangeWarning
from ei_jax._src.estimate import Estimate
from ei_jax._src.pairwise_measures import ei_parts, sensitivity
from ei_jax._src.vector_measures import ei


@dataclasses.dataclass(frozen=True)
class CausalPlanePoint:
    """A layer's place in the causal plane (all in bits).

    Attributes:
      sensitivity: S.
      degeneracy: D = S - EI (``ei`` is EI_parts or vector EI, see ``versus``).
      ei: the EI it was computed against.
      versus: ``"parts"`` or ``"vector"``.
      x, y: the paper's 45-degree rotated coordinates, ``(S - D)/sqrt 2 = EI/sqrt 2`` and
        ``(S + D)/sqrt 2`` (of the corrected values when the fields are estimates).

    With ``stderr=True`` the three fields are :class:`ei_jax.Estimate`; the standard error
    of ``degeneracy`` combines those of S and EI as if they were independent.
    """

    sensitivity: float | Estimate
    degeneracy: float | Estimate
    ei: float | Estimate
    versus: str

    def _xy(self):
        s, d = (v.corrected if isinstance(v, Estimate) else v for v in (self.sensitivity, self.degeneracy))
        return rotate_causal_plane(s, d)

    @property
    def x(self) -> float:
        return self._xy()[0]

    @property
    def y(self) -> float:
        return self._xy()[1]


def rotate_causal_plane(sensitivity, degeneracy):
    """The paper's rotated causal-plane coordinates ``((S - D)/sqrt 2, (S + D)/sqrt 2)``.

    Works on floats or arrays. The horizontal coordinate equals ``EI / sqrt 2``.

    Returns:
      ``(x, y)``: floats, or arrays of the broadcast shape of the inputs.

    Example:
      >>> rotate_causal_plane(3.0, 1.0)
      (1.414213562373095, 2.82842712474619)
    """
    r = math.sqrt(2.0)
    if isinstance(sensitivity, (int, float)) and isinstance(degeneracy, (int, float)):
        return ((sensitivity - degeneracy) / r, (sensitivity + degeneracy) / r)
    s, d = np.asarray(sensitivity), np.asarray(degeneracy)
    return (s - d) / r, (s + d) / r


def difference(s, e):
    """``s - e`` of two floats, or of two :class:`ei_jax.Estimate` (standard errors added in
    quadrature, as if independent)."""
    if not isinstance(s, Estimate):
        return s - e
    return Estimate(s.value - e.value, s.corrected - e.corrected,
                    math.sqrt(s.stderr ** 2 + e.stderr ** 2), e.samples, s.below, s.above)


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
