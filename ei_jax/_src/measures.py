"""The convenient layer measures: deep-ei's functions on a Flax topology.

Every function takes a key first, then the topology and the layer, then deep-ei's
keyword arguments. They return Python floats / NumPy arrays. Each is a thin wrapper over
the pure core in :mod:`ei_jax.core` (``(key, apply_fn, params, ...)``), which is what to
``jax.vmap`` over stacks of parameters.
"""

import dataclasses
import math
import warnings
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import networkx as nx
import numpy as np

from ei_jax._src import activations as _act
from ei_jax._src import core, sampling
from ei_jax._src.errors import (
    DefaultRangeWarning,
    EmptyHistogramError,
    LayerNotFoundError,
    LayerOrderError,
    NonFiniteParamsError,
    OutOfRangeWarning,
    UnknownActivationError,
    UnsupportedModuleError,
)
from ei_jax._src.topology import CONV, stack_apply


def canonicalize_key(key) -> jax.Array:
    """Accepts a typed ``jax.random.key``, a legacy ``PRNGKey`` or an int seed."""
    if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
        return jax.random.key(int(key))
    if isinstance(key, jax.Array):
        if jnp.issubdtype(key.dtype, jax.dtypes.prng_key) and key.shape == ():
            return key
        if key.dtype == jnp.uint32 and key.shape == (2,):
            return jax.random.wrap_key_data(key)
    raise TypeError(
        f"key must be a jax.random.key(seed) (or an int seed). Got {type(key).__name__}"
        f"{getattr(key, 'shape', '')}."
    )


@dataclasses.dataclass(frozen=True)
class LayerProblem:
    """A resolved measurement target: what to apply, to what, over which ranges."""

    name: str
    in_layer: str
    apply_fn: Callable
    params: tuple
    in_shape: tuple[int, ...]
    in_range: tuple[float, float]
    out_range: tuple[float, float]

    def kwargs(self, in_bins, out_bins, **extra) -> dict[str, Any]:
        return dict(in_shape=self.in_shape, in_range=self.in_range, in_bins=in_bins,
                    out_range=self.out_range, out_bins=out_bins, **extra)


def _order(topology) -> list[str]:
    if not isinstance(topology, nx.DiGraph) or "order" not in topology.graph:
        raise TypeError(
            "topology must be the graph returned by ei_jax.topology_of(model, ...). "
            f"Got {type(topology).__name__}."
        )
    return topology.graph["order"]


def _final_activation(activation, node_activation):
    if activation is None:
        return node_activation, node_activation
    if isinstance(activation, str):
        name = _act.canonical_name(activation)
        return name, name
    if callable(activation):
        name = _act.name_of_function(activation)
        if name is not ...:
            return name, name
        return activation, ...
    raise UnknownActivationError(
        f"activation must be None, a name ('sigmoid', 'tanh', 'relu', 'identity') or a callable. "
        f"Got {activation!r}."
    )


def _check_finite(params, name):
    for leaf in jax.tree.leaves(params):
        if not isinstance(leaf, jax.core.Tracer) and not bool(jnp.all(jnp.isfinite(leaf))):
            raise NonFiniteParamsError(
                f"Layer {name!r} has NaN or infinite parameters; measure a checkpoint with finite weights."
            )


