"""Exact volumes of a box cut by hyperplanes: triangulate, split simplices, sum determinants.

The unit cube ``[0, 1]^n`` is the union of the ``n!`` Kuhn simplices
``{u : u_{pi(1)} >= ... >= u_{pi(n)}}``. A hyperplane ``L(u) = 0`` splits a simplex whose
vertices lie on both sides (``p`` with ``L >= 0``, ``q = n + 1 - p`` with ``L < 0``) into two
convex pieces, each triangulated by a fixed template that depends on ``(n, p)`` only:

* the positive piece is ``conv(P u E)``, ``E`` the ``p q`` points where the hyperplane meets
  the edges from ``P`` to ``N``; pulling from its first vertex ``a`` gives the pyramids over
  the cut facet ``conv(E)`` and over the positive piece of the face opposite ``a`` (recursion);
* ``conv(E)`` is projectively a product of simplices ``Delta_{p-1} x Delta_{q-1}`` (through
  ``lambda -> (lambda_P L_P, -lambda_N L_N) / s``), so its staircase triangulation (one simplex
  per monotone lattice path) is a triangulation of it;
* the negative piece is the same with the roles of ``P`` and ``N`` exchanged.

Every piece is a simplex given by its vertices, so volumes are ``|det| / n!`` and nothing
cancels: the split is exact up to float64 rounding of the edge points (relative ~1e-15).
Host NumPy only (the piece counts depend on the data), vectorised over all pieces of a step.
"""

import functools
import itertools
import math

import numpy as np


@functools.lru_cache(maxsize=None)
def kuhn_simplices(n: int) -> np.ndarray:
    """The ``n!`` Kuhn simplices of ``[0, 1]^n``: float64 vertices ``(n!, n + 1, n)``."""
    out = np.zeros((math.factorial(n), n + 1, n))
    for s, perm in enumerate(itertools.permutations(range(n))):
        for k, axis in enumerate(perm):
            out[s, k + 1:, axis] = 1.0
    out.setflags(write=False)
    return out


def _staircase(P, N):
    """Simplices of the staircase triangulation of the points ``("e", i, j)``, i in P, j in N."""
    out = []
    for steps in itertools.combinations(range(len(P) + len(N) - 2), len(P) - 1):
        i = j = 0
        path = [("e", P[0], N[0])]
        for t in range(len(P) + len(N) - 2):
            if t in steps:
                i += 1
            else:
                j += 1
            path.append(("e", P[i], N[j]))
        out.append(path)
    return out


def _pulling(P, N):
    """Simplices of ``conv(P u E(P, N))`` (the ``P`` side of the face spanned by ``P u N``)."""
    if not P:
        return []
    if not N:
        return [[("v", i) for i in P]]
    a = ("v", P[0])
    return [[a, *s] for s in _staircase(P, N)] + [[a, *s] for s in _pulling(P[1:], N)]


@functools.lru_cache(maxsize=None)
def split_templates(n: int, p: int) -> tuple[np.ndarray, np.ndarray]:
    """Index templates ``(positive (s+, n + 1), negative (s-, n + 1))`` of the split of an
    ``n``-simplex whose first ``p`` vertices have ``L >= 0`` and the others ``L < 0``.

    Indices point into ``[vertices (n + 1), edge points (p q)]``, the edge point of vertex
    ``i < p`` and vertex ``p + j`` at ``n + 1 + i q + j``.
    """
    q = n + 1 - p
    P, N = list(range(p)), list(range(p, n + 1))

    def index(point):
        if point[0] == "v":
            return point[1]
        i, j = sorted(point[1:])
        return n + 1 + i * q + (j - p)

    def swap(point):
        return point if point[0] == "v" else ("e", point[2], point[1])

    pos = np.array([[index(pt) for pt in s] for s in _pulling(P, N)], np.int64)
    neg = np.array([[index(swap(pt)) for pt in s] for s in _pulling(N, P)], np.int64)
    return pos, neg


