"""The pure core's public measures: ``f(key, apply_fn, params, *, ...) -> jax.Array``.

``apply_fn(params, x)`` maps a batch of inputs ``(C, *in_shape)`` to the layer's
*activated* outputs ``(C, *out_shape)``; it is compared by identity, so define it once and
new weights reuse the compiled program. Everything here is jittable and ``jax.vmap``-able
over ``params`` (stacks of checkpoints, weight sweeps) or keys. Sampled measures are not
differentiable: :func:`jax.grad` through them raises :class:`NotDifferentiableError`.
"""

import math

import jax
import jax.numpy as jnp

from ei_jax._src.info import binning as _b
from ei_jax._src.base import checks
from ei_jax._src.base.errors import InvalidOptionError
from ei_jax._src.sampled import distributed_counts
from ei_jax._src.info import row_codes
from ei_jax._src.sampled import sharding
from ei_jax._src.info.plugin import mutual_information_from_counts
from ei_jax._src.base.interface import PairStats, VectorStats
from ei_jax._src.sampled.pairwise_loops import pair_loop, sensitivity_loop
from ei_jax._src.sampled.spec import make_spec, sample_hint
from ei_jax._src.sampled.vector_loops import check_groups, vector_codes

_ARGS = """
    Args:
      key: a ``jax.random`` key.
      apply_fn: ``apply_fn(params, x)``: ``(C, *in_shape) -> (C, *out_shape)``, activated.
      params: pytree of parameters passed to ``apply_fn`` (may be batched by ``jax.vmap``).
      in_shape: per-sample input shape, e.g. ``(n_in,)``.
      in_range, out_range: ``(lo, hi)``; ``in_range`` is also the range of the noise.
      in_bins, out_bins: bin counts.
      samples: number of noise samples (per input neuron for sensitivity).
      start: index of the first sample (consecutive calls add up to one long run).
      batch_size: samples per step (memory and speed only; rounded up to a multiple of 1024).
      clip: put out-of-range outputs in the edge bins instead of dropping them.
      method: counting kernel: ``"auto"``, ``"onehot"``, ``"bits"`` or ``"scatter"``.
      devices: how many of ``jax.devices()`` share the sample blocks (default: all); the
        result is identical for any number."""

_EXAMPLE = """
    Example:
      >>> import jax
      >>> from ei_jax import core
      >>> def apply(w, x):                          # define once: compiled once
      ...     return jax.nn.sigmoid(x @ w)
      >>> w = jax.random.normal(jax.random.key(0), (3, 2))
      >>> kw = dict(in_shape=(3,), in_range=(0, 1), in_bins=8, out_range=(0, 1), out_bins=8)
      >>> {call}"""


def _document(fn, summary: str, returns: str, call: str, result: str, extra: str = ""):
    fn.__doc__ = (f"{summary}\n{_ARGS}{extra}\n\n    Returns:\n      {returns}\n"
                  f"{_EXAMPLE.format(call=call)}\n      {result}\n    ")
    return fn


def pairwise_stats(key, apply_fn, params, *, in_shape, in_range, in_bins, out_range, out_bins,
                   samples, start=0, batch_size=None, clip=False, method="auto",
                   devices=None) -> PairStats:
    checks.check_flag("clip", clip)
    in_shape = checks.check_shape("in_shape", in_shape)
    spec = make_spec(apply_fn, params, in_shape=in_shape, in_range=in_range, in_bins=in_bins,
                     out_range=out_range, out_bins=out_bins, clip=clip, method=method,
                     batch_size=batch_size, devices=devices, samples=sample_hint(samples))
    lo, hi = checks.check_samples(samples, start)
    key, params = checks.core_key(key), checks.measured_params(params)
    return pair_loop(key, params, jnp.int32(lo), jnp.int32(hi), spec=spec)