def resolve(topology, layer, *, in_layer=None, in_range=None, out_range=None, activation=None,
            stacklevel=3) -> LayerProblem:
    """Resolves a layer (span) of a topology into a :class:`LayerProblem` (deep-ei's defaults)."""
    order = _order(topology)
    for label, value in (("layer", layer), ("in_layer", in_layer)):
        if value is not None and value not in topology:
            raise LayerNotFoundError(f"{label} {value!r} is not in the topology. Its layers are {order}.")
    if in_layer is None:
        in_layer = layer
    i0, i1 = order.index(in_layer), order.index(layer)
    if i0 > i1:
        raise LayerOrderError(
            f"in_layer {in_layer!r} comes after layer {layer!r}; the span must run forward "
            f"through the network ({order})."
        )
    span = order[i0:i1 + 1]
    kinds = tuple(topology.nodes[n]["kind"] for n in span)
    if len(span) > 1 and CONV in kinds:
        raise UnsupportedModuleError(
            f"The span {in_layer!r} .. {layer!r} contains a convolution; convolutional layers are "
            "measured one at a time (over one receptive field)."
        )
    acts = [topology.nodes[n]["output"]["activation"] for n in span]
    final, final_name = _final_activation(activation, acts[-1])
    acts[-1] = final
    if in_range is None:
        in_act = topology.nodes[in_layer]["input"]["activation"]
        in_range = _act.default_range(in_act)
        if topology.in_degree(in_layer) == 0:
            warnings.warn(
                f"in_range not given for {in_layer!r}, the first layer: using {in_range}, deep-ei's "
                "default for inputs without an activation. Pass in_range=(lo, hi) matching your data.",
                DefaultRangeWarning,
                stacklevel=stacklevel,
            )
    if out_range is None:
        if final_name is ...:
            raise UnknownActivationError(
                f"activation {activation!r} is not one ei_jax knows, so its output range is unknown; "
                "pass out_range=(lo, hi)."
            )
        out_range = _act.default_range(final_name)
    params = tuple(topology.nodes[n]["params"] for n in span)
    _check_finite(params, layer)
    in_shape = tuple(topology.nodes[in_layer]["input"]["shape"][1:])
    return LayerProblem(layer, in_layer, stack_apply(kinds, tuple(acts)), params, in_shape,
                        tuple(in_range), tuple(out_range))


# --- host-side MI and reporting ----------------------------------------------------------------

def _sum_xlog2x(x, axes):
    xf = x.astype(np.float64)
    lg = np.log2(xf, out=np.zeros_like(xf), where=xf > 0)
    return np.sum(xf * lg, axis=axes)


def mi_matrix(counts) -> np.ndarray:
    """Plug-in MI (bits, float64) of int64 joint histograms ``(..., kx, ky)``; NaN if empty.

    ``I = log2 n + (S(joint) - S(rows) - S(columns)) / n`` with ``S(c) = sum c log2 c``:
    logarithms of the non-zero counts only (float64: absolute error ~1e-12 bits).
    """
    c = np.asarray(counts, np.int64)
    n = c.sum(axis=(-2, -1))
    nf = n.astype(np.float64)
    s = _sum_xlog2x(c, (-2, -1)) - _sum_xlog2x(c.sum(axis=-1), -1) - _sum_xlog2x(c.sum(axis=-2), -1)
    with np.errstate(divide="ignore", invalid="ignore"):
        mi = np.log2(nf) + s / nf
    return np.where(n > 0, np.maximum(mi, 0.0), np.nan)


def _raise_empty(mat, problem):
    bad = np.argwhere(np.isnan(mat))
    if bad.size:
        pairs = ", ".join(f"({a}, {b})" for a, b in bad[:5])
        raise EmptyHistogramError(
            f"Layer {problem.name!r}: every sample of input/output pair(s) {pairs}"
            f"{' ...' if len(bad) > 5 else ''} fell outside out_range={problem.out_range}. "
            "Widen out_range to cover the layer's outputs, or pass clip=True."
        )


def _warn_out_of_range(problem, below, above, values, clip, stacklevel=3):
    below, above = int(np.sum(below)), int(np.sum(above))
    if below + above == 0:
        return
    action = "were put in the edge bins (clip=True)" if clip else "were dropped from their pairs/rows"
    warnings.warn(
        f"Layer {problem.name!r}: {below + above} of {values} output values "
        f"({100.0 * (below + above) / values:.3g}%) fell outside out_range={problem.out_range} "
        f"({below} below, {above} above or not finite) and {action}. Widen out_range"
        f"{'' if clip else ' or pass clip=True'} if that is not what you want.",
        OutOfRangeWarning,
        stacklevel=stacklevel,
    )


