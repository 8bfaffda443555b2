"""The pure core with uncertainty: ``f(key, apply_fn, params, *, ...) -> Estimate``.

Each function counts the four quarters of its run separately (the same samples as the plain
measure), takes the plug-in and the bias-corrected MI of every pair from them
(:func:`ei_jax._src.info.uncertainty.influence_tables`), and for a sum over pairs replays the samples
once more for the delta-method standard error (:mod:`influence`). Everything is jittable and
``jax.vmap``-able over ``params``; the convenient API (``stderr=True``) computes the same
statistics in int64 / float64 on the host.
"""

import jax.numpy as jnp

from ei_jax._src.base import checks
from ei_jax._src.base.errors import InvalidSamplesError
from ei_jax._src.info.uncertainty import Estimate, influence_tables, limited, quarter_bounds, residual_bias
from ei_jax._src.sampled.influence import buffer_blocks, padded, pair_influence_loop, sensitivity_influence_loop
from ei_jax._src.sampled.pairwise_loops import pair_loop, sensitivity_loop
from ei_jax._src.sampled.spec import make_spec, sample_hint
from ei_jax._src.sampled.vector_loops import spanned_blocks

#: Fewest samples a run with a standard error takes (four quarters of at least 4).
MIN_SAMPLES = 16


def check_estimate_samples(samples, start=0) -> tuple[int, int]:
    """:func:`ei_jax._src.base.checks.check_samples`, and at least :data:`MIN_SAMPLES` samples."""
    lo, hi = checks.check_samples(samples, start)
    if hi - lo < MIN_SAMPLES:
        raise InvalidSamplesError(
            f"A standard error needs at least {MIN_SAMPLES} samples (four quarters). Got {hi - lo}.")
    return lo, hi


def _quarters(loop, key, params, bounds, **static):
    stats = [loop(key, params, jnp.int32(bounds[i]), jnp.int32(bounds[i + 1]), **static) for i in range(4)]
    below = sum(s.below for s in stats)
    above = sum(s.above for s in stats)
    return [s.counts for s in stats], below, above


def _pair_estimates(key, apply_fn, params, kind, *, in_shape, in_range, in_bins, out_range,
                    out_bins, samples, start, batch_size, clip, method, baseline, devices, summed):
    key = checks.core_key(key)
    spec = make_spec(apply_fn, params, in_shape=in_shape, in_range=in_range, in_bins=in_bins,
                     out_range=out_range, out_bins=out_bins, clip=clip, method=method,
                     batch_size=batch_size, per_input=kind == "sensitivity", devices=devices,
                     samples=sample_hint(samples))
    lo, hi = check_estimate_samples(samples, start)
    params = checks.measured_params(params)
    bounds = quarter_bounds(lo, hi - lo)
    if kind == "sensitivity":
        static = dict(spec=spec, baseline=float(baseline))
        counts, below, above = _quarters(sensitivity_loop, key, params, bounds, **static)
    else:
        static = dict(spec=spec)
        counts, below, above = _quarters(pair_loop, key, params, bounds, **static)
    value, corrected, variance, tables, _, (half, quarter) = influence_tables(counts, xp=jnp)
    if not summed:
        stderr = jnp.sqrt(variance)
        return Estimate(value, corrected, stderr, hi - lo, below, above,
                        limited(residual_bias(value, half, quarter, jnp), stderr))
    second = sensitivity_influence_loop if kind == "sensitivity" else pair_influence_loop
    squares = second(key, params, padded(tables), jnp.asarray(bounds, jnp.int32), jnp.int32(lo),
                     jnp.int32(hi), blocks=buffer_blocks(spanned_blocks(lo, hi)), **static)
    stderr = jnp.sqrt(jnp.sum(squares))
    residual = residual_bias(jnp.sum(value), jnp.sum(half), jnp.sum(quarter), jnp)
    return Estimate(jnp.sum(value), jnp.sum(corrected), stderr, hi - lo, below, above,
                    limited(residual, stderr))


_DOC = """{what}, with its bias correction and standard error.

    Same arguments as :func:`ei_jax.core.{plain}`; ``samples`` must be at least 16.

    Returns:
      :class:`ei_jax.Estimate` of jax arrays: ``value`` (the plug-in, equal to
      ``core.{plain}`` on the same key), ``corrected`` (quadratic extrapolation over the
      run's halves and quarters), ``stderr`` (delta method{how}) and ``limited`` (True
      where the quadratic and the linear correction differ by more than 0.4 standard errors,
      so the interval does not hold: under ``jit`` / ``vmap`` no warning can be raised, check
      it on the host);
      {shape}.

    Example:
      >>> import jax
      >>> from ei_jax import core
      >>> def apply(w, x):
      ...     return jax.nn.sigmoid(x @ w)
      >>> w = jax.random.normal(jax.random.key(0), (3, 2))
      >>> est = core.{name}(jax.random.key(1), apply, w, in_shape=(3,), in_range=(0, 1),
      ...                   in_bins=8, out_range=(0, 1), out_bins=8, samples=20_000)
      >>> {check}
      True
    """


