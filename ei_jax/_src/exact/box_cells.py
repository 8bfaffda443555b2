"""The exact distribution over output cells of uniform inputs in one box, compiled (numba).

In a box's unit coordinates ``u in [0, 1]^n`` every pre-activation is affine,
``z_o = z0_o + s_o . u``; output neuron ``o`` crosses ``c_o`` of its thresholds there. For each
box one crossing neuron is the *base* ``b`` and another the CDF's (below), the pair with the
fewest estimated simplices (:func:`box_plan.plan`). With the coordinates flipped
(``u_i -> 1 - u_i``) so that ``s_b >= 0``, the part of the cube below a threshold ``tau`` of
``b`` is a signed sum of ``2^n`` simplices (inclusion-exclusion over the cube's lower faces):

.. math::
   1[u \\in [0,1]^n, s_b . u < \\tau] = \\sum_{S} (-1)^{|S|} 1[u \\ge 1_S, s_b . u < \\tau],

each ``Delta_S`` with vertices ``1_S`` and ``1_S + (\\tau - s_b . 1_S) / s_{b,i} e_i``. So

* a box no neuron crosses is a point mass; a box that only ``b`` crosses is the closed form
  ``sum_S (-1)^{|S|} (\\tau - s_b . 1_S)_+^n / (n! prod s_b)`` (truncated powers) at each
  threshold;
* otherwise each ``Delta_S`` is cut, depth-first, by the thresholds of the other crossing
  neurons but the CDF's (:func:`simplex_ops.split`), whose bins come from the B-spline
  distribution function (:func:`simplex_ops.linear_cdf`) instead. A vertex carries each
  neuron's ``z`` with its coordinates (the split interpolates them: ``z`` is affine).

The signed sum cancels: its terms add up to at most ``kappa = 2^n (sum s_b)^n / (n! prod s_b)``
(``s_b`` relative to the cube). A box where every crossing neuron has ``kappa > KAPPA_MAX``
(nearly axis-parallel, or a zero weight) is cut from the cube's ``n!`` Kuhn simplices
``{u : u_{pi(1)} >= ... >= u_{pi(n)}}`` instead: slower (about ``5 x`` more pieces per cut),
no cancellation. A box's masses are summed per output cell in a dense array over its
``prod_o (c_o + 1)`` cells, and signed round-off (``kappa * 1e-16`` at most) is clipped at 0.

Everything here is one box at a time; :mod:`ei_jax._src.exact.box_stream` loops over them.
"""

import numpy as np

from ei_jax._src.exact.box_plan import plan
from ei_jax._src.exact.simplex_ops import jit, linear_cdf, sort_small, split, volume

#: Above this cancellation bound (float64 error about ``kappa * 1e-16`` per probability), a box
#: is cut from its Kuhn simplices instead of the signed decomposition (read at each call).
KAPPA_MAX = 1e6


@jit
def _search(t, x, right):
    """``np.searchsorted(t, x, side="right" if right else "left")``."""
    lo, hi = 0, len(t)
    while lo < hi:
        mid = (lo + hi) // 2
        if t[mid] < x or (right and t[mid] == x):
            lo = mid + 1
        else:
            hi = mid
    return lo


@jit
def box_range(b, starts, widths, scale, kernel, bias, t, idx, z0, scaled, first, cross):
    """Flat input cell ``b`` (row-major): its bins ``idx``, the low corner's ``z0 (m,)``, the
    kernel scaled to the box ``(n, m)``, the bin of the lowest ``z`` (``-1`` below the range,
    ``k`` above) and the thresholds each neuron crosses; returns the box's probability."""
    n, m = kernel.shape
    rem, p = b, 1.0
    for i in range(n - 1, -1, -1):
        idx[i] = rem % len(starts)
        rem //= len(starts)
    for i in range(n):
        p *= widths[idx[i]] / scale
    for o in range(m):
        acc, smin, smax = 0.0, 0.0, 0.0
        for i in range(n):
            acc += starts[idx[i]] * kernel[i, o]
            s = widths[idx[i]] * kernel[i, o]
            scaled[i, o] = s
            if s < 0:
                smin += s
            else:
                smax += s
        z0[o] = acc + bias[o]
        below = _search(t, z0[o] + smin, True)
        first[o] = below - 1
        cross[o] = max(_search(t, z0[o] + smax, False) - below, 0)
    return p