def _count_pairs(stats_fn, key, problem, kw, samples, *, progress, desc, start=0):
    def count(s0, n):
        st = stats_fn(key, problem.apply_fn, problem.params, samples=n, start=s0, **kw)
        return st.counts, st.below, st.above

    return sampling.counted_in_pieces(count, start, samples, progress=progress, desc=desc)


def _check_samples_arg(samples):
    core._check_samples(samples)  # raises InvalidSamplesError
    return int(samples)


# --- EI_parts ------------------------------------------------------------------------------

def _ei_parts_counts(key, problem, *, samples, threshold, extrapolate, in_bins, out_bins,
                     batch_size, clip, method, progress):
    """Returns ``(counts int64, below, above, samples_used)`` or, for extrapolation, a float."""
    kw = problem.kwargs(in_bins, out_bins, batch_size=batch_size, clip=clip, method=method)
    core.make_spec(problem.apply_fn, problem.params, **{k: v for k, v in kw.items()})
    desc = f"EI_parts {problem.name}"
    if samples is not None:
        samples = _check_samples_arg(samples)
        counts, below, above = _count_pairs(core.pairwise_stats, key, problem, kw, samples,
                                            progress=progress, desc=desc)
        return counts, below, above, samples
    state = {}

    def estimate(s0, n):
        c, b, a = _count_pairs(core.pairwise_stats, key, problem, kw, n, progress=False, desc=desc, start=s0)
        if state:
            c, b, a = c + state["c"], b + state["b"], a + state["a"]
        state.update(c=c, b=b, a=a)
        mat = mi_matrix(c)
        _raise_empty(mat, problem)
        return float(mat.sum())

    if extrapolate:
        value = sampling.extrapolated(estimate, progress=progress, desc=desc)
        n = sampling.EXTRAPOLATE_INTERVAL * sampling.EXTRAPOLATE_POINTS
        return value, state["b"], state["a"], n
    threshold = sampling.check_threshold(threshold)
    _, used = sampling.auto_rounds(estimate, threshold=threshold, vector=False,
                                   max_samples=core.MAX_SAMPLES_PER_CALL, progress=progress, desc=desc)
    return state["c"], state["b"], state["a"], used


def ei_parts_matrix(key, topology, layer, *, in_layer=None, samples=None, threshold=0.05,
                    batch_size=None, in_range=None, in_bins=64, out_range=None, out_bins=64,
                    activation=None, clip=False, method="auto", progress=None) -> np.ndarray:
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
    key = canonicalize_key(key)
    problem = resolve(topology, layer, in_layer=in_layer, in_range=in_range, out_range=out_range,
                      activation=activation)
    counts, below, above, used = _ei_parts_counts(
        key, problem, samples=samples, threshold=threshold, extrapolate=False, in_bins=in_bins,
        out_bins=out_bins, batch_size=batch_size, clip=clip, method=method, progress=progress)
    mat = mi_matrix(counts)
    _raise_empty(mat, problem)
    _warn_out_of_range(problem, below, above, used * counts.shape[1], clip)
    return mat


def ei_parts(key, topology, layer, *, in_layer=None, threshold=0.05, samples=None, extrapolate=False,
             batch_size=None, in_range=None, in_bins=64, out_range=None, out_bins=64, activation=None,
             clip=False, method="auto", progress=None) -> float:
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
      batch_size, in_range, in_bins, out_range, out_bins, activation, clip, method, progress:
        as :func:`ei_parts_matrix`.

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
    key = canonicalize_key(key)
    problem = resolve(topology, layer, in_layer=in_layer, in_range=in_range, out_range=out_range,
                      activation=activation)
    result, below, above, used = _ei_parts_counts(
        key, problem, samples=samples, threshold=threshold, extrapolate=extrapolate, in_bins=in_bins,
        out_bins=out_bins, batch_size=batch_size, clip=clip, method=method, progress=progress)
    n_out = len(np.atleast_1d(below))
    if extrapolate:
        _warn_out_of_range(problem, below, above, used * n_out, clip)
        return float(result)
    mat = mi_matrix(result)
    _raise_empty(mat, problem)
    _warn_out_of_range(problem, below, above, used * n_out, clip)
    return float(mat.sum())


