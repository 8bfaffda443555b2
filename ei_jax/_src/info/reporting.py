"""Host-side information from integer counts, and what the convenient measures report.

The convenient API adds counts in int64 on the host and takes the plug-in MI there in
float64 (:func:`mi_matrix`); empty pairs and out-of-range values are reported here, never
dropped silently.
"""

import warnings

import numpy as np

from ei_jax._src.base.errors import EmptyHistogramError, OutOfRangeWarning


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


def raise_if_empty(mat, where: str, ranges: str) -> None:
    """:class:`EmptyHistogramError` naming the pairs of ``mat`` that are NaN (no sample kept).

    Args:
      mat: ``(n_in, n_out)`` MI matrix, NaN where a pair kept no sample.
      where: what was measured, e.g. ``"Layer 'layers_0'"``.
      ranges: the range(s) the samples fell outside, e.g. ``"out_range=(0, 1)"``.
    """
    bad = np.argwhere(np.isnan(np.asarray(mat)))
    if bad.size:
        pairs = ", ".join(str(tuple(int(i) for i in p)) for p in bad[:5])
        raise EmptyHistogramError(
            f"{where}: every sample of input/output pair(s) {pairs}"
            f"{' ...' if len(bad) > 5 else ''} fell outside {ranges}, so its mutual information "
            "is undefined. Widen the range to cover the values, or pass clip=True to put them "
            "in the edge bins."
        )


def warn_out_of_range(name, out_range, below, above, values, clip, stacklevel=3) -> None:
    """:class:`OutOfRangeWarning` with how many of ``values`` output values fell outside."""
    below, above = int(np.sum(below)), int(np.sum(above))
    if below + above == 0:
        return
    action = "were put in the edge bins (clip=True)" if clip else "were dropped from their pairs/rows"
    warnings.warn(
        f"Layer {name!r}: {below + above} of {values} output values "
        f"({100.0 * (below + above) / values:.3g}%) fell outside out_range={out_range} "
        f"({below} below, {above} above or not finite) and {action}. Widen out_range"
        f"{'' if clip else ' or pass clip=True'} if that is not what you want.",
        OutOfRangeWarning,
        stacklevel=stacklevel,
    )
