"""The plug-in (maximum-likelihood) mutual information and entropy, in bits: every formula.

Every path of ei_jax takes its plug-in MI or entropy from here:

.. math::
   \\hat I(X; Y) = \\sum_{i,j} \\frac{n_{ij}}{N} \\log_2 \\frac{n_{ij} N}{n_{i\\cdot} n_{\\cdot j}},
   \\qquad \\hat H(X) = -\\sum_i \\frac{n_i}{N} \\log_2 \\frac{n_i}{N}.

The formulas below are the same quantity written with different arithmetic, and each path
keeps its own so that its numbers stay what they were (a sum of logarithms of ratios is not
bit-identical to a log of a sum): the device's float32 forms (jittable), the host's float64
forms of int64 counts, of multiplicity histograms and of the pointwise MI of each cell, and
the device form of a normalised joint probability table (the exact measures).
"""

import jax
import jax.numpy as jnp
import numpy as np

from ei_jax._src.base.errors import ShapeMismatchError


# --- on the device (jax.numpy, float32 unless x64 is on) ------------------------------------

def mutual_information_from_counts(counts: jax.Array) -> jax.Array:
    """Plug-in mutual information (bits) of joint histograms.

    Sums ``c / n * (log2 c + log2 n - log2 a - log2 b)`` over the occupied cells in float32
    (the pure core's and :func:`ei_jax.pairwise_mutual_information`'s arithmetic).

    Args:
      counts: integer array ``(..., k_x, k_y)`` of joint counts.

    Returns:
      float32 array ``(...)``; ``NaN`` where a histogram is empty. Clipped at 0 like
      scikit-learn's ``mutual_info_score``.

    Example:
      >>> import jax.numpy as jnp, ei_jax
      >>> float(ei_jax.mutual_information_from_counts(jnp.array([[5, 0], [0, 5]])))  # 1 bit
      1.0
    """
    if jnp.ndim(counts) < 2:
        raise ShapeMismatchError(f"counts must be a joint table (..., k_x, k_y). Got shape {jnp.shape(counts)}.")
    n = jnp.sum(counts, axis=(-2, -1))
    a = jnp.sum(counts, axis=-1).astype(jnp.float32)
    b = jnp.sum(counts, axis=-2).astype(jnp.float32)
    c = counts.astype(jnp.float32)
    nf = n.astype(jnp.float32)[..., None, None]
    safe = lambda v: jnp.log2(jnp.maximum(v, 1.0))  # noqa: E731
    log_ratio = safe(c) + safe(nf) - safe(a)[..., :, None] - safe(b)[..., None, :]
    terms = jnp.where(counts > 0, c / nf * log_ratio, 0.0)
    mi = jnp.maximum(jnp.sum(terms, axis=(-2, -1)), 0.0)
    return jnp.where(n > 0, mi, jnp.nan)


def entropy_from_counts(counts: jax.Array, axis: int = -1) -> jax.Array:
    """Plug-in entropy (bits) of histograms along ``axis``; NaN for an empty histogram.

    ``-sum p log2 p`` with ``p = c / n`` in float32."""
    n = jnp.sum(counts, axis=axis, keepdims=True)
    p = counts.astype(jnp.float32) / jnp.maximum(n, 1).astype(jnp.float32)
    h = jnp.sum(jnp.where(counts > 0, -p * jnp.log2(jnp.where(counts > 0, p, 1.0)), 0.0), axis=axis)
    return jnp.where(jnp.squeeze(n, axis) > 0, h, jnp.nan)


def _tree_sum(v):
    """Pairwise (tree) summation of a 1-d float32 array: error O(log n * eps)."""
    n = v.shape[0]
    p = 1 << max(0, (n - 1).bit_length())
    v = jnp.pad(v, (0, p - n))
    while v.shape[0] > 1:
        v = v.reshape(-1, 2).sum(axis=1)
    return v[0]


def entropy_of_run_counts(counts, n):
    """Plug-in entropy (bits, float32) of ``n`` rows whose distinct values occur ``counts``
    times (zeros for padding): ``sum c / n log2 (n / c)`` summed as a tree, so the sum does not
    depend on the padding's length; NaN when ``n == 0``."""
    nf = n.astype(jnp.float32)
    cf = counts.astype(jnp.float32)
    terms = jnp.where(counts > 0, cf / nf * jnp.log2(nf / jnp.maximum(cf, 1.0)), 0.0)
    h = _tree_sum(terms)
    return jnp.where(n > 0, h, jnp.nan)


