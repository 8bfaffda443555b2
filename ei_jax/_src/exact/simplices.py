"""Exact volumes of a box cut by hyperplanes: triangulate, split simplices, sum determinants.

A hyperplane ``L(u) = 0`` splits a simplex whose vertices lie on both sides (``p`` with
``L >= 0``, ``q = n + 1 - p`` with ``L < 0``) into two convex pieces, each
triangulated by a fixed template that depends on ``(n, p)`` only:

* the positive piece is ``conv(P u E)``, ``E`` the ``p q`` points where the hyperplane meets
  the edges from ``P`` to ``N``; pulling from its first vertex ``a`` gives the pyramids over
  the cut facet ``conv(E)`` and over the positive piece of the face opposite ``a`` (recursion);
* ``conv(E)`` is projectively a product of simplices ``Delta_{p-1} x Delta_{q-1}`` (through
  ``lambda -> (lambda_P L_P, -lambda_N L_N) / s``), so its staircase triangulation (one simplex
  per monotone lattice path) is a triangulation of it;
* the negative piece is the same with the roles of ``P`` and ``N`` exchanged.

Every piece is a simplex given by its vertices, so volumes are ``|det| / n!`` and nothing
cancels: the split is exact up to float64 rounding of the edge points (relative ~1e-15).
This module builds the templates (Python, cached per ``(n, p)``); the compiled kernels
(:func:`ei_jax._src.exact.simplex_ops.split`) apply them one simplex at a time.
"""

import functools
import itertools

import numpy as np


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


@functools.lru_cache(maxsize=None)
def packed_templates(n: int):
    """All ``split_templates(n, p)``, ``p = 1 .. n``, in one int64 array for the compiled
    kernels: ``(rows (R, n + 1), index (4, n + 1), most)``: the positive template of ``p`` is
    ``rows[index[0, p]:][:index[1, p]]``, the negative ``rows[index[2, p]:][:index[3, p]]``;
    ``most`` is the most pieces one cut makes."""
    rows, off, cnt = [], np.zeros((2, n + 1), np.int64), np.zeros((2, n + 1), np.int64)
    at = 0
    for p in range(1, n + 1):
        for side, tpl in enumerate(split_templates(n, p)):
            off[side, p], cnt[side, p] = at, len(tpl)
            rows.append(tpl)
            at += len(tpl)
    most = int((cnt[0] + cnt[1]).max())
    return np.concatenate(rows), np.stack([off[0], cnt[0], off[1], cnt[1]]), most
