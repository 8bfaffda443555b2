"""The exact distribution over output cells of uniform inputs in one box, for many boxes.

In a box's unit coordinates ``u in [0, 1]^n`` every pre-activation is affine,
``z_o = z0_o + s_o . u``; output neuron ``o`` crosses ``c_o`` of its thresholds there. For each
box the neuron that crosses most is the *base* ``b``. With the coordinates flipped
(``u_i -> 1 - u_i``) so that ``s_b >= 0``, the part of the cube below a threshold ``tau`` of
``b`` is a signed sum of ``2^n`` simplices (inclusion-exclusion over the cube's lower faces):

.. math::
   1[u \\in [0,1]^n, s_b . u < \\tau] = \\sum_{S} (-1)^{|S|} 1[u \\ge 1_S, s_b . u < \\tau],

each ``Delta_S`` with vertices ``1_S`` and ``1_S + (\\tau - s_b . 1_S) / s_{b,i} e_i``. So

* a box that only ``b`` crosses is the closed form ``sum_S (-1)^{|S|} (\\tau - s_b . 1_S)_+^n /
  (n! prod s_b)`` (truncated powers) at each threshold;
* otherwise the simplices ``Delta_S`` are cut by the thresholds of the other crossing neurons
  but the one that crosses most (:func:`simplices.split`), whose bins come from the B-spline
  distribution function (:func:`simplices.linear_cdf`) instead of more cuts.

The signed sum cancels: its terms add up to at most ``kappa = 2^n (sum s_b)^n / (n! prod s_b)``
(``s_b`` relative to the cube). A box with ``kappa > KAPPA_MAX`` (a nearly axis-parallel base
neuron, or a zero weight) is cut from the cube's ``n!`` Kuhn simplices instead: slower (about
``5 x`` more pieces per cut), no cancellation.
"""

import math

import numpy as np

from ei_jax._src.exact import simplices

#: Above this cancellation bound (float64 error about ``kappa * 1e-16`` per probability), a box
#: is cut from its Kuhn simplices instead of the signed decomposition.
KAPPA_MAX = 1e6


def box_ranges(idx, starts, widths, kernel, bias, t):
    """Per box (rows of ``idx``, ``(B, n)`` bin indices): the low corner's ``z`` ``(B, m)``,
    the kernel scaled to the box ``(B, n, m)``, the bin of the lowest ``z`` ``(B, m)`` (``-1``
    below the range, ``k`` above) and how many thresholds each neuron crosses ``(B, m)``."""
    corner, h = starts[idx], widths[idx]
    z0 = corner @ kernel + bias
    scaled = h[:, :, None] * kernel[None]
    zmin = z0 + np.minimum(scaled, 0).sum(1)
    zmax = z0 + np.maximum(scaled, 0).sum(1)
    below = np.searchsorted(t, zmin.ravel(), side="right").reshape(zmin.shape)
    under = np.searchsorted(t, zmax.ravel(), side="left").reshape(zmax.shape)
    return z0, scaled, below - 1, np.maximum(under - below, 0)


def _refine(verts, box, labels, weight, z0, scaled, first, cross, t, base):
    """Entries ``(box, labels, mass)`` of simplices ``verts`` (unit coordinates of their box),
    each carrying ``weight``: cut by the thresholds of every crossing neuron but ``base`` and
    the one that crosses most after it, whose bins come from the distribution function."""
    m = scaled.shape[2]
    others = np.where(np.arange(m)[None] == base[:, None], -1, cross)
    last = np.argmax(others, axis=1)
    for o in range(m):
        skip = (last == o) | (base == o)
        for s in range(int(cross[~skip, o].max(initial=0))):
            active = (cross[box, o] > s) & ~skip[box]
            if not active.any():
                continue
            a = np.flatnonzero(active)
            b = box[a]
            values = (z0[b, o, None] + np.einsum("svn,sn->sv", verts[a], scaled[b, :, o])
                      - t[first[b, o] + 1 + s][:, None])
            new_v, parent, positive = simplices.split(verts[a], values)
            rest = np.flatnonzero(~active)
            new_labels = labels[a][parent]
            new_labels[:, o] += positive
            verts = np.concatenate([verts[rest], new_v])
            labels = np.concatenate([labels[rest], new_labels])
            weight = np.concatenate([weight[rest], weight[a][parent]])
            box = np.concatenate([box[rest], b[parent]])
    vol = simplices.volumes(verts) * weight
    o = last[box]
    c = np.where(others[box, o] > 0, cross[box, o], 0)
    width = int(c.max(initial=0))
    knots = z0[box, o, None] + np.einsum("svn,sn->sv", verts, scaled[box, :, o])
    j = np.arange(width)
    th = np.where(j < c[:, None], t[np.minimum(first[box, o, None] + 1 + j, len(t) - 1)], np.inf)
    cdf = simplices.linear_cdf(knots, th)
    prob = np.diff(np.concatenate([np.zeros((len(box), 1)), cdf, np.ones((len(box), 1))], axis=1))
    piece, step = np.nonzero(prob > 0)
    labels = labels[piece]
    labels[np.arange(len(piece)), o[piece]] += step
    return box[piece], labels, vol[piece] * prob[piece, step]


