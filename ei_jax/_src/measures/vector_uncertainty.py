"""Standard errors and bias corrections of vector EI (``stderr=True``), on the host.

Vector EI is the plug-in MI of whole binned rows. Its estimate from the valid rows of the
run's four quarters is corrected as the pairwise measures are (quadratic extrapolation over
the whole run, its halves and its quarters) and its standard error is the same delta method,
with the pointwise MI ``log2 p(x, y) / (p(x) p(y))`` of each row in each sub-sample.

Vector EI is sample-limited when the rows are too few for the occupied cells: the plug-in
cannot exceed ``log2 N`` and, with most rows distinct, every correction extrapolates from
numbers that are all near that ceiling. Then :class:`SampleLimitedWarning` says so.
"""

import math
import warnings

import numpy as np

from ei_jax._src.sampled import distributed_counts
from ei_jax._src.sampled import distributed_uncertainty
from ei_jax._src.base.errors import SampleLimitedWarning
from ei_jax._src.info.uncertainty import Estimate

#: Above this fraction of rows alone in their (input, output) cell, vector EI is sample-limited.
SINGLETON_LIMIT = 0.2


def collective(shared: bool) -> dict:
    """The collective of :mod:`distributed_uncertainty`: JAX's processes for rows spread over
    them (``shared``), else this process alone."""
    if not shared:
        return dict(gather=None, process=0, processes=1)
    import jax

    return dict(gather=distributed_counts.gather, process=jax.process_index(),
                processes=jax.process_count())


def group_estimate(quarter_rows, samples: int, shared: bool = False):
    """``(value, corrected, stderr, singleton fraction)`` of one group from the valid rows
    ``(R_q, 4)`` of each quarter -- this process's share of them with ``shared`` (the same
    call on every process, which all get the same result).

    Every row's pointwise MI ``log2 p(x, y) / (p(x) p(y))`` is needed in the whole run, in
    its half and in its quarter; rows of one joint cell and quarter share it, so the sums
    run over those cells (:func:`distributed_uncertainty.global_group_estimate`), in the same order
    and with the same floats whether the rows are on one process or several.
    """
    del samples   # the rows are what counts (kept for the callers' signature)
    return distributed_uncertainty.global_group_estimate(quarter_rows, **collective(shared))


def estimates(quarter_rows, samples: int, below, above, *, name: str, stacklevel: int = 4, results=None,
              shared: bool = False, rows: int = None):
    """One :class:`Estimate` per group from the valid rows ``(R_q, G, 4)`` of each quarter
    (this process's share with ``shared``; ``rows``: their total over processes), with a
    :class:`SampleLimitedWarning` where the rows are too few (``results``: the groups'
    :func:`group_estimate` computed already)."""
    out = []
    rows = sum(len(r) for r in quarter_rows) if rows is None else rows
    for g in range(quarter_rows[0].shape[1]):
        result = results[g] if results is not None else group_estimate([r[:, g] for r in quarter_rows],
                                                                       samples, shared)
        value, corrected, stderr, singletons = result
        if singletons > SINGLETON_LIMIT or value - corrected > max(2 * stderr, 0.05):
            warnings.warn(
                f"Layer {name!r}: vector EI is sample-limited: {100 * singletons:.0f}% of the {rows} "
                f"rows are alone in their (input, output) cell and the bias correction moves the "
                f"estimate by {value - corrected:.3g} bits ({value:.4g} -> {corrected:.4g}; plug-in "
                f"ceiling log2 N = {math.log2(max(rows, 1)):.3g}). Neither number has converged: "
                "use many more samples, fewer bins, or eis_between_groups on fewer neurons.",
                SampleLimitedWarning,
                stacklevel=stacklevel,
            )
        out.append(Estimate(value, corrected, stderr, samples, int(np.sum(below)), int(np.sum(above))))
    return out


def limited_summary(limited: int, total: int, samples: int, bins: int) -> str:
    """The one line a run of many layer measurements gives instead of ``limited`` warnings.

    Example:
      >>> limited_summary(3, 9, 20_000, 8).startswith("vector EI was sample-limited in 3 of 9 layer")
      True
    """
    return (f"vector EI was sample-limited in {limited} of {total} layer measurements ({samples} samples, "
            f"{bins} bins: most rows alone in their cell, so the plug-in and its correction have not "
            "converged; see the vector_ei_corrected and vector_ei_stderr columns). Use more --samples "
            "or fewer --bins.")
