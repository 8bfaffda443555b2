"""What the convenient measures report beside their numbers: empty pairs and out-of-range values.

The convenient API adds counts in int64 on the host and takes the plug-in MI there in float64
(:func:`ei_jax._src.info.plugin.mi_matrix`); empty pairs and out-of-range values are reported
here, never dropped silently.
"""

import warnings

import numpy as np

from ei_jax._src.base.errors import EmptyHistogramError, OutOfRangeWarning
from ei_jax._src.info import plugin


def raise_if_empty(mat, where: str, ranges: str, clip: bool = True) -> None:
    """:class:`EmptyHistogramError` naming the pairs of ``mat`` that are NaN (no sample kept).

    Args:
      mat: ``(n_in, n_out)`` MI matrix, NaN where a pair kept no sample.
      where: what was measured, e.g. ``"Layer 'layers_0'"``.
      ranges: the range(s) the samples fell outside, e.g. ``"out_range=(0, 1)"``.
      clip: whether to suggest ``clip=True`` (the sampled measures; the exact ones have none).
    """
    bad = np.argwhere(np.isnan(np.asarray(mat)))
    if bad.size:
        pairs = ", ".join(str(tuple(int(i) for i in p)) for p in bad[:5])
        raise EmptyHistogramError(
            f"{where}: every sample of input/output pair(s) {pairs}"
            f"{' ...' if len(bad) > 5 else ''} fell outside {ranges}, so its mutual information "
            "is undefined. Widen the range to cover the values"
            + (", or pass clip=True to put them in the edge bins." if clip else ".")
        )


def zero_empty_pairs(mat, where: str, ranges: str, stacklevel: int = 4, clip: bool = True) -> np.ndarray:
    """The layer measures' rule for empty pairs (sampled and exact alike): a pair of ``mat``
    that kept nothing (NaN: no sample, or no mass, inside the range) contributes 0 bits, with
    an :class:`OutOfRangeWarning` naming it; :class:`EmptyHistogramError`
    (:func:`raise_if_empty`) only when every pair is empty.

    Example:
      >>> import warnings
      >>> with warnings.catch_warnings():
      ...     warnings.simplefilter("ignore")
      ...     zero_empty_pairs(np.array([[np.nan, 1.5]]), "Layer 'x'", "out_range=(0, 1)").tolist()
      [[0.0, 1.5]]
    """
    mat = np.asarray(mat)
    empty = np.isnan(mat)
    if empty.size and empty.all():
        raise_if_empty(mat, where, ranges, clip)
    if empty.any():
        bad = np.argwhere(empty)
        pairs = ", ".join(str(tuple(int(i) for i in p)) for p in bad[:5])
        warnings.warn(
            f"{where}: input/output pair(s) {pairs}{' ...' if len(bad) > 5 else ''} ({len(bad)} of "
            f"{empty.size}) kept nothing inside {ranges}: they contribute 0 bits. Widen the range"
            f"{' or pass clip=True' if clip else ''} to measure them.", OutOfRangeWarning,
            stacklevel=stacklevel)
        mat = np.where(empty, 0.0, mat)
    return mat


def layer_mi_matrix(counts, problem) -> np.ndarray:
    """:func:`plugin.mi_matrix` of a layer's int64 counts ``(n_in, n_out, kx, ky)``, with
    :func:`zero_empty_pairs`'s rule for pairs that kept no sample (``problem``: its ``name``
    and ``out_range``)."""
    mat = plugin.mi_matrix(counts)
    return zero_empty_pairs(mat, f"Layer {problem.name!r}", f"out_range={problem.out_range}", stacklevel=5)


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
