"""The convenient pairwise measures: EI_parts and sensitivity of a topology's layer.

Key first, then the topology and the layer, then deep-ei's keyword arguments; NumPy / float
results. Each resolves the layer (:mod:`problems`), counts rounds of samples with the pure
core (:mod:`core_measures`) under the sample-count control of :mod:`sampling`, adds the
counts in int64 and takes the plug-in MI in float64 on the host (:mod:`plugin`, :mod:`reporting`).
"""

import numpy as np

from ei_jax._src.base import checks
from ei_jax._src.core import measures as core_measures
from ei_jax._src.info import reporting
from ei_jax._src.measures import sampling
from ei_jax._src.measures import pairwise_uncertainty as uncertainty
from ei_jax._src.core.estimates import check_estimate_samples
from ei_jax._src.base.errors import InvalidOptionError
from ei_jax._src.model.problems import canonicalize_key, resolve


def _counts(stats_fn, key, problem, kw, start, samples, *, progress, desc):
    """int64 ``(counts, below, above)`` of samples ``[start, start + samples)``."""
    total = None
    for s, n in sampling.pieces(start, samples, progress=progress, desc=desc):
        total = sampling.add(total, stats_fn(key, problem.apply_fn, problem.params, samples=n,
                                             start=s, **kw))
    return total


def _ei_parts_run(key, problem, kw, *, samples, threshold, extrapolate, max_samples, stderr,
                  stderr_target, summed, progress):
    """``(int64 (counts, below, above), samples used, extrapolated value or Estimate or None)``."""
    desc = f"EI_parts {problem.name}"

    def count(s, n):
        return _counts(core_measures.pairwise_stats, key, problem, kw, s, n, progress=False, desc=desc)

    def estimate(quarters, used):
        return uncertainty.estimate(key, problem, kw, quarters, kind="parts", samples=used,
                                    summed=summed, progress=progress, desc=desc)

    if samples is not None and extrapolate:
        raise InvalidOptionError(
            "extrapolate=True chooses its own samples (20 rounds of 100,000) and cannot take "
            f"samples={samples!r}; pass samples=None with extrapolate=True, or extrapolate=False.")
    if samples is not None:
        _, samples = checks.check_samples(samples) if not stderr else check_estimate_samples(samples)
        if not stderr:
            return _counts(core_measures.pairwise_stats, key, problem, kw, 0, samples,
                           progress=progress, desc=desc), samples, None
        quarters = uncertainty.count_parts(count, 0, samples, 4)
        return uncertainty.total(quarters), samples, estimate(quarters, samples)
    if extrapolate:
        if stderr:
            raise InvalidOptionError("extrapolate=True has no standard error; pass stderr=False, or "
                                     "samples= / stderr_target= for a bias-corrected estimate.")
        total, values = None, []
        for start, n in sampling.extrapolation_rounds():
            total = sampling.add(total, count(start, n))
            values.append(float(reporting.layer_mi_matrix(total[0], problem).sum()))
        return total, start + n, sampling.extrapolate(values)
    rounds = sampling.AutoRounds(threshold, vector=False, max_samples=max_samples, desc=desc,
                                 progress=progress, stderr_target=stderr_target)
    total, quarters, est = None, None, None
    for start, n in rounds:
        if stderr:
            quarters = uncertainty.doubled(quarters, uncertainty.count_parts(
                count, start, n, 4 if quarters is None else 2))
            total = uncertainty.total(quarters)
        else:
            total = sampling.add(total, count(start, n))
        value = reporting.layer_mi_matrix(total[0], problem).sum()
        if stderr_target is not None:
            est = estimate(quarters, start + n)
            rounds.record(value, np.max(est.stderr))
        else:
            rounds.record(value)
    if stderr and est is None:
        est = estimate(quarters, rounds.samples)
    return total, rounds.samples, est


