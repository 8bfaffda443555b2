"""Steps of the compiled EI_parts gradient (:mod:`~ei_jax._src.exact.parts_grad_compiled`)
other than the series: the MI's derivative with respect to the conditional CDFs, the
derivatives of the sinc factors, the cotangent of the leave-one-out products, and the window.
"""

import math

from ei_jax._src.exact.compiled import jit, rotation_start, xlog2x
from ei_jax._src.exact.parts_compiled import _signed_masses
from ei_jax._src.exact.sums import HOEFFDING

_INV_LN2 = 1.0 / math.log(2.0)


@jit(contract=True)
def _dsinc_dot(x, terms, wbar, out):
    """``out[l] = sum_k wbar[k, l] (k + 1) sinc'((k + 1) x_l)``, ``sinc'(z) = (cos z - sinc z) / z``
    with ``cos`` and ``sin`` by rotation; below ``|z| < 0.1`` its Taylor series to ``z^9``
    (no cancellation; truncation < 1e-19)."""
    n = x.shape[0]
    c1, s1, c, s = rotation_start(x)
    for l in range(n):
        out[l] = 0.0
    for k in range(terms):
        kk = k + 1.0
        row = wbar[k]
        for l in range(n):
            z = kk * x[l]
            z2 = z * z
            taylor = z * (-1.0 / 3.0 + z2 * (1.0 / 30.0 + z2 * (-1.0 / 840.0 + z2 * (
                1.0 / 45360.0 - z2 / 3991680.0))))
            d = taylor if abs(z) < 0.1 else (c[l] - s[l] / z) / z
            out[l] += row[l] * kk * d
            cn = c[l] * c1[l] - s[l] * s1[l]
            s[l] = s[l] * c1[l] + c[l] * s1[l]
            c[l] = cn


@jit(inline="always", contract=True)
def _dlog(x):
    """``d (x log2 x) / dx = log2 x + 1 / ln 2`` for ``x > 0``, 0 at 0 (``jnp.where``'s
    gradient of :func:`ei_jax._src.info.plugin.xlog2x`), vectorisable."""
    return xlog2x(x) / x + _INV_LN2 if x > 0 else 0.0


@jit(contract=True)
def _mi_grad(na, ch, g, p, qf, tau, width, signs, acc, mass, dh, lanes, fbar):
    """``fbar[i, f, a]``: the derivative of input ``a``'s bits (times its cotangent ``g[a]``)
    with respect to its conditional CDF at finite threshold ``f``, vectorised over the lanes
    (scratch: ``mass``, ``dh`` ``(k_in, k_out, CHUNK)``, ``lanes`` ``(4 + k_in + k_out, CHUNK)``)."""
    k_in = p.shape[0]
    pieces = signs.shape[0]
    k1 = qf.shape[0] // pieces
    k_out = k1 - 1
    kept, h, mean, gh = lanes[0], lanes[1], lanes[2], lanes[3]
    for i in range(k_in):
        for f in range(fbar.shape[1]):
            for a in range(ch):
                fbar[i, f, a] = 0.0
    for a in range(ch):
        kept[a] = 0.0
        h[a] = 0.0
        mean[a] = 0.0
    for i in range(k_in):
        for j in range(k_out):
            mij = mass[i, j]
            _signed_masses(i, j, ch, qf, tau, width, signs, acc, mij)
            for a in range(ch):
                kept[a] += max(mij[a], 0.0) * p[i]
    for a in range(ch):
        kept[a] = 1.0 / kept[a] if kept[a] > 0 else 0.0          # now its reciprocal
    for q in range(k_in + k_out):
        r = lanes[4 + q]
        for a in range(ch):
            r[a] = 0.0
    for i in range(k_in):
        row = lanes[4 + i]
        for j in range(k_out):
            col = lanes[4 + k_in + j]
            mij = mass[i, j]
            for a in range(ch):
                pn = max(mij[a], 0.0) * p[i] * kept[a]
                h[a] += xlog2x(pn)
                row[a] += pn
                col[a] += pn
    for q in range(k_in + k_out):
        r = lanes[4 + q]
        for a in range(ch):
            h[a] -= xlog2x(r[a])
            r[a] = _dlog(r[a])
    for i in range(k_in):
        row = lanes[4 + i]
        for j in range(k_out):
            col = lanes[4 + k_in + j]
            mij = mass[i, j]
            dij = dh[i, j]
            for a in range(ch):
                pn = max(mij[a], 0.0) * p[i] * kept[a]
                dij[a] = _dlog(pn) - row[a] - col[a]
                mean[a] += pn * dij[a]
    for a in range(ch):
        # the MI's clamp at 0 (0.5 at a tie, as jnp.maximum's), the renormalisation's 1 / kept
        gh[a] = (g[a] if h[a] > 0 else (0.5 * g[a] if h[a] == 0 else 0.0)) * kept[a] if a < na else 0.0
    for i in range(k_in):
        for j in range(k_out):
            mij = mass[i, j]
            dij = dh[i, j]
            for a in range(ch):
                clamp = 1.0 if mij[a] > 0 else (0.5 if mij[a] == 0 else 0.0)
                dij[a] = gh[a] * (dij[a] - mean[a]) * p[i] * clamp
            for pc in range(pieces):
                for end in range(2):
                    f = qf[pc * k1 + j + 1 - end]
                    if f >= 0:
                        w = signs[pc] if end == 0 else -signs[pc]
                        fr = fbar[i, f]
                        for a in range(ch):
                            fr[a] += w * dij[a]


