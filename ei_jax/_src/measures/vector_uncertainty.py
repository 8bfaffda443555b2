"""Standard errors and bias corrections of vector EI (``stderr=True``), on the host.

Vector EI is the plug-in MI of whole binned rows. Its estimate from the valid rows of the
run's four quarters is corrected as the pairwise measures are (quadratic extrapolation over
the whole run, its halves and its quarters) and its standard error is the same delta method,
with the pointwise MI ``log2 p(x, y) / (p(x) p(y))`` of each row in each sub-sample.

Vector EI is sample-limited when the rows are too few for the occupied cells: the plug-in
cannot exceed ``log2 N`` and, with most rows distinct, every correction extrapolates from
numbers that are all near that ceiling. Then :class:`SampleLimitedWarning` says so, with the
counts: with ``stderr=True`` (:func:`estimates`) and without (:func:`warn_ceiling`, the plain
plug-in).
"""

import math
import warnings

import numpy as np

from ei_jax._src.info import row_codes
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


def _limited_warning(message: str, **figures) -> SampleLimitedWarning:
    """A :class:`SampleLimitedWarning` carrying its figures (``singletons``: the fraction of
    rows alone in their cell, ``rows``, ``shift``: plug-in minus corrected, in bits) for the
    one-line summaries of many measurements (:func:`limited_summary`)."""
    w = SampleLimitedWarning(message)
    for k, v in figures.items():
        setattr(w, k, v)
    return w


def singleton_fraction(rows) -> float:
    """The fraction of the valid rows ``(R, 4)`` of one group alone in their (input, output)
    cell (0.0 for no rows)."""
    if len(rows) == 0:
        return 0.0
    xy = np.sort(row_codes.code_column(np.asarray(rows), "xy"))
    runs = np.diff(np.flatnonzero(row_codes.sorted_run_edges(xy)))
    return float(np.count_nonzero(runs == 1)) / len(xy)


def warn_ceiling(name: str, value: float, rows: int, singletons: float, stacklevel: int = 4) -> bool:
    """:class:`SampleLimitedWarning` where a plug-in vector EI (``stderr=False``) sits at its
    ceiling: more than :data:`SINGLETON_LIMIT` of the ``rows`` alone in their cell. Returns
    whether it warned."""
    if not singletons > SINGLETON_LIMIT:
        return False
    ceiling = math.log2(max(rows, 1))
    warnings.warn(_limited_warning(
        f"Layer {name!r}: vector EI is sample-limited: {round(singletons * rows):,} of the {rows:,} "
        f"rows ({100 * singletons:.0f}%) are alone in their (input, output) cell, so the plug-in "
        f"{value:.4f} bits sits {ceiling - value:.3g} bits below its ceiling log2 N = {ceiling:.4f} "
        "and measures the sample count more than the layer. Use many more samples, fewer bins, "
        "or eis_between_groups on fewer neurons (stderr=True gives the bias-corrected value).",
        singletons=singletons, rows=rows, shift=math.nan), stacklevel=stacklevel + 1)
    return True


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
        limited = bool(singletons > SINGLETON_LIMIT or value - corrected > max(2 * stderr, 0.05))
        if limited:
            warnings.warn(_limited_warning(
                f"Layer {name!r}: vector EI is sample-limited: {round(singletons * rows):,} of the "
                f"{rows:,} rows ({100 * singletons:.0f}%) are alone in their (input, output) cell "
                f"and the bias correction moves the estimate by {value - corrected:.3g} bits "
                f"({value:.4g} -> {corrected:.4g}; plug-in ceiling log2 N = "
                f"{math.log2(max(rows, 1)):.4g}). Neither number has converged: use many more "
                "samples, fewer bins, or eis_between_groups on fewer neurons.",
                singletons=singletons, rows=rows, shift=value - corrected),
                stacklevel=stacklevel,
            )
        out.append(Estimate(value, corrected, stderr, samples, int(np.sum(below)), int(np.sum(above)),
                            limited))
    return out


def _percent_range(values) -> str:
    lo, hi = min(values), max(values)
    return f"{100 * lo:.0f}%" if f"{100 * lo:.0f}" == f"{100 * hi:.0f}" else f"{100 * lo:.0f}-{100 * hi:.0f}%"


def limited_summary(limited: int, total: int, samples: int, bins: int, warnings_=()) -> str:
    """The one line a run of many layer measurements gives instead of ``limited`` warnings.

    ``warnings_``: the caught :class:`SampleLimitedWarning` messages, or their ``vars()``
    (their figures give the real fraction of rows alone in their cell and the correction's
    shift; "most" only where it is most).

    Example:
      >>> limited_summary(3, 9, 20_000, 8).startswith("vector EI was sample-limited in 3 of 9 layer")
      True
      >>> w = [_limited_warning("", singletons=f, rows=1000, shift=s) for f, s in
      ...      ((0.05, 0.3), (0.38, 0.1), (0.33, 0.2))]
      >>> text = limited_summary(3, 9, 20_000, 8, w)
      >>> "5-38% of the rows alone in their cell" in text and "most" not in text
      True
    """
    figures = [w if isinstance(w, dict) else vars(w) for w in warnings_]
    singles, shifts = ([float(f[k]) for f in figures if math.isfinite(float(f.get(k, math.nan)))]
                       for k in ("singletons", "shift"))
    why = []
    if singles:
        most = sum(f > 0.5 for f in singles)
        why.append(f"{_percent_range(singles)} of the rows alone in their cell"
                   + (f" (most rows in {most} of them)" if most else ""))
    if shifts:
        lo, hi = f"{min(shifts):.2g}", f"{max(shifts):.2g}"
        why.append(f"the bias correction moving the estimate by {lo if lo == hi else f'{lo} to {hi}'} bits")
    why = " and ".join(why) or "too few rows for the occupied cells"
    return (f"vector EI was sample-limited in {limited} of {total} layer measurements ({samples} samples, "
            f"{bins} bins: {why}, so the plug-in and its correction have not converged; see the "
            "vector_ei_corrected, vector_ei_stderr and vector_ei_plugin columns). Use more --samples "
            "or fewer --bins.")
