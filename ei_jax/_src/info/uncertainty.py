"""Estimates with a standard error and a bias correction: :class:`Estimate` and its statistics.

A plug-in MI estimate from ``N`` samples is biased upward by about ``(cells - 1) / (2 N ln 2)``
bits per pair. ei_jax corrects it by quadratic (Richardson) extrapolation over nested
sub-samples -- the whole run, its two halves and its four quarters::

    corrected = (8 I_N - 6 mean(I_{N/2}) + mean(I_{N/4})) / 3,

which cancels the ``1/N`` and ``1/N^2`` terms of the bias (chosen by measuring against the
exact values: see the docs, ``docs/concepts.md``, "How much to trust a number"). Its standard error is the delta
method applied to that combination: with ``T^M(s)`` the influence of sample ``s`` on the
plug-in estimate from sub-sample ``M`` (its pointwise MI minus the estimate, over the pair's
``n_M`` kept samples), the corrected estimate is ``I + sum_s c(s)`` with
``c = 8/3 T^N - 6/3 T^{half(s)} / 2 + 1/3 T^{quarter(s)} / 4``, so ``stderr = sqrt(sum_s c(s)^2)``. For a sum over pairs that share samples (EI_parts),
``c(s)`` is summed over the pairs before squaring -- a second pass over the same samples.

The functions here take the array namespace ``xp`` (``numpy`` for the host in float64,
``jax.numpy`` in the pure core) so that one implementation serves both.
"""

import dataclasses
import math

import jax
import numpy as np

from ei_jax._src.info import plugin

#: Weights of the full run, the mean of its halves and the mean of its quarters.
WEIGHTS = (8.0 / 3.0, -6.0 / 3.0, 1.0 / 3.0)
#: The correction is unreliable when its estimated residual exceeds this many standard errors
#: (:func:`residual_bias`; calibrated in ``benchmarks/calibration.py``).
RESIDUAL_LIMIT = 2.0


@dataclasses.dataclass(frozen=True)
class Estimate:
    """A sampled measurement with its standard error and a bias-corrected value (bits).

    Attributes:
      value: the plug-in estimate (deep-ei's number): a float, or an array for matrices.
      corrected: the bias-corrected estimate (quadratic extrapolation over sub-samples).
      stderr: the standard error of ``corrected`` (delta method over the same samples).
      samples: the number of samples (per input neuron for sensitivity).
      below, above: output values below / above ``out_range`` (or not finite).
      limited: True (per entry for matrices) where the samples are too few for the bias
        correction: its estimated residual (:func:`residual_bias`) exceeds
        :data:`RESIDUAL_LIMIT` standard errors, or (vector EI) most rows are alone in their
        cell. Then ``interval`` is not a 95% interval; the convenient measures also warn
        (:class:`ei_jax.SampleLimitedWarning`) with how many samples would do. Under
        ``jax.jit`` / ``jax.vmap`` (the pure core) no warning can be raised: check this
        field on the host afterwards.

    A pytree (``value``, ``corrected``, ``stderr``, ``below``, ``above``, ``limited`` are
    leaves), so it passes through ``jax.jit`` and ``jax.vmap``.

    Example:
      >>> Estimate(3.851, 3.8123, 0.0041, 100000)
      Estimate(3.8123 ± 0.0041 bits, plug-in 3.8510, 100000 samples)
    """

    value: object
    corrected: object
    stderr: object
    samples: int
    below: object = 0
    above: object = 0
    limited: object = False

    @property
    def interval(self):
        """The 95% interval ``corrected -+ 1.96 stderr``."""
        return (self.corrected - 1.96 * self.stderr, self.corrected + 1.96 * self.stderr)

    def __repr__(self) -> str:
        v, c, s = (np.asarray(a, np.float64) for a in (self.value, self.corrected, self.stderr))
        if c.ndim:
            return (f"Estimate({c.shape} bits, sum {c.sum():.4g}, plug-in sum {v.sum():.4g}, "
                    f"stderr up to {s.max():.2g}, {self.samples} samples)")
        digits = 3 if not s > 0 else min(6, max(3, 1 - math.floor(math.log10(float(s)))))
        flag = ", sample-limited" if np.any(np.asarray(self.limited)) else ""
        return (f"Estimate({c:.{digits}f} ± {s:.{digits}f} bits, plug-in {v:.{digits}f}, "
                f"{self.samples} samples{flag})")


jax.tree_util.register_dataclass(Estimate, data_fields=["value", "corrected", "stderr", "below", "above",
                                                        "limited"],
                                 meta_fields=["samples"])


