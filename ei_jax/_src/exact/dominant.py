"""Exact EI_parts for columns with almost all their spread in one input (residual layers).

A residual layer ``y = f(W2 u + h)`` folds to the kernel ``[[W2], [I]]``: output ``j`` has
weight 1 on ``h_j`` and small weights on the ``u``'s. Its pre-activation's density is nearly
a box with sharp edges, so the cosine series of :mod:`ei_jax._src.exact.sums` on the column's
window would need more than ``MAX_TERMS`` terms. Such a column (one needing more than
``MAX_TERMS``, a host decision from concrete weights) takes the dominant input ``d``
analytically: with ``R = sum_{l != d} v_l x_l`` (``x_A`` uniform on its bin when ``A != d``),

.. math::
   F_{A,i}(t) = \\frac{1}{v_d \\Delta}\\,\\left[G(t - b - v_d\\, x_0) - G(t - b - v_d\\, x_1)\\right],
   \\qquad G(s) = \\int_{-\\infty}^{s} F_R,

the mean of ``F_R`` over ``x_d`` uniform on ``[x_0, x_1]`` (the range ``(lo, hi)`` for
``A != d``, ``d``'s bin ``i`` for ``A == d``; ``Delta = x_1 - x_0``). ``R`` has no dominant
input, so its series on ``R``'s own window ``[L, L + W]`` converges with few terms, and ``G``
integrates it once more term by term:
``G(L + tau) = tau^2 / (2W) + sum_k X_k (1 - cos(u_k tau)) / u_k`` on ``[0, W]``, 0 below and
``G(L + W) + tau - W`` above. For ``A != d`` the two ends depend only on the threshold, so
their difference is one ``(T, K)`` basis for :func:`~ei_jax._src.exact.sums.series_sum`; for
``A == d`` (one row, ``x_A = x_d``) ``G`` is summed directly at the ``k_in + 1`` bin edges.

Terms: each term of ``G`` carries an extra ``1 / u_k = W / (k pi)``, so its truncation error is
at most ``2 W / (K pi)`` times the bound on ``F``'s (:func:`~ei_jax._src.exact.terms.terms_per_column`),
and ``F_{A,i}`` divides a difference of two ``G`` values by ``|v_d| Delta >= |v_d| h_min``: a
bound of ``tol * min(1, |v_d| h_min / W)`` on ``F_R``'s tail bounds every ``F_{A,i}``'s error
by ``4 tol / (K pi) < tol`` (:func:`plan`). Gradients flow through it as through the series
(no host step inside); traced kernels never get here (the caller keeps the fan-in's count).
"""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from ei_jax._src.base.errors import ExactUnavailableError
from ei_jax._src.exact import sums
from ei_jax._src.exact import terms as series_terms
from ei_jax._src.exact.columns import finish_column, joint_from_conditionals, mi_from_conditionals
from ei_jax._src.exact.conditionals import BLOCK_BYTES, _bin_groups, _fill, _finite
from ei_jax._src.exact.preimages import input_bins, output_bins

UNAVAILABLE = (
    "This kernel's columns have almost all their spread in two or more inputs, so the exact "
    f"series would need more than {series_terms.MAX_TERMS} terms for 1e-8 accuracy (one "
    "dominant input per column is handled analytically). Use the sampled measure "
    "(ei_jax.ei_parts(key, ...)), or pass terms=... explicitly to accept a larger error.")


@dataclasses.dataclass(frozen=True)
class Plan:
    """Which columns take which path (host arrays) and their term counts."""
    normal: np.ndarray         # (m1,) columns on the ordinary series
    normal_terms: int
    dominant: np.ndarray       # (m2,) columns on this path
    dom: np.ndarray            # (m2,) each one's dominant input
    rest: np.ndarray           # (m2, n_in - 1) its other inputs
    terms: int


def plan(kernel, in_range, in_bins, *, tol=series_terms.TERMS_TOL) -> Plan:
    """The plan for concrete ``kernel (n_in >= 4, n_out)`` whose series needs > ``MAX_TERMS``.

    Raises:
      ExactUnavailableError: a column is still too concentrated once its widest input is
        taken out (two or more dominant inputs).
    """
    w = np.abs(np.asarray(kernel, np.float64))
    n = w.shape[0]
    lo, hi = in_range
    d = w * (hi - lo)
    need = series_terms.terms_per_column(d, tol)
    dominant = np.flatnonzero(need > series_terms.MAX_TERMS)
    normal = np.flatnonzero(need <= series_terms.MAX_TERMS)
    dd = d[:, dominant]
    dom = np.argmax(dd, axis=0)
    rest = np.array([[l for l in range(n) if l != j] for j in dom], np.int64).reshape(-1, n - 1)
    dr = np.take_along_axis(dd, rest.T, axis=0)                               # (n - 1, m2)
    half = np.minimum(0.5 * dr.sum(0), 0.5 * dr.max(0) + sums.HOEFFDING * np.sqrt((dr * dr).sum(0)))
    h_min = float(np.min(input_bins(in_range, in_bins)[1]))
    shortest = dd[dom, np.arange(dom.size)] * h_min / (hi - lo)              # |v_d| h_min
    tol_r = tol * np.minimum(1.0, shortest / np.where(half > 0, 2.0 * half, 1.0))
    need_r = series_terms.terms_per_column(dr, tol_r)
    if (need_r > series_terms.MAX_TERMS).any():
        raise ExactUnavailableError(UNAVAILABLE)
    normal_terms = series_terms.choose_terms(w[:, normal], in_range) if normal.size else 0
    return Plan(normal, int(normal_terms), dominant, dom, rest,
                series_terms.round_terms(int(need_r.max(initial=0))))


