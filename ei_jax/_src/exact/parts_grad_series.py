"""The series part of the compiled EI_parts gradient (:mod:`~ei_jax._src.exact.parts_grad_compiled`):
for a chunk of inputs, the cotangents of the coefficients' factors, of the phases (each
input bin's conditional mean in the window) and of the thresholds' window positions, from
``Fbar`` (the MI's derivative with respect to each conditional CDF value).

With ``X[k, A, i] = beta[k, A] cos(k theta[A, i])`` and ``F = tau / W + sum_k X sin(k u_1 tau)``:
``Xbar = sum_f Fbar S`` (``S = sin(k u_1 tau_f)``) gives ``betabar += Xbar cos`` and
``thetabar -= Xbar beta k sin``; the conditional densities ``D = sum_k X k cos(k u_1 tau_f)``
give the thresholds' and ``u_1``'s shares. ``cos`` and ``sin`` of ``k theta`` by rotation,
two terms per pass (the forward's ``basis8`` layout, 8 thresholds a group).
"""

from ei_jax._src.exact.compiled import cos_sin_0pi, jit


@jit(inline="always", contract=True)
def _bin_start(v, a0, ch, u1, half, mc, rz, th, di):
    """One input bin's start: its phases' rotation (``rz``: step and state, ``k = 1``), its
    phases' cotangents ``th`` and densities ``di`` zeroed."""
    cr, sr, cc, ss = rz[0], rz[1], rz[2], rz[3]
    for a in range(ch):
        cr[a], sr[a] = cos_sin_0pi(u1 * (half + v[a0 + a] * mc))
        cc[a] = cr[a]
        ss[a] = sr[a]
        th[a] = 0.0
    for f in range(di.shape[0]):
        df = di[f]
        for a in range(ch):
            df[a] = 0.0


@jit(contract=True)
def _phase_sums(v, a0, ch, u1, half, mc, tau, fi, di, th, sc, tbar, vbar):
    """One input bin's shares: ``sc[0]`` (``u_1``), ``sc[1]`` (the half-width), ``sc[2]``
    (the window width), ``tbar`` (the thresholds' window positions) and ``vbar`` (each
    weight, through its conditional mean) from the phases' cotangents ``th``, ``Fbar`` rows
    ``fi`` and densities ``di``."""
    width = 2.0 * half if half > 0 else 1.0
    for a in range(ch):
        sc[0] += th[a] * (half + v[a0 + a] * mc)
        sc[1] += u1 * th[a]
        vbar[a0 + a] += u1 * th[a] * mc
    for f in range(tau.shape[0]):
        ff = fi[f]
        df = di[f]
        for a in range(ch):
            tbar[f] += ff[a] * (1.0 / width + u1 * df[a])
            sc[0] += ff[a] * tau[f] * df[a]
            sc[2] -= ff[a] * tau[f] / (width * width)