@jit(contract=True)
def _loo_grad(fac, lbar, n, ft, lt, pre, suf, ot, acc, out):
    """``out[k, l] = sum_{A != l} lbar[k, A] prod_{l' != A, l} fac[k, l']`` (the cotangent of
    the factors through the leave-one-out products): a forward scan ``Q_{l+1} = Q_l fac_l +
    lbar_l pre_l`` and a backward one ``R_{l-1} = R_l fac_l + lbar_l suf_l``, then
    ``out_l = Q_l suf_l + pre_l R_l`` (``pre`` / ``suf``: exclusive prefix / suffix products).
    The scans run over ``l`` with the terms as the vector lanes, in ``(n, terms)`` copies
    ``ft``, ``lt``, ``pre``, ``suf``, ``ot`` (contiguous lanes)."""
    terms = fac.shape[0]
    for k in range(terms):
        fk = fac[k]
        lk = lbar[k]
        for l in range(n):
            ft[l, k] = fk[l]
            lt[l, k] = lk[l]
    for k in range(terms):
        acc[k] = 1.0
    for l in range(n):
        for k in range(terms):
            pre[l, k] = acc[k]
            acc[k] *= ft[l, k]
    for k in range(terms):
        acc[k] = 1.0
    for l in range(n - 1, -1, -1):
        for k in range(terms):
            suf[l, k] = acc[k]
            acc[k] *= ft[l, k]
    for k in range(terms):
        acc[k] = 0.0
    for l in range(n):
        for k in range(terms):
            ot[l, k] = acc[k] * suf[l, k]
            acc[k] = acc[k] * ft[l, k] + lt[l, k] * pre[l, k]
    for k in range(terms):
        acc[k] = 0.0
    for l in range(n - 1, -1, -1):
        for k in range(terms):
            ot[l, k] += pre[l, k] * acc[k]
            acc[k] = acc[k] * ft[l, k] + lt[l, k] * suf[l, k]
    for k in range(terms):
        ok = out[k]
        for l in range(n):
            ok[l] = ot[l, k]


@jit(contract=True)
def _window_grad(v, span, c, sd, root, dmax, half, hoeffding, lower, tfin, tbar, sc, dbar, n):
    """The column's window by the chain rule: ``tau_f = clip(t_f - lower, 0, width)``,
    ``u_1 = pi / width``, ``width = 2 half``, ``lower = b + c sum v - half``, ``half`` the
    exact or Hoeffding half-width (:func:`~ei_jax._src.exact.sums.window_half_width`). Adds
    the half-width's share to ``dbar`` (each input's range width) and returns the cotangent
    of ``lower`` (= the bias's; each weight gets ``c`` times it)."""
    width = 2.0 * half if half > 0 else 1.0
    u1 = math.pi / width
    lowbar = 0.0
    for f in range(tfin.shape[0]):
        t = tfin[f] - lower
        if 0.0 < t < width:
            lowbar -= tbar[f]
        elif t > width:
            sc[2] += tbar[f]
    sc[2] -= sc[0] * u1 / width
    halfbar = sc[1] + (2.0 * sc[2] if half > 0 else 0.0) - lowbar
    if half > 0:
        if 0.5 * sd <= hoeffding:
            for l in range(n):
                dbar[l] += 0.5 * halfbar
        else:
            ties = 0
            for l in range(n):
                if abs(v[l]) * span == dmax:
                    ties += 1
            for l in range(n):
                dl = abs(v[l]) * span
                dbar[l] += HOEFFDING * halfbar * dl / root
                if dl == dmax:
                    dbar[l] += 0.5 * halfbar / ties
    return lowbar