def column_cdf(v, b, dom, rest, *, lo, hi, a, m, h, t, terms):
    """Conditional CDFs ``(n_in, k_in, T)`` of one column whose input ``dom`` dominates.

    ``dom`` (traced scalar) and ``rest`` (traced ``(n_in - 1,)``) index the inputs; ``a``,
    ``m``, ``h`` the input bins' edges, centres and widths, ``t`` the static thresholds.
    """
    c = 0.5 * (lo + hi)
    vr, vd = v[rest], v[dom]
    dr = jnp.abs(vr) * (hi - lo)
    half = sums.window_half_width(dr)
    spread = half > 0                 # else R is a point mass at its mean: G(L + tau) = tau_+
    width = jnp.where(spread, 2.0 * half, 1.0)
    on = spread.astype(v.dtype)
    u1 = jnp.pi / width
    k = jnp.arange(1, terms + 1, dtype=v.dtype)
    u = k * u1
    base = _finite(t) - b - (c * jnp.sum(vr) - half)      # thresholds less the window's start

    def g_poly(tau):                                      # the polynomial part of G(L + tau)
        tc = jnp.clip(tau, 0.0, width)
        return jnp.where(spread, tc * tc / (2.0 * width) + jnp.maximum(tau - width, 0.0),
                         jnp.maximum(tau, 0.0))

    def cos_u(tau):                                       # (..., K) cos(u_k tau), tau in window
        return jnp.cos(jnp.clip(tau, 0.0, width)[..., None] * u.reshape((1,) * tau.ndim + (-1,)))

    # A != dom: x_d over the whole range, the same two ends for every (A, i)
    tau0, tau1 = base - vd * lo, base - vd * hi
    basis = on * (cos_u(tau1) - cos_u(tau0)) / u[None, :]                                  # (T, K)
    offset = half + vr[:, None] * (m[None, :] - c)                              # (n - 1, k_in)
    group, widths = _bin_groups(np.asarray(h))
    block = max(1, BLOCK_BYTES // (8 * terms * m.shape[0]))
    series = sums.series_sum(u1, 0.5 * dr, jnp.abs(vr), offset, group, widths, terms, basis,
                             block=block)                                       # (n - 1, k_in, T)
    f_rest = ((g_poly(tau0) - g_poly(tau1))[None, None, :] + series) / (vd * (hi - lo))
    # A == dom: R's own series (mean at the window's centre), G at d's bin edges
    rho = jnp.prod(sums.sinc(0.5 * u[:, None] * dr[None, :]), axis=1)          # (K,)
    coef = on * (2.0 / jnp.pi) / k * rho * jnp.cos(u * half) / u                     # X_k / u_k
    tau = base[None, :] - vd * a[:, None]                                      # (k_in + 1, T)
    # a row of edges at a time: (T, K) harmonics, not (k_in + 1, T, K)
    g = g_poly(tau) + jax.lax.map(lambda row: jnp.sum(coef[None, :] * (1.0 - cos_u(row)), axis=-1), tau)
    f_dom = (g[:-1] - g[1:]) / (vd * h)[:, None]
    out = jnp.zeros((v.shape[0],) + f_dom.shape, v.dtype).at[rest].set(f_rest).at[dom].set(f_dom)
    return _fill(t, out)


@functools.partial(jax.jit, static_argnames=("tables", "activation", "in_range", "in_bins",
                                               "out_range", "out_bins", "terms"))
def dominant_matrix(kernel, bias, dom, rest, *, tables, activation, in_range, in_bins, out_range,
                    out_bins, terms):
    """EI_parts ``(n_in, m2)`` (or the tables ``(n_in, m2, k_in, k_out)``) of the columns
    ``kernel (n_in, m2)`` with their dominant inputs ``dom (m2,)`` and the others ``rest``."""
    lo, hi = in_range
    a, h, m, p = input_bins(in_range, in_bins)
    ob = output_bins(activation, out_range, out_bins)

    def column(xs):
        v, b, d, r = xs
        cdf = column_cdf(v, b, d, r, lo=lo, hi=hi, a=a, m=m, h=h, t=ob.t, terms=terms)
        if tables:
            return joint_from_conditionals(p, cdf, ob)
        mi, kept = mi_from_conditionals(p, cdf, ob.signs)
        return finish_column(mi, kept, v, b, which="parts", lo=lo, hi=hi, ob=ob)

    cols = jax.lax.map(jax.checkpoint(column), (kernel.T.astype(jnp.float64), bias.astype(jnp.float64),
                                                jnp.asarray(dom), jnp.asarray(rest)))
    return jnp.moveaxis(cols, 0, 1)