def _kuhn(z0, scaled, first, cross, t):
    """Entries of boxes cut from their ``n!`` Kuhn simplices (no cancellation)."""
    kuhn = simplices.kuhn_simplices(scaled.shape[1])
    box = np.repeat(np.arange(len(z0)), len(kuhn))
    return _refine(np.tile(kuhn, (len(z0), 1, 1)), box, first[box].copy(), np.ones(len(box)),
                   z0, scaled, first, cross, t, np.full(len(z0), -1))


def _subsets(n: int) -> np.ndarray:
    """All ``2^n`` subsets of ``range(n)`` as 0/1 rows ``(2^n, n)``."""
    return ((np.arange(1 << n)[:, None] >> np.arange(n)[None]) & 1).astype(np.float64)


def _signed(z0, scaled, first, cross, t, base, closed):
    """Entries of boxes through the signed decomposition along ``base`` (flipped already);
    ``closed``: only ``base`` crosses in every box (the truncated powers, no cuts)."""
    B, n, m = scaled.shape
    rows = np.arange(B)
    a = scaled[rows, :, base]                                        # (B, n) > 0
    cb = cross[rows, base]
    width = int(cb.max()) + 1
    j = np.arange(width)
    # thresholds tau_1 .. tau_c of the base, then its top (the whole cube)
    tau = np.where(j[None] < cb[:, None], t[np.minimum(first[rows, base, None] + 1 + j, len(t) - 1)],
                   (z0[rows, base] + a.sum(1))[:, None])
    S = _subsets(n)
    corner = S @ a.T                                                  # (2^n, B): s_b . 1_S
    reach = tau[:, :, None] - z0[rows, base, None, None] - corner.T[:, None, :]   # (B, J, 2^n)
    live = (j[None, :, None] <= cb[:, None, None]) & (reach > 0)
    bb, jj, ss = np.nonzero(live)
    sign = (-1.0) ** S[ss].sum(1)
    verts = np.repeat(S[ss][:, None, :], n + 1, axis=1)
    step = reach[bb, jj, ss][:, None] / a[bb]                         # (P, n)
    verts[:, 1:, :] += np.eye(n)[None] * step[:, :, None]
    labels = first[bb].copy()
    labels[np.arange(len(bb)), base[bb]] += jj
    if closed:                                      # each simplex is whole: its volume
        box, lab, mass = bb, labels, sign * np.prod(step, axis=1) / math.factorial(n)
    else:
        box, lab, mass = _refine(verts, bb, labels, sign, z0, scaled, first, cross, t, base)
    # the simplices of tau_j count below tau_j: +mass in the base's bin j - 1, -mass in bin j
    upper = lab[np.arange(len(box)), base[box]] - first[box, base[box]] < cb[box]
    lab2 = lab[upper].copy()
    lab2[np.arange(len(lab2)), base[box[upper]]] += 1
    return (np.concatenate([box, box[upper]]), np.concatenate([lab, lab2]),
            np.concatenate([mass, -mass[upper]]))


