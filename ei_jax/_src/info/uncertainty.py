"""Estimates with a standard error and a bias correction: :class:`Estimate` and its statistics.

A plug-in MI estimate from ``N`` samples is biased upward by about ``(cells - 1) / (2 N ln 2)``
bits per pair. ei_jax corrects it by quadratic (Richardson) extrapolation over nested
sub-samples -- the whole run, its two halves and its four quarters::

    corrected = (8 I_N - 6 mean(I_{N/2}) + mean(I_{N/4})) / 3,

which cancels the ``1/N`` and ``1/N^2`` terms of the bias (chosen by measuring against the
exact values: see the docs, ``docs/concepts.md``, "How much to trust a number").

Standard error. To first order every sub-sample's plug-in moves by the same influence
function ``phi(s)`` (pointwise MI minus MI), and the weights sum to 1, so ``Var(corrected) =
Var(phi) / N + V2``, where ``V2`` is the variance of the second-order (von Mises) terms. With
the quarters' independent empirical deviations ``z_1..z_4`` and the quadratic form ``A`` of the
plug-in's second derivative, each ``I_M``'s second-order term is a sum of ``a_ij = z_i' A z_j``;
in the combination above the diagonal ``a_ii`` cancel and ``V2 = (64/9 + 8/9) Var(a_ij) / N^2
= 8 Var(a_ij) / N^2``. The delta method estimates the influence from the run's own tables
``T^M(s) = pmi_M(cell of s) - I_M``, which carry their own noise ``e_j(s)`` from each quarter
``j``, with ``sum_s E e_j(s)^2 / N^2 = 16 Var(a_ij) / N^2 = 2 V2`` (``e_j`` is ``A``
applied to ``z_j``). Weighting the tables as in
the correction (``8/3 T^N - 2 T^{half} + 1/3 T^{quarter}``, the earlier rule) leaves, for a
sample of quarter 1, ``phi - e_2/3 + 2/3 (e_3 + e_4)``: noise of weight ``1/9 + 8/9 = 1``,
twice ``V2`` -- the stderr was up to 25% wide. The influence of the split-half combination

    c(s) = (2 T^N(s) - T^{half(s)}(s)) / N      (= phi + (e_3 + e_4) / 2 for quarter 1)

keeps the same first-order term, cancels the sample's own quarter (whose in-sample noise is
the bias: coefficient ``2/4 - 1/2 = 0``) and carries noise of weight ``1/4 + 1/4 = 1/2``,
so that ``E sum_s c(s)^2 = Var(phi) / N + V2``: ``stderr = sqrt(sum_s c(s)^2)`` estimates the
corrected value's own spread, second-order term included, with no constant fitted.
For a sum over pairs that share samples (EI_parts), ``c(s)`` is summed over the pairs before
squaring -- a second pass over the same samples.

When the correction cannot be trusted. The bias falls as ``a/N + b/N^2`` only once few
cells hold few samples; where many do (tails of saturating layers, many bins), cells move
in and out of occupancy and a ``lambda log lambda`` term per cell is left that no power
series removes. The run's own check is the gap between the quadratic and the linear
(split-half, ``2 I_N - mean I_{N/2}``) extrapolations, ``(d2 - 2 d1) / 3`` with ``d1 =
I_{N/2} - I_N`` and ``d2 = I_{N/4} - I_{N/2}``: the size of the last correction applied,
the usual a-posteriori error of Richardson extrapolation (:func:`residual_bias`). Where the
measured error of the corrected value is large, it is 0.4-1.6 times this gap (16 keys each of
13 layers, ``benchmarks/calibration.py``; 3.6 times once, where the gap itself was 3 standard
errors: a 3->2 tanh layer at 64 bins and 5,000 samples), so a gap within :data:`RESIDUAL_LIMIT` = 0.4
standard errors bounds the error by about 0.6 standard errors: the 95% interval then covers at
least 90% (``P(|Z + 0.6| < 1.96) = 0.905``). Beyond it, ``Estimate.limited`` is set.

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
#: The correction is unreliable when the gap between the quadratic and the linear
#: extrapolation (:func:`residual_bias`) exceeds this many standard errors: the measured error
#: is up to ~1.5 times the gap, and 1.5 * 0.4 = 0.6 standard errors of bias still leaves 90%
#: coverage (module docstring; ``benchmarks/calibration.py``).
RESIDUAL_LIMIT = 0.4
#: Weights of the full run's and the mean of its halves' (and quarters') influence tables in
#: the delta method: the split-half combination, whose table noise matches the corrected
#: value's second-order variance (module docstring).
INFLUENCE = (2.0, -1.0, 0.0)


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
        correction: the gap between its quadratic and linear extrapolation
        (:func:`residual_bias`) exceeds :data:`RESIDUAL_LIMIT` standard errors, or (vector
        EI) most rows are alone in their cell. Then ``interval`` is not a 95% interval; the convenient measures also warn
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
    w = [INFLUENCE[0], INFLUENCE[1] / 2, INFLUENCE[1] / 2] + [INFLUENCE[2] / 4] * 4
    scaled = [wk * xp.where(nk > 0, 1.0 / xp.maximum(nk, 1.0), 0.0)[..., None, None] * t
              for wk, nk, t in zip(w, kept, tables)]
    variance = 0.0
    for q in range(4):
        c = scaled[0] + scaled[1 + q // 2] + scaled[3 + q]
        variance = variance + (qs[q].astype(c.dtype) * c * c).sum(axis=(-2, -1))
    means = ((mis[1] + mis[2]) / 2, (mis[3] + mis[4] + mis[5] + mis[6]) / 4)
    return value, corrected, variance, xp.stack(scaled), xp.stack(kept), means


def residual_bias(full, half, quarter, xp=np):
    """The estimated bias left in the corrected value: the gap ``|(d2 - 2 d1) / 3|`` between the
    quadratic and the linear (split-half) extrapolation, from the plug-in of the run, the mean
    of its halves and the mean of its quarters (any shape; sums over pairs are fine).

    ``d1 = I_{N/2} - I_N``, ``d2 = I_{N/4} - I_{N/2}``. For a bias ``a/N + b/N^2`` the gap is
    ``2 b / N^2``, the last term the correction removes; where the bias has no such series
    (many cells with a few samples) the corrected value's error was measured at 0.4-1.6 times
    the gap (module docstring).
    """
    return xp.abs((quarter - half) - 2.0 * (half - full)) / 3.0


def limited(residual, stderr, xp=np):
    """True where :func:`residual_bias` exceeds :data:`RESIDUAL_LIMIT` standard errors."""
    return residual > RESIDUAL_LIMIT * stderr


def samples_needed(samples: int, residual: float, stderr: float) -> tuple[int, int]:
    """About how many samples would bring the gap (:func:`residual_bias`) within
    :data:`RESIDUAL_LIMIT` standard errors: ``(low, high)``, each ``samples`` times a power
    of 2 (``(samples, samples)`` where it is within already).

    The standard error falls as ``N^-1/2``. The gap falls as ``N^-2`` where the cells with few
    samples are filling up (the ``b/N^2`` term it measures; measured: 5->5 sigmoid at 64 bins,
    0.67 -> 0.012 bits from 5,000 to 20,000 samples, faster still) -- ``low``: ``(ratio)^(2/3)``
    times the samples, ``ratio = residual / (RESIDUAL_LIMIT * stderr)`` -- and as ``N^-1``
    where cells in the tails of the outputs keep entering at any ``N`` (20->10 sigmoid at 64
    bins: 0.169 -> 0.036 bits from 50,000 to 200,000) -- ``high``: ``ratio^2`` times.
    """
    if not residual > RESIDUAL_LIMIT * stderr:
        return int(samples), int(samples)
    ratio = min(residual / (RESIDUAL_LIMIT * stderr), 2.0 ** 15)
    return tuple(int(samples * 2 ** max(0, math.ceil(math.log2(ratio ** p) - 1e-9)))
                 for p in (2.0 / 3.0, 2.0))