@jit(contract=True)
def _series_grad(v, a0, ch, u1, half, c, m, grp, beta, basis8, cbasis8, tau, fbar, rz, xs, dacc,
                 betabar, sc, tbar, vbar):
    """The series backwards for inputs ``a0 .. a0 + ch``: adds to ``betabar`` (the
    coefficients' factors), ``sc`` (``u_1``'s, the half-width's and the window width's
    cotangents), ``tbar`` (each finite threshold's window position's) and ``vbar`` (each
    weight's through its conditional means).

    Two terms per pass as the forward (``basis8``: ``sin(k u_1 tau)``, ``cbasis8``:
    ``k cos(k u_1 tau)``, 8 thresholds a group): one sweep of the lanes gathers
    ``Xbar = sum_f Fbar S`` for both terms, a second adds both terms into the densities ``D``."""
    k_in = m.shape[0]
    ng = basis8.shape[0]
    pairs = basis8.shape[1]
    cr, sr, cc, ss = rz[0], rz[1], rz[2], rz[3]
    c0, s0, c1, s1, x0, x1, xb0, xb1, th = (xs[0], xs[1], xs[2], xs[3], xs[4], xs[5], xs[6],
                                            xs[7], xs[8])
    for i in range(k_in):
        mc = m[i] - c
        di = dacc[i]
        fi = fbar[i]
        _bin_start(v, a0, ch, u1, half, mc, rz, th, di)
        bg = beta[grp[i]]
        bbg = betabar[grp[i]]
        for h in range(pairs):
            b0, b1 = bg[2 * h, a0:a0 + ch], bg[2 * h + 1, a0:a0 + ch]
            for a in range(ch):
                x, y = cc[a], ss[a]
                c0[a] = x
                s0[a] = y
                x0[a] = b0[a] * x
                x, y = x * cr[a] - y * sr[a], y * cr[a] + x * sr[a]
                c1[a] = x
                s1[a] = y
                x1[a] = b1[a] * x
                cc[a] = x * cr[a] - y * sr[a]
                ss[a] = y * cr[a] + x * sr[a]
                xb0[a] = 0.0
                xb1[a] = 0.0
            for g in range(ng):
                w = basis8[g, h]
                p0, p1, p2, p3, p4, p5, p6, p7 = w[0, 0], w[0, 1], w[0, 2], w[0, 3], w[0, 4], w[0, 5], w[0, 6], w[0, 7]
                q0, q1, q2, q3, q4, q5, q6, q7 = w[1, 0], w[1, 1], w[1, 2], w[1, 3], w[1, 4], w[1, 5], w[1, 6], w[1, 7]
                f0, f1, f2, f3 = fi[8 * g], fi[8 * g + 1], fi[8 * g + 2], fi[8 * g + 3]
                f4, f5, f6, f7 = fi[8 * g + 4], fi[8 * g + 5], fi[8 * g + 6], fi[8 * g + 7]
                for a in range(ch):
                    e0, e1, e2, e3, e4, e5, e6, e7 = f0[a], f1[a], f2[a], f3[a], f4[a], f5[a], f6[a], f7[a]
                    xb0[a] += (p0 * e0 + p1 * e1 + p2 * e2 + p3 * e3) + (p4 * e4 + p5 * e5 + p6 * e6 + p7 * e7)
                    xb1[a] += (q0 * e0 + q1 * e1 + q2 * e2 + q3 * e3) + (q4 * e4 + q5 * e5 + q6 * e6 + q7 * e7)
                z = cbasis8[g, h]
                p0, p1, p2, p3, p4, p5, p6, p7 = z[0, 0], z[0, 1], z[0, 2], z[0, 3], z[0, 4], z[0, 5], z[0, 6], z[0, 7]
                q0, q1, q2, q3, q4, q5, q6, q7 = z[1, 0], z[1, 1], z[1, 2], z[1, 3], z[1, 4], z[1, 5], z[1, 6], z[1, 7]
                f0, f1, f2, f3 = di[8 * g], di[8 * g + 1], di[8 * g + 2], di[8 * g + 3]
                f4, f5, f6, f7 = di[8 * g + 4], di[8 * g + 5], di[8 * g + 6], di[8 * g + 7]
                for a in range(ch):
                    x, y = x0[a], x1[a]
                    f0[a] += p0 * x + q0 * y
                    f1[a] += p1 * x + q1 * y
                    f2[a] += p2 * x + q2 * y
                    f3[a] += p3 * x + q3 * y
                    f4[a] += p4 * x + q4 * y
                    f5[a] += p5 * x + q5 * y
                    f6[a] += p6 * x + q6 * y
                    f7[a] += p7 * x + q7 * y
            k0 = 2.0 * h + 1.0
            bb0, bb1 = bbg[2 * h, a0:a0 + ch], bbg[2 * h + 1, a0:a0 + ch]
            for a in range(ch):
                th[a] -= k0 * xb0[a] * b0[a] * s0[a] + (k0 + 1.0) * xb1[a] * b1[a] * s1[a]
                bb0[a] += xb0[a] * c0[a]
                bb1[a] += xb1[a] * c1[a]
        _phase_sums(v, a0, ch, u1, half, mc, tau, fi, di, th, sc, tbar, vbar)