def _measured_ei_parts(key, topology, layer, *, in_layer, samples, threshold, extrapolate, max_samples,
                       batch_size, in_range, in_bins, out_range, out_bins, activation, clip, method,
                       progress, stderr, stderr_target, summed):
    checks.check_flags(progress, clip=clip, stderr=stderr, extrapolate=extrapolate)
    problem = resolve(topology, layer, in_layer=in_layer, in_range=in_range, out_range=out_range,
                      activation=activation, stacklevel=5)
    kw = problem.kwargs(in_bins, out_bins, batch_size=batch_size, clip=clip, method=method)
    stderr = bool(stderr) or stderr_target is not None
    sampling.check_threshold(threshold)        # checked even when samples= makes it unused
    (counts, below, above), used, extra = _ei_parts_run(
        canonicalize_key(key), problem, kw, samples=samples, threshold=threshold,
        extrapolate=extrapolate, max_samples=max_samples, stderr=stderr,
        stderr_target=stderr_target, summed=summed, progress=progress)
    mat = reporting.layer_mi_matrix(counts, problem)
    reporting.warn_out_of_range(problem.name, problem.out_range, below, above, used * below.size,
                                clip, stacklevel=4)
    sampling.warn_few_samples(counts, f"EI_parts of {problem.name!r}", used, stacklevel=3)
    if stderr:
        return extra
    return float(extra) if extrapolate else (float(mat.sum()) if summed else mat)


def ei_parts_matrix(key, topology, layer, *, in_layer=None, samples=None, threshold=0.05,
                    max_samples=None, batch_size=None, in_range=None, in_bins=64, out_range=None,
                    out_bins=64, activation=None, clip=False, method="auto", progress=None,
                    stderr=False, stderr_target=None):
    """EI of every connection A -> B of a layer: ``I(x_A; y_B) | do(L1 = H^max)``.

    .. math::
       EI(A \\to B) = I(t_A; t_B) \\mid do(L_1 = H^{\\max})

    Every input neuron is set independently and uniformly at random over ``in_range``; the
    entry is the plug-in MI of the joint histogram of A and B (deep-ei's pairwise edges).

    Args:
      key: ``jax.random.key`` (or an int seed).
      topology: from :func:`ei_jax.topology_of`.
      layer: node name; in_layer: first node of a span (default: ``layer``).
      samples: number of samples; ``None`` chooses it automatically with ``threshold``
        (deep-ei requires ``samples`` here; ei_jax allows the automatic mode too).
      threshold: automatic-mode convergence threshold (relative).
      max_samples: automatic mode stops (with a warning) before passing this many samples;
        default the most one measurement takes (``2**31 - 1024``).
      batch_size: samples per step (memory/speed only; never changes the result).
      in_range, out_range: ``(lo, hi)``; default from the activations (deep-ei's ranges).
      in_bins, out_bins: bin counts (deep-ei's default 64).
      activation: override the layer's output activation (name or callable).
      clip: put out-of-range outputs in the edge bins instead of dropping them.
      method: counting kernel (``"auto"``, ``"onehot"``, ``"bits"``, ``"scatter"``).
      progress: show a progress bar (default: only for very long runs).
      stderr: return an :class:`ei_jax.Estimate` (plug-in, bias-corrected value and standard
        error of every entry) instead of the plug-in alone.
      stderr_target: automatic mode until the largest entry's standard error is below this
        (bits) instead of deep-ei's ``threshold`` rule; implies ``stderr=True``.

    Returns:
      float64 ``(n_in, n_out)`` NumPy array of bits; rows are input neurons. With
      ``stderr=True`` an :class:`ei_jax.Estimate` of such arrays.

    Example:
      >>> import jax, jax.numpy as jnp, flax.linen as nn, ei_jax
      >>> net = nn.Dense(3, use_bias=False)
      >>> x0 = jnp.zeros((1, 4))
      >>> top = ei_jax.topology_of(net, net.init(jax.random.key(0), x0), x0)
      >>> m = ei_jax.ei_parts_matrix(jax.random.key(1), top, "Dense", samples=10_000,
      ...                            in_range=(0, 1), in_bins=8, out_range=(0, 1), out_bins=8,
      ...                            activation="sigmoid")
      >>> m.shape
      (4, 3)
    """
    return _measured_ei_parts(
        key, topology, layer, in_layer=in_layer, samples=samples, threshold=threshold,
        extrapolate=False, max_samples=max_samples, batch_size=batch_size, in_range=in_range,
        in_bins=in_bins, out_range=out_range, out_bins=out_bins, activation=activation, clip=clip,
        method=method, progress=progress, stderr=stderr, stderr_target=stderr_target, summed=False)