@jit
def _refine(root, lab0, w, upper, z0, first, t, cuts, ncut, last, c_last, stride, local,
            tpl, tix, sv, sl, sk, lab, values, order, points, mat, knots, cs, fact):
    """Cuts simplex ``root`` (labels ``lab0``, weight ``w``) by the thresholds ``cut`` depth-first
    and adds each piece's mass per bin of ``last`` to ``local`` (and ``-mass`` one base bin up
    at ``+ upper`` if ``upper``); returns the pieces. A vertex row is its ``n`` coordinates, then
    ``z_o`` of each neuron (affine: the split interpolates them with the coordinates)."""
    n1 = root.shape[0]
    n = n1 - 1
    m = len(first)
    top = 0
    sv[0] = root
    for o in range(m):
        sl[0, o] = lab0[o]
    sk[0] = 0
    leaves = 0
    while top >= 0:
        cur = sv[top]                             # split copies it out before writing there
        for o in range(m):
            lab[o] = sl[top, o]
        k = sk[top]
        top -= 1
        while k < ncut:                           # whole on one side: the next cut
            o, s = cuts[0, k], cuts[1, k]
            tau = t[first[o] + 1 + s]
            npos = 0
            for i in range(n1):
                values[i] = cur[i, n + o] - tau
                npos += values[i] >= 0
            if 0 < npos < n1:
                break
            lab[o] += npos == n1
            k += 1
        if k < ncut:
            got = split(cur, values, tpl, tix, points, order, sv, sk, top + 1)
            for g in range(top + 1, top + 1 + got):
                for o in range(m):
                    sl[g, o] = lab[o]
                sl[g, cuts[0, k]] += sk[g]
                sk[g] = k + 1
            top += got
            continue
        leaves += 1
        mass = w * volume(cur, mat) / fact
        at = 0
        for o in range(m):
            at += (lab[o] - first[o]) * stride[o]
        for i in range(n1):
            knots[i] = cur[i, n + last]
        sort_small(knots)
        below = 0.0
        for j in range(c_last + 1):
            x = t[first[last] + 1 + j] if j < c_last else np.inf
            if x <= knots[0]:
                continue
            cdf = linear_cdf(knots, x, cs) if x <= knots[n] else 1.0
            if cdf - below > 0:
                local[at + j * stride[last]] += mass * (cdf - below)
                if upper > 0:
                    local[at + j * stride[last] + upper] -= mass * (cdf - below)
            if x > knots[n]:                      # the rest of the bins: nothing
                break
            below = cdf
    return leaves


@jit
def box_local(z0, scaled, first, cross, t, kappa_max, fact, stride, local, tpl, tix, sv, sl, sk,
              lab, values, order, points, mat, knots, cs, root, lab0, perm, cuts):
    """Adds ``P(output cell | box)`` to ``local`` (dense over the box's cells, ``stride``;
    ``z0`` and ``scaled`` are flipped in place); returns the simplices made."""
    n, m = scaled.shape
    nz = 0
    for o in range(m):
        nz += cross[o] > 0
    if nz == 0:
        local[0] += 1.0
        return 0
    rbase, last, _ = plan(z0, scaled, first, cross, t, kappa_max, fact)
    kuhn = rbase < 0
    base = last if kuhn else rbase
    for i in range(n):
        if scaled[i, base] < 0:
            for o in range(m):
                z0[o] += scaled[i, o]
                scaled[i, o] = -scaled[i, o]
    c_last = 0 if last == rbase else cross[last]
    ncut = np.int64(0)                           # not a literal: one compiled _refine
    for o in range(m):
        if o != rbase and o != last:
            for s in range(cross[o]):
                cuts[0, ncut], cuts[1, ncut] = o, s
                ncut += 1
    made = 0
    for o in range(m):
        lab0[o] = first[o]
    for i in range(n):
        perm[i] = i
    cb, zb, top = cross[base], z0[base], 0.0
    for i in range(n):
        top += scaled[i, base]
    for r in range(int(fact) if kuhn else (cb + 1) << n):
        if kuhn:                                  # the n! Kuhn simplices, in lexicographic order
            if r > 0:
                _next_permutation(perm)
            sign, up = 1.0, 0
            for k in range(n + 1):
                for i in range(n):
                    root[k, i] = 0.0
            for k in range(n):
                for i in range(k + 1, n + 1):
                    root[i, perm[k]] = 1.0
        else:                                     # below each threshold of the base, then all
            j, S = r >> n, r & ((1 << n) - 1)
            tau = t[first[base] + 1 + j] if j < cb else zb + top
            up = stride[base] if j < cb else 0
            lab0[base] = first[base] + j
            corner, sign = 0.0, 1.0
            for i in range(n):
                if (S >> i) & 1:
                    corner += scaled[i, base]
                    sign = -sign
            reach = tau - zb - corner
            if reach <= 0:
                continue
            if nz == 1:                           # only the base crosses: a whole simplex
                mass = sign / fact
                for i in range(n):
                    mass *= reach / scaled[i, base]
                local[j * stride[base]] += mass
                if up:
                    local[j * stride[base] + up] -= mass
                made += 1
                continue
            for k in range(n + 1):
                for i in range(n):
                    root[k, i] = (S >> i) & 1
            for i in range(n):
                root[i + 1, i] += reach / scaled[i, base]
        for k in range(n + 1):                    # each neuron's z at the vertices
            for o in range(m):
                acc = z0[o]
                for i in range(n):
                    acc += root[k, i] * scaled[i, o]
                root[k, n + o] = acc
        made += _refine(root, lab0, sign, up, z0, first, t, cuts, ncut, last, c_last, stride,
                        local, tpl, tix, sv, sl, sk, lab, values, order, points, mat, knots, cs,
                        fact)
    return made


@jit
def _next_permutation(perm):
    """The next permutation in lexicographic order, in place (the last one: unchanged)."""
    n = len(perm)
    i = n - 2
    while i >= 0 and perm[i] > perm[i + 1]:
        i -= 1
    if i < 0:
        return
    j = n - 1
    while perm[j] < perm[i]:
        j -= 1
    perm[i], perm[j] = perm[j], perm[i]
    i, j = i + 1, n - 1
    while i < j:
        perm[i], perm[j] = perm[j], perm[i]
        i, j = i + 1, j - 1
