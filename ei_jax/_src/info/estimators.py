"""Plug-in information estimators on given samples (pure, jittable, in bits).

These are what a user calls on their own activations, and what every layer measure is
built on. The estimator is the plug-in (maximum-likelihood) mutual information of the
binned joint histogram,

.. math::
   \\hat I(X; Y) = \\sum_{i,j} \\frac{n_{ij}}{N} \\log_2 \\frac{n_{ij} N}{n_{i\\cdot} n_{\\cdot j}},

exactly what deep-ei computes (scikit-learn's ``mutual_info_score`` on the contingency
table, converted to bits), with deep-ei's bin edges (see :mod:`ei_jax._src.info.binning`).
"""

import functools

import jax
import jax.numpy as jnp

from ei_jax._src.info import binning as _b
from ei_jax._src.base import checks
from ei_jax._src.info import counting
from ei_jax._src.info.plugin import mutual_information_from_counts
from ei_jax._src.info import reporting
from ei_jax._src.info import row_codes
from ei_jax._src.base.errors import EmptyHistogramError, ShapeMismatchError

DEFAULT_CHUNK = 1 << 16


def _check_xy(x, y):
    if x.ndim != 2 or y.ndim != 2:
        raise ShapeMismatchError(
            f"x and y must be 2-d arrays (samples, neurons). Got x.shape={x.shape}, y.shape={y.shape}."
        )
    if x.shape[0] != y.shape[0]:
        raise ShapeMismatchError(
            f"x and y must have the same number of samples. Got {x.shape[0]} and {y.shape[0]}."
        )
    if x.shape[0] < 1:
        raise ShapeMismatchError("x and y must hold at least one sample.")