def ei_parts(key, topology, layer, *, in_layer=None, threshold=0.05, samples=None, extrapolate=False,
             max_samples=None, batch_size=None, in_range=None, in_bins=64, out_range=None,
             out_bins=64, activation=None, clip=False, method="auto", progress=None, stderr=False,
             stderr_target=None):
    """EI_parts of a layer: the sum over all (A, B) of ``I(x_A; y_B) | do(L1 = H^max)``.

    .. math::
       EI_{parts}(L_1 \\to L_2) = \\sum_{A \\in L_1, B \\in L_2} I(t_A; t_B) \\mid do(L_1 = H^{\\max})

    Args:
      key, topology, layer, in_layer: as :func:`ei_parts_matrix`.
      threshold: automatic mode (default, ``samples=None``): keep doubling the samples
        (from 10,000) until doubling again would change EI_parts by less than
        ``threshold`` of its value.
      samples: a fixed number of samples instead.
      extrapolate: fit ``a / n**e + C`` to estimates at 100k..2M samples and report the limit.
      max_samples, batch_size, in_range, in_bins: as :func:`ei_parts_matrix`.
      out_range, out_bins, activation, clip, method, progress: as :func:`ei_parts_matrix`.
      stderr: return an :class:`ei_jax.Estimate`: the plug-in, the bias-corrected value
        and its standard error, which accounts for the pairs sharing samples (a second pass
        over the same samples).
      stderr_target: automatic mode until the standard error of the corrected value is
        below this (bits) instead of deep-ei's ``threshold`` rule; implies ``stderr=True``.

    Returns:
      float, bits. Unlike deep-ei, a value below 0.01 is returned as is (not as 0.0). With
      ``stderr=True`` an :class:`ei_jax.Estimate`.

    Example:
      >>> import jax, jax.numpy as jnp, flax.linen as nn, ei_jax
      >>> net = nn.Dense(5, use_bias=False)
      >>> x0 = jnp.zeros((1, 5))
      >>> top = ei_jax.topology_of(net, net.init(jax.random.key(0), x0), x0)
      >>> v = ei_jax.ei_parts(jax.random.key(1), top, "Dense", samples=100_000, in_range=(0, 1),
      ...                     in_bins=8, out_range=(0, 1), out_bins=8, activation="sigmoid")
      >>> v > 0
      True
    """
    return _measured_ei_parts(
        key, topology, layer, in_layer=in_layer, samples=samples, threshold=threshold,
        extrapolate=extrapolate, max_samples=max_samples, batch_size=batch_size, in_range=in_range,
        in_bins=in_bins, out_range=out_range, out_bins=out_bins, activation=activation, clip=clip,
        method=method, progress=progress, stderr=stderr, stderr_target=stderr_target, summed=True)


def _sensitivity(key, topology, layer, *, in_layer, samples, batch_size, in_range, in_bins, out_range,
                 out_bins, activation, clip, baseline, method, progress, stderr, summed):
    checks.check_flags(progress, clip=clip, stderr=stderr)
    problem = resolve(topology, layer, in_layer=in_layer, in_range=in_range, out_range=out_range,
                      activation=activation, stacklevel=5)
    _, samples = check_estimate_samples(samples) if stderr else checks.check_samples(samples)
    kw = problem.kwargs(in_bins, out_bins, batch_size=batch_size, clip=clip, method=method,
                        baseline=baseline)
    key, desc = canonicalize_key(key), f"sensitivity {problem.name}"

    def count(s, n):
        return _counts(core_measures.sensitivity_stats, key, problem, kw, s, n, progress=False, desc=desc)

    if stderr:
        quarters = uncertainty.count_parts(count, 0, samples, 4)
        counts, below, above = uncertainty.total(quarters)
    else:
        counts, below, above = _counts(core_measures.sensitivity_stats, key, problem, kw, 0, samples,
                                       progress=progress, desc=desc)
    mat = reporting.layer_mi_matrix(counts, problem)
    reporting.warn_out_of_range(problem.name, problem.out_range, below, above, samples * below.size,
                                clip, stacklevel=4)
    sampling.warn_few_samples(counts, f"Sensitivity of {problem.name!r}", samples, stacklevel=3)
    if stderr:
        return uncertainty.estimate(key, problem, kw, quarters, kind="sensitivity", samples=samples,
                                    summed=summed, progress=progress, desc=desc)
    return float(mat.sum()) if summed else mat


