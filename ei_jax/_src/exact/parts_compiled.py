"""The exact pairwise EI's cosine series compiled for the CPU (numba), a column at a time.

The same numbers as the XLA path (:func:`ei_jax._src.exact.conditionals.cdf_series` and
:func:`ei_jax._src.exact.columns.mi_from_conditionals`; the mathematics in
:mod:`ei_jax._src.exact.sums`), for concrete weights. XLA forms the series' coefficient table
``(K, n_in, k_in)`` in memory and then reads it in a skinny matrix product
``(T, K) @ (K, n_in k_in)`` with only the 7-9 thresholds as output columns: both steps wait
on memory (~2.5 GFLOP/s on the 2-core VM). Here the coefficients never leave the cache:

* per column, the inputs' sinc factors ``sinc(k u_1 d_l / 2)`` (rotation by ``e^{i u_1 d_l / 2}``,
  vectorised over the inputs), their leave-one-out products (a prefix and a suffix pass, no
  division) and the bin-width factors, laid out ``(K, n_in)``;
* then up to :data:`CHUNK` inputs at a time: ``cos(k theta_{A,i})`` by rotation term by
  term with the inputs as the vector lanes, each term added straight into the finite thresholds' sums;
* the conditional CDFs become the bin masses, the renormalised joint and its MI in the same
  pass (:func:`~ei_jax._src.exact.compiled.xlog2x`).

Columns are shared among the cores (:func:`~ei_jax._src.exact.compiled.over_columns`).
Values agree with the XLA path to float64 rounding (a few 1e-15 bits;
``tests/unit/exact/test_parts_compiled.py``).
"""

import math

import numpy as np

from ei_jax._src.exact.compiled import cos_sin_0pi, jit, over_columns, rotation_start, window, xlog2x
from ei_jax._src.exact.conditionals import _bin_groups

#: Most inputs per chunk: the lanes of the term loop (a bin's ``(8, CHUNK)`` sums stay in L1).
CHUNK = 256


@jit(contract=True)
def _sinc_rows(x, terms, out):
    """``out[k, l] = sinc((k + 1) x_l)``, ``sin`` by rotation, vectorised over ``l``; below
    ``|kx| < 1e-3`` the Taylor form of :func:`ei_jax._src.exact.sums._sinc_from`."""
    n = x.shape[0]
    c1, s1, c, s = rotation_start(x)
    for k in range(terms):
        kk = k + 1.0
        row = out[k]
        for l in range(n):
            kx = kk * x[l]
            x2 = kx * kx
            taylor = 1.0 - x2 / 6.0 * (1.0 - x2 / 20.0)
            row[l] = taylor if abs(kx) < 1e-3 else s[l] / kx
            cn = c[l] * c1[l] - s[l] * s1[l]
            s[l] = s[l] * c1[l] + c[l] * s1[l]
            c[l] = cn


@jit(contract=True)
def _loo_factors(v, span, u1, terms, x, fac, loo, run):
    """``fac[k, l] = sinc(u_k d_l / 2)`` and ``loo[k, A] = (2 / (k pi)) rho_{-A}(u_k)``, the
    other inputs' sinc product, by prefix and suffix products (no division)."""
    n = v.shape[0]
    for l in range(n):
        x[l] = u1 * (0.5 * (abs(v[l]) * span))
    _sinc_rows(x[:n], terms, fac)
    for k in range(terms):
        run[k] = 1.0
    for l in range(n):
        for k in range(terms):
            loo[k, l] = run[k]
            run[k] *= fac[k, l]
    for k in range(terms):
        run[k] = (2.0 / math.pi) / (k + 1.0)
    for l in range(n - 1, -1, -1):
        for k in range(terms):
            loo[k, l] *= run[k]
            run[k] *= fac[k, l]


@jit(contract=True)
def _width_sincs(v, u1, gw, terms, x, out):
    """``out[g, k, A] = sinc(u_k |v_A| w_g / 2)`` for the bin widths ``gw``."""
    n = v.shape[0]
    for g in range(gw.shape[0]):
        for l in range(n):
            x[l] = 0.5 * u1 * abs(v[l]) * gw[g]
        _sinc_rows(x[:n], terms, out[g])


@jit(contract=True)
def _times_loo(sincs, loo, n, beta):
    """``beta[g, k, A] = sincs[g, k, A] loo[k, A]`` (``beta`` may be ``sincs``)."""
    for g in range(sincs.shape[0]):
        for k in range(loo.shape[0]):
            row = beta[g, k]
            sk = sincs[g, k]
            lk = loo[k]
            for l in range(n):
                row[l] = sk[l] * lk[l]


@jit(contract=True)
def _factors(v, span, u1, gw, terms, x, fac, loo, beta, run):
    """``beta[g, k, A] = (2 / (k pi)) rho_{-A}(u_k) sinc(u_k |v_A| w_g / 2)`` for the bin
    widths ``gw`` (:func:`_loo_factors` times :func:`_width_sincs`)."""
    _loo_factors(v, span, u1, terms, x, fac, loo, run)
    _width_sincs(v, u1, gw, terms, x, beta)
    _times_loo(beta, loo, v.shape[0], beta)