def _chunked(arr, chunk):
    s = arr.shape[0]
    n_chunks = -(-s // chunk)
    pad = n_chunks * chunk - s
    arr = jnp.pad(arr, ((0, pad),) + ((0, 0),) * (arr.ndim - 1))
    return arr.reshape(n_chunks, chunk, *arr.shape[1:])


@functools.partial(jax.jit, static_argnames=("bx", "by", "method", "chunk"))
def _joint_histograms(x, y, *, bx, by, method, chunk):
    s = x.shape[0]
    chunk = min(chunk, s)
    xs, ys = _chunked(x, chunk), _chunked(y, chunk)
    rows = jnp.arange(xs.shape[0] * chunk).reshape(xs.shape[0], chunk)
    n_in, n_out = x.shape[1], y.shape[1]

    def body(acc, inp):
        xc, yc, r = inp
        w = (r < s)[:, None]
        ix, vx, _ = _b.bin_values(xc, bx)
        iy, vy, side = _b.bin_values(yc, by)
        cnt = counting.pair_counts(ix, vx & w, iy, vy & w, in_bins=bx.bins, out_bins=by.bins, method=method)
        below, above = counting.out_of_range(side, w)
        return (acc[0] + cnt, acc[1] + below, acc[2] + above), None

    init = (
        jnp.zeros((n_in, n_out, bx.bins, by.bins), jnp.int32),
        jnp.zeros((n_out,), jnp.int32),
        jnp.zeros((n_out,), jnp.int32),
    )
    (cnt, below, above), _ = jax.lax.scan(body, init, (xs, ys, rows))
    return cnt, below, above


def joint_histograms(x, y, *, in_range, in_bins, out_range, out_bins, clip=False,
                     method="auto", chunk_size=DEFAULT_CHUNK):
    """Joint histograms of every (input column, output column) pair, with deep-ei's edges.

    Args:
      x: float ``(S, n_in)`` samples of the input neurons.
      y: float ``(S, n_out)`` samples of the output neurons.
      in_range, in_bins, out_range, out_bins: ranges ``(lo, hi)`` and bin counts.
      clip: put out-of-range values in the edge bins instead of dropping them.
      method: counting kernel, ``"auto"``, ``"onehot"``, ``"bits"`` or ``"scatter"``.
      chunk_size: samples counted at once (memory only; the result does not depend on it).

    Returns:
      ``(counts, below, above)``: int32 ``(n_in, n_out, in_bins, out_bins)`` joint counts,
      and int32 ``(n_out,)`` numbers of output values below / above ``out_range``.

    Example:
      >>> import jax, ei_jax
      >>> x = jax.random.uniform(jax.random.key(0), (1000, 2))
      >>> c, below, above = ei_jax.joint_histograms(x, x, in_range=(0, 1), in_bins=4,
      ...                                           out_range=(0, 1), out_bins=4)
      >>> c.shape, int(c[0, 0].sum())
      ((2, 2, 4, 4), 1000)
    """
    x, y = jnp.asarray(x), jnp.asarray(y)
    _check_xy(x, y)
    bx = _b.make_binning("in_bins", in_range, in_bins, mode=_b.PAIR, clip=False)
    by = _b.make_binning("out_bins", out_range, out_bins, mode=_b.PAIR, clip=clip)
    checks.check_choice("method", method, counting.METHODS)
    return _joint_histograms(x, y, bx=bx, by=by, method=method, chunk=int(chunk_size))


_EMPTY = ("fell outside the binning range, so the mutual information is undefined. Widen "
          "in_range/out_range to cover the values, or pass clip=True to put them in the edge bins.")


def _raise_if_empty(mi, where: str):
    """:class:`EmptyHistogramError` where ``mi`` is NaN: at once on concrete values, when the
    program runs under ``jax.jit``."""
    if isinstance(mi, jax.core.Tracer):
        checks.error_if(jnp.any(jnp.isnan(mi)), EmptyHistogramError, f"{where}: every sample {_EMPTY}")
    else:
        reporting.raise_if_empty(mi if mi.ndim == 2 else mi.reshape(1, 1), where,
                                 "the binning range")


def pairwise_mutual_information(x, y, *, in_range, in_bins, out_range, out_bins, clip=False,
                                method="auto", chunk_size=DEFAULT_CHUNK):
    """Plug-in MI (bits) between every input column and every output column.

    Entry ``[A, B]`` is :math:`\\hat I(x_A; y_B)` from the joint histogram of columns A and
    B with deep-ei's pairwise edges: ``[lo - 1e-6, hi + 1e-6)`` in ``bins`` equal bins. A
    sample outside the range of x_A or y_B is dropped from that pair only (as deep-ei does),
    unless ``clip=True``.

    Args:
      x: float ``(S, n_in)``; y: float ``(S, n_out)``.
      in_range, out_range: ``(lo, hi)``; in_bins, out_bins: positive ints.
      clip: put out-of-range values in the edge bins instead of dropping them.
      method, chunk_size: counting kernel and chunk (speed/memory only).

    Returns:
      float32 ``(n_in, n_out)`` jax array. A pair whose samples all fall outside the range
      raises :class:`EmptyHistogramError` (under ``jax.jit``: when the program runs, as a
      ``JaxRuntimeError`` carrying the same message).

    Example:
      >>> import jax, ei_jax
      >>> x = jax.random.uniform(jax.random.key(0), (100_000, 1))
      >>> m = ei_jax.pairwise_mutual_information(x, x, in_range=(0, 1), in_bins=8,
      ...                                        out_range=(0, 1), out_bins=8)
      >>> round(float(m[0, 0]), 2)  # log2(8) = 3 bits
      3.0
    """
    counts, _, _ = joint_histograms(x, y, in_range=in_range, in_bins=in_bins, out_range=out_range,
                                    out_bins=out_bins, clip=clip, method=method, chunk_size=chunk_size)
    mi = mutual_information_from_counts(counts)
    _raise_if_empty(mi, "pairwise_mutual_information")
    return mi


@functools.partial(jax.jit, static_argnames=("bx", "by"))
def _vector_mi(x, y, *, bx, by):
    ix, vx, _ = _b.bin_values(x, bx)
    iy, vy, _ = _b.bin_values(y, by)
    w = jnp.all(vx, axis=1) & jnp.all(vy, axis=1)
    codes = jnp.concatenate([row_codes.row_codes(ix, bx.bins), row_codes.row_codes(iy, by.bins)], axis=1)
    return row_codes.vector_mi(codes[:, None, :], w)[0], jnp.sum(w, dtype=jnp.int32)


def mutual_information(x, y, *, in_range, in_bins, out_range, out_bins, clip=False):
    """Plug-in MI (bits) between whole binned input rows and whole binned output rows.

    .. math::
       \\hat I(X; Y) = \\hat H(X) + \\hat H(Y) - \\hat H(X, Y)

    over distinct binned rows, with deep-ei's vector edges: bin
    ``floor((v - lo) / (hi - lo + 1e-4) * bins)`` in float32. A row with any value outside
    its range is dropped (deep-ei keeps values *below* ``lo`` as extra bins; ei_jax does not),
    unless ``clip=True``. Rows are encoded exactly when they fit 64 bits, otherwise by a
    64-bit hash (see :func:`ei_jax._src.info.row_codes.row_codes`).

    Args:
      x: float ``(S, n_in)``; y: float ``(S, n_out)``.
      in_range, out_range: ``(lo, hi)``; in_bins, out_bins: positive ints.
      clip: put out-of-range values in the edge bins instead of dropping the row.

    Returns:
      float32 scalar jax array.

    Example:
      >>> import jax, ei_jax
      >>> x = jax.random.uniform(jax.random.key(0), (100_000, 2))
      >>> round(float(ei_jax.mutual_information(x, x, in_range=(0, 1), in_bins=4,
      ...                                       out_range=(0, 1), out_bins=4)), 2)
      4.0
    """
    x, y = jnp.asarray(x), jnp.asarray(y)
    _check_xy(x, y)
    bx = _b.make_binning("in_bins", in_range, in_bins, mode=_b.VECTOR, clip=clip)
    by = _b.make_binning("out_bins", out_range, out_bins, mode=_b.VECTOR, clip=clip)
    mi, _ = _vector_mi(x, y, bx=bx, by=by)
    _raise_if_empty(mi, "mutual_information (every row had a value out of range)")
    return mi


@functools.partial(jax.jit, static_argnames=("bx",))
def _vector_entropy(x, *, bx):
    ix, vx, _ = _b.bin_values(x, bx)
    return row_codes.vector_entropy(row_codes.row_codes(ix, bx.bins), jnp.all(vx, axis=1))


def entropy(x, *, range, bins, clip=False):  # noqa: A002 - deep-ei's argument name
    """Plug-in entropy (bits) of the binned rows of ``x`` (vector edges, as :func:`mutual_information`).

    Args:
      x: float ``(S, n)``.
      range: ``(lo, hi)``; bins: positive int.
      clip: put out-of-range values in the edge bins instead of dropping the row.

    Returns:
      float32 scalar jax array, ``H(X) = -sum_r p_r log2 p_r`` over distinct binned rows.

    Example:
      >>> import jax, ei_jax
      >>> x = jax.random.uniform(jax.random.key(0), (100_000, 1))
      >>> round(float(ei_jax.entropy(x, range=(0, 1), bins=8)), 2)
      3.0
    """
    x = jnp.asarray(x)
    if x.ndim != 2 or x.shape[0] < 1:
        raise ShapeMismatchError(f"x must be a non-empty 2-d array (samples, neurons). Got shape {x.shape}.")
    bx = _b.make_binning("bins", range, bins, mode=_b.VECTOR, clip=clip)
    return _vector_entropy(x, bx=bx)