def sensitivity_matrix(key, topology, layer, *, in_layer=None, samples=500, batch_size=None,
                       in_range=None, in_bins=64, out_range=None, out_bins=64, activation=None,
                       clip=False, baseline=0.0, method="auto", progress=None, stderr=False):
    """Sensitivity of every connection: ``I(x_A; y_B) | do(x_A = H^max)``, others at 0.

    .. math::
       Sensitivity(A \\to B) = I(t_A; t_B) \\mid do(A = H^{\\max})

    Input A alone is set uniformly at random over ``in_range``; every other input is held at
    ``baseline`` (0, as in deep-ei). ``samples`` samples per input neuron (deep-ei's default 500).

    Args: as :func:`ei_parts_matrix` (``samples`` is fixed: no automatic mode), plus
      ``baseline``; ``stderr=True`` returns an :class:`ei_jax.Estimate` of the matrix.

    Returns:
      float64 ``(n_in, n_out)`` NumPy array of bits (or an :class:`ei_jax.Estimate`).

    Example:
      >>> import jax, jax.numpy as jnp, flax.linen as nn, ei_jax
      >>> net = nn.Dense(3, use_bias=False)
      >>> x0 = jnp.zeros((1, 4))
      >>> top = ei_jax.topology_of(net, net.init(jax.random.key(0), x0), x0)
      >>> ei_jax.sensitivity_matrix(jax.random.key(1), top, "Dense", samples=5000, in_range=(0, 1),
      ...                           in_bins=8, out_range=(0, 1), out_bins=8,
      ...                           activation="sigmoid").shape
      (4, 3)
    """
    return _sensitivity(key, topology, layer, in_layer=in_layer, samples=samples, batch_size=batch_size,
                        in_range=in_range, in_bins=in_bins, out_range=out_range, out_bins=out_bins,
                        activation=activation, clip=clip, baseline=baseline, method=method,
                        progress=progress, stderr=stderr, summed=False)


def sensitivity(key, topology, layer, *, in_layer=None, samples=500, batch_size=None, in_range=None,
                in_bins=64, out_range=None, out_bins=64, activation=None, clip=False, baseline=0.0,
                method="auto", progress=None, stderr=False):
    """Sensitivity of a layer: the sum of :func:`sensitivity_matrix`.

    .. math::
       Sensitivity(L_1 \\to L_2) = \\sum_{A, B} I(t_A; t_B) \\mid do(A = H^{\\max})

    Args: as :func:`sensitivity_matrix`; with ``stderr=True`` the standard error sums the
      inputs' independent parts, each accounting for its pairs sharing samples.

    Returns:
      float, bits (or an :class:`ei_jax.Estimate`).

    Example:
      >>> import jax, jax.numpy as jnp, flax.linen as nn, ei_jax
      >>> net = nn.Dense(5, use_bias=False)
      >>> x0 = jnp.zeros((1, 5))
      >>> top = ei_jax.topology_of(net, net.init(jax.random.key(0), x0), x0)
      >>> s = ei_jax.sensitivity(jax.random.key(1), top, "Dense", samples=1000, in_range=(0, 1),
      ...                        in_bins=64, out_range=(0, 1), out_bins=64, activation="sigmoid")
      >>> s > 0
      True
    """
    return _sensitivity(key, topology, layer, in_layer=in_layer, samples=samples, batch_size=batch_size,
                        in_range=in_range, in_bins=in_bins, out_range=out_range, out_bins=out_bins,
                        activation=activation, clip=clip, baseline=baseline, method=method,
                        progress=progress, stderr=stderr, summed=True)
