"""How many cosine-series terms the exact measures use (:mod:`ei_jax._src.exact.sums`).

:func:`default_terms` gives the count from the layer's fan-in alone, so new weights of the
same shape never recompile and traced weights get the same count; :func:`choose_terms` checks
concrete weights against a bound on the truncation error of the conditional CDFs (host NumPy)
and raises the count only for weights that need more.
"""

import functools
import statistics

import numpy as np

from ei_jax._src.exact.sums import HOEFFDING

#: Bound on the truncation error of F (absolute) that :func:`choose_terms` aims at.
TERMS_TOL = 1e-8
#: Fewest and most series terms.
MIN_TERMS = 32
MAX_TERMS = 1 << 15


def _log_envelope(x, xp=np):
    """A bound on ``log |sinc x|``: ``-x^2/6`` up to pi (Taylor coefficients all negative), ``-log x`` beyond."""
    x = xp.abs(x)
    return xp.where(x <= np.pi, x * x * np.float32(-1.0 / 6.0), -xp.log(xp.maximum(x, 1e-30)))


def _log_envelope_after(x, xp=np):
    """``max_{y >= x}`` of the log-envelope: it falls on each side of pi but jumps up there."""
    return xp.maximum(_log_envelope(x, xp), -xp.log(xp.maximum(xp.abs(x), np.float32(np.pi))))


_GRID = np.unique(np.round(np.geomspace(1, MAX_TERMS * 2, 128)).astype(np.int64))


def _scales(d, xp=np):
    """Window half-widths ``(m,)`` and float32 scales ``u_1 d / 2`` ``(n, m)`` of the columns."""
    half = xp.minimum(0.5 * d.sum(0), 0.5 * d.max(0) + HOEFFDING * xp.sqrt((d * d).sum(0)))
    wid = xp.where(half > 0, 2.0 * half, 1.0)                                       # (m,)
    return half, ((np.pi / wid)[None, :] * (0.5 * d)).astype(np.float32)


def _step():
    """Per grid point, a bound on the sum of ``1/k`` up to the next one (:func:`_terms_for_widths`)."""
    return np.log(np.append(_GRID[1:], 2 * _GRID[-1]) / _GRID) + 1.0 / _GRID


def tail_bound(d, terms, xp=np):
    """Per column, a bound ``(m,)`` on the truncation error of ``F`` with ``terms`` terms, from
    the widths ``d (n, m)`` (0 for a column without spread; ``xp``: ``numpy`` on the host,
    ``jax.numpy`` inside a traced computation, :mod:`ei_jax._src.exact.traced_guard`).

    Cheap: :func:`_terms_for_widths`'s bound ``log B`` at grid point ``g`` is the envelope
    summed over all but the widest input, made non-increasing in ``g``; from ``g_j`` on, each
    input's envelope is at most :func:`_log_envelope_after` at ``g_j``, so evaluating that at
    9 points, dense where the tail is largest (instead of the envelope at all 128), bounds the
    tail, with a slack for float32 rounding.
    """
    half, scale = _scales(d, xp)
    start = int(np.searchsorted(_GRID, terms, side="right")) - 1
    if start < 0:
        return xp.where(half > 0, np.inf, 0.0)
    points = [start] + [start + (1 << j) for j in range(8) if start + (1 << j) < len(_GRID)]
    step = _step()
    top = scale.max(0)
    tail = xp.zeros(scale.shape[1])
    for j, g in enumerate(points):
        end = points[j + 1] if j + 1 < len(points) else len(_GRID)
        val = (_log_envelope_after(np.float32(_GRID[g]) * scale, xp).sum(0, dtype=np.float64)
               - _log_envelope_after(np.float32(_GRID[g]) * top, xp).astype(np.float64))
        val = val + 1e-4 * xp.abs(val) + 1e-6
        tail = tail + (2.0 / np.pi) * xp.exp(val) * float(step[g:end].sum())
    return xp.where(half > 0, tail, 0.0)