def xlog2x(x):
    """``x log2 x`` elementwise, with ``0 log 0 = 0`` (any float dtype)."""
    pos = x > 0
    return jnp.where(pos, x * jnp.log2(jnp.where(pos, x, 1.0)), 0.0)


def mi_of_probabilities(pn):
    """MI (bits, clamped at 0) of normalised joint probability tables ``(..., k_x, k_y)``:
    ``sum P log2 P - sum P_x log2 P_x - sum P_y log2 P_y`` (the exact measures' form)."""
    h = (jnp.sum(xlog2x(pn), axis=(-2, -1)) - jnp.sum(xlog2x(jnp.sum(pn, -1)), -1)
         - jnp.sum(xlog2x(jnp.sum(pn, -2)), -1))
    return jnp.maximum(h, 0.0)


# --- on the host (NumPy float64) ------------------------------------------------------------

def sum_xlog2x(x, axes):
    """``sum x log2 x`` over ``axes`` in float64, with ``0 log 0 = 0``."""
    xf = x.astype(np.float64)
    lg = np.log2(xf, out=np.zeros_like(xf), where=xf > 0)
    return np.sum(xf * lg, axis=axes)


def mi_matrix(counts) -> np.ndarray:
    """Plug-in MI (bits, float64) of int64 joint histograms ``(..., kx, ky)``; NaN if empty.

    ``I = log2 n + (S(joint) - S(rows) - S(columns)) / n`` with ``S(c) = sum c log2 c``:
    logarithms of the non-zero counts only (float64: absolute error ~1e-12 bits).

    Example:
      >>> import numpy as np
      >>> float(mi_matrix(np.array([[5, 0], [0, 5]])))
      1.0
    """
    c = np.asarray(counts, np.int64)
    n = c.sum(axis=(-2, -1))
    nf = n.astype(np.float64)
    s = sum_xlog2x(c, (-2, -1)) - sum_xlog2x(c.sum(axis=-1), -1) - sum_xlog2x(c.sum(axis=-2), -1)
    with np.errstate(divide="ignore", invalid="ignore"):
        mi = np.log2(nf) + s / nf
    return np.where(n > 0, np.maximum(mi, 0.0), np.nan)


def entropy_of_multiplicities(n: int, k: np.ndarray, m: np.ndarray) -> float:
    """Plug-in entropy (bits, float64) of ``n`` values with multiplicity histogram ``(k, m)``:
    ``log2 n - sum_k m_k k log2 k / n``, one fixed summation order (ascending ``k``)."""
    return float(np.log2(n) - np.dot((k * m).astype(np.float64), np.log2(k.astype(np.float64))) / n)


def mi_of_multiplicities(n: int, hist_y, hist_x, hist_xy) -> float:
    """``max(H(Y) + H(X) - H(X, Y), 0)`` (bits) from the three multiplicity histograms."""
    h = entropy_of_multiplicities(n, *hist_y)
    h += entropy_of_multiplicities(n, *hist_x)
    h -= entropy_of_multiplicities(n, *hist_xy)
    return max(h, 0.0)


def cell_pointwise_mi(cxy, n, cx, cy):
    """Pointwise MI ``log2 (c_xy n / (c_x c_y))`` (bits, float64) of cells given by columns of
    their joint and marginal counts (the multi-process estimate's form)."""
    return np.log2(cxy.astype(np.float64) * n / (cx.astype(np.float64) * cy))


# --- either (``xp`` is numpy, in float64, or jax.numpy, in float32) -------------------------

def pointwise_mi(counts, xp):
    """Plug-in MI ``(...)``, pointwise MI ``(..., kx, ky)`` (bits) and kept samples ``(...)`` of
    joint histograms; 0 where a cell (or a pair) is empty.

    ``log2 (c n / (a b))`` of each occupied cell, then ``sum c pmi / n``: the form the
    delta method's influence tables need."""
    c = counts.astype(xp.float64 if xp is np else xp.float32)
    n = c.sum(axis=(-2, -1), keepdims=True)
    a = c.sum(axis=-1, keepdims=True)
    b = c.sum(axis=-2, keepdims=True)
    occupied = c > 0
    ratio = xp.where(occupied, c * n, 1.0) / xp.where(occupied, a * b, 1.0)
    pmi = xp.where(occupied, xp.log2(ratio), 0.0)
    mi = (c * pmi).sum(axis=(-2, -1)) / xp.maximum(n[..., 0, 0], 1.0)
    return mi, pmi, n[..., 0, 0]