@jit(contract=True)
def _series(v, a0, ch, u1, half, c, m, grp, beta, basis8, rz, coef2, acc):
    """``acc[i, f, a]``: the series of ``F_{A,i}`` at finite threshold ``f`` for the inputs
    ``A = a0 + a``, ``a < ch`` (``v``, ``beta`` padded past ``n_in``).

    One bin at a time, so its ``(8 g, ch)`` sums stay in L1; two terms per pass
    (``coef2``: ``beta cos(k theta)`` of terms ``k``, ``k + 1``, the rotation ``rz`` advanced
    twice), each pass adding both into 8 thresholds' sums (``basis8 (g, K/2, 2, 8)``, zero
    where padded): half the loads and stores of the sums per term."""
    k_in = m.shape[0]
    ng = basis8.shape[0]
    pairs = basis8.shape[1]
    for i in range(k_in):
        cr, sr, cc, ss = rz[0], rz[1], rz[2], rz[3]
        mc = m[i] - c
        for a in range(ch):
            cr[a], sr[a] = cos_sin_0pi(u1 * (half + v[a0 + a] * mc))
            cc[a] = cr[a]
            ss[a] = sr[a]
        ai = acc[i]
        for f in range(ng * 8):
            af = ai[f]
            for a in range(ch):
                af[a] = 0.0
        bg = beta[grp[i]]
        for h in range(pairs):
            c0, c1 = coef2[0], coef2[1]
            b0, b1 = bg[2 * h, a0:a0 + ch], bg[2 * h + 1, a0:a0 + ch]
            for a in range(ch):
                x, y = cc[a], ss[a]
                c0[a] = b0[a] * x
                x, y = x * cr[a] - y * sr[a], y * cr[a] + x * sr[a]
                c1[a] = b1[a] * x
                cc[a] = x * cr[a] - y * sr[a]
                ss[a] = y * cr[a] + x * sr[a]
            for g in range(ng):
                w = basis8[g, h]
                p0, p1, p2, p3, p4, p5, p6, p7 = w[0, 0], w[0, 1], w[0, 2], w[0, 3], w[0, 4], w[0, 5], w[0, 6], w[0, 7]
                q0, q1, q2, q3, q4, q5, q6, q7 = w[1, 0], w[1, 1], w[1, 2], w[1, 3], w[1, 4], w[1, 5], w[1, 6], w[1, 7]
                s0, s1, s2, s3 = ai[8 * g], ai[8 * g + 1], ai[8 * g + 2], ai[8 * g + 3]
                s4, s5, s6, s7 = ai[8 * g + 4], ai[8 * g + 5], ai[8 * g + 6], ai[8 * g + 7]
                for a in range(ch):
                    x, y = c0[a], c1[a]
                    s0[a] += p0 * x + q0 * y
                    s1[a] += p1 * x + q1 * y
                    s2[a] += p2 * x + q2 * y
                    s3[a] += p3 * x + q3 * y
                    s4[a] += p4 * x + q4 * y
                    s5[a] += p5 * x + q5 * y
                    s6[a] += p6 * x + q6 * y
                    s7[a] += p7 * x + q7 * y


@jit(inline="always", contract=True)
def _signed_masses(i, j, na, qf, tau, width, signs, acc, out):
    """``out[a]``: the signed differences of ``F`` that make input bin ``i``'s mass in output
    bin ``j`` (before the clamp at 0 and ``p_i``) for each input of the chunk."""
    k1 = qf.shape[0] // signs.shape[0]
    for a in range(na):
        out[a] = 0.0
    for piece in range(signs.shape[0]):
        for end in range(2):                         # F at t_{j+1} (+), then at t_j (-)
            f = qf[piece * k1 + j + 1 - end]
            w = signs[piece] if end == 0 else -signs[piece]
            if f >= 0:
                base = tau[f] / width
                af = acc[i, f]
                for a in range(na):
                    out[a] += w * (base + af[a])
            elif f == -2:                            # +inf: F = 1
                for a in range(na):
                    out[a] += w


@jit(contract=True)
def _masses(i, j, na, p, qf, tau, width, signs, acc, out):
    """``out[a]``: the mass of input bin ``i``, output bin ``j`` (``p_i`` times the signed
    differences of ``F``, clamped at 0) for each input of the chunk."""
    _signed_masses(i, j, na, qf, tau, width, signs, acc, out)
    for a in range(na):
        out[a] = max(out[a], 0.0) * p[i]