def column_blocks(shape, entries):
    """Slices of the columns of an ``(n, m)`` array, each holding about ``entries`` elements:
    host work on a layer that is per column goes block by block so its temporaries stay in
    the cache (:func:`_enough`, :func:`ei_jax._src.exact.compiled_path.matrix`)."""
    cols = max(1, entries // max(shape[0], 1))
    return [slice(s, s + cols) for s in range(0, shape[1], cols)]


def _enough(d, terms, tol):
    """Sufficient, cheap: True if every column's truncation bound at ``terms``
    (:func:`tail_bound`) is below ``tol / 2``; then :func:`_terms_for_widths` would return at
    most the largest grid point ``<= terms``. Blocks of 2^18 widths (the bound is per column;
    2048x2048: ``choose_terms`` 0.48 -> 0.26 s)."""
    return all(bool(np.all(tail_bound(d[:, c], terms) <= 0.5 * tol))
               for c in column_blocks(d.shape, 1 << 18))


def _terms_for_widths(d, tol):
    """Fewest terms for the widths ``d (n, m)`` of each output column (n >= 2)."""
    return int(terms_per_column(d, tol).max())


def terms_per_column(d, tol):
    """Fewest terms ``(m,)`` for each column of the widths ``d (n, m)`` (``MAX_TERMS + 1``:
    not reachable); ``tol`` a scalar or ``(m,)``."""
    half, scale = _scales(d)
    total = np.stack([_log_envelope(np.float32(g) * scale).sum(0, dtype=np.float64) for g in _GRID])              # (g, m)
    # The bound on rho_{-A} that holds for every A leaves out the largest factor's envelope.
    worst = np.stack([_log_envelope(np.float32(g) * scale.max(0)) for g in _GRID])             # (g, m)
    logb = np.maximum.accumulate((total - worst)[::-1], axis=0)[::-1]              # monotone
    # Tail of sum_{k>K} 2 B(u_k) / (k pi): between two grid points the sum of 1/k is at most
    # log(k_{g+1} / k_g) + 1 / k_g.
    tail = np.cumsum(((2.0 / np.pi) * np.exp(logb) * _step()[:, None])[::-1], axis=0)[::-1]
    ok = tail <= tol
    need = np.where(ok.any(0), _GRID[np.argmax(ok, axis=0)], MAX_TERMS + 1)
    return np.where(half > 0, need, MIN_TERMS)


def round_terms(k):
    """Rounds a term count up to 2^j or 1.5 * 2^j (few distinct compiled shapes)."""
    k = max(int(k), MIN_TERMS)
    p = 1 << (k - 1).bit_length()
    return p * 3 // 4 if p * 3 // 4 >= k else p


#: Fan-in from which the pre-activation is close to Gaussian and the bound's count stops
#: depending on how the weights are spread (56-61 terms for equal, uniform and normal weights).
GAUSSIAN_FAN_IN = 32
#: Terms used at and beyond :data:`GAUSSIAN_FAN_IN`.
GAUSSIAN_TERMS = 64


def choose_terms(kernel, in_range, *, tol=TERMS_TOL) -> int:
    """Series terms for concrete weights: :func:`default_terms` unless the weights need more.

    The count is :func:`default_terms` (from the fan-in alone, so new weights of the same shape
    reuse the compiled program and traced weights get the same count) whenever that bounds the
    truncation error of every conditional CDF by ``tol``; weights that need more (a column with
    almost all its spread in a few inputs) get their own, larger count.

    Args:
      kernel: concrete ``(n_in, n_out)`` weights (NumPy or a non-traced array).
      in_range: ``(lo, hi)`` of the inputs.
      tol: bound on the absolute error of ``F`` from truncating the series.

    Returns:
      the term count (rounded by :func:`round_terms`), or ``MAX_TERMS + 1`` if even
      ``MAX_TERMS`` cannot guarantee ``tol`` (weights too sparse or too unequal: a column
      whose other inputs hold almost no spread), which callers report as exact being
      unavailable.
    """
    w = np.abs(np.asarray(kernel, np.float64))
    if w.shape[0] < 2:
        return MIN_TERMS
    d = w * (in_range[1] - in_range[0])
    if _enough(d, default_terms(w.shape[0]), tol):     # the common case, ~15x cheaper
        return default_terms(w.shape[0])
    need = _terms_for_widths(d, tol)
    if need > MAX_TERMS:
        return need
    return max(default_terms(w.shape[0]), round_terms(need))


@functools.lru_cache(maxsize=64)
def default_terms(n_in: int) -> int:
    """Terms from the fan-in alone (``tol`` = 1e-8): the count for every weight of that shape
    except unusually concentrated ones (:func:`choose_terms`), and for traced weights.

    Below :data:`GAUSSIAN_FAN_IN` the characteristic function decays like a power set by the
    smallest widths, so the count is twice what a half-normal profile of widths needs
    (``|w_l|`` at the quantiles of ``|N(0, 1)|``; it covered the worst of 500 random normal
    and 500 uniform columns at fan-ins 10, 12 and 16; at 4 to 8 such columns often need more).
    From there on it is :data:`GAUSSIAN_TERMS`, which the bound gave for equal, uniform and
    normal weights alike (at most 61 terms at fan-ins 32 to 2048).
    """
    if n_in <= 3:                        # closed forms (the trapezoid): no series
        return MIN_TERMS
    if n_in >= GAUSSIAN_FAN_IN:
        return GAUSSIAN_TERMS
    q = (np.arange(n_in) + 0.5) / n_in
    half_normal = statistics.NormalDist()                    # |N(0, 1)| quantiles q: Phi^-1((1 + q) / 2)
    profile = np.array([half_normal.inv_cdf((1 + v) / 2) for v in q])
    need = _terms_for_widths(profile[:, None], TERMS_TOL)
    return round_terms(min(max(GAUSSIAN_TERMS, 2 * need), MAX_TERMS))
