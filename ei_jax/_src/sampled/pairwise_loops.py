"""Pairwise statistics: the jitted loops behind EI_parts and sensitivity.

key -> noise of each sample block (:mod:`interventions`) -> the layer's outputs
(``spec.apply_fn``) -> bin indices (:mod:`binning`) -> int32 joint histograms
(:mod:`counting`), summed over loop steps and over devices (:mod:`sharding`). Only integer
counts leave the loop, so memory is bounded by the chunk, not by the sample count, and the
sample count is a traced value (changing it does not recompile).
"""

import functools

import jax
import jax.numpy as jnp

from ei_jax._src.info import binning as _b
from ei_jax._src.info import counting
from ei_jax._src.sampled import sharding
from ei_jax._src.base.interface import BLOCK, CHUNK_BUDGET, PairStats
from ei_jax._src.sampled.interventions import one_at_a_time, sample_indices, uniform_blocks
from ei_jax._src.sampled.spec import Spec, forward


def block_range(start, stop, per_round):
    """``(first block, loop steps)`` covering samples ``[start, stop)``, ``per_round`` blocks a step."""
    b0 = start // BLOCK
    b1 = (stop + BLOCK - 1) // BLOCK
    return b0, (b1 - b0 + per_round - 1) // per_round


def noise(spec: Spec, key, ids, start, stop):
    """Uniform inputs of blocks ``ids`` and the mask of samples inside ``[start, stop)``."""
    x = uniform_blocks(key, ids, spec.in_shape, spec.bx.lo, spec.bx.hi)
    s = sample_indices(ids)
    return x, (s >= start) & (s < stop)


def zeros(spec: Spec, lead=()) -> PairStats:
    """Empty :class:`PairStats` (``lead`` prefixes the shape of ``below``/``above``)."""
    return PairStats(
        jnp.zeros((spec.n_in, spec.out_dim, spec.bx.bins, spec.by.bins), jnp.int32),
        jnp.zeros((*lead, spec.out_dim), jnp.int32),
        jnp.zeros((*lead, spec.out_dim), jnp.int32),
    )


def pair_step(spec: Spec, x, y, w) -> PairStats:
    """Counts of one chunk: inputs ``x (C, n_in)``, outputs ``y (C, n_out)``, mask ``w (C,)``."""
    ix, vx, _ = _b.bin_values(x, spec.bx)
    iy, vy, side = _b.bin_values(y, spec.by)
    cnt = counting.pair_counts(ix, vx & w[:, None], iy, vy & w[:, None],
                               in_bins=spec.bx.bins, out_bins=spec.by.bins, method=spec.method)
    return PairStats(cnt, *counting.out_of_range(side, w[:, None]))


@functools.partial(jax.jit, static_argnames=("spec",))
def pair_loop(key, params, start, stop, *, spec: Spec):
    m = spec.blocks_per_step

    def loop(key, params, start, stop, n_dev, dev):
        b0, n_steps = block_range(start, stop, m * n_dev)

        def body(t, acc):
            x, w = noise(spec, key, sharding.step_ids(b0, t, m, n_dev, dev), start, stop)
            y = forward(spec, params, x)
            return jax.tree.map(jnp.add, acc, pair_step(spec, x.reshape(x.shape[0], -1), y, w))

        return (jax.lax.fori_loop(0, n_steps, body, zeros(spec)),)

    return sharding.sharded(loop, spec.devices, (key, params, start, stop))[0]


@functools.partial(jax.jit, static_argnames=("spec", "baseline"))
def sensitivity_loop(key, params, start, stop, *, spec: Spec, baseline: float):
    m = spec.blocks_per_step
    n_in = spec.n_in

    def loop(key, params, start, stop, n_dev, dev):
        b0, n_steps = block_range(start, stop, m * n_dev)

        def body(t, acc):
            u, w = noise(spec, key, sharding.step_ids(b0, t, m, n_dev, dev), start, stop)
            u = u.reshape(u.shape[0], n_in)
            ix, vx, _ = _b.bin_values(u, spec.bx)

            def per_input(a):
                xa = one_at_a_time(u, a, baseline).reshape(u.shape[0], *spec.in_shape)
                iy, vy, side = _b.bin_values(forward(spec, params, xa), spec.by)
                ia = jax.lax.dynamic_slice_in_dim(ix, a, 1, axis=1)
                va = jax.lax.dynamic_slice_in_dim(vx, a, 1, axis=1) & w[:, None]
                cnt = counting.pair_counts(ia, va, iy, vy & w[:, None], in_bins=spec.bx.bins,
                                           out_bins=spec.by.bins, method=spec.method)
                return (cnt[0], *counting.out_of_range(side, w[:, None]))

            batch = max(1, min(n_in, CHUNK_BUDGET // max(1, 64 * spec.chunk * (n_in + spec.out_dim))))
            cnt, below, above = jax.lax.map(per_input, jnp.arange(n_in), batch_size=batch)
            return jax.tree.map(jnp.add, acc, PairStats(cnt, below, above))

        return (jax.lax.fori_loop(0, n_steps, body, zeros(spec, (n_in,))),)

    return sharding.sharded(loop, spec.devices, (key, params, start, stop))[0]
