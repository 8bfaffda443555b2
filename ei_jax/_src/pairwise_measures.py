"""The convenient pairwise measures: EI_parts and sensitivity of a topology's layer.

Key first, then the topology and the layer, then deep-ei's keyword arguments; NumPy / float
results. Each resolves the layer (:mod:`problems`), counts rounds of samples with the pure
core (:mod:`core_measures`) under the sample-count control of :mod:`sampling`, adds the
counts in int64 and takes the plug-in MI in float64 on the host (:mod:`reporting`).
"""

import numpy as np

from ei_jax._src import checks, core_measures, reporting, sampling
from ei_jax._src.problems import canonicalize_key, resolve


def _counts(stats_fn, key, problem, kw, start, samples, *, progress, desc):
    """int64 ``(counts, below, above)`` of samples ``[start, start + samples)``."""
    total = None
    for s, n in sampling.pieces(start, samples, progress=progress, desc=desc):
        total = sampling.add(total, stats_fn(key, problem.apply_fn, problem.params, samples=n,
                                             start=s, **kw))
    return total


def _checked_mi(counts, problem):
    mat = reporting.mi_matrix(counts)
    reporting.raise_if_empty(mat, f"Layer {problem.name!r}", f"out_range={problem.out_range}")
    return mat


def _ei_parts_counts(key, problem, kw, *, samples, threshold, extrapolate, max_samples, progress):
    """``(int64 (counts, below, above), samples used, extrapolated value or None)``."""
    desc = f"EI_parts {problem.name}"
    count = core_measures.pairwise_stats
    if samples is not None:
        _, samples = checks.check_samples(samples)
        return _counts(count, key, problem, kw, 0, samples, progress=progress, desc=desc), samples, None
    total = None
    if extrapolate:
        values = []
        for start, n in sampling.extrapolation_rounds():
            total = sampling.add(total, _counts(count, key, problem, kw, start, n, progress=False,
                                                desc=desc))
            values.append(float(_checked_mi(total[0], problem).sum()))
        return total, start + n, sampling.extrapolate(values)
    rounds = sampling.AutoRounds(threshold, vector=False, max_samples=max_samples, desc=desc,
                                 progress=progress)
    for start, n in rounds:
        total = sampling.add(total, _counts(count, key, problem, kw, start, n, progress=False, desc=desc))
        rounds.record(_checked_mi(total[0], problem).sum())
    return total, rounds.samples, None


def _measured_ei_parts(key, topology, layer, *, in_layer, samples, threshold, extrapolate, max_samples,
                       batch_size, in_range, in_bins, out_range, out_bins, activation, clip, method,
                       progress):
    problem = resolve(topology, layer, in_layer=in_layer, in_range=in_range, out_range=out_range,
                      activation=activation, stacklevel=5)
    kw = problem.kwargs(in_bins, out_bins, batch_size=batch_size, clip=clip, method=method)
    (counts, below, above), used, extrapolated = _ei_parts_counts(
        canonicalize_key(key), problem, kw, samples=samples, threshold=threshold,
        extrapolate=extrapolate, max_samples=max_samples, progress=progress)
    mat = _checked_mi(counts, problem)
    reporting.warn_out_of_range(problem.name, problem.out_range, below, above, used * below.size,
                                clip, stacklevel=4)
    return mat, extrapolated


def ei_parts_matrix(key, topology, layer, *, in_layer=None, samples=None, threshold=0.05,
                    max_samples=None, batch_size=None, in_range=None, in_bins=64, out_range=None,
                    out_bins=64, activation=None, clip=False, method="auto",
                    progress=None) -> np.ndarray:
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

    Returns:
      float64 ``(n_in, n_out)`` NumPy array of bits; rows are input neurons.

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
        method=method, progress=progress)[0]


def ei_parts(key, topology, layer, *, in_layer=None, threshold=0.05, samples=None, extrapolate=False,
             max_samples=None, batch_size=None, in_range=None, in_bins=64, out_range=None,
             out_bins=64, activation=None, clip=False, method="auto", progress=None) -> float:
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
      max_samples, batch_size, in_range, in_bins, out_range, out_bins, activation, clip,
        method, progress: as :func:`ei_parts_matrix`.

    Returns:
      float, bits. Unlike deep-ei, a value below 0.01 is returned as is (not as 0.0).

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
    mat, extrapolated = _measured_ei_parts(
        key, topology, layer, in_layer=in_layer, samples=samples, threshold=threshold,
        extrapolate=extrapolate, max_samples=max_samples, batch_size=batch_size, in_range=in_range,
        in_bins=in_bins, out_range=out_range, out_bins=out_bins, activation=activation, clip=clip,
        method=method, progress=progress)
    return float(extrapolated) if extrapolate else float(mat.sum())


def sensitivity_matrix(key, topology, layer, *, in_layer=None, samples=500, batch_size=None,
                       in_range=None, in_bins=64, out_range=None, out_bins=64, activation=None,
                       clip=False, baseline=0.0, method="auto", progress=None) -> np.ndarray:
    """Sensitivity of every connection: ``I(x_A; y_B) | do(x_A = H^max)``, others at 0.

    .. math::
       Sensitivity(A \\to B) = I(t_A; t_B) \\mid do(A = H^{\\max})

    Input A alone is set uniformly at random over ``in_range``; every other input is held at
    ``baseline`` (0, as in deep-ei). ``samples`` samples per input neuron (deep-ei's default 500).

    Args: as :func:`ei_parts_matrix` (``samples`` is required to be fixed), plus ``baseline``.

    Returns:
      float64 ``(n_in, n_out)`` NumPy array of bits.

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
    problem = resolve(topology, layer, in_layer=in_layer, in_range=in_range, out_range=out_range,
                      activation=activation)
    _, samples = checks.check_samples(samples)
    kw = problem.kwargs(in_bins, out_bins, batch_size=batch_size, clip=clip, method=method,
                        baseline=baseline)
    counts, below, above = _counts(core_measures.sensitivity_stats, canonicalize_key(key), problem,
                                   kw, 0, samples, progress=progress, desc=f"sensitivity {problem.name}")
    mat = _checked_mi(counts, problem)
    reporting.warn_out_of_range(problem.name, problem.out_range, below, above, samples * below.size,
                                clip)
    return mat


def sensitivity(key, topology, layer, *, in_layer=None, samples=500, batch_size=None, in_range=None,
                in_bins=64, out_range=None, out_bins=64, activation=None, clip=False, baseline=0.0,
                method="auto", progress=None) -> float:
    """Sensitivity of a layer: the sum of :func:`sensitivity_matrix`.

    .. math::
       Sensitivity(L_1 \\to L_2) = \\sum_{A, B} I(t_A; t_B) \\mid do(A = H^{\\max})

    Args: as :func:`sensitivity_matrix`.

    Returns:
      float, bits.

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
    return float(sensitivity_matrix(
        key, topology, layer, in_layer=in_layer, samples=samples, batch_size=batch_size,
        in_range=in_range, in_bins=in_bins, out_range=out_range, out_bins=out_bins,
        activation=activation, clip=clip, baseline=baseline, method=method, progress=progress).sum())
