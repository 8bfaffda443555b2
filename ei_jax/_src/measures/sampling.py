"""Sample-count control of the convenient measures: pieces, automatic rounds, extrapolation.

Every convenient measure counts samples in *rounds* ``[start, start + n)`` and adds each
round's integer statistics to the previous ones, in a plain loop of its own:

* a fixed ``samples``: one round, counted in :func:`pieces` of at most :data:`PIECE` samples
  (each one jitted call with int32 counts, added on the host in int64, with a progress bar);
* automatic mode (deep-ei's ``threshold``): :class:`AutoRounds` yields rounds of 10,000,
  10,000, 20,000, 40,000, ... samples, and stops once doubling again would change the
  estimate by less than ``threshold`` of its value (EI_parts) or by less than ``threshold``
  bits (vector EI). The counts of every round are kept, so the result equals a fixed run of
  the final size;
* extrapolation (deep-ei's ``extrapolate=True``): :data:`EXTRAPOLATE_POINTS` rounds of
  :data:`EXTRAPOLATE_INTERVAL` samples, then :func:`extrapolate` fits ``a / n**e + C``.
"""

import math
import warnings

import numpy as np

from ei_jax._src.base.errors import InvalidCallError, InvalidSamplesError, SampleLimitedWarning
from ei_jax._src.base.interface import MAX_SAMPLES
from ei_jax._src.base.progress import progress_bar
from ei_jax._src.sampled import sharding

#: Samples per jitted call of a manual run (int32 counts per call, int64 on the host).
PIECE = 1 << 24
#: First round and growth of automatic mode (deep-ei's INTERVAL and MULTIPLIER).
AUTO_START = 10_000
AUTO_MULTIPLIER = 2
#: Extrapolation points (deep-ei's INTERVAL and POINTS) and how many leading points to skip.
EXTRAPOLATE_INTERVAL = 100_000
EXTRAPOLATE_POINTS = 20
EXTRAPOLATE_SKIP = 4


def check_threshold(threshold, name: str = "threshold") -> float:
    """``threshold`` (or the argument ``name``) as a positive finite float."""
    if isinstance(threshold, (bool, np.bool_, str)):
        raise InvalidSamplesError(f"{name} must be a positive number. Got {threshold!r}.")
    try:
        t = float(threshold)
    except (TypeError, ValueError):
        raise InvalidSamplesError(f"{name} must be a positive number. Got {threshold!r}.") from None
    if not (t > 0 and math.isfinite(t)):
        raise InvalidSamplesError(f"{name} must be a positive finite number. Got {threshold!r}.")
    return t


def check_max_samples(max_samples) -> int:
    """The automatic mode's sample limit: ``None`` means :data:`MAX_SAMPLES`."""
    if max_samples is None:
        return MAX_SAMPLES
    if isinstance(max_samples, bool) or not isinstance(max_samples, (int, np.integer)) \
            or not AUTO_START <= max_samples <= MAX_SAMPLES:
        raise InvalidSamplesError(
            f"max_samples must be an int in [{AUTO_START}, {MAX_SAMPLES}]. Got {max_samples!r}.")
    return int(max_samples)


def add(total, part):
    """Adds a round's tuple of integer arrays to ``total`` in int64 (``total`` may be None)."""
    with sharding.peer_failures():  # where a sharded run's counts reach the host
        part = tuple(np.asarray(a, np.int64) for a in part)
    return part if total is None else tuple(t + p for t, p in zip(total, part))


def pieces(start: int, samples: int, *, progress, desc):
    """The ``(start, n)`` pieces of at most :data:`PIECE` samples covering a round, with a
    progress bar for a run of several pieces (``progress=None``: automatic, a bar on a
    terminal once the run has lasted a few seconds)."""
    with progress_bar(samples, enabled=progress if samples > PIECE else False, desc=desc) as bar:
        s, stop = start, start + samples
        while s < stop:
            n = min(PIECE, stop - s)
            yield s, n
            s += n
            bar.update(n)


class AutoRounds:
    """deep-ei's automatic sample count, as an iterator of rounds.

    Iterate to get ``(start, n)`` rounds; after counting each one, :meth:`record` the
    estimate of all samples so far. Iteration stops once the estimate has converged by
    deep-ei's ``threshold`` rule -- or, with ``stderr_target`` (bits), once the recorded
    standard error is below it -- or (with a ``RuntimeWarning``) when the next round would
    pass ``max_samples``.

    Example:
      >>> rounds = AutoRounds(0.05, vector=True, max_samples=10**6, desc="EI")
      >>> for start, n in rounds:
      ...     rounds.record(3.0)          # an estimate that does not change
      >>> rounds.samples
      20000
    """

    def __init__(self, threshold, *, vector: bool, max_samples=None, desc: str = "", progress=None,
                 stderr_target=None):
        self.threshold = check_threshold(threshold)
        self.stderr_target = (None if stderr_target is None
                              else check_threshold(stderr_target, "stderr_target"))
        self.vector = vector
        self.max_samples = check_max_samples(max_samples)
        self.desc, self.progress = desc, progress
        self.values: list[float] = []
        self.stderrs: list[float] = []
        self.samples = 0

    def record(self, value, stderr=None) -> None:
        """The estimate after the latest round (and its standard error, with ``stderr_target``)."""
        self.values.append(float(value))
        if self.stderr_target is not None:
            self.stderrs.append(float(stderr))

    def _converged(self, interval: int) -> bool:
        if self.stderr_target is not None:
            return self.stderrs[-1] < self.stderr_target
        if len(self.values) < 2:
            return False
        prev, last = self.values[-2], self.values[-1]
        if self.vector:
            return abs(last - prev) < math.log2(AUTO_MULTIPLIER) * self.threshold
        # deep-ei's rule: the change per sample over the last round, extrapolated to one more
        # doubling, relative to the estimate. A zero estimate cannot shrink further (deep-ei
        # divides by zero there).
        error = (prev - last) / interval * self.samples * (AUTO_MULTIPLIER - 1)
        return error <= 0 or last <= 0 or error / last <= self.threshold

    def __iter__(self):
        interval = AUTO_START
        with progress_bar(None, enabled=self.progress, desc=self.desc) as bar:
            while True:
                rounds = len(self.values)
                bar.set_postfix_str(f"round of {interval:,} samples")
                yield self.samples, interval
                if len(self.values) != rounds + 1:
                    raise InvalidCallError("AutoRounds: record() one estimate after every round.")
                self.samples += interval
                bar.update(interval)
                if self._converged(interval):
                    return
                interval = self.samples * (AUTO_MULTIPLIER - 1)
                if self.samples + interval > self.max_samples:
                    goal = (f"stderr_target={self.stderr_target}" if self.stderr_target is not None
                            else f"threshold={self.threshold}")
                    warnings.warn(
                        f"{self.desc}: not converged to {goal} after "
                        f"{self.samples} samples (max_samples={self.max_samples}); returning the "
                        "last estimate. Relax the target, raise max_samples, or pass samples=.",
                        RuntimeWarning,
                        stacklevel=3,
                    )
                    return