def quarter_bounds(start: int, samples: int) -> tuple[int, ...]:
    """The five boundaries of the quarters of samples ``[start, start + samples)``."""
    return tuple(start + (k * samples) // 4 for k in range(5))


def subsets(quarters):
    """``(full, halves, quarters)`` of four quarter histograms (any array namespace)."""
    q = list(quarters)
    halves = [q[0] + q[1], q[2] + q[3]]
    return halves[0] + halves[1], halves, q


def influence_tables(quarters, xp=np):
    """Plug-in and corrected MI of every pair, and the influence tables of the delta method.

    Args:
      quarters: four int histograms ``(..., kx, ky)``: the counts of each quarter of the run.
      xp: ``numpy`` (float64) or ``jax.numpy`` (float32).

    Returns:
      ``(value, corrected, variance, tables, kept, means)``: plug-in and corrected MI ``(...)``, the
      per-pair delta-method variance ``sum_s c(s)^2`` of ``corrected`` ``(...)``, the
      influence tables ``(7, ..., kx, ky)`` (full, 2 halves, 4 quarters: ``c(s)`` of a
      sample of quarter ``q`` is ``T[0] + T[1 + q // 2] + T[3 + q]`` at its cell), and the
      kept samples of each sub-sample ``(7, ...)``, and ``(mean I_{N/2}, mean I_{N/4})``
      ``(...)`` for :func:`residual_bias`.
    """
    full, halves, qs = subsets(quarters)
    groups = [full] + halves + qs
    mis, tables, kept = [], [], []
    for g in groups:
        mi, pmi, n = plugin.pointwise_mi(g, xp)
        mis.append(mi)
        kept.append(n)
        tables.append(pmi - mi[..., None, None])
    value = mis[0]
    corrected = (WEIGHTS[0] * mis[0] + WEIGHTS[1] * (mis[1] + mis[2]) / 2
                 + WEIGHTS[2] * (mis[3] + mis[4] + mis[5] + mis[6]) / 4)
    # c(s) = sum over sub-samples M holding s of (weight_M / m_M) (pmi_M(s) - I_M) / n_M, with
    # m_M the number of sub-samples averaged (1, 2, 4) and n_M the pair's kept samples in M:
    # then corrected ~ I + sum_s c(s) and its variance is sum_s c(s)^2.
    w = [WEIGHTS[0], WEIGHTS[1] / 2, WEIGHTS[1] / 2] + [WEIGHTS[2] / 4] * 4
    scaled = [wk * xp.where(nk > 0, 1.0 / xp.maximum(nk, 1.0), 0.0)[..., None, None] * t
              for wk, nk, t in zip(w, kept, tables)]
    variance = 0.0
    for q in range(4):
        c = scaled[0] + scaled[1 + q // 2] + scaled[3 + q]
        variance = variance + (qs[q].astype(c.dtype) * c * c).sum(axis=(-2, -1))
    means = ((mis[1] + mis[2]) / 2, (mis[3] + mis[4] + mis[5] + mis[6]) / 4)
    return value, corrected, variance, xp.stack(scaled), xp.stack(kept), means


def residual_bias(full, half, quarter, xp=np):
    """The estimated bias left in the corrected value, from the plug-in of the run, the mean of
    its halves and the mean of its quarters (any shape; sums over pairs are fine).

    The correction assumes the plug-in's bias falls as ``a/N + b/N^2``. When many cells hold
    only a few samples it falls more slowly: with ``d1 = I_{N/2} - I_N`` and ``d2 = I_{N/4} -
    I_{N/2}`` the ratio ``r = d2 / d1`` is 2 for a ``1/N`` bias and ``2^e`` for ``a/N^e``. Under
    that power law the corrected value keeps the residual ``d1 (r - 2)(r - 4) / (3 (r - 1))``
    (the gap between the quadratic and the power-law extrapolation); its magnitude is returned
    (``r`` clipped to ``[1.05, 3]``, 0 where the plug-in did not move).
    """
    d1 = half - full
    d2 = quarter - half
    moved = xp.abs(d1) > 0
    r = xp.clip(xp.where(moved, d2 / xp.where(moved, d1, 1.0), 2.0), 1.05, 3.0)
    return xp.abs(d1 * (r - 2.0) * (r - 4.0) / (3.0 * (r - 1.0)))


def limited(residual, stderr, xp=np):
    """True where :func:`residual_bias` exceeds :data:`RESIDUAL_LIMIT` standard errors."""
    return residual > RESIDUAL_LIMIT * stderr


def samples_needed(samples: int, residual: float, stderr: float, full: float, half: float,
                   quarter: float) -> int:
    """About how many samples would bring the residual below :data:`RESIDUAL_LIMIT`
    standard errors: the residual falls as ``N^-e`` (``e = log2 r``, at least 0.75), the
    standard error as ``N^-1/2``; rounded up to a power of 2 times ``samples``."""
    if not residual > RESIDUAL_LIMIT * stderr:
        return int(samples)
    d1, d2 = half - full, quarter - half
    r = min(max(d2 / d1 if d1 else 2.0, 1.05), 4.0)
    e = max(math.log2(r), 0.75)
    factor = (residual / (RESIDUAL_LIMIT * stderr)) ** (1.0 / (e - 0.5))
    return int(samples * 2 ** math.ceil(math.log2(min(factor, 2.0 ** 20))))
