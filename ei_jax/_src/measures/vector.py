"""The convenient vector measures: vector EI, EI between groups, and vector + pairwise EI.

A sample is kept only if every input and output of the layer is inside its range (deep-ei's
vector binning; deep-ei keeps values below ``lo`` as extra bins, ei_jax drops them too).
Automatic mode keeps the valid row codes of every round and adds the next round's, so its
result equals a fixed run of the final size. Every vector EI, plug-in or estimate, warns
(:class:`SampleLimitedWarning`) when it sits at its ceiling ``log2 N``: when more than
:data:`vector_uncertainty.SINGLETON_LIMIT` of the rows are alone in their (input, output) cell.
"""

import jax.numpy as jnp
import numpy as np

from ei_jax._src.base import checks
from ei_jax._src.core import measures as core_measures
from ei_jax._src.sampled import distributed_counts
from ei_jax._src.info import reporting
from ei_jax._src.info import row_codes
from ei_jax._src.measures import sampling
from ei_jax._src.measures import pairwise_uncertainty
from ei_jax._src.sampled import sharding
from ei_jax._src.measures import vector_uncertainty
from ei_jax._src.core.estimates import check_estimate_samples
from ei_jax._src.base.errors import EmptyHistogramError, ShapeMismatchError
from ei_jax._src.base.interface import VectorStats
from ei_jax._src.model.problems import canonicalize_key, resolve

#: Default sample limit of the vector automatic mode: the row codes of 2**28 samples take 4 GiB.
VECTOR_MAX_SAMPLES = 1 << 28


def _check_rows(problem, rows):
    if int(rows) == 0:
        raise EmptyHistogramError(
            f"Layer {problem.name!r}: no sample had every output inside out_range={problem.out_range}. "
            "Widen out_range or pass clip=True."
        )


def _report(problem, below, above, samples, clip):
    reporting.warn_out_of_range(problem.name, problem.out_range, below, above,
                                samples * np.asarray(below).size, clip, stacklevel=4)


def _plain_stats(key, problem, kw, samples, **extra):
    """``(VectorStats, singleton fractions)``: :func:`core_measures.vector_stats`'s numbers
    (the same computation) and, per group, the fraction of its rows alone in their cell (NaN
    when the rows are spread over processes: not checked there)."""
    codes, valid, below, above, pairs = core_measures.local_rows(
        key, problem.apply_fn, problem.params, samples=samples, **kw, **extra)
    rows = sharding.local_valid_rows(codes, valid)
    if sharding.spans_processes(codes):
        del codes, valid
        mi, n, _ = distributed_counts.global_vector_mi(rows)
        return VectorStats(jnp.asarray(mi), jnp.int32(n), below, above, pairs), [np.nan] * rows.shape[1]
    st = VectorStats(row_codes.vector_mi(codes, valid), jnp.sum(valid, dtype=jnp.int32), below, above, pairs)
    return st, [vector_uncertainty.singleton_fraction(rows[:, g]) for g in range(rows.shape[1])]


def _quarter_runs(key, problem, kw, start, samples, parts, *, gather=True, **extra):
    """``parts`` consecutive runs of :func:`core_measures.local_rows`: their valid rows
    ``(R, G, 4)``, int64 out-of-range counts, pair statistics, and whether the rows are only
    this process's share (``gather=False`` under ``jax.distributed``)."""
    out = []
    for s, n in pairwise_uncertainty.split(start, samples, parts):
        run = core_measures.local_rows(key, problem.apply_fn, problem.params, samples=n, start=s,
                                       gather=gather, **kw, **extra)
        out.append((sharding.local_valid_rows(run[0], run[1]),
                    *(np.asarray(a, np.int64) for a in run[2:4]), run[4],
                    sharding.spans_processes(run[0])))
    return out


def _mi_of_rows(problem, rows, shared=False) -> float:
    """Vector MI of valid rows: all of them, or (``shared``) this process's share of them."""
    if shared:
        mi, total, _ = distributed_counts.global_vector_mi(rows)
        _check_rows(problem, total)
        return float(mi[0])
    _check_rows(problem, len(rows))
    return float(row_codes.vector_mi(jnp.asarray(rows), jnp.ones((len(rows),), bool))[0])