#: Fewest samples per occupied cell, on average, of a pairwise estimate that is not flagged.
MIN_PER_CELL = 2.0


def warn_few_samples(counts, name: str, samples: int, *, stacklevel: int) -> None:
    """:class:`SampleLimitedWarning` when the joint histograms ``counts (..., in_bins, out_bins)``
    hold fewer than :data:`MIN_PER_CELL` samples per occupied cell on average (all pairs
    together): most occupied cells then hold a single sample, so the plug-in MI of a pair
    approaches ``log2`` of its samples whatever the layer does. Never fires with
    ``samples >= 2 * in_bins * out_bins``."""
    counts = np.asarray(counts)
    occupied = int(np.count_nonzero(counts))
    kept = int(counts.sum(dtype=np.int64))
    if occupied and kept < MIN_PER_CELL * occupied:
        warnings.warn(
            f"{name}: {samples:,} samples leave {kept / occupied:.2f} samples per occupied cell of "
            f"the {counts.shape[-2]} x {counts.shape[-1]}-bin joint histograms (fewer than "
            f"{MIN_PER_CELL:g}): the value measures the sample count more than the layer. Pass "
            f"more samples (at least {2 * counts.shape[-2] * counts.shape[-1]:,}), fewer bins, or "
            "samples=None (automatic mode).",
            SampleLimitedWarning,
            stacklevel=stacklevel + 1,
        )


def extrapolation_rounds():
    """The rounds of deep-ei's ``extrapolate=True``: 20 of 100,000 samples."""
    return [(p * EXTRAPOLATE_INTERVAL, EXTRAPOLATE_INTERVAL) for p in range(EXTRAPOLATE_POINTS)]


def extrapolate(values) -> float:
    """deep-ei's extrapolated EI_parts: fit ``a / n**e + C`` to the estimates after each
    extrapolation round (skipping the first :data:`EXTRAPOLATE_SKIP`) and evaluate at 1e15."""
    sizes = [(p + 1) * EXTRAPOLATE_INTERVAL for p in range(len(values))]
    a, e, c = fit_power_law(sizes[EXTRAPOLATE_SKIP:], values[EXTRAPOLATE_SKIP:])
    return float(a / (1e15 ** e) + c)


def _fit_fixed_exponent(n, v, e):
    """Best ``(sse, a, C)`` with ``a, C >= 0`` for a fixed exponent ``e``."""
    basis = n ** (-e)
    A = np.stack([basis, np.ones_like(basis)], 1)
    sol, *_ = np.linalg.lstsq(A, v, rcond=None)
    denom = float(basis @ basis)
    # Unconstrained, then the faces a = 0 and C = 0 of the feasible set.
    cands = [(sol[0], sol[1]), (0.0, max(0.0, v.mean())),
             (max(0.0, float(basis @ v) / denom) if denom > 0 else 0.0, 0.0)]
    best = None
    for a, c in cands:
        if a >= 0 and c >= 0:
            sse = float(np.sum((v - (a * basis + c)) ** 2))
            if best is None or sse < best[0]:
                best = (sse, a, c)
    return best


def fit_power_law(n, values):
    """Least-squares fit of ``a / n**e + C`` with ``a, e, C >= 0``; returns ``(a, e, C)``.

    For fixed ``e`` the model is linear in ``(a, C)`` and solved exactly (with the
    non-negativity constraints); ``e`` is found by a grid search refined by golden-section.
    """
    n = np.asarray(n, np.float64)
    v = np.asarray(values, np.float64)
    grid = np.linspace(0.0, 4.0, 401)
    results = [_fit_fixed_exponent(n, v, e) for e in grid]
    i = int(np.argmin([r[0] for r in results]))
    lo, hi = grid[max(0, i - 1)], grid[min(len(grid) - 1, i + 1)]
    phi = (math.sqrt(5) - 1) / 2
    for _ in range(60):
        m1, m2 = hi - phi * (hi - lo), lo + phi * (hi - lo)
        if _fit_fixed_exponent(n, v, m1)[0] <= _fit_fixed_exponent(n, v, m2)[0]:
            hi = m2
        else:
            lo = m1
    e = (lo + hi) / 2
    cand = _fit_fixed_exponent(n, v, e)
    if results[i][0] < cand[0]:
        e, cand = grid[i], results[i]
    return cand[1], e, cand[2]