def split(vertices: np.ndarray, values: np.ndarray):
    """Splits simplices by the hyperplane ``L = 0`` given ``L`` at their vertices.

    Args:
      vertices: float64 ``(S, n + 1, n)``.
      values: float64 ``(S, n + 1)``, ``L`` at each vertex.

    Returns:
      ``(vertices, parent, positive)``: the pieces' vertices ``(S', n + 1, n)``, the index of
      the simplex each came from ``(S',)`` and whether it lies on the side ``L >= 0``
      ``(S',)``. A simplex entirely on one side is returned whole.
    """
    s, n1, n = vertices.shape
    pos_count = np.count_nonzero(values >= 0, axis=1)
    out_v, out_parent, out_pos = [], [], []
    whole = (pos_count == 0) | (pos_count == n1)
    idx = np.flatnonzero(whole)
    out_v.append(vertices[idx])
    out_parent.append(idx)
    out_pos.append(pos_count[idx] == n1)
    for p in range(1, n1):
        idx = np.flatnonzero(pos_count == p)
        if idx.size == 0:
            continue
        lv = values[idx]
        order = np.argsort(lv < 0, axis=1, kind="stable")         # L >= 0 first
        vs = np.take_along_axis(vertices[idx], order[:, :, None], axis=1)
        ls = np.take_along_axis(lv, order, axis=1)
        lp, ln = ls[:, :p, None], ls[:, None, p:]
        alpha = lp / (lp - ln)                                     # (k, p, q) in [0, 1)
        vp, vn = vs[:, :p, None, :], vs[:, None, p:, :]
        edge = vp + alpha[..., None] * (vn - vp)
        points = np.concatenate([vs, edge.reshape(len(idx), -1, n)], axis=1)
        t_pos, t_neg = split_templates(n, p)
        for template, side in ((t_pos, True), (t_neg, False)):
            out_v.append(points[:, template].reshape(-1, n1, n))
            out_parent.append(np.repeat(idx, len(template)))
            out_pos.append(np.full(len(idx) * len(template), side))
    return np.concatenate(out_v), np.concatenate(out_parent), np.concatenate(out_pos)


def linear_cdf(knots: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``P(L(u) < x)`` for ``u`` uniform on simplices, from ``L`` at their vertices.

    ``L(u)`` has the B-spline density with knots ``L(v_0), ..., L(v_n)`` (Curry and Schoenberg);
    its distribution function satisfies the de Boor-like recurrence
    ``C[k_i..k_{i+d}](x) = ((x - k_i) C[k_i..k_{i+d-1}](x) + (k_{i+d} - x) C[k_{i+1}..k_{i+d}](x))
    / (k_{i+d} - k_i)`` from ``C[k_i](x) = 1[x > k_i]`` on sorted knots: between the knots a
    convex combination, so no cancellation (equal knots: a point mass, the shorter run's value).

    Args:
      knots: float64 ``(S, n + 1)``; x: float64 ``(S, J)`` (``+inf`` allowed).

    Returns:
      float64 ``(S, J)`` in ``[0, 1]``.
    """
    k = np.sort(knots, axis=1)
    n1 = k.shape[1]
    xs = x[:, None, :]
    c = (xs > k[:, :, None]).astype(np.float64)                    # (S, n + 1, J)
    for d in range(1, n1):
        lo, hi = k[:, :n1 - d, None], k[:, d:, None]
        den = hi - lo
        inside = (xs > lo) & (xs < hi) & (den > 0)
        with np.errstate(invalid="ignore", divide="ignore"):
            mixed = ((xs - lo) * c[:, :-1] + (hi - xs) * c[:, 1:]) / den
        c = np.where(inside, mixed, c[:, :-1])                      # outside: 0 below, 1 above
    return np.clip(c[:, 0], 0.0, 1.0)


def volumes(vertices: np.ndarray) -> np.ndarray:
    """Volumes ``(S,)`` of simplices ``(S, n + 1, n)``: ``|det(v_1 - v_0, ...)| / n!``."""
    n = vertices.shape[2]
    if len(vertices) == 0:
        return np.zeros((0,))
    return np.abs(np.linalg.det(vertices[:, 1:] - vertices[:, :1])) / math.factorial(n)