# --- sensitivity ---------------------------------------------------------------------------

def sensitivity_matrix(key, topology, layer, *, in_layer=None, samples=500, batch_size=None,
                       in_range=None, in_bins=64, out_range=None, out_bins=64, activation=None,
                       clip=False, baseline=0.0, method="auto", progress=None) -> np.ndarray:
    """Sensitivity of every connection: ``I(x_A; y_B) | do(x_A = H^max)``, others at 0.

    .. math::
       Sensitivity(A \\to B) = I(t_A; t_B) \\mid do(A = H^{\\max})

    Input A alone is set uniformly at random over ``in_range``; every other input is held at
    ``baseline`` (0, as in deep-ei). ``samples`` samples per input neuron (deep-ei's default 500).

    Args: as :func:`ei_parts_matrix`, plus ``baseline``.

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
    key = canonicalize_key(key)
    problem = resolve(topology, layer, in_layer=in_layer, in_range=in_range, out_range=out_range,
                      activation=activation)
    samples = _check_samples_arg(samples)
    kw = problem.kwargs(in_bins, out_bins, batch_size=batch_size, clip=clip, method=method,
                        baseline=baseline)
    counts, below, above = _count_pairs(core.sensitivity_stats, key, problem, kw, samples,
                                        progress=progress, desc=f"sensitivity {problem.name}")
    mat = mi_matrix(counts)
    _raise_empty(mat, problem)
    _warn_out_of_range(problem, below, above, samples * below.size, clip)
    return mat


def sensitivity(key, topology, layer, *, in_layer=None, samples=500, batch_size=None, in_range=None,
                in_bins=64, out_range=None, out_bins=64, activation=None, clip=False, baseline=0.0,
                method="auto", progress=None) -> float:
    """Sensitivity of a layer: the sum of :func:`sensitivity_matrix`.

    .. math::
       Sensitivity(L_1 \\to L_2) = \\sum_{A, B} I(t_A; t_B) \\mid do(A = H^{\\max})

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


# --- vector EI -----------------------------------------------------------------------------

def _vector(key, problem, *, samples, in_bins, out_bins, batch_size, clip, method, groups=None,
            with_pairs=False):
    kw = problem.kwargs(in_bins, out_bins, batch_size=batch_size, clip=clip, method=method)
    return core.vector_stats(key, problem.apply_fn, problem.params, samples=samples, groups=groups,
                             with_pairs=with_pairs, **kw)


def _vector_result(problem, st, samples, clip):
    if int(st.rows) == 0:
        raise EmptyHistogramError(
            f"Layer {problem.name!r}: no sample had every output inside out_range={problem.out_range}. "
            "Widen out_range or pass clip=True."
        )
    _warn_out_of_range(problem, st.below, st.above, samples * np.asarray(st.below).size, clip,
                       stacklevel=4)
    return np.asarray(st.mi, np.float64)


