"""Compiled (numba) operations on one simplex: split by a hyperplane, volume, B-spline CDF.

The mathematics of :mod:`ei_jax._src.exact.simplices` (whose Python code builds the split
templates these functions apply), one simplex at a time so that the box kernels
(:mod:`ei_jax._src.exact.box_cells`) can walk the pieces depth-first without materialising
them. Everything is float64; the functions write into caller-owned scratch arrays and
allocate nothing.

numba imports in about 0.2 s, so only the exact vector EI imports this module (lazily).
"""

from ei_jax._src.exact.compiled import jit


@jit
def split(v, values, tpl, tix, points, order, out_v, out_pos, at):
    """Cuts simplex ``v`` ``(n + 1, w)`` (``n`` coordinates, then any affine functions' values,
    interpolated with them) by the hyperplane ``L = 0`` (``values``: ``L`` at its
    vertices, both signs present) and writes the pieces' vertices to ``out_v[at:]`` and
    whether each lies on the side ``L >= 0`` (1, else 0) to ``out_pos[at:]``; returns how many.

    The vertices with ``L >= 0`` go first (in their order), then the others; the edge point
    of the ``i``-th positive and ``j``-th negative vertex is point ``n + 1 + i q + j``, and the
    templates (:func:`simplices.split_templates` for ``p`` positive vertices: rows
    ``tix[2 side, p] + range(tix[2 side + 1, p])`` of ``tpl``, side 0 the positive piece, packed by
    :func:`simplices.packed_templates`) index into those points."""
    n1, n = v.shape
    p = 0
    for i in range(n1):
        if values[i] >= 0:
            order[p] = i
            p += 1
    r = p
    for i in range(n1):
        if values[i] < 0:
            order[r] = i
            r += 1
    q = n1 - p
    for i in range(n1):
        for d in range(n):
            points[i, d] = v[order[i], d]
    for i in range(p):
        li = values[order[i]]
        for j in range(q):
            alpha = li / (li - values[order[p + j]])
            row = n1 + i * q + j
            for d in range(n):
                vp = points[i, d]
                points[row, d] = vp + alpha * (points[p + j, d] - vp)
    count = 0
    for side in range(2):
        for s in range(tix[2 * side + 1, p]):
            for a in range(n1):
                src = tpl[tix[2 * side, p] + s, a]
                for d in range(n):
                    out_v[at + count, a, d] = points[src, d]
            out_pos[at + count] = 1 - side
            count += 1
    return count


@jit
def volume(v, mat):
    """``|det(v_1 - v_0, ..., v_n - v_0)|`` of simplex ``v`` ``(n + 1, n + extra)`` (its first
    ``n`` columns; divide by ``n!`` for its volume); Gaussian elimination with partial pivoting
    in scratch ``mat (n, n)``."""
    n = mat.shape[0]
    for r in range(n):
        for c in range(n):
            mat[r, c] = v[r + 1, c] - v[0, c]
    det = 1.0
    for c in range(n):
        piv, best = c, abs(mat[c, c])
        for r in range(c + 1, n):
            if abs(mat[r, c]) > best:
                piv, best = r, abs(mat[r, c])
        if best == 0.0:
            return 0.0
        if piv != c:
            for k in range(c, n):
                mat[c, k], mat[piv, k] = mat[piv, k], mat[c, k]
        det *= mat[c, c]
        for r in range(c + 1, n):
            f = mat[r, c] / mat[c, c]
            for k in range(c + 1, n):
                mat[r, k] -= f * mat[c, k]
    return abs(det)


@jit
def sort_small(x):
    """Sorts a short float64 array in place (insertion sort)."""
    for i in range(1, len(x)):
        key = x[i]
        j = i - 1
        while j >= 0 and x[j] > key:
            x[j + 1] = x[j]
            j -= 1
        x[j + 1] = key


@jit
def linear_cdf(k, x, c):
    """``P(L(u) < x)`` for ``u`` uniform on a simplex, from the sorted values ``k (n + 1,)``
    of ``L`` at its vertices (scratch ``c (n + 1,)``).

    ``L(u)`` has the B-spline density with knots ``k`` (Curry and Schoenberg); its distribution
    function follows the de Boor-like recurrence ``C[k_i..k_{i+d}](x) = ((x - k_i)
    C[k_i..k_{i+d-1}](x) + (k_{i+d} - x) C[k_{i+1}..k_{i+d}](x)) / (k_{i+d} - k_i)`` from
    ``C[k_i](x) = 1[x > k_i]``: between the knots a convex combination, so no cancellation
    (equal knots: a point mass, the shorter run's value). Below every knot 0, above 1."""
    n1 = len(k)
    if x <= k[0]:
        return 0.0
    if x > k[n1 - 1]:
        return 1.0
    for i in range(n1):
        c[i] = 1.0 if x > k[i] else 0.0
    for d in range(1, n1):
        for i in range(n1 - d):
            lo, hi = k[i], k[i + d]
            if x > lo and x < hi and hi - lo > 0:
                c[i] = ((x - lo) * c[i] + (hi - x) * c[i + 1]) / (hi - lo)
    return min(max(c[0], 0.0), 1.0)