def cut_boxes(z0, scaled, first, cross, t):
    """Entries ``(box row, labels (E, m), mass)`` of boxes some neuron crosses: ``P(cell | box)``
    summed over a box's entries with equal labels (entries may repeat a cell, and signed ones
    cancel to within ``kappa * 1e-16``)."""
    B, n, m = scaled.shape
    base = np.argmax(cross, axis=1)
    rows = np.arange(B)
    flip = scaled[rows, :, base] < 0                                  # (B, n)
    z0 = z0 + np.einsum("bn,bnm->bm", flip.astype(np.float64), scaled)
    scaled = np.where(flip[:, :, None], -scaled, scaled)
    a = scaled[rows, :, base]
    with np.errstate(divide="ignore", over="ignore"):
        kappa = 2.0 ** n * a.sum(1) ** n / (math.factorial(n) * np.prod(a, axis=1))
    fast = np.isfinite(kappa) & (kappa <= KAPPA_MAX)
    alone = np.count_nonzero(cross, axis=1) == 1
    out = []
    for sel, how in ((fast & alone, "closed"), (fast & ~alone, "signed"), (~fast, "kuhn")):
        sel = np.flatnonzero(sel)
        if sel.size == 0:
            continue
        args = (z0[sel], scaled[sel], first[sel], cross[sel], t)
        box, lab, mass = _kuhn(*args) if how == "kuhn" else _signed(*args, base[sel], how == "closed")
        out.append((sel[box], lab, mass))
    if not out:
        return np.zeros((0,), np.int64), np.zeros((0, m), first.dtype), np.zeros((0,))
    return tuple(np.concatenate(x) for x in zip(*out))


#: Pieces a cut makes of a simplex it crosses, on average (measured on the Iris layers: the
#: estimate below is then within a factor 2 of the pieces made).
SPLIT_PIECES = 5


def estimate_pieces(z0, scaled, cross) -> np.ndarray:
    """Estimated simplices per box ``(B,)`` of :func:`cut_boxes` (0 for a box no neuron
    crosses or only one, whose closed form costs about nothing)."""
    B, n, m = scaled.shape
    base = np.argmax(cross, axis=1)
    a = np.abs(scaled[np.arange(B), :, base])
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        kappa = 2.0 ** n * a.sum(1) ** n / (math.factorial(n) * np.prod(a, axis=1))
    fast = np.isfinite(kappa) & (kappa <= KAPPA_MAX)
    c = np.sort(cross, axis=1).astype(np.float64)      # the base last, then the CDF's neuron
    middle = np.prod(1 + SPLIT_PIECES * c[:, :-2], axis=1) if m > 2 else np.ones(B)
    signed = (c[:, -1] + 1) * 2.0 ** n * middle
    kuhn = math.factorial(n) * middle * (1 + SPLIT_PIECES * c[:, -1])
    several = np.count_nonzero(cross, axis=1) >= 2
    return np.where(fast, np.where(several, signed, 0.0), kuhn)


def boxes(shape, start, stop):
    """Bin indices ``(stop - start, n)`` of flat input cells ``start .. stop - 1`` (row-major)."""
    return np.stack(np.unravel_index(np.arange(start, stop), shape), axis=1)


def work_estimate(kernel, bias, t, starts, widths) -> dict:
    """``{"cells", "crossed", "pairs", "work"}``: input cells with mass, those some neuron's
    thresholds cross, the bound ``sum_boxes prod_k (crossings_k + 1)`` on nonempty (box, output
    cell) pairs, and the simplices to expect (:func:`estimate_pieces`)."""
    n = kernel.shape[0]
    shape = (len(starts),) * n
    total = math.prod(shape)
    step = max(1, (1 << 20) // max(1, n * kernel.shape[1]))
    crossed = pairs = work = 0
    for s in range(0, total, step):
        idx = boxes(shape, s, min(total, s + step))
        idx = idx[np.all(widths[idx] > 0, axis=1)]
        z0, scaled, _, c = box_ranges(idx, starts, widths, kernel, bias, t)
        crossed += int(np.count_nonzero(np.any(c > 0, axis=1)))
        pairs += float(np.prod(c + 1, axis=1, dtype=np.float64).sum())
        work += float(estimate_pieces(z0, scaled, c).sum())
    cells = int(np.count_nonzero(widths > 0)) ** n
    return dict(cells=cells, crossed=crossed, pairs=pairs, work=work)