def sensitivity_stats(key, apply_fn, params, *, in_shape, in_range, in_bins, out_range, out_bins,
                      samples, start=0, batch_size=None, clip=False, method="auto", baseline=0.0,
                      devices=None) -> PairStats:
    checks.check_flag("clip", clip)
    baseline = _check_baseline(baseline)
    in_shape = checks.check_shape("in_shape", in_shape)
    spec = make_spec(apply_fn, params, in_shape=in_shape, in_range=in_range, in_bins=in_bins,
                     out_range=out_range, out_bins=out_bins, clip=clip, method=method,
                     batch_size=batch_size, per_input=True, devices=devices,
                     samples=sample_hint(samples))
    lo, hi = checks.check_samples(samples, start)
    key, params = checks.core_key(key), checks.measured_params(params)
    return sensitivity_loop(key, params, jnp.int32(lo), jnp.int32(hi), spec=spec,
                              baseline=baseline)


def _check_baseline(baseline) -> float:
    """``baseline`` as a finite Python float (a traced one cannot set a static input)."""
    try:
        value = float(baseline)
    except (TypeError, ValueError, jax.errors.ConcretizationTypeError):
        raise InvalidOptionError(f"baseline must be a finite number. Got {baseline!r}.") from None
    if isinstance(baseline, (bool, str)) or not math.isfinite(value):
        raise InvalidOptionError(f"baseline must be a finite number. Got {baseline!r}.")
    return value


def vector_rows(key, apply_fn, params, *, in_shape, in_range, in_bins, out_range, out_bins,
                samples, start=0, groups=None, with_pairs=False, pair_bins=None, batch_size=None,
                clip=False, method="auto", devices=None):
    """The row codes behind :func:`vector_stats` (arguments as there).

    Returns:
      ``(codes, valid, below, above, pairs)``: uint32 row codes ``(R, G, 4)``, bool validity
      ``(R,)``, int32 out-of-range counts ``(n_out,)`` and :class:`PairStats` or None. The
      vector MI of several runs is the MI of their valid rows together. Under
      ``jax.distributed`` every process gets every process's rows.
    """
    return local_rows(key, apply_fn, params, in_shape=in_shape, in_range=in_range, in_bins=in_bins,
                      out_range=out_range, out_bins=out_bins, samples=samples, start=start,
                      groups=groups, with_pairs=with_pairs, pair_bins=pair_bins,
                      batch_size=batch_size, clip=clip, method=method, devices=devices, gather=True)


def local_rows(key, apply_fn, params, *, in_shape, in_range, in_bins, out_range, out_bins, samples,
               start=0, groups=None, with_pairs=False, pair_bins=None, batch_size=None, clip=False,
               method="auto", devices=None, gather=False):
    """:func:`vector_rows`; with ``gather=False`` (internal) rows made on other processes'
    devices stay there: the codes are then global arrays, read with
    :func:`sharding.local_valid_rows` and counted with :mod:`distributed_counts`."""
    checks.check_flags(clip=clip, with_pairs=with_pairs)
    in_shape = checks.check_shape("in_shape", in_shape)
    spec = make_spec(apply_fn, params, in_shape=in_shape, in_range=in_range, in_bins=in_bins,
                     out_range=out_range, out_bins=out_bins, clip=clip, method=method,
                     batch_size=batch_size, mode=_b.VECTOR, devices=devices)
    pair_spec = None
    if with_pairs:
        pin, pout = pair_bins if pair_bins is not None else (in_bins, out_bins)
        pair_spec = make_spec(apply_fn, params, in_shape=in_shape, in_range=in_range, in_bins=pin,
                              out_range=out_range, out_bins=pout, clip=clip, method=method,
                              batch_size=spec.chunk, devices=devices)
    groups = check_groups(groups if groups is not None else [(range(spec.n_in), range(spec.out_dim))],
                          spec.n_in, spec.out_dim)
    lo, hi = checks.check_samples(samples, start)
    return vector_codes(checks.core_key(key), spec, params, lo, hi, groups=groups, pair_spec=pair_spec, gather=gather)


