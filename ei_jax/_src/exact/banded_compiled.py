"""The banded joint of :mod:`ei_jax._src.exact.banded` for a whole layer, compiled (numba).

The same numbers as :func:`~ei_jax._src.exact.banded.point_input_mi` run on every column
(to float64 rounding, ~1e-15 bits), for sensitivity (and a one-input layer's EI_parts) with a
monotone activation. The pair ``(A, B)`` has ``z = v x_A + b_B``, ``x_A`` uniform on
``[lo, hi]``; in ``u = (z - z_min) / |v|`` the input edges are the fixed ``g_i = a_i - lo``
and the thresholds ``tau_j = clip((t_j - z_min) / |v|, 0, hi - lo)``; output bin ``j`` is cut
by the input edges in ``(tau_j, tau_{j+1}]`` (counted in closed form), and only cut bins
contribute (an uncut bin is one cell, equal to its column). The division by ``|v|`` is a
product with ``1 / |v|``, as XLA compiles the JAX path's division by a broadcast ``|v|``: the
kept lengths are then the same to the bit (a true division differs by an ulp).

A column's pairs are the vector lanes: every inner loop runs over the inputs ``A`` (length
``n``, contiguous), the loop over thresholds outside. Only the thresholds that move some
pair's ``tau`` are visited: below ``min_A z_min`` every ``tau_j`` is 0 (``t_j <= z_min``
exactly), and from the first threshold where every pair's ``tau_j`` is the full width on
(computed, so the same rounding decides it), every bin is uncut. Either way the skipped bins
have ``cnt(tau_j) = cnt(tau_{j+1})`` and the JAX path adds exactly 0 for them, so a column
whose weights move ``z`` across a few output bins costs a few passes over ``n``, not
``k_out + 1``. Pairs with ``v = 0`` do not take part in choosing the thresholds (their
result is fixed: ``mi = 0``, ``kept = 1``).

numba imports in about 0.2 s, so only the caller that takes this path imports this module
(lazily, at its first call). Columns are shared among the cores
(:func:`~ei_jax._src.exact.compiled.over_columns`); each thread allocates its scratch once.
"""

import numpy as np

from ei_jax._src.exact.banded import _grid
from ei_jax._src.exact.compiled import jit, over_columns, xlog2x

# geo: the input grid's numbers in one float64 array: banded._grid's (k, e_0 - lo, step,
# interior and end bin widths) and the hot loops' 1 / step, hi - lo, log2 of the widths
_K, _OFF, _STEP, _RSTEP, _WIDTH, _H_MID, _L_MID, _H_END, _L_END = range(9)


@jit(inline="always", contract=True)
def _count(tau, k, off, rstep, width):
    """``#(g_i <= tau)`` (float), as :func:`banded._count`."""
    inner = min(max(np.floor((tau - off) * rstep), 0.0), k - 1.0) if k >= 2.0 else 0.0
    return 1.0 + inner + (1.0 if tau >= width else 0.0)


@jit(inline="always", contract=True)
def _edge(i, k, off, step, width):
    """``g_i`` for a (float) index ``i``, as :func:`banded._edge`."""
    return 0.0 if i <= 0.0 else (width if i >= k else off + i * step)


@jit(inline="always", contract=True)
def _cut(ta, tb, inv, log_total, k, off, step, rstep, width, h_mid, l_mid, h_end, l_end):
    """``(split, cut)`` of the interval ``[tau_a, tau_b]``: ``cut`` when an input edge lies in
    ``(tau_a, tau_b]``, ``split`` the sum of ``xlog2x(cell / total)`` over its cells (the
    partial pieces and the whole bins between), as ``banded._split``."""
    ip = _count(ta, k, off, rstep, width)
    iq = _count(tb, k, off, rstep, width)
    first = max(_edge(ip, k, off, step, width) - ta, 0.0)       # to the next edge
    last = max(tb - _edge(iq - 1.0, k, off, step, width), 0.0)   # from the edge before
    n_full = max(iq - 1.0 - ip, 0.0)
    end_full = 1.0 if (iq >= k + 1.0) & (n_full >= 1.0) else 0.0
    full = inv * ((n_full - end_full) * (h_mid * (l_mid - log_total))
                  + end_full * (h_end * (l_end - log_total)))
    split = xlog2x(first * inv) + xlog2x(last * inv) + full
    return split, iq > ip


