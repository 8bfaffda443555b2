"""One output column of the exact pairwise kernel (:mod:`ei_jax._src.exact.kernel`): its
conditional CDFs at the thresholds, their mutual information (bits) or joint tables.

A column is ``(v, b)``: the ``(n_in,)`` weights into one output and its bias. The CDF comes
from the banded table (one input moves ``z``, monotone activation), the uniform or trapezoid
closed forms (one to three inputs) or the series (:mod:`ei_jax._src.exact.sums`), a block of
inputs at a time.
"""

import jax.numpy as jnp
import numpy as np

from ei_jax._src.exact import banded
from ei_jax._src.exact.conditionals import cdf_point_sum, cdf_series, cdf_trapezoid
from ei_jax._src.exact.preimages import bin_masses
from ei_jax._src.info import plugin


def mi_from_conditionals(p, cdf, signs=(1,)):
    """MI (bits) of ``P(i, j) = p_i (cdf[..., i, j+1] - cdf[..., i, j])`` renormalised.

    Args:
      p: ``(k_in,)`` input-bin probabilities.
      cdf: ``(..., k_in, T)`` conditional CDFs at ``OutputBins.t`` (``T = k_out + 1``: monotone).
      signs: ``OutputBins.signs`` (static; :class:`~ei_jax._src.exact.preimages.OutputBins`).

    Returns:
      ``(mi, kept)``: bits ``(...)`` (clamped at 0) and the kept mass ``(...)``.
    """
    joint = jnp.maximum(bin_masses(cdf, signs), 0.0) * p.reshape((1,) * (cdf.ndim - 2) + (-1, 1))
    kept = jnp.sum(joint, axis=(-2, -1))
    pn = joint / jnp.where(kept > 0, kept, 1.0)[..., None, None]
    return plugin.mi_of_probabilities(pn), kept


def _column_cdf(v, b, *, which, lo, hi, a, h, m, t, terms, active=None):
    """Conditional CDFs ``(n_in, k_in, k_out + 1)`` of one output column at the thresholds."""
    n = v.shape[0]
    if which == "sensitivity" or n == 1:
        return cdf_point_sum(v, b, jnp.zeros_like(v), a, t)
    if n <= 3:
        return cdf_trapezoid(v, b, lo, hi, a, t)
    return cdf_series(v, b, lo, hi, m, h, t, terms, active)


def column_mi(col, *, which, lo, hi, a, h, m, p, ob, terms, active=None, dense=False):
    v, b = col
    if (which == "sensitivity" or v.shape[0] == 1) and ob.monotone and not dense:
        mi, kept = banded.point_input_mi(v, b, lo, hi, a, ob.t)    # O(in_bins + out_bins)
    elif which != "sensitivity" and v.shape[0] > 3:
        # the series, a block of inputs at a time: no (n_in, k_in, k_out + 1) array
        mi, kept = cdf_series(v, b, lo, hi, m, h, ob.t, terms, active,
                              combine=lambda cdf: mi_from_conditionals(jnp.asarray(p), cdf, ob.signs))
    else:
        cdf = _column_cdf(v, b, which=which, lo=lo, hi=hi, a=a, h=h, m=m, t=ob.t, terms=terms,
                          active=active)
        mi, kept = mi_from_conditionals(jnp.asarray(p), cdf, ob.signs)
    return finish_column(mi, kept, v, b, which=which, lo=lo, hi=hi, ob=ob)


def finish_column(mi, kept, v, b, *, which, lo, hi, ob, xp=jnp):
    """A column's bits ``(n_in,)``: 0 for a zero weight, NaN where every output is dropped.
    Also a whole layer at once (``v (n_in, n_out)``, ``b (n_out,)``), and on the host with
    ``xp=numpy`` (:mod:`ei_jax._src.exact.compiled_path`)."""
    empty = all_dropped(v, b, which=which, lo=lo, hi=hi, ob=ob, xp=xp)
    return xp.where(empty | (kept <= 0), np.nan, xp.where(v == 0, 0.0, mi))


def all_dropped(v, b, *, which, lo, hi, ob, xp=jnp):
    """Where every value of the pre-activation falls outside the output range (the pair's
    bits are NaN, whatever the series' ringing leaves as kept mass)."""
    lo_v, hi_v = xp.minimum(v * lo, v * hi), xp.maximum(v * lo, v * hi)
    if which == "parts":                       # z = b + sum_l v_l x_l, the same for every A
        lo_v, hi_v = xp.sum(lo_v, axis=0), xp.sum(hi_v, axis=0)
    return ob.empty(b + lo_v, b + hi_v, xp)


def column_joint(col, *, which, lo, hi, a, h, m, p, ob, terms):
    v, b = col
    cdf = _column_cdf(v, b, which=which, lo=lo, hi=hi, a=a, h=h, m=m, t=ob.t, terms=terms)
    return joint_from_conditionals(p, cdf, ob)


def joint_from_conditionals(p, cdf, ob):
    """The pair tables ``(n_in, k_in, k_out)`` from the conditional CDFs, renormalised."""
    joint = jnp.maximum(bin_masses(cdf, ob.signs), 0.0) * jnp.asarray(p)[None, :, None]
    kept = jnp.sum(joint, axis=(-2, -1), keepdims=True)
    return joint / jnp.where(kept > 0, kept, jnp.nan)