def vector_stats(key, apply_fn, params, *, in_shape, in_range, in_bins, out_range, out_bins,
                 samples, start=0, groups=None, with_pairs=False, pair_bins=None, batch_size=None,
                 clip=False, method="auto", devices=None) -> VectorStats:
    codes, valid, below, above, pairs = local_rows(
        key, apply_fn, params, in_shape=in_shape, in_range=in_range, in_bins=in_bins,
        out_range=out_range, out_bins=out_bins, samples=samples, start=start, groups=groups,
        with_pairs=with_pairs, pair_bins=pair_bins, batch_size=batch_size, clip=clip,
        method=method, devices=devices)
    if sharding.spans_processes(codes):     # several processes: count where the rows are
        rows = sharding.local_valid_rows(codes, valid)
        del codes, valid                    # the device buffers: only this process's rows stay
        mi, n, _ = distributed_counts.global_vector_mi(rows)
        return VectorStats(jnp.asarray(mi), jnp.int32(n), below, above, pairs)
    return VectorStats(row_codes.vector_mi(codes, valid), jnp.sum(valid, dtype=jnp.int32), below,
                       above, pairs)


def ei_parts_matrix(key, apply_fn, params, *, in_shape, in_range, in_bins, out_range, out_bins,
                    samples, start=0, batch_size=None, clip=False, method="auto",
                    devices=None) -> jax.Array:
    counts = pairwise_stats(key, apply_fn, params, in_shape=in_shape, in_range=in_range,
                            in_bins=in_bins, out_range=out_range, out_bins=out_bins, samples=samples,
                            start=start, batch_size=batch_size, clip=clip, method=method,
                            devices=devices).counts
    return mutual_information_from_counts(counts)


def ei_parts(key, apply_fn, params, *, in_shape, in_range, in_bins, out_range, out_bins, samples,
             start=0, batch_size=None, clip=False, method="auto", devices=None) -> jax.Array:
    return jnp.sum(ei_parts_matrix(key, apply_fn, params, in_shape=in_shape, in_range=in_range,
                                   in_bins=in_bins, out_range=out_range, out_bins=out_bins,
                                   samples=samples, start=start, batch_size=batch_size, clip=clip,
                                   method=method, devices=devices))


def sensitivity_matrix(key, apply_fn, params, *, in_shape, in_range, in_bins, out_range, out_bins,
                       samples, start=0, batch_size=None, clip=False, method="auto", baseline=0.0,
                       devices=None) -> jax.Array:
    counts = sensitivity_stats(key, apply_fn, params, in_shape=in_shape, in_range=in_range,
                               in_bins=in_bins, out_range=out_range, out_bins=out_bins,
                               samples=samples, start=start, batch_size=batch_size, clip=clip,
                               method=method, baseline=baseline, devices=devices).counts
    return mutual_information_from_counts(counts)


def sensitivity(key, apply_fn, params, *, in_shape, in_range, in_bins, out_range, out_bins, samples,
                start=0, batch_size=None, clip=False, method="auto", baseline=0.0,
                devices=None) -> jax.Array:
    return jnp.sum(sensitivity_matrix(key, apply_fn, params, in_shape=in_shape, in_range=in_range,
                                      in_bins=in_bins, out_range=out_range, out_bins=out_bins,
                                      samples=samples, start=start, batch_size=batch_size,
                                      clip=clip, method=method, baseline=baseline, devices=devices))


def vector_ei(key, apply_fn, params, *, in_shape, in_range, in_bins, out_range, out_bins, samples,
              start=0, batch_size=None, clip=False, method="auto", devices=None) -> jax.Array:
    return vector_stats(key, apply_fn, params, in_shape=in_shape, in_range=in_range, in_bins=in_bins,
                        out_range=out_range, out_bins=out_bins, samples=samples, start=start,
                        batch_size=batch_size, clip=clip, method=method, devices=devices).mi[0]


_SENS = "\n      baseline: value of the inputs not intervened on (deep-ei: 0)."
#: What the vector measures' docstrings say about their ceiling (no warning under jit/vmap).
_CEILING = """

    The ceiling: the plug-in vector EI cannot exceed ``log2 N`` (``N`` the rows counted), and
    sits there when most rows are alone in their (input, output) cell -- it then measures the
    sample count, not the layer (``log2(1e5) = 16.6057``). Under ``jax.jit`` / ``jax.vmap`` no
    warning can be raised: check on the host, from :func:`vector_stats`'s ``mi`` and ``rows``,
    ``stats.mi > jnp.log2(stats.rows) - 1`` (within a bit of the ceiling: more than ``N/2``
    cells' worth of joint entropy, saturated; vmaps too). The convenient :func:`ei_jax.ei`
    checks the rows themselves and warns (:class:`ei_jax.SampleLimitedWarning`) with the
    fraction of rows alone in their cell."""
