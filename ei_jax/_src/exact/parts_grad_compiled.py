"""The gradient of the exact EI_parts series, compiled for the CPU (numba): an analytic VJP.

The forward is :mod:`~ei_jax._src.exact.parts_compiled` (the notation of its
:func:`~ei_jax._src.exact.parts_compiled._columns`; the mathematics in
:mod:`ei_jax._src.exact.sums`). For one output column with weights ``v``, bias ``b`` and the
upstream cotangent ``g_A`` of each pair's bits, reverse mode runs, per column:

1. the forward series again, a chunk of inputs at a time, and the MI's derivative with
   respect to each conditional CDF value, ``Fbar[A, i, f]`` (through the renormalisation,
   the clamp of a mass at 0 and of the MI at 0, as ``jax.grad`` of the XLA path takes them);
2. the series backwards: ``Xbar[k, A, i] = sum_f Fbar S[k, f]`` (``S = sin(k u_1 tau_f)``)
   and the conditional densities ``D[A, i, f] = sum_k X k cos(k u_1 tau_f)``, which carry
   the thresholds' window positions and the first frequency ``u_1``; ``cos(k theta)`` and
   ``sin(k theta)`` by rotation, as the forward;
3. the factors backwards: the bin-width sincs, and the leave-one-out products by a prefix
   and a suffix scan of the cotangents (leave-two-out products without a division, so a
   factor may be 0 or change sign), then ``sinc'`` of every factor (rotation again);
4. the window (its Hoeffding or exact half-width, the threshold clamps) by the chain rule.

Cost: about twice the forward's series, plus the forward itself.
``tests/unit/exact/test_parts_grad_compiled.py`` checks it against ``jax.grad`` of the XLA
path and against central differences.
"""

import math

import numpy as np

from ei_jax._src.exact.compiled import jit, over_columns, window
from ei_jax._src.exact.parts_compiled import _loo_factors, _series, _times_loo, _width_sincs
from ei_jax._src.exact.parts_grad_series import _series_grad, _series_grad8
from ei_jax._src.exact.parts_grad_steps import _dsinc_dot, _loo_grad, _mi_grad, _window_grad

#: Inputs per chunk of the backward pass: a bin's ``Fbar`` and ``D`` rows (2 x thresholds x
#: CHUNK float64) stay in L1 while every term passes over them.
CHUNK = 128


