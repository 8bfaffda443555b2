"""Sample-count control shared by the convenient measures: pieces, auto mode, extrapolation.

* **Pieces**: a manual run is counted in pieces of at most ``PIECE`` samples, each one
  jitted call with int32 counts; the pieces are added on the host in int64, so the total
  never overflows and a progress bar can follow long runs.
* **Automatic mode** (deep-ei's ``threshold``): start with 10,000 samples and keep doubling
  until doubling again would change the estimate by less than ``threshold`` of its value
  (EI_parts) or by less than ``threshold`` bits (vector EI). The counts of each round are
  added to the previous ones, so the result equals a manual run with the final count.
* **Extrapolation** (deep-ei's ``extrapolate=True``): EI_parts at 100k, 200k, ..., 2M samples;
  fit ``a / n**e + C`` (a, e, C >= 0) to the last 16 points and report the fit at 1e15.
"""

import math
import warnings

import numpy as np

from ei_jax._src.core import MAX_SAMPLES_PER_CALL
from ei_jax._src.errors import InvalidSamplesError

#: Samples per jitted call of a manual run (int32 counts per call, int64 on the host).
PIECE = 1 << 24
#: First round and growth of automatic mode (deep-ei's INTERVAL and MULTIPLIER).
AUTO_START = 10_000
AUTO_MULTIPLIER = 2
#: Extrapolation points (deep-ei's INTERVAL and POINTS) and how many leading points to skip.
EXTRAPOLATE_INTERVAL = 100_000
EXTRAPOLATE_POINTS = 20
EXTRAPOLATE_SKIP = 4


def progress_bar(total, enabled, desc):
    """A tqdm bar (or a no-op stand-in when disabled)."""
    if enabled:
        from tqdm.auto import tqdm

        return tqdm(total=total, desc=desc, unit="sample", unit_scale=True, leave=False)

    class _Null:
        def update(self, n):
            pass

        def close(self):
            pass

    return _Null()


def check_threshold(threshold) -> float:
    try:
        t = float(threshold)
    except (TypeError, ValueError):
        raise InvalidSamplesError(f"threshold must be a positive number. Got {threshold!r}.") from None
    if not (t > 0 and math.isfinite(t)):
        raise InvalidSamplesError(f"threshold must be a positive finite number. Got {threshold!r}.")
    return t


def counted_in_pieces(count_fn, start: int, samples: int, *, progress, desc):
    """Adds ``count_fn(start, n)`` (a tuple of int arrays) over pieces of ``PIECE`` samples."""
    if start + samples > MAX_SAMPLES_PER_CALL:
        raise InvalidSamplesError(
            f"{start + samples} samples exceed the {MAX_SAMPLES_PER_CALL} ei_jax supports in one "
            "measurement (sample indices are int32). Use fewer samples, or average measurements "
            "made with different keys."
        )
    show = progress if progress is not None else samples > 2 * PIECE
    bar = progress_bar(samples, bool(show) and samples > PIECE, desc)
    total = None
    try:
        s = start
        while s < start + samples:
            n = min(PIECE, start + samples - s)
            part = tuple(np.asarray(a, np.int64) for a in count_fn(s, n))
            total = part if total is None else tuple(t + p for t, p in zip(total, part))
            s += n
            bar.update(n)
    finally:
        bar.close()
    return total