@jit(contract=True)
def _mutual_information(na, p, qf, tau, width, signs, acc, mr, row, cols, kept, mi):
    """The MI of each chunk input's joint, renormalised over its kept mass, in the form of
    :func:`ei_jax._src.info.plugin.mi_of_probabilities` (so a single input bin gives exactly
    0): ``sum P log2 P - sum P_x log2 P_x - sum P_y log2 P_y``, clamped at 0."""
    k_in = p.shape[0]
    k_out = qf.shape[0] // signs.shape[0] - 1
    for a in range(na):
        kept[a] = 0.0
        mi[a] = 0.0
    for i in range(k_in):
        for j in range(k_out):
            _masses(i, j, na, p, qf, tau, width, signs, acc, mr)
            for a in range(na):
                kept[a] += mr[a]
    for j in range(k_out):
        for a in range(na):
            cols[j, a] = 0.0
    for i in range(k_in):
        for a in range(na):
            row[a] = 0.0
        for j in range(k_out):
            _masses(i, j, na, p, qf, tau, width, signs, acc, mr)
            cj = cols[j]
            for a in range(na):
                pn = mr[a] / (kept[a] if kept[a] > 0 else 1.0)
                mi[a] += xlog2x(pn)
                row[a] += pn
                cj[a] += pn
        for a in range(na):
            mi[a] -= xlog2x(row[a])
    for j in range(k_out):
        cj = cols[j]
        for a in range(na):
            mi[a] -= xlog2x(cj[a])
    for a in range(na):
        mi[a] = max(mi[a], 0.0)


@jit(contract=True)
def _columns(kt, bias, lo, hi, m, p, grp, gw, qf, tfin, signs, terms, mi_out, kept_out,
             start, stop):
    """Columns ``start .. stop - 1`` of the layer (``kt``: the kernel transposed)."""
    n = kt.shape[1]
    k_in = m.shape[0]
    tf = tfin.shape[0]
    k_out = qf.shape[0] // signs.shape[0] - 1
    c = 0.5 * (lo + hi)
    span = hi - lo
    # rows padded to whole chunks, plus 8 so a row's stride is off a multiple of 4 KiB
    ch = min(CHUNK, -(-n // 8) * 8)    # a small layer's lanes: its inputs, rounded up to 8
    ld = -(-n // ch) * ch + 8
    vp = np.zeros(ld)
    fac = np.empty((terms, ld))
    loo = np.empty((terms, ld))
    beta = np.zeros((gw.shape[0], terms + 1, ld))
    run = np.empty(terms)
    x = np.empty(ld)
    ng = max(1, -(-tf // 8))
    basis8 = np.zeros((ng, -(-terms // 2), 2, 8))
    tau = np.empty(max(tf, 1))
    rz = np.empty((4, CHUNK))
    coef2 = np.empty((2, CHUNK))
    acc = np.empty((k_in, 8 * ng, CHUNK))
    mr = np.empty(CHUNK)
    row = np.empty(CHUNK)
    cols = np.empty((k_out, CHUNK))
    mi = np.empty(CHUNK)
    kept = np.empty(CHUNK)
    for j in range(start, stop):
        v = kt[j]
        _, _, _, _, half, width, u1, _ = window(v, span, c, bias[j], tfin, tau)
        for f in range(tf):
            for k in range(terms):
                basis8[f // 8, k // 2, k % 2, f % 8] = math.sin(tau[f] * ((k + 1.0) * u1))
        _factors(v, span, u1, gw, terms, x, fac, loo, beta, run)
        vp[:n] = v
        for a0 in range(0, n, ch):
            na = min(ch, n - a0)
            _series(vp, a0, ch, u1, half, c, m, grp, beta, basis8, rz, coef2, acc)
            _mutual_information(na, p, qf, tau, width, signs, acc, mr, row, cols, kept, mi)
            mi_out[a0:a0 + na, j] = mi[:na]
            kept_out[a0:a0 + na, j] = kept[:na]


def series_mi(kernel, bias, *, in_bins, ob, terms):
    """MI (bits, clamped at 0) and kept mass ``(n_in, n_out)`` float64 of every pair by the
    series (``n_in >= 4``), before :func:`~ei_jax._src.exact.columns.finish_column`'s zero
    weights and empty columns.

    Args:
      kernel: concrete ``(n_in, n_out)``; bias ``(n_out,)``.
      in_bins: ``(lo, hi, a, h, m, p)`` of :func:`~ei_jax._src.exact.preimages.input_bins`
        with the range.
      ob: :class:`~ei_jax._src.exact.preimages.OutputBins`; terms: series terms.
    """
    lo, hi, _, h, m, p = in_bins
    kt = np.ascontiguousarray(np.asarray(kernel, np.float64).T)
    bias = np.ascontiguousarray(bias, np.float64)
    group, widths = _bin_groups(h)
    t = np.asarray(ob.t, np.float64)
    fin = np.isfinite(t)
    qf = np.where(fin, np.cumsum(fin) - 1, np.where(t > 0, -2, -1)).astype(np.int64)
    mi = np.empty(kt.shape[::-1])
    kept = np.empty(kt.shape[::-1])
    over_columns(_columns, kt, bias, float(lo), float(hi), np.asarray(m, np.float64),
                 np.asarray(p, np.float64), group.astype(np.int64), np.asarray(widths, np.float64),
                 qf, t[fin], np.asarray(ob.signs, np.float64), int(terms), mi, kept,
                 columns=kt.shape[0], work=mi.size * len(m) * terms, desc="exact EI_parts")
    return mi, kept
