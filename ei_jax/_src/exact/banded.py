"""MI of a pair whose output is a monotone function of one uniform input: the banded joint.

When ``z = v x_A + b`` with ``x_A`` uniform on ``[lo, hi]`` (sensitivity, where the other
inputs are 0, and EI_parts of a one-input layer), the pair's joint table is the common
refinement of two partitions of the line: the images of the input bins and the output bins
``[t_j, t_{j+1})``. Every occupied cell is one segment between consecutive break points, so
at most ``in_bins + out_bins`` cells are occupied. In ``u = (z - z_min) / |v|`` (the input's
offset from its lower end, reflected for ``v < 0``; the widened bins are symmetric) the input
edges are the fixed ``g_i = a_i - lo`` and the thresholds ``tau_j = (t_j - z_min) / |v|``.
For output bin ``j`` the input edges inside ``(tau_j, tau_{j+1}]`` are counted in closed form
(the interior edges are a uniform grid), and its cells are the first partial piece, the
whole input bins between (all of the same width except an end bin), and the last partial
piece: O(1) work per output bin, so a pair costs O(in_bins + out_bins) instead of the dense
table's O(in_bins * out_bins). A count that rounding puts one edge off moves a cell boundary
by that rounding only (the partial pieces are clipped at 0), so the MI changes by ~1e-15 bits.

``P(i, j)`` is the length of the cell over the kept length (``z`` in ``[t_0, t_k)``), exactly
the dense table's ``p_i [F(t_{j+1}) - F(t_j)]`` renormalised, so the MI is the same number.
"""

import jax.numpy as jnp
import numpy as np

from ei_jax._src.exact.preimages import widened_edges
from ei_jax._src.info.plugin import xlog2x


def _grid(k, lo, hi):
    """Static: ``(k, e0 - lo, step)`` of deep-ei's widened edges ``e_i = e0 + i step`` and the
    widths of an interior bin and of the last bin."""
    e = widened_edges(lo, hi, k)
    step = (e[-1] - e[0]) / k
    h = np.diff(np.clip(e, lo, hi))
    return k, float(e[0] - lo), float(step), float(h[1] if k >= 3 else h[-1]), float(h[-1])


def _count(tau, k, off, step, width):
    """``#(g_i <= tau)`` for ``tau`` in ``[0, width]`` (``g_0 = 0``, ``g_k = width``)."""
    inner = jnp.clip(jnp.floor((tau - off) * (1.0 / step)), 0, k - 1) if k >= 2 else 0.0
    return 1.0 + inner + jnp.where(tau >= width, 1.0, 0.0)


def _edge(i, k, off, step, width):
    """``g_i`` for a (float) index ``i``."""
    return jnp.where(i <= 0, 0.0, jnp.where(i >= k, width, off + i * step))


def _split(ip, iq, first, last, inv, log_total, geo):
    """``sum xlog2x(cell / total)`` over the cells of intervals cut by at least one input edge
    (``iq > ip``): the partial pieces ``first``, ``last`` and the whole bins between."""
    k, _, _, _, h_mid, h_end = geo
    n_full = jnp.maximum(iq - 1 - ip, 0.0)
    end_full = jnp.where((iq >= k + 1) & (n_full >= 1), 1.0, 0.0)
    full = inv * ((n_full - end_full) * (h_mid * (np.log2(h_mid) - log_total))
                  + end_full * (h_end * (np.log2(h_end) - log_total)))
    return xlog2x(first * inv) + xlog2x(last * inv) + full


def point_input_mi(v, b, lo, hi, a, t):
    """MI (bits) and kept mass of the pairs ``z = v_A x_A + b`` of one output column.

    Args:
      v: ``(n,)`` weights; b: scalar bias; lo, hi: the input range (static floats).
      a: static ``(k_in + 1,)`` clipped input edges; t: static ``(k_out + 1,)`` thresholds.

    Returns:
      ``(mi, kept)``, each ``(n,)``: MI clamped at 0 (0 where ``v = 0``), and the kept length
      in ``u`` (1 where ``v = 0``: the caller's emptiness test decides a point mass).
    """
    t = np.asarray(t, np.float64)
    width = float(hi - lo)
    k, off, step, h_mid, h_end = _grid(len(a) - 1, lo, hi)
    geo = (k, off, step, width, h_mid, h_end)
    s = jnp.abs(v)
    ok = s > 0
    zmin = b + jnp.minimum(v * lo, v * hi)
    fin = np.isfinite(t)
    tau = jnp.clip((jnp.asarray(np.where(fin, t, 0.0))[None, :] - zmin[:, None])
                   / jnp.where(ok, s, 1.0)[:, None], 0.0, width)
    tau = jnp.where(jnp.asarray(t == np.inf)[None, :], width,
                    jnp.where(jnp.asarray(fin)[None, :], tau, 0.0))               # (n, k_out+1)
    kept = tau[:, -1] - tau[:, 0]
    total = jnp.where(kept > 0, kept, 1.0)[:, None]
    inv, log_total = 1.0 / total, jnp.log2(total)
    cnt = _count(tau, *geo[:4])                       # input edges at or below each threshold
    above = jnp.maximum(_edge(cnt, *geo[:4]) - tau, 0.0)        # to the next edge
    below = jnp.maximum(tau - _edge(cnt - 1, *geo[:4]), 0.0)    # from the edge before
    ip, iq = cnt[:, :-1], cnt[:, 1:]
    # An output bin without an input edge inside is one cell, equal to its column: the two
    # cancel in sum P log P - sum P_y log P_y, so only cut output bins contribute.
    cut = _split(ip, iq, above[:, :-1], below[:, 1:], inv, log_total, geo)
    col = xlog2x(jnp.diff(tau, axis=-1) * inv)
    joint_minus_cols = jnp.sum(jnp.where(iq > ip, cut - col, 0.0), axis=-1)
    rows = jnp.where(cnt[:, -1] > cnt[:, 0], _split(cnt[:, :1], cnt[:, -1:], above[:, :1],
                                                    below[:, -1:], inv, log_total, geo)[:, 0], 0.0)
    mi = jnp.maximum(joint_minus_cols - rows, 0.0)
    return jnp.where(ok, mi, 0.0), jnp.where(ok, kept, 1.0)
