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

from ei_jax._src import row_codes
from ei_jax._src.errors import SampleLimitedWarning
from ei_jax._src.estimate import WEIGHTS, Estimate

#: Above this fraction of rows alone in their (input, output) cell, vector EI is sample-limited.
SINGLETON_LIMIT = 0.2


def _quarter_counts(codes, quarter):
    """``(table, run)``: ``table[q, r]`` rows of quarter ``q`` with the ``r``-th distinct code
    (int64 ``(4, runs)``), ``run[i]`` row ``i``'s code index -- one sort of the codes; the
    counts of a half or of the whole run are sums of a row's quarter counts."""
    order = np.argsort(codes)
    srt = codes[order]
    first = np.empty(len(srt), bool)
    first[:1] = True
    np.not_equal(srt[1:], srt[:-1], out=first[1:])
    run = np.cumsum(first) - 1
    runs = int(run[-1]) + 1
    table = np.bincount(quarter[order] * runs + run, minlength=4 * runs)
    row_run = np.empty_like(run)
    row_run[order] = run
    return table.reshape(4, runs), row_run


def _pmi(cx, cy, cxy, n):
    """Pointwise MI (bits) of rows with these cell counts in a sub-sample of ``n`` rows."""
    return np.log2(cxy.astype(np.float64) * n / (cx.astype(np.float64) * cy.astype(np.float64)))


def group_estimate(quarter_rows, samples: int):
    """``(value, corrected, stderr, singleton fraction)`` of one group from the valid rows
    ``(R_q, 4)`` of each quarter.

    Every row's pointwise MI ``log2 p(x, y) / (p(x) p(y))`` is needed in the whole run, in its
    half and in its quarter: one sort per code (input, output, joint) gives each row's
    counts in every quarter, and those give all seven sub-samples' counts.
    """
    sizes = [len(r) for r in quarter_rows]
    n = sum(sizes)
    codes = [row_codes.joint_codes(np.ascontiguousarray(r)) for r in quarter_rows]
    quarter = np.repeat(np.arange(4), sizes)
    tables = [_quarter_counts(np.concatenate([c[k] for c in codes]), quarter) for k in range(3)]
    bounds = np.cumsum([0, *sizes])

    def sub_pmi(lo, hi, cols):      # pointwise MI of rows [lo, hi) in the sub-sample of quarters `cols`
        cnt = [sum(t[q] for q in cols)[r[lo:hi]] for t, r in tables]
        return _pmi(*cnt, sum(sizes[q] for q in cols))

    full = sub_pmi(0, n, [0, 1, 2, 3])
    i_full = float(full.mean())
    pmi_h = [sub_pmi(bounds[2 * h], bounds[2 * h + 2], [2 * h, 2 * h + 1]) for h in (0, 1)]
    i_h = [float(p.mean()) for p in pmi_h]
    pmi_q = [sub_pmi(bounds[q], bounds[q + 1], [q]) for q in range(4)]
    i_q = [float(p.mean()) for p in pmi_q]
    corrected = WEIGHTS[0] * i_full + WEIGHTS[1] * sum(i_h) / 2 + WEIGHTS[2] * sum(i_q) / 4
    # c(s) = sum over the sub-samples M holding row s of (weight_M / m_M) (pmi_M(s) - I_M) / n_M.
    squares = 0.0
    for q in range(4):
        h, lo, hi = q // 2, bounds[q], bounds[q + 1]
        at = lo - bounds[2 * h]
        nh = sizes[2 * h] + sizes[2 * h + 1]
        c = WEIGHTS[0] * (full[lo:hi] - i_full) / n
        c = c + WEIGHTS[1] / 2 * (pmi_h[h][at:at + hi - lo] - i_h[h]) / max(nh, 1)
        c = c + WEIGHTS[2] / 4 * (pmi_q[q] - i_q[q]) / max(hi - lo, 1)
        squares += float(np.dot(c, c))
    singletons = float(np.sum(sum(tables[2][0]) == 1)) / max(n, 1)
    return i_full, corrected, math.sqrt(squares), singletons


def estimates(quarter_rows, samples: int, below, above, *, name: str, stacklevel: int = 4, results=None):
    """One :class:`Estimate` per group from the valid rows ``(R_q, G, 4)`` of each quarter,
    with a :class:`SampleLimitedWarning` where the rows are too few (``results``: the
    groups' :func:`group_estimate` computed already)."""
    out = []
    rows = sum(len(r) for r in quarter_rows)
    for g in range(quarter_rows[0].shape[1]):
        result = results[g] if results is not None else group_estimate([r[:, g] for r in quarter_rows], samples)
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
