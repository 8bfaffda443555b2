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


def _pointwise(x, y, xy):
    """Pointwise MI (bits) of every row of a sub-sample, and the sub-sample's plug-in MI."""
    n = x.shape[0]
    counts = []
    for c in (x, y, xy):
        _, inverse, cnt = np.unique(c, return_inverse=True, return_counts=True)
        counts.append(cnt[inverse].astype(np.float64))
    pmi = np.log2(counts[2] * n / (counts[0] * counts[1]))
    return pmi, float(pmi.mean())


def group_estimate(quarter_rows, samples: int):
    """``(value, corrected, stderr, singleton fraction)`` of one group from the valid rows
    ``(R_q, 4)`` of each quarter."""
    sizes = [len(r) for r in quarter_rows]
    codes = [row_codes.joint_codes(np.ascontiguousarray(r)) for r in quarter_rows]
    joined = [np.concatenate(parts) for parts in zip(*codes)]
    full, i_full = _pointwise(*joined)
    halves = []
    for h in (0, 1):
        x, y, xy = (np.concatenate([codes[2 * h][k], codes[2 * h + 1][k]]) for k in range(3))
        halves.append(_pointwise(x, y, xy))
    quarters = [_pointwise(*c) for c in codes]
    corrected = (WEIGHTS[0] * i_full + WEIGHTS[1] * (halves[0][1] + halves[1][1]) / 2
                 + WEIGHTS[2] * sum(q[1] for q in quarters) / 4)
    # c(s) = sum over the sub-samples M holding row s of (weight_M / m_M) (pmi_M(s) - I_M) / n_M.
    n = sum(sizes)
    squares, at = 0.0, 0
    for q in range(4):
        h, k = q // 2, sizes[q]
        offset = at - (0 if h == 0 else sizes[0] + sizes[1])
        c = WEIGHTS[0] * (full[at:at + k] - i_full) / n
        nh = sizes[2 * h] + sizes[2 * h + 1]
        c = c + WEIGHTS[1] / 2 * (halves[h][0][offset:offset + k] - halves[h][1]) / max(nh, 1)
        c = c + WEIGHTS[2] / 4 * (quarters[q][0] - quarters[q][1]) / max(k, 1)
        squares += float(np.dot(c, c))
        at += k
    _, cnt = np.unique(joined[2], return_counts=True)
    singletons = float(np.sum(cnt == 1)) / max(n, 1)
    return i_full, corrected, math.sqrt(squares), singletons


def estimates(quarter_rows, samples: int, below, above, *, name: str, stacklevel: int = 4):
    """One :class:`Estimate` per group from the valid rows ``(R_q, G, 4)`` of each quarter,
    with a :class:`SampleLimitedWarning` where the rows are too few."""
    out = []
    for g in range(quarter_rows[0].shape[1]):
        value, corrected, stderr, singletons = group_estimate([r[:, g] for r in quarter_rows], samples)
        rows = sum(len(r) for r in quarter_rows)
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