def _quarter_estimates(problem, quarters, samples, stacklevel=4, results=None):
    """The estimates of the quarters' rows: all of them, or each process's share of them
    (``quarters[i][4]``: counted where they are, the same numbers on every process)."""
    rows = [q[0] for q in quarters]
    shared = bool(quarters[0][4])
    total = sum(len(r) for r in rows)
    if shared:
        total = int(distributed_counts.gather(np.asarray([total], np.int32)).sum())
    _check_rows(problem, total)
    below, above = (sum(q[i] for q in quarters) for i in (1, 2))
    return vector_uncertainty.estimates(rows, samples, below, above, name=problem.name,
                                        stacklevel=stacklevel, results=results, shared=shared,
                                        rows=total)


def _merge(a, b):
    """Two runs' rows and counts as one run."""
    return np.concatenate([a[0], b[0]]), a[1] + b[1], a[2] + b[2], None, a[4]


def _auto_ei(key, problem, kw, *, threshold, max_samples, progress, stderr, stderr_target):
    """Automatic mode: ``(float or Estimate, (below, above), samples used)``.

    Without ``stderr`` the rows of every round are kept as one run, with it as the four
    quarters of the samples so far (the first round in four, every later one in two); under
    ``jax.distributed`` each process keeps its own share of them.
    """
    rounds = sampling.AutoRounds(threshold, vector=True, desc=f"EI {problem.name}", progress=progress,
                                 max_samples=VECTOR_MAX_SAMPLES if max_samples is None else max_samples,
                                 stderr_target=stderr_target)
    runs, est = None, None
    for start, n in rounds:
        if not stderr:
            part = _quarter_runs(key, problem, kw, start, n, 1, gather=False)
            runs = part if runs is None else [_merge(runs[0], part[0])]
        else:
            parts = _quarter_runs(key, problem, kw, start, n, 4 if runs is None else 2, gather=False)
            runs = parts if runs is None else [_merge(runs[0], runs[1]), _merge(runs[2], runs[3]), *parts]
        value = _mi_of_rows(problem, np.concatenate([r[0] for r in runs]), shared=runs[0][4])
        if stderr_target is not None:
            est = _quarter_estimates(problem, runs, start + n, stacklevel=5)[0]
            rounds.record(value, est.stderr)
        else:
            rounds.record(value)
    below, above = (sum(r[i] for r in runs) for i in (1, 2))
    if not stderr and not runs[0][4]:      # the plug-in alone: say if it sits at its ceiling
        rows = runs[0][0][:, 0]
        vector_uncertainty.warn_ceiling(problem.name, rounds.values[-1], len(rows),
                                        vector_uncertainty.singleton_fraction(rows), stacklevel=3)
    if stderr and est is None:
        est = _quarter_estimates(problem, runs, rounds.samples, stacklevel=5)[0]
    return (est if stderr else rounds.values[-1]), (below, above), rounds.samples