@jit(contract=True)
def _columns(w, bias, lo, hi, t, geo, mi, kept, start, stop):
    """Columns ``start .. stop - 1`` of the layer: ``w`` ``(M, n)`` (a column's
    weights contiguous), ``bias`` ``(M,)``, thresholds ``t`` ``(k_out + 1,)``; writes
    ``mi`` and ``kept`` ``(M, n)``."""
    n = w.shape[1]
    k1 = t.shape[0]
    k, off, step, rstep, width = geo[_K], geo[_OFF], geo[_STEP], geo[_RSTEP], geo[_WIDTH]
    h_mid, l_mid, h_end, l_end = geo[_H_MID], geo[_L_MID], geo[_H_END], geo[_L_END]
    tau = np.empty((k1, n))              # the visited thresholds' rows, from row 0
    zmin, rs, inv, log_total = np.empty(n), np.empty(n), np.empty(n), np.empty(n)
    acc, rows = np.empty(n), np.empty(n)
    for c in range(start, stop):
        v, b, mi_c, kept_c = w[c], bias[c], mi[c], kept[c]
        zlo, n_ok = np.inf, 0
        for a in range(n):
            z = b + min(v[a] * lo, v[a] * hi)
            s = abs(v[a])
            zmin[a] = z
            rs[a] = 1.0 / s if s > 0.0 else 1.0
            if s > 0.0:
                zlo = min(zlo, z)
                n_ok += 1
        if n_ok == 0:
            mi_c[:] = 0.0
            kept_c[:] = 1.0
            continue
        # every pair's tau_j is 0 up to the last t_j <= min z_min
        j0 = 0
        while j0 + 1 < k1 and t[j0 + 1] <= zlo:
            j0 += 1
        # rows j0, j0 + 1, ... until every pair's tau is the full width (or the last one)
        r = 0
        while True:
            tj = t[j0 + r]
            row = tau[r]
            if tj == np.inf:
                row[:] = width
                short = 0
            elif not np.isfinite(tj):
                row[:] = 0.0
                short = n_ok
            else:
                short = 0
                for a in range(n):
                    x = min(max((tj - zmin[a]) * rs[a], 0.0), width)
                    row[a] = x
                    short += 1 if (x < width) & (abs(v[a]) > 0.0) else 0
            r += 1
            if short == 0 or j0 + r == k1:
                break
        first_row, last_row = tau[0], tau[r - 1]
        for a in range(n):
            kp = last_row[a] - first_row[a]
            total = kp if kp > 0.0 else 1.0
            inv[a] = 1.0 / total
            log_total[a] = xlog2x(total) * inv[a]
            kept_c[a] = kp
            acc[a] = 0.0
        for a in range(n):                                  # the input marginal
            split, cut = _cut(first_row[a], last_row[a], inv[a], log_total[a], k, off, step,
                              rstep, width, h_mid, l_mid, h_end, l_end)
            rows[a] = split if cut else 0.0
        for q in range(r - 1):                              # the visited output bins
            ta_row, tb_row = tau[q], tau[q + 1]
            for a in range(n):
                ta, tb = ta_row[a], tb_row[a]
                split, cut = _cut(ta, tb, inv[a], log_total[a], k, off, step, rstep, width,
                                  h_mid, l_mid, h_end, l_end)
                col = xlog2x((tb - ta) * inv[a])
                acc[a] += (split - col) if cut else 0.0
        for a in range(n):
            ok = abs(v[a]) > 0.0
            mi_c[a] = max(acc[a] - rows[a], 0.0) if ok else 0.0
            kept_c[a] = kept_c[a] if ok else 1.0


def point_input_mi_layer(kernel, bias, lo, hi, a, t):
    """MI (bits) and kept length of every pair ``z = W[A, B] x_A + b_B`` of a layer.

    Args:
      kernel: ``(n, M)`` weights; bias: ``(M,)`` (both taken as float64 NumPy arrays).
      lo, hi: the input range (floats); a: ``(k_in + 1,)`` clipped input edges and
        t: ``(k_out + 1,)`` thresholds of a monotone activation, as
        :func:`~ei_jax._src.exact.preimages.input_bins` / ``output_bins(...).t`` give them.

    Returns:
      ``(mi, kept)``, each ``(n, M)`` float64 C-contiguous: column ``B`` is
      ``banded.point_input_mi(kernel[:, B], bias[B], lo, hi, a, t)``: MI clamped at 0 (0 where
      ``W[A, B] = 0``), the kept length in ``u`` (1 where ``W[A, B] = 0``; 0 where every
      output is dropped, with ``mi = 0``: the caller decides NaN, as ``finish_column`` does).
    """
    w = np.ascontiguousarray(np.asarray(kernel, np.float64).T)
    bias = np.ascontiguousarray(np.asarray(bias, np.float64).reshape(-1))
    t = np.ascontiguousarray(np.asarray(t, np.float64))
    lo, hi = float(lo), float(hi)
    k, off, step, h_mid, h_end = _grid(len(a) - 1, lo, hi)
    geo = np.array([k, off, step, 1.0 / step, hi - lo, h_mid, np.log2(h_mid), h_end,
                    np.log2(h_end)], np.float64)
    m_out, n = w.shape
    mi, kept = np.empty((m_out, n)), np.empty((m_out, n))
    if m_out and n:
        over_columns(_columns, w, bias, lo, hi, t, geo, mi, kept, columns=m_out,
                     work=float(n) * m_out * (k + t.shape[0]), desc="exact sensitivity")
    return np.ascontiguousarray(mi.T), np.ascontiguousarray(kept.T)