@jit(contract=True)
def _series_grad8(v, a0, ch, u1, half, c, m, grp, beta, basis8, cbasis8, tau, fbar, rz, xs, dacc,
                  betabar, sc, tbar, vbar):
    """:func:`_series_grad` for at most 8 finite thresholds (one group): the rotation, the
    ``Xbar`` sums and the factors' and phases' cotangents in one sweep of the lanes per pair
    of terms, the densities in a second."""
    k_in = m.shape[0]
    pairs = basis8.shape[1]
    cr, sr, cc, ss = rz[0], rz[1], rz[2], rz[3]
    x0, x1, th = xs[4], xs[5], xs[8]
    for i in range(k_in):
        mc = m[i] - c
        di = dacc[i]
        fi = fbar[i]
        _bin_start(v, a0, ch, u1, half, mc, rz, th, di)
        f0, f1, f2, f3, f4, f5, f6, f7 = fi[0], fi[1], fi[2], fi[3], fi[4], fi[5], fi[6], fi[7]
        d0, d1, d2, d3, d4, d5, d6, d7 = di[0], di[1], di[2], di[3], di[4], di[5], di[6], di[7]
        bg = beta[grp[i]]
        bbg = betabar[grp[i]]
        for h in range(pairs):
            b0, b1 = bg[2 * h, a0:a0 + ch], bg[2 * h + 1, a0:a0 + ch]
            bb0, bb1 = bbg[2 * h, a0:a0 + ch], bbg[2 * h + 1, a0:a0 + ch]
            w = basis8[0, h]
            p0, p1, p2, p3, p4, p5, p6, p7 = w[0, 0], w[0, 1], w[0, 2], w[0, 3], w[0, 4], w[0, 5], w[0, 6], w[0, 7]
            q0, q1, q2, q3, q4, q5, q6, q7 = w[1, 0], w[1, 1], w[1, 2], w[1, 3], w[1, 4], w[1, 5], w[1, 6], w[1, 7]
            k0 = 2.0 * h + 1.0
            for a in range(ch):
                e0, e1, e2, e3, e4, e5, e6, e7 = f0[a], f1[a], f2[a], f3[a], f4[a], f5[a], f6[a], f7[a]
                xa = (p0 * e0 + p1 * e1 + p2 * e2 + p3 * e3) + (p4 * e4 + p5 * e5 + p6 * e6 + p7 * e7)
                xc = (q0 * e0 + q1 * e1 + q2 * e2 + q3 * e3) + (q4 * e4 + q5 * e5 + q6 * e6 + q7 * e7)
                x, y = cc[a], ss[a]
                r, s = cr[a], sr[a]
                u, z = x * r - y * s, y * r + x * s
                cc[a] = u * r - z * s
                ss[a] = z * r + u * s
                x0[a] = b0[a] * x
                x1[a] = b1[a] * u
                th[a] -= k0 * xa * b0[a] * y + (k0 + 1.0) * xc * b1[a] * z
                bb0[a] += xa * x
                bb1[a] += xc * u
            z8 = cbasis8[0, h]
            p0, p1, p2, p3, p4, p5, p6, p7 = z8[0, 0], z8[0, 1], z8[0, 2], z8[0, 3], z8[0, 4], z8[0, 5], z8[0, 6], z8[0, 7]
            q0, q1, q2, q3, q4, q5, q6, q7 = z8[1, 0], z8[1, 1], z8[1, 2], z8[1, 3], z8[1, 4], z8[1, 5], z8[1, 6], z8[1, 7]
            for a in range(ch):
                x, y = x0[a], x1[a]
                d0[a] += p0 * x + q0 * y
                d1[a] += p1 * x + q1 * y
                d2[a] += p2 * x + q2 * y
                d3[a] += p3 * x + q3 * y
                d4[a] += p4 * x + q4 * y
                d5[a] += p5 * x + q5 * y
                d6[a] += p6 * x + q6 * y
                d7[a] += p7 * x + q7 * y
        _phase_sums(v, a0, ch, u1, half, mc, tau, fi, di, th, sc, tbar, vbar)