def ei(key, topology, layer, *, in_layer=None, threshold=0.05, samples=None, max_samples=None,
       batch_size=None, in_range=None, in_bins=64, out_range=None, out_bins=64, activation=None,
       clip=False, method="auto", progress=None, stderr=False, stderr_target=None):
    """Vector EI of a layer: ``I(L1; L2) | do(L1 = H^max)`` over whole binned activation vectors.

    .. math::
       EI(L_1 \\to L_2) = I(L_1; L_2) \\mid do(L_1 = H^{\\max}) = H(X) + H(Y) - H(X, Y)

    Binning uses deep-ei's vector edges; a sample with any value outside its range is
    dropped (deep-ei keeps values below ``lo`` as extra bins; ei_jax does not). Arguments
    not listed below are as in :func:`ei_jax.ei_parts_matrix`.

    Args:
      threshold: automatic mode (default): keep doubling the samples until the estimate
        changes by less than ``threshold`` bits.
      samples: a fixed number of samples instead.
      max_samples: automatic mode stops (with a warning) before passing this many samples;
        default :data:`VECTOR_MAX_SAMPLES` (``2**28``, whose row codes take 4 GiB).
      stderr: return an :class:`ei_jax.Estimate` (plug-in, bias-corrected value, standard
        error); warns (:class:`ei_jax.SampleLimitedWarning`) when the samples are too few
        for the occupied cells, i.e. when neither number has converged. Without it the
        plug-in warns too where it sits at its ceiling ``log2 N`` (more than 20% of the rows
        alone in their cell: the value then measures the sample count, not the layer).
      stderr_target: automatic mode until the standard error is below this (bits);
        implies ``stderr=True``.

    Returns:
      float, bits (or an :class:`ei_jax.Estimate`).

    Example:
      >>> import jax, jax.numpy as jnp, flax.linen as nn, ei_jax
      >>> net = nn.Dense(2, use_bias=False)
      >>> x0 = jnp.zeros((1, 2))
      >>> top = ei_jax.topology_of(net, net.init(jax.random.key(0), x0), x0)
      >>> v = ei_jax.ei(jax.random.key(1), top, "Dense", samples=20_000, in_range=(0, 1),
      ...               in_bins=4, out_range=(0, 1), out_bins=4, activation="sigmoid")
      >>> 0 < v <= 4
      True
    """
    checks.check_flags(progress, clip=clip, stderr=stderr)
    key = canonicalize_key(key)
    problem = resolve(topology, layer, in_layer=in_layer, in_range=in_range, out_range=out_range,
                      activation=activation)
    kw = problem.kwargs(in_bins, out_bins, batch_size=batch_size, clip=clip, method=method)
    stderr = bool(stderr) or stderr_target is not None
    sampling.check_threshold(threshold)        # checked even when samples= makes it unused
    if samples is not None and stderr:
        _, samples = check_estimate_samples(samples)
        quarters = _quarter_runs(key, problem, kw, 0, samples, 4, gather=False)
        est = _quarter_estimates(problem, quarters, samples)[0]
        _report(problem, est.below, est.above, samples, clip)
        return est
    if samples is not None:
        _, samples = checks.check_samples(samples)
        st, singles = _plain_stats(key, problem, kw, samples)
        _check_rows(problem, st.rows)
        _report(problem, st.below, st.above, samples, clip)
        vector_uncertainty.warn_ceiling(problem.name, float(st.mi[0]), int(st.rows), singles[0], stacklevel=2)
        return float(st.mi[0])
    value, (below, above), used = _auto_ei(key, problem, kw, threshold=threshold,
                                          max_samples=max_samples, progress=progress, stderr=stderr,
                                          stderr_target=stderr_target)
    _report(problem, below, above, used, clip)
    return value


def eis_between_groups(key, topology, layer, groups, *, in_layer=None, samples, batch_size=None,
                       in_range=None, in_bins=64, out_range=None, out_bins=64, activation=None,
                       clip=False, stderr=False) -> list:
    """Vector EI between subsets of input and output neurons, all from one sample.

    A sample is dropped for every group if any of the layer's values is out of range (as
    deep-ei does), unless ``clip=True``. Arguments not listed below are as in :func:`ei`.

    Args:
      groups: list of ``(input indices, output indices)``, e.g. ``[((0, 1, 2), (1,))]``.
      samples: number of samples (required, as in deep-ei).
      stderr: one :class:`ei_jax.Estimate` per group instead of floats (see :func:`ei`).

    Returns:
      list of floats (bits), one per group (or of :class:`ei_jax.Estimate`).

    Example:
      >>> import jax, jax.numpy as jnp, flax.linen as nn, ei_jax
      >>> net = nn.Dense(2, use_bias=False)
      >>> x0 = jnp.zeros((1, 3))
      >>> top = ei_jax.topology_of(net, net.init(jax.random.key(0), x0), x0)
      >>> len(ei_jax.eis_between_groups(jax.random.key(1), top, "Dense", [((0,), (0,)), ((0, 1), (1,))],
      ...                               samples=5000, in_range=(0, 1), in_bins=4, out_range=(0, 1),
      ...                               out_bins=4, activation="sigmoid"))
      2
    """
    checks.check_flags(clip=clip, stderr=stderr)
    if groups is None:      # the core reads None as "the whole layer": not this function's contract
        raise ShapeMismatchError("groups must be a list of (input indices, output indices) pairs, "
                                 "e.g. [((0, 1), (2,))]; for the whole layer use ei_jax.ei. Got None.")
    problem = resolve(topology, layer, in_layer=in_layer, in_range=in_range, out_range=out_range,
                      activation=activation)
    kw = problem.kwargs(in_bins, out_bins, batch_size=batch_size, clip=clip)
    if stderr:
        _, samples = check_estimate_samples(samples)
        quarters = _quarter_runs(canonicalize_key(key), problem, kw, 0, samples, 4, groups=groups, gather=False)
        out = _quarter_estimates(problem, quarters, samples)
        _report(problem, out[0].below, out[0].above, samples, clip)
        return out
    _, samples = checks.check_samples(samples)
    st, singles = _plain_stats(canonicalize_key(key), problem, kw, samples, groups=groups)
    _check_rows(problem, st.rows)
    _report(problem, st.below, st.above, samples, clip)
    for v, f in zip(np.asarray(st.mi), singles):
        vector_uncertainty.warn_ceiling(problem.name, float(v), int(st.rows), f, stacklevel=2)
    return [float(v) for v in np.asarray(st.mi)]