def ei_parts_estimate(key, apply_fn, params, *, in_shape, in_range, in_bins, out_range, out_bins,
                      samples, start=0, batch_size=None, clip=False, method="auto",
                      devices=None) -> Estimate:
    return _pair_estimates(key, apply_fn, params, "parts", in_shape=in_shape, in_range=in_range,
                           in_bins=in_bins, out_range=out_range, out_bins=out_bins, samples=samples,
                           start=start, batch_size=batch_size, clip=clip, method=method, baseline=0.0,
                           devices=devices, summed=True)


def ei_parts_matrix_estimate(key, apply_fn, params, *, in_shape, in_range, in_bins, out_range,
                             out_bins, samples, start=0, batch_size=None, clip=False, method="auto",
                             devices=None) -> Estimate:
    return _pair_estimates(key, apply_fn, params, "parts", in_shape=in_shape, in_range=in_range,
                           in_bins=in_bins, out_range=out_range, out_bins=out_bins, samples=samples,
                           start=start, batch_size=batch_size, clip=clip, method=method, baseline=0.0,
                           devices=devices, summed=False)


def sensitivity_estimate(key, apply_fn, params, *, in_shape, in_range, in_bins, out_range, out_bins,
                         samples, start=0, batch_size=None, clip=False, method="auto", baseline=0.0,
                         devices=None) -> Estimate:
    return _pair_estimates(key, apply_fn, params, "sensitivity", in_shape=in_shape,
                           in_range=in_range, in_bins=in_bins, out_range=out_range, out_bins=out_bins,
                           samples=samples, start=start, batch_size=batch_size, clip=clip,
                           method=method, baseline=baseline, devices=devices, summed=True)


def sensitivity_matrix_estimate(key, apply_fn, params, *, in_shape, in_range, in_bins, out_range,
                                out_bins, samples, start=0, batch_size=None, clip=False,
                                method="auto", baseline=0.0, devices=None) -> Estimate:
    return _pair_estimates(key, apply_fn, params, "sensitivity", in_shape=in_shape,
                           in_range=in_range, in_bins=in_bins, out_range=out_range, out_bins=out_bins,
                           samples=samples, start=start, batch_size=batch_size, clip=clip,
                           method=method, baseline=baseline, devices=devices, summed=False)


_SUM = " over the per-sample influence summed over all pairs: a second pass over the samples"
_PAIR = " per entry, from the counts"
for _fn, _what, _plain, _how, _shape, _check in (
        (ei_parts_estimate, "EI_parts", "ei_parts", _SUM, "scalars",
         "abs(float(est.value) - float(core.ei_parts(jax.random.key(1), apply, w, in_shape=(3,), "
         "in_range=(0, 1), in_bins=8, out_range=(0, 1), out_bins=8, samples=20_000))) < 1e-4"),
        (ei_parts_matrix_estimate, "The EI_parts matrix", "ei_parts_matrix", _PAIR,
         "arrays ``(n_in, n_out)``", "est.stderr.shape == (3, 2)"),
        (sensitivity_estimate, "Sensitivity", "sensitivity", _SUM, "scalars",
         "float(est.stderr) > 0"),
        (sensitivity_matrix_estimate, "The sensitivity matrix", "sensitivity_matrix", _PAIR,
         "arrays ``(n_in, n_out)``", "est.corrected.shape == (3, 2)")):
    _fn.__doc__ = _DOC.format(what=_what, plain=_plain, how=_how, shape=_shape, name=_fn.__name__,
                              check=_check)


def influence_squares(key, apply_fn, params, tables, bounds, *, kind, in_shape, in_range, in_bins,
                      out_range, out_bins, samples, start=0, batch_size=None, clip=False,
                      method="auto", baseline=0.0, devices=None):
    """The delta method's second pass over samples ``[start, start + samples)`` of a run.

    Args:
      tables: float ``(7, n_in, n_out, in_bins, out_bins)`` influence tables of the whole run
        (:func:`ei_jax._src.info.uncertainty.influence_tables`).
      bounds: the run's five quarter boundaries.
      kind: ``"parts"`` or ``"sensitivity"``. Others as :func:`ei_parts_estimate`.

    Returns:
      float32 ``(blocks,)`` of ``sum_s (sum_AB c_AB(s))^2`` per sample block (``(n_in, blocks)``
      for sensitivity, one row per input), from block ``start // BLOCK`` on; identical for
      any batch size or device count, so that their sum in a fixed order is too.
    """
    spec = make_spec(apply_fn, params, in_shape=in_shape, in_range=in_range, in_bins=in_bins,
                     out_range=out_range, out_bins=out_bins, clip=clip, method=method,
                     batch_size=batch_size, per_input=kind == "sensitivity", devices=devices,
                     samples=sample_hint(samples))
    lo, hi = checks.check_samples(samples, start)
    params = checks.measured_params(params)
    args = (key, params, padded(tables), jnp.asarray(bounds, jnp.int32), jnp.int32(lo), jnp.int32(hi))
    blocks = buffer_blocks(spanned_blocks(lo, hi))
    if kind == "sensitivity":
        return sensitivity_influence_loop(*args, spec=spec, baseline=float(baseline), blocks=blocks)
    return pair_influence_loop(*args, spec=spec, blocks=blocks)
