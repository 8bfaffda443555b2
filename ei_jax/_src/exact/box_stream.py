"""Loops over every input cell of a layer, compiled (numba): the work estimate and the
mutual information's sums, streamed (no per-box entries kept).

For each box :func:`box_cells.box_local` gives ``P(output cell | box)`` in a small dense array;
with ``q`` its box-weighted, clipped mass where every label is inside ``[0, out_bins)`` (a kept
entry), :func:`mi_sums` adds ``S1 = sum q ln q``, ``S2 = sum_box px ln px`` (``px`` the box's
kept mass), ``K = sum px`` and ``py`` per output cell (a hash table, merged over threads by the
caller), and the mass of the entries dropped. With ``S3 = sum_y py ln py``, the joint
renormalised to ``K`` has

.. math::
   I = \\sum \\frac{q}{K} \\ln \\frac{q / K}{(px / K)(py / K)} = \\frac{S1 - S2 - S3}{K} + \\ln K.
"""

import numpy as np

from ei_jax._src.exact.box_cells import box_local, box_range
from ei_jax._src.exact.box_plan import box_work
from ei_jax._src.exact.simplex_ops import jit

# --- a hash table of output cells (rows of m labels) to mass ---------------------------------

@jit
def table_new(m, cap):
    """An empty table ``(keys (cap, m), values (cap,), used (cap,))``; ``cap`` a power of 2."""
    return np.zeros((cap, m), np.int64), np.zeros(cap), np.zeros(cap, np.bool_)


@jit
def _slot(keys, used, lab):
    h = np.int64(0)
    for o in range(len(lab)):
        h = (h ^ lab[o]) * np.int64(0x100000001B3)
    h ^= h >> 29
    mask = len(used) - 1
    i = h & mask
    while used[i]:
        same = True
        for o in range(len(lab)):
            if keys[i, o] != lab[o]:
                same = False
                break
        if same:
            return i
        i = (i + 1) & mask
    return i


@jit
def table_add(keys, vals, used, size, lab, q):
    """Adds ``q`` to row ``lab``'s value; returns ``(keys, vals, used, size)`` (a new table,
    twice the size, when it would be over half full)."""
    if 2 * (size + 1) > len(used):
        k2, v2, u2 = table_new(keys.shape[1], 2 * len(used))
        for i in range(len(used)):
            if used[i]:
                j = _slot(k2, u2, keys[i])
                u2[j] = True
                for o in range(keys.shape[1]):
                    k2[j, o] = keys[i, o]
                v2[j] = vals[i]
        keys, vals, used = k2, v2, u2
    i = _slot(keys, used, lab)
    if not used[i]:
        used[i] = True
        for o in range(len(lab)):
            keys[i, o] = lab[o]
        size += 1
    vals[i] += q
    return keys, vals, used, size

@jit
def work_estimate(kernel, bias, t, starts, widths, scale, kappa_max, fact):
    """``(crossed, pairs, work, most)`` over the input cells with mass: the cells some neuron's
    thresholds cross, the bound ``sum_boxes prod_o (c_o + 1)`` on nonempty (box, output cell)
    pairs, the simplices to expect (:func:`box_work`) and the largest box's ``prod (c_o + 1)``."""
    n, m = kernel.shape
    idx = np.zeros(n, np.int64)
    z0, scaled = np.zeros(m), np.zeros((n, m))
    first, cross = np.zeros(m, np.int64), np.zeros(m, np.int64)
    crossed, pairs, work, most = 0, 0.0, 0.0, 1.0
    for b in range(len(starts) ** n):
        if box_range(b, starts, widths, scale, kernel, bias, t, idx, z0, scaled, first, cross) <= 0:
            continue
        cells = 1.0
        for o in range(m):
            cells *= cross[o] + 1
        crossed += cells > 1
        pairs += cells
        most = max(most, cells)
        work += box_work(z0, scaled, first, cross, t, kappa_max, fact)
    return crossed, pairs, work, most



@jit
def mi_sums(kernel, bias, t, starts, widths, scale, out_bins, kappa_max, fact, tpl, tix, most,
            start, step):
    """The sums over boxes ``start, start + step, ...``: ``(S1, S2, K, dropped, total,
    simplices, keys, py, used)`` (module docstring; ``total`` all clipped mass, ``dropped`` that
    outside; ``py`` at the ``used`` rows of ``keys``)."""
    n, m = kernel.shape
    idx, stride, off, y = (np.zeros(n, np.int64), np.zeros(m, np.int64), np.zeros(m, np.int64),
                           np.zeros(m, np.int64))
    z0, scaled = np.zeros(m), np.zeros((n, m))
    first, cross = np.zeros(m, np.int64), np.zeros(m, np.int64)
    cap = 1 + m * len(t) * most
    sv, sl = np.zeros((cap, n + 1, n + m)), np.zeros((cap, m), np.int64)
    sk = np.zeros(cap, np.int64)
    root, points = np.zeros((n + 1, n + m)), np.zeros(((n + 1) * (n + 2), n + m))
    lab, lab0, perm = np.zeros(m, np.int64), np.zeros(m, np.int64), np.zeros(n, np.int64)
    values, knots, cs, order = np.zeros(n + 1), np.zeros(n + 1), np.zeros(n + 1), np.zeros(n + 1, np.int64)
    mat = np.zeros((n, n))
    cuts = np.zeros((2, m * len(t)), np.int64)
    local = np.zeros(64)
    keys, py, used = table_new(m, np.int64(64))
    size, made = np.int64(0), 0
    s1, s2, kept, dropped, total = 0.0, 0.0, 0.0, 0.0, 0.0
    for b in range(start, len(starts) ** n, step):
        pbox = box_range(b, starts, widths, scale, kernel, bias, t, idx, z0, scaled, first, cross)
        if pbox <= 0:
            continue
        cells = 1
        for o in range(m):
            stride[o] = cells
            cells *= cross[o] + 1
        if cells > len(local):
            local = np.zeros(2 * cells)
        for c in range(cells):
            local[c] = 0.0
        made += box_local(z0, scaled, first, cross, t, kappa_max, fact, stride, local, tpl, tix, sv,
                          sl, sk, lab, values, order, points, mat, knots, cs, root, lab0, perm,
                          cuts)
        px = 0.0
        for o in range(m):
            off[o] = 0
        for c in range(cells):
            if c > 0:                             # the next cell's labels (an odometer)
                o = 0
                while off[o] == cross[o]:
                    off[o] = 0
                    o += 1
                off[o] += 1
            q = pbox * local[c]
            if not q > 0:                         # signed round-off: clipped at 0
                continue
            total += q
            inside = True
            for o in range(m):
                y[o] = first[o] + off[o]
                inside = inside and 0 <= y[o] < out_bins
            if not inside:
                dropped += q
                continue
            s1 += q * np.log(q)
            px += q
            keys, py, used, size = table_add(keys, py, used, size, y, q)
        if px > 0:
            s2 += px * np.log(px)
            kept += px
    return s1, s2, kept, dropped, total, made, keys, py, used