_document(pairwise_stats, "Joint histograms of every (input, output) neuron pair under do(L1 = H^max).",
          ":class:`PairStats`: int32 ``counts (n_in, n_out, in_bins, out_bins)``, ``below`` and "
          "``above`` ``(n_out,)``.", "core.pairwise_stats(jax.random.key(1), apply, w, samples=5000, "
          "**kw).counts.shape", "(3, 2, 8, 8)")
_document(sensitivity_stats, "Joint histograms of (x_A, y_B) under do(x_A = H^max), the other "
          "inputs at ``baseline``, one A at a time.", ":class:`PairStats`: int32 ``counts (n_in, n_out, "
          "in_bins, out_bins)``; ``below``/``above`` ``(n_in, n_out)``.",
          "core.sensitivity_stats(jax.random.key(1), apply, w, samples=2000, **kw).below.shape",
          "(3, 2)", _SENS)
_document(vector_stats, "Vector MI of the whole layer (or of groups of neurons) under do(L1 = H^max).",
          ":class:`VectorStats`: float32 ``mi (G,)`` bits, int32 ``rows`` counted, ``below``/"
          "``above`` ``(n_out,)``, and ``pairs`` (:class:`PairStats` or None).",
          "core.vector_stats(jax.random.key(1), apply, w, samples=5000, groups=[((0,), (0, 1)), "
          "((0, 1, 2), (1,))], **kw).mi.shape", "(2,)",
          "\n      groups: list of (input indices, output indices); default: all inputs, all outputs."
          "\n      with_pairs: also count pairwise histograms of the same samples."
          "\n      pair_bins: ``(in_bins, out_bins)`` of those pairwise histograms (default: the same)."
          + _CEILING)
_document(ei_parts_matrix, "Matrix of I(x_A; y_B) under do(L1 = H^max): the terms of EI_parts.",
          "float32 ``(n_in, n_out)`` bits (rows are inputs); an all-out-of-range pair is NaN.",
          "core.ei_parts_matrix(jax.random.key(1), apply, w, samples=5000, **kw).shape", "(3, 2)")
_document(ei_parts, "EI_parts: the sum over all (A, B) of I(x_A; y_B) under do(L1 = H^max).",
          "float32 scalar, bits.", "float(core.ei_parts(jax.random.key(1), apply, w, samples=5000, "
          "**kw)) >= 0", "True")
_document(sensitivity_matrix, "Matrix of I(x_A; y_B) under do(x_A = H^max), other inputs at "
          "``baseline``.", "float32 ``(n_in, n_out)`` bits.",
          "core.sensitivity_matrix(jax.random.key(1), apply, w, samples=2000, **kw).shape", "(3, 2)",
          _SENS)
_document(sensitivity, "Sensitivity: the sum of :func:`sensitivity_matrix`.", "float32 scalar, bits.",
          "float(core.sensitivity(jax.random.key(1), apply, w, samples=2000, **kw)) >= 0", "True", _SENS)
_document(vector_ei, "Vector EI: I(X; Y) of whole binned rows under do(L1 = H^max).",
          "float32 scalar, bits (vector binning: a row with any value out of range is dropped). "
          "At most ``log2 samples``: use :func:`vector_stats` to check the ceiling (above).",
          "float(core.vector_ei(jax.random.key(1), apply, w, samples=5000, **kw)) <= 3 * 3",
          "True", _CEILING)

__all__ = ["PairStats", "VectorStats", "ei_parts", "ei_parts_matrix", "pairwise_stats",
           "sensitivity", "sensitivity_matrix", "sensitivity_stats", "vector_ei", "vector_rows",
           "vector_stats"]
