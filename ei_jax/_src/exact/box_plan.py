"""Which neuron of a box is the base of the signed decomposition and which the CDF's, compiled
(numba): the choice with the fewest estimated simplices, and that estimate (``max_work``'s).

The decomposition (:mod:`ei_jax._src.exact.box_cells`) makes ``(c_b + 1) 2^n`` root simplices
for a base ``b`` (its corner simplices below each of its thresholds and the top), each cut by
the thresholds of every crossing neuron but ``b`` and the CDF's neuron. The roots reach far
outside the box (their signed sum cancels there), so which thresholds cut them depends on the
geometry: the estimate counts, per root and neuron, the box's thresholds of that neuron within
the neuron's range over the root (its vertices are ``1_S`` and ``1_S + r e_i``, so that range
is ``z(1_S) + r [min(0, min_i s_o,i / s_b,i), max(0, max_i ...)]``), and charges
``SPLIT_PIECES`` pieces per threshold. The earlier rule (the neuron crossing most as the base,
the Kuhn simplices when its ``kappa`` was too large) made 1.5-12 x more simplices on the
trained Iris layers (benchmarks/README.md).
"""

import numpy as np

from ei_jax._src.exact.simplex_ops import jit

#: Pieces a cut makes of a simplex it crosses, on average (measured on the Iris layers: the
#: estimate is then within a factor 2 of the pieces made).
SPLIT_PIECES = 5


@jit
def _argmax(cross, skip):
    best = 0 if skip != 0 else min(1, len(cross) - 1)
    for o in range(len(cross)):
        if o != skip and cross[o] > cross[best]:
            best = o
    return best


@jit
def _signed_work(b, z0, scaled, first, cross, t, est):
    """Adds to ``est[o]`` the estimated simplices with base ``b`` and CDF neuron ``o``: over
    the roots (corner ``S``, threshold ``j``), ``prod_middle (1 + SPLIT_PIECES k)``, ``k`` the
    neuron's box thresholds within its range over the root (vertices ``1_S``, ``1_S + r e_i``)."""
    n, m = scaled.shape
    zf, lo, hi, k = np.zeros(m), np.zeros(m), np.zeros(m), np.zeros(m)
    for o in range(m):
        zf[o] = z0[o]
        for i in range(n):
            if scaled[i, b] < 0:
                zf[o] += scaled[i, o]
            ratio = scaled[i, o] / scaled[i, b]     # of the flipped coordinates too
            lo[o], hi[o] = min(lo[o], ratio), max(hi[o], ratio)
    for S in range(1 << n):
        for j in range(cross[b] + 1):
            tau = t[first[b] + 1 + j] if j < cross[b] else np.inf
            reach = tau - zf[b]
            for i in range(n):
                if (S >> i) & 1:
                    reach -= abs(scaled[i, b])
            if j == cross[b]:
                reach = 0.0
                for i in range(n):
                    reach += 0.0 if (S >> i) & 1 else abs(scaled[i, b])
            if reach <= 0:
                continue
            whole = 1.0
            for o in range(m):
                k[o] = 0.0
                if o == b or cross[o] == 0:
                    continue
                corner = zf[o]
                for i in range(n):
                    if (S >> i) & 1:
                        corner += scaled[i, o] if scaled[i, b] >= 0 else -scaled[i, o]
                for s in range(cross[o]):
                    x = t[first[o] + 1 + s]
                    k[o] += corner + reach * lo[o] < x < corner + reach * hi[o]
                whole *= 1 + SPLIT_PIECES * k[o]
            for o in range(m):
                if o != b:
                    est[o] += whole / (1 + SPLIT_PIECES * k[o])


@jit
def plan(z0, scaled, first, cross, t, kappa_max, fact):
    """``(base, last, estimate)`` of a box some neuron crosses: the base (a crossing neuron whose
    ``kappa`` is at most ``kappa_max``) and CDF neuron ``last`` with the fewest estimated
    simplices (:func:`_signed_work`); with no such base, ``base = -1`` (the Kuhn simplices,
    estimated ``n! prod_{o != last} (1 + SPLIT_PIECES c_o)``, ``last`` crossing most)."""
    n, m = scaled.shape
    best, best_last, best_est = -1, -1, np.inf
    est = np.zeros(m)
    for b in range(m):
        if cross[b] == 0:
            continue
        sa, pa = 0.0, 1.0
        for i in range(n):
            sa += abs(scaled[i, b])
            pa *= abs(scaled[i, b])
        if not (2.0 ** n * sa ** n / (fact * pa) <= kappa_max):
            continue
        est[:] = 0.0
        _signed_work(b, z0, scaled, first, cross, t, est)
        for o in range(m):
            if o != b and (cross[o] > 0 or m == 1) and est[o] < best_est:
                best, best_last, best_est = b, o, est[o]
        if best_last < 0:                         # only the base crosses
            best, best_last, best_est = b, b, 0.0
    if best >= 0:
        return best, best_last, best_est
    last = _argmax(cross, -1)
    kuhn = fact
    for o in range(m):
        if o != last:
            kuhn *= 1 + SPLIT_PIECES * cross[o]
    return -1, last, kuhn


@jit
def box_work(z0, scaled, first, cross, t, kappa_max, fact):
    """Estimated simplices of a box (0 for one no neuron or only one crosses, a closed form):
    the larger of ``roots x prod_cut (1 + SPLIT_PIECES c_o)`` for :func:`plan`'s choice and for
    the earlier rule's (base: the neuron crossing most; Kuhn if its ``kappa`` is too large).
    :func:`plan`'s own count undercounts many cuts (pieces of pieces, up to 60 x on Iris layers
    scaled x 15) and so may this; the earlier rule's term keeps ``max_work`` as strict as it was."""
    n, m = scaled.shape
    nz = 0
    for o in range(m):
        nz += cross[o] > 0
    if nz == 0:
        return 0.0
    est = 0.0
    for rule in range(2):
        if rule == 0:
            base, last, _ = plan(z0, scaled, first, cross, t, kappa_max, fact)
        else:
            base = _argmax(cross, -1)
            sa, pa = 0.0, 1.0
            for i in range(n):
                sa += abs(scaled[i, base])
                pa *= abs(scaled[i, base])
            last = _argmax(cross, base)           # with Kuhn too, as the earlier estimate
            if not (2.0 ** n * sa ** n / (fact * pa) <= kappa_max):
                base = -1
        if base >= 0 and nz == 1:
            continue
        e = (cross[base] + 1) * 2.0 ** n if base >= 0 else fact
        for o in range(m):
            if o != base and o != last:
                e *= 1 + SPLIT_PIECES * cross[o]
        est = max(est, e)
    return est