def ei(key, topology, layer, *, in_layer=None, threshold=0.05, samples=None, batch_size=None,
       in_range=None, in_bins=64, out_range=None, out_bins=64, activation=None, clip=False,
       method="auto", progress=None) -> float:
    """Vector EI of a layer: ``I(L1; L2) | do(L1 = H^max)`` over whole binned activation vectors.

    .. math::
       EI(L_1 \\to L_2) = I(L_1; L_2) \\mid do(L_1 = H^{\\max}) = H(X) + H(Y) - H(X, Y)

    Binning uses deep-ei's vector edges; a sample with any value outside its range is
    dropped (deep-ei keeps values below ``lo`` as extra bins; ei_jax does not).

    Args:
      threshold: automatic mode (default): keep doubling the samples until the estimate
        changes by less than ``threshold`` bits.
      samples: a fixed number of samples instead.
      Others as :func:`ei_parts_matrix`.

    Returns:
      float, bits.

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
    key = canonicalize_key(key)
    problem = resolve(topology, layer, in_layer=in_layer, in_range=in_range, out_range=out_range,
                      activation=activation)
    run = dict(in_bins=in_bins, out_bins=out_bins, batch_size=batch_size, clip=clip, method=method)
    if samples is not None:
        samples = _check_samples_arg(samples)
        return float(_vector_result(problem, _vector(key, problem, samples=samples, **run), samples, clip)[0])
    threshold = sampling.check_threshold(threshold)
    last = {}

    def estimate(start, n):
        st = _vector(key, problem, samples=start + n, **run)
        last.update(st=st, n=start + n)
        return float(st.mi[0])

    sampling.auto_rounds(estimate, threshold=threshold, vector=True, max_samples=1 << 28,
                         progress=progress, desc=f"EI {problem.name}")
    return float(_vector_result(problem, last["st"], last["n"], clip)[0])


def eis_between_groups(key, topology, layer, groups, *, in_layer=None, samples, batch_size=None,
                       in_range=None, in_bins=64, out_range=None, out_bins=64, activation=None,
                       clip=False) -> list[float]:
    """Vector EI between subsets of input and output neurons, all from one sample.

    Args:
      groups: list of ``(input indices, output indices)``, e.g. ``[((0, 1, 2), (1,))]``.
      samples: number of samples (required, as in deep-ei).
      Others as :func:`ei`. A sample is dropped for every group if any of the layer's
      values is out of range (as deep-ei does), unless ``clip=True``.

    Returns:
      list of floats (bits), one per group.

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
    key = canonicalize_key(key)
    problem = resolve(topology, layer, in_layer=in_layer, in_range=in_range, out_range=out_range,
                      activation=activation)
    samples = _check_samples_arg(samples)
    st = _vector(key, problem, samples=samples, in_bins=in_bins, out_bins=out_bins,
                 batch_size=batch_size, clip=clip, method="auto", groups=groups)
    return [float(v) for v in _vector_result(problem, st, samples, clip)]