def vector_and_pairwise_ei(key, topology, layer, *, in_layer=None, samples, batch_size=None,
                           in_range=None, in_bins=64, out_range=None, out_bins=64, activation=None,
                           clip=False, method="auto", stderr=False) -> tuple:
    """``(vector EI, EI_parts)`` computed from the same samples.

    Each uses its own deep-ei binning (vector edges for the first, pairwise for the second).
    ``stderr=True`` returns two :class:`ei_jax.Estimate` (see :func:`ei` and
    :func:`ei_jax.ei_parts`).

    Returns:
      tuple of two floats, bits (or of two :class:`ei_jax.Estimate`).

    Example:
      >>> import jax, jax.numpy as jnp, flax.linen as nn, ei_jax
      >>> net = nn.Dense(2, use_bias=False)
      >>> x0 = jnp.zeros((1, 2))
      >>> top = ei_jax.topology_of(net, net.init(jax.random.key(0), x0), x0)
      >>> v, p = ei_jax.vector_and_pairwise_ei(jax.random.key(1), top, "Dense", samples=20_000,
      ...                                      in_range=(0, 1), in_bins=4, out_range=(0, 1),
      ...                                      out_bins=4, activation="sigmoid")
      >>> v >= 0 and p >= 0
      True
    """
    checks.check_flags(clip=clip, stderr=stderr)
    problem = resolve(topology, layer, in_layer=in_layer, in_range=in_range, out_range=out_range,
                      activation=activation)
    key = canonicalize_key(key)
    kw = problem.kwargs(in_bins, out_bins, batch_size=batch_size, clip=clip, method=method)
    if stderr:
        _, samples = check_estimate_samples(samples)
        quarters = _quarter_runs(key, problem, kw, 0, samples, 4, with_pairs=True, gather=False)
        vec = _quarter_estimates(problem, quarters, samples)[0]
        _report(problem, vec.below, vec.above, samples, clip)
        pairs = [tuple(np.asarray(a, np.int64) for a in q[3]) for q in quarters]
        reporting.layer_mi_matrix(pairwise_uncertainty.total(pairs)[0], problem)
        pair_kw = {k: v for k, v in kw.items()}
        return vec, pairwise_uncertainty.estimate(key, problem, pair_kw, pairs, kind="parts",
                                                  samples=samples, summed=True)
    _, samples = checks.check_samples(samples)
    st, singles = _plain_stats(key, problem, kw, samples, with_pairs=True)
    _check_rows(problem, st.rows)
    _report(problem, st.below, st.above, samples, clip)
    vector_uncertainty.warn_ceiling(problem.name, float(st.mi[0]), int(st.rows), singles[0], stacklevel=2)
    mat = reporting.layer_mi_matrix(np.asarray(st.pairs.counts, np.int64), problem)
    return float(st.mi[0]), float(mat.sum())
