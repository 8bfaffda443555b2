"""Standard errors and bias corrections for the convenient pairwise measures (``stderr=True``).

A run is counted in quarters (a fixed run: its four quarters; an automatic run: its first
round in four, every later round -- which doubles the samples -- in two, so that the four
quarters of the total are always at hand). The plug-in, corrected and per-pair variances come
from the int64 quarter counts in float64 (:func:`ei_jax._src.info.uncertainty.influence_tables`); a
sum over pairs adds the delta method's second pass, counted in the same pieces.
"""

import warnings

import numpy as np

from ei_jax._src.base.errors import SampleLimitedWarning
from ei_jax._src.core import estimates as core_estimates
from ei_jax._src.measures import sampling
from ei_jax._src.info import uncertainty as unc
from ei_jax._src.info.uncertainty import Estimate, influence_tables
from ei_jax._src.base.interface import BLOCK


def split(start: int, samples: int, parts: int):
    """``parts`` consecutive ``(start, n)`` ranges covering ``[start, start + samples)``."""
    b = [start + (k * samples) // parts for k in range(parts + 1)]
    return [(b[k], b[k + 1] - b[k]) for k in range(parts)]


def count_parts(count, start: int, samples: int, parts: int):
    """``count(start, n)`` (int64 tuples) of each of ``parts`` sub-ranges."""
    return [count(s, n) for s, n in split(start, samples, parts)]


def doubled(quarters, parts):
    """The quarters of a run after a round that doubles it: the old halves, then the round's two halves."""
    if quarters is None:
        return parts
    return [sampling.add(quarters[0], quarters[1]), sampling.add(quarters[2], quarters[3]), *parts]


def total(quarters):
    """The whole run's ``(counts, below, above)`` from its quarters."""
    out = None
    for q in quarters:
        out = sampling.add(out, q)
    return out


def warn_limited(name: str, what: str, samples: int, residual, stderr, stacklevel=5) -> None:
    """:class:`SampleLimitedWarning` where the gap between the quadratic and the linear
    extrapolation (:func:`unc.residual_bias`) exceeds :data:`unc.RESIDUAL_LIMIT` standard
    errors, with about how many samples would do (:func:`unc.samples_needed`).

    ``residual`` and ``stderr`` are scalars or arrays of the same shape (a matrix: one entry
    per pair)."""
    residual, stderr = np.atleast_1d(residual).ravel(), np.atleast_1d(stderr).ravel()
    bad = np.flatnonzero(unc.limited(residual, stderr))
    if not bad.size:
        return
    needs = [unc.samples_needed(samples, residual[i], stderr[i]) for i in bad]
    low, high = max(n[0] for n in needs), max(n[1] for n in needs)
    i = bad[np.argmax(residual[bad] / stderr[bad])]
    where = "" if residual.size == 1 else f" in {bad.size} of {residual.size} pairs"
    warnings.warn(
        f"Layer {name!r}: {what} is sample-limited{where} at {samples:,} samples: the quadratic "
        f"and the linear bias corrections differ by {residual[i]:.3g} bits, more than "
        f"{unc.RESIDUAL_LIMIT:g} standard errors (of {stderr[i]:.3g} bits): too many cells hold "
        "few samples for the correction to be trusted, so corrected ± 1.96 stderr is not a 95% "
        f"interval. About {low:,} to {high:,} samples would do (the gap falls as 1/samples^2 "
        "where cells with few samples are filling up, as 1/samples where the outputs' tails "
        "keep adding such cells; the standard error as 1/sqrt(samples)); or fewer bins, or "
        "ei_jax.exact for a single layer.",
        SampleLimitedWarning, stacklevel=stacklevel)


def estimate(key, problem, kw, quarters, *, kind: str, samples: int, summed: bool, progress=None,
             desc="", warn=True):
    """The :class:`Estimate` of a run from its int64 quarter counts (and, for a sum over pairs,
    the second pass over its samples with ``key``); ``warn``: :func:`warn_limited` where the
    correction is unreliable (``Estimate.limited`` is set either way)."""
    value, corrected, variance, tables, _, (half, quarter) = influence_tables(
        [q[0] for q in quarters], np)
    below, above = (sum(q[i] for q in quarters) for i in (1, 2))
    what = "EI_parts" if kind == "parts" else "sensitivity"
    if not summed:
        stderr = np.sqrt(variance)
        residual = unc.residual_bias(value, half, quarter)
        if warn:
            warn_limited(problem.name, f"the {what} matrix", samples, residual, stderr)
        return Estimate(value, corrected, stderr, samples, below, above,
                        unc.limited(residual, stderr))
    bounds = tuple(b for b, _ in split(0, samples, 4)) + (samples,)
    # Per-block sums of a piece, added in block order in float64: the same for any batch size
    # or device count. A block cut by a piece boundary is summed from both pieces' parts.
    blocks = {}
    for s, n in sampling.pieces(0, samples, progress=progress, desc=f"{desc} (stderr)"):
        part = np.asarray(core_estimates.influence_squares(
            key, problem.apply_fn, problem.params, tables, bounds, kind=kind, samples=n, start=s,
            **kw), np.float64)
        first = s // BLOCK
        for i in range(-(-(s + n) // BLOCK) - first):
            blocks[first + i] = blocks.get(first + i, 0.0) + part[..., i]
    squares = sum(np.sum(blocks[b]) for b in sorted(blocks))
    stderr = float(np.sqrt(squares))
    means = (float(value.sum()), float(half.sum()), float(quarter.sum()))
    residual = float(unc.residual_bias(*means))
    if warn:
        warn_limited(problem.name, what, samples, residual, stderr)
    return Estimate(means[0], float(corrected.sum()), stderr, samples, int(np.sum(below)),
                    int(np.sum(above)), bool(unc.limited(residual, stderr)))