def auto_rounds(estimate_fn, *, threshold, vector, max_samples, progress, desc):
    """deep-ei's automatic sample count.

    Args:
      estimate_fn: ``estimate_fn(start, n) -> float``, the estimate after adding samples
        ``[start, start + n)`` to those already counted.
      threshold: relative (EI_parts) or absolute-bits (vector) convergence threshold.
      vector: use the vector-EI convergence rule.
      max_samples: give up doubling past this many samples (with a warning).

    Returns:
      ``(estimate, samples_used)``.
    """
    interval, so_far, start = AUTO_START, AUTO_START, 0
    history = []
    bar = progress_bar(None, bool(progress), desc)
    try:
        while True:
            history.append(float(estimate_fn(start, interval)))
            bar.update(interval)
            start += interval
            if len(history) >= 2:
                if vector:
                    done = abs(history[-1] - history[-2]) < math.log2(AUTO_MULTIPLIER) * threshold
                else:
                    slope = (history[-2] - history[-1]) / interval
                    error = slope * so_far * (AUTO_MULTIPLIER - 1)
                    # A zero estimate cannot shrink further (deep-ei divides by zero here).
                    done = error <= 0 or history[-1] <= 0 or error / history[-1] <= threshold
                if done:
                    return history[-1], so_far
            interval = int(so_far * (AUTO_MULTIPLIER - 1))
            if so_far + interval > max_samples:
                warnings.warn(
                    f"{desc}: not converged to threshold={threshold} after {so_far} samples "
                    f"(limit {max_samples}); returning the last estimate. Raise the threshold or "
                    "pass samples= explicitly.",
                    RuntimeWarning,
                    stacklevel=4,
                )
                return history[-1], so_far
            so_far += interval
    finally:
        bar.close()


def fit_power_law(n, values):
    """Least-squares fit of ``a / n**e + C`` with ``a, e, C >= 0``; returns ``(a, e, C)``.

    For fixed ``e`` the model is linear in ``(a, C)`` and solved exactly (with the
    non-negativity constraints); ``e`` is found by a grid search refined by golden-section.
    """
    n = np.asarray(n, np.float64)
    v = np.asarray(values, np.float64)

    def solve(e):
        basis = n ** (-e)
        best = None
        # Unconstrained, then the faces a = 0 and C = 0 of the feasible set.
        cands = []
        A = np.stack([basis, np.ones_like(basis)], 1)
        sol, *_ = np.linalg.lstsq(A, v, rcond=None)
        cands.append((sol[0], sol[1]))
        cands.append((0.0, max(0.0, v.mean())))
        denom = float(basis @ basis)
        cands.append((max(0.0, float(basis @ v) / denom) if denom > 0 else 0.0, 0.0))
        for a, c in cands:
            if a < 0 or c < 0:
                continue
            sse = float(np.sum((v - (a * basis + c)) ** 2))
            if best is None or sse < best[0]:
                best = (sse, a, c)
        return best

    grid = np.linspace(0.0, 4.0, 401)
    results = [solve(e) for e in grid]
    i = int(np.argmin([r[0] for r in results]))
    lo, hi = grid[max(0, i - 1)], grid[min(len(grid) - 1, i + 1)]
    phi = (math.sqrt(5) - 1) / 2
    for _ in range(60):
        m1, m2 = hi - phi * (hi - lo), lo + phi * (hi - lo)
        if solve(m1)[0] <= solve(m2)[0]:
            hi = m2
        else:
            lo = m1
    e = (lo + hi) / 2
    cand = solve(e)
    if results[i][0] < cand[0]:
        e, cand = grid[i], results[i]
    return cand[1], e, cand[2]


def extrapolated(estimate_fn, *, progress, desc):
    """deep-ei's ``extrapolate=True``: returns the fitted EI at 1e15 samples."""
    sizes, values = [], []
    bar = progress_bar(EXTRAPOLATE_INTERVAL * EXTRAPOLATE_POINTS, bool(progress), desc)
    try:
        for p in range(EXTRAPOLATE_POINTS):
            values.append(float(estimate_fn(p * EXTRAPOLATE_INTERVAL, EXTRAPOLATE_INTERVAL)))
            sizes.append((p + 1) * EXTRAPOLATE_INTERVAL)
            bar.update(EXTRAPOLATE_INTERVAL)
    finally:
        bar.close()
    a, e, c = fit_power_law(sizes[EXTRAPOLATE_SKIP:], values[EXTRAPOLATE_SKIP:])
    return float(a / (1e15 ** e) + c)