@jit(contract=True)
def _columns_grad(kt, bias, gt, lo, hi, m, p, grp, gw, qf, tfin, signs, terms, gk, gb,
                  start, stop):
    """Gradients of columns ``start .. stop - 1``: ``gk[j]`` (the column's weights) and
    ``gb[j]`` (its bias) of ``sum_A gt[j, A] bits[A, j]``."""
    n = kt.shape[1]
    k_in = m.shape[0]
    tf = tfin.shape[0]
    ngw = gw.shape[0]
    k_out = qf.shape[0] // signs.shape[0] - 1
    c = 0.5 * (lo + hi)
    span = hi - lo
    ch = min(CHUNK, -(-n // 8) * 8)
    ld = -(-n // ch) * ch + 8
    vp = np.zeros(ld)
    fac = np.empty((terms, ld))
    loo = np.empty((terms, ld))
    beta = np.zeros((ngw, terms + 1, ld))
    sg = np.empty((ngw, terms, ld))
    betabar = np.zeros((ngw, terms + 1, ld))
    lbar = np.empty((terms, ld))
    pre = np.empty((ld, terms))
    suf = np.empty((ld, terms))
    ft = np.empty((ld, terms))
    lt = np.empty((ld, terms))
    ot = np.empty((ld, terms))
    run = np.empty(terms)
    x = np.empty(ld)
    xbar = np.empty(ld)
    vbar = np.zeros(ld)
    dbar = np.empty(n)
    ng = max(1, -(-tf // 8))
    basis8 = np.zeros((ng, -(-terms // 2), 2, 8))
    cbasis8 = np.zeros((ng, -(-terms // 2), 2, 8))
    tau = np.empty(tf)
    tbar = np.empty(tf)
    sc = np.empty(3)
    rz = np.empty((4, CHUNK))
    xs = np.empty((9, CHUNK))
    coef2 = np.empty((2, CHUNK))
    acc = np.empty((k_in, 8 * ng, CHUNK))
    fbar = np.zeros((k_in, 8 * ng, CHUNK))
    dacc = np.empty((k_in, 8 * ng, CHUNK))
    mass = np.empty((k_in, k_out, CHUNK))
    dh = np.empty((k_in, k_out, CHUNK))
    lanes = np.empty((4 + k_in + k_out, CHUNK))
    for j in range(start, stop):
        v = kt[j]
        g = gt[j]
        gb[j] = 0.0
        for l in range(n):
            gk[j, l] = 0.0
        live = False
        for l in range(n):
            live = live or g[l] != 0.0
        if not live:
            continue
        sd, root, dmax, hoeffding, half, width, u1, lower = window(v, span, c, bias[j], tfin, tau)
        for f in range(tf):
            tbar[f] = 0.0
            for k in range(terms):
                arg = tau[f] * ((k + 1.0) * u1)
                basis8[f // 8, k // 2, k % 2, f % 8] = math.sin(arg)
                cbasis8[f // 8, k // 2, k % 2, f % 8] = (k + 1.0) * math.cos(arg)
        # the forward's factors (parts_compiled._factors), keeping the bin-width sincs sg
        _loo_factors(v, span, u1, terms, x, fac, loo, run)
        _width_sincs(v, u1, gw, terms, x, sg)
        _times_loo(sg, loo, n, beta)
        for q in range(ngw):
            for k in range(terms + 1):
                for l in range(n):
                    betabar[q, k, l] = 0.0
        vp[:n] = v
        for l in range(ld):
            vbar[l] = 0.0
        sc[0] = 0.0
        sc[1] = 0.0
        sc[2] = 0.0
        for a0 in range(0, n, ch):
            na = min(ch, n - a0)
            _series(vp, a0, ch, u1, half, c, m, grp, beta, basis8, rz, coef2, acc)
            _mi_grad(na, ch, g[a0:a0 + na], p, qf, tau, width, signs, acc, mass, dh, lanes, fbar)
            if ng == 1:                       # at most 8 finite thresholds: one sweep fused
                _series_grad8(vp, a0, ch, u1, half, c, m, grp, beta, basis8, cbasis8, tau, fbar, rz,
                              xs, dacc, betabar, sc, tbar, vbar)
            else:
                _series_grad(vp, a0, ch, u1, half, c, m, grp, beta, basis8, cbasis8, tau, fbar, rz,
                             xs, dacc, betabar, sc, tbar, vbar)
        # beta = loo sg: the bin-width sincs, then the leave-one-out products' factors
        for k in range(terms):
            for l in range(n):
                lbar[k, l] = 0.0
        for q in range(ngw):
            for k in range(terms):
                for l in range(n):
                    lbar[k, l] += betabar[q, k, l] * sg[q, k, l]
                    betabar[q, k, l] *= loo[k, l]
            for l in range(n):
                x[l] = 0.5 * u1 * abs(v[l]) * gw[q]
            _dsinc_dot(x[:n], terms, betabar[q], xbar)
            for l in range(n):
                sc[0] += xbar[l] * 0.5 * abs(v[l]) * gw[q]
                vbar[l] += xbar[l] * 0.5 * u1 * gw[q] * np.sign(v[l])
        for k in range(terms):                      # loo carries the scale 2 / (k pi)
            sk = (2.0 / math.pi) / (k + 1.0)
            for l in range(n):
                lbar[k, l] *= sk
        _loo_grad(fac, lbar, n, ft, lt, pre, suf, ot, run, loo)        # loo: now the factors' cotangent
        for l in range(n):
            x[l] = u1 * (0.5 * (abs(v[l]) * span))
        _dsinc_dot(x[:n], terms, loo, xbar)
        for l in range(n):
            sc[0] += xbar[l] * x[l] / u1
            dbar[l] = xbar[l] * 0.5 * u1
        gb[j] = _window_grad(v, span, c, sd, root, dmax, half, hoeffding, lower, tfin, tbar, sc,
                             dbar, n)
        for l in range(n):
            gk[j, l] = vbar[l] + c * gb[j] + dbar[l] * span * np.sign(v[l])

def series_grad(kernel, bias, cot, *, in_bins, ob, terms):
    """The gradient ``(d kernel, d bias)`` float64 of ``sum(cot * bits)``, ``bits`` the series'
    MI of every pair (:func:`~ei_jax._src.exact.parts_compiled.series_mi`) before the zero-weight
    and empty-column masks: the caller zeroes ``cot`` where those replace the value.

    Args:
      kernel: concrete ``(n_in, n_out)``; bias ``(n_out,)``; cot ``(n_in, n_out)``.
      in_bins, ob, terms: as :func:`~ei_jax._src.exact.parts_compiled.series_mi`.
    """
    from ei_jax._src.exact.conditionals import _bin_groups
    lo, hi, _, h, m, p = in_bins
    kt = np.ascontiguousarray(np.asarray(kernel, np.float64).T)
    bias = np.ascontiguousarray(bias, np.float64)
    gt = np.ascontiguousarray(np.asarray(cot, np.float64).T)
    group, widths = _bin_groups(h)
    t = np.asarray(ob.t, np.float64)
    fin = np.isfinite(t)
    qf = np.where(fin, np.cumsum(fin) - 1, np.where(t > 0, -2, -1)).astype(np.int64)
    gk = np.empty_like(kt)
    gb = np.empty_like(bias)
    over_columns(_columns_grad, kt, bias, gt, float(lo), float(hi), np.asarray(m, np.float64),
                 np.asarray(p, np.float64), group.astype(np.int64),
                 np.asarray(widths, np.float64), qf, t[fin], np.asarray(ob.signs, np.float64),
                 int(terms), gk, gb, columns=kt.shape[0], work=3 * kt.size * len(m) * terms,
                 desc="exact EI_parts gradient")
    return gk.T, gb