def vector_and_pairwise_ei(key, topology, layer, *, in_layer=None, samples, batch_size=None,
                           in_range=None, in_bins=64, out_range=None, out_bins=64, activation=None,
                           clip=False, method="auto") -> tuple[float, float]:
    """``(vector EI, EI_parts)`` computed from the same samples.

    Each uses its own deep-ei binning (vector edges for the first, pairwise for the second).

    Returns:
      tuple of two floats, bits.

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
    key = canonicalize_key(key)
    problem = resolve(topology, layer, in_layer=in_layer, in_range=in_range, out_range=out_range,
                      activation=activation)
    samples = _check_samples_arg(samples)
    st = _vector(key, problem, samples=samples, in_bins=in_bins, out_bins=out_bins,
                 batch_size=batch_size, clip=clip, method=method, with_pairs=True)
    vec = _vector_result(problem, st, samples, clip)[0]
    mat = mi_matrix(np.asarray(st.pairs.counts, np.int64))
    _raise_empty(mat, problem)
    return float(vec), float(mat.sum())


# --- degeneracy and the causal plane ---------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class CausalPlanePoint:
    """A layer's place in the causal plane (all in bits).

    Attributes:
      sensitivity: S.
      degeneracy: D = S - EI (``ei`` is EI_parts or vector EI, see ``versus``).
      ei: the EI it was computed against.
      versus: ``"parts"`` or ``"vector"``.
      x, y: the paper's 45-degree rotated coordinates, ``(S - D)/sqrt 2 = EI/sqrt 2`` and
        ``(S + D)/sqrt 2``.
    """

    sensitivity: float
    degeneracy: float
    ei: float
    versus: str

    @property
    def x(self) -> float:
        return rotate_causal_plane(self.sensitivity, self.degeneracy)[0]

    @property
    def y(self) -> float:
        return rotate_causal_plane(self.sensitivity, self.degeneracy)[1]


def rotate_causal_plane(sensitivity, degeneracy):
    """The paper's rotated causal-plane coordinates ``((S - D)/sqrt 2, (S + D)/sqrt 2)``.

    Works on floats or arrays. The horizontal coordinate equals ``EI / sqrt 2``.

    Returns:
      ``(x, y)``: floats, or arrays of the broadcast shape of the inputs.

    Example:
      >>> rotate_causal_plane(3.0, 1.0)
      (1.414213562373095, 2.82842712474619)
    """
    r = math.sqrt(2.0)
    if isinstance(sensitivity, (int, float)) and isinstance(degeneracy, (int, float)):
        return ((sensitivity - degeneracy) / r, (sensitivity + degeneracy) / r)
    s, d = np.asarray(sensitivity), np.asarray(degeneracy)
    return (s - d) / r, (s + d) / r


def causal_plane(key, topology, layer, *, versus="parts", in_layer=None, samples=None, threshold=0.05,
                 sensitivity_samples=None, batch_size=None, in_range=None, in_bins=64, out_range=None,
                 out_bins=64, activation=None, clip=False, progress=None) -> CausalPlanePoint:
    """Sensitivity, degeneracy and EI of a layer: its point in the causal plane.

    Sensitivity is measured with ``key`` and ``sensitivity_samples`` samples per input
    (default: ``samples``, or deep-ei's 500 when ``samples`` is None); EI (``versus="parts"``:
    EI_parts, ``"vector"``: vector EI) with the same ``key`` and ``samples`` (automatic mode
    with ``threshold`` when None). ``degeneracy = sensitivity - EI``.

    Returns:
      :class:`CausalPlanePoint`.

    Example:
      >>> import jax, jax.numpy as jnp, flax.linen as nn, ei_jax
      >>> net = nn.Dense(3, use_bias=False)
      >>> x0 = jnp.zeros((1, 3))
      >>> top = ei_jax.topology_of(net, net.init(jax.random.key(0), x0), x0)
      >>> p = ei_jax.causal_plane(jax.random.key(1), top, "Dense", samples=5000, in_range=(0, 1),
      ...                         in_bins=8, out_range=(0, 1), out_bins=8, activation="sigmoid")
      >>> abs(p.x - p.ei / 2 ** 0.5) < 1e-12 and abs(p.sensitivity - p.degeneracy - p.ei) < 1e-12
      True
    """
    if versus not in ("parts", "vector"):
        raise ValueError(f"versus must be 'parts' or 'vector'. Got {versus!r}.")
    common = dict(in_layer=in_layer, batch_size=batch_size, in_range=in_range, in_bins=in_bins,
                  out_range=out_range, out_bins=out_bins, activation=activation, clip=clip,
                  progress=progress)
    with warnings.catch_warnings():
        # The range default is reported once, by the first measure.
        s_samples = sensitivity_samples if sensitivity_samples is not None else (samples or 500)
        s = sensitivity(key, topology, layer, samples=s_samples, **common)
        warnings.simplefilter("ignore", DefaultRangeWarning)
        measure = ei_parts if versus == "parts" else ei
        e = measure(key, topology, layer, samples=samples, threshold=threshold, **common)
    return CausalPlanePoint(s, s - e, e, versus)


def degeneracy(key, topology, layer, *, versus="parts", **kwargs) -> float:
    """Degeneracy = sensitivity - EI (``versus="parts"``: EI_parts; ``"vector"``: vector EI).

    Same arguments as :func:`causal_plane`; returns a float (bits).

    Example:
      >>> import jax, jax.numpy as jnp, flax.linen as nn, ei_jax
      >>> net = nn.Dense(3, use_bias=False)
      >>> x0 = jnp.zeros((1, 3))
      >>> top = ei_jax.topology_of(net, net.init(jax.random.key(0), x0), x0)
      >>> d = ei_jax.degeneracy(jax.random.key(1), top, "Dense", samples=5000, in_range=(0, 1),
      ...                       in_bins=8, out_range=(0, 1), out_bins=8, activation="sigmoid")
      >>> isinstance(d, float)
      True
    """
    return causal_plane(key, topology, layer, versus=versus, **kwargs).degeneracy
