"""The second pass of the delta method: per-sample influence on a sum over pairs.

The pairs of EI_parts share their samples, so the variance of the sum is not the sum of the
pairs' variances. :func:`pair_influence_loop` replays the same key-derived samples (same
blocks, same noise) and, for every sample ``s``, sums over all pairs ``(A, B)`` its influence
``c_AB(s)`` looked up in the tables of :func:`ei_jax._src.info.uncertainty.influence_tables` (the
whole run's, the sample's half's and its quarter's), then adds ``(sum_AB c_AB(s))^2``. For
sensitivity each input is intervened on with its own noise column, so the inputs are
independent and :func:`sensitivity_influence_loop` returns one sum of squares per input.

The loops return one float32 partial sum per sample *block*, each written at its block's
place in a buffer that is psummed over devices (every place is written by one device, so the
sum is exact): the same key gives the same block sums for any chunk size or device count,
and the caller adds them in a fixed order.
"""

import functools

import jax
import jax.numpy as jnp

from ei_jax._src.info import binning as _b
from ei_jax._src.sampled import sharding
from ei_jax._src.base.interface import BLOCK
from ei_jax._src.sampled.interventions import one_at_a_time, sample_indices
from ei_jax._src.sampled.pairwise_loops import block_range, noise
from ei_jax._src.sampled.spec import Spec, forward


def padded(tables):
    """Influence tables ``(7, n_in, n_out, kx, ky)`` as float32 ``(7, n_in, n_out, kx*ky + 1)``
    with a last slot of zeros where samples outside the range look up."""
    t = jnp.asarray(tables, jnp.float32)
    t = t.reshape(*t.shape[:3], -1)
    return jnp.concatenate([t, jnp.zeros((*t.shape[:3], 1), jnp.float32)], axis=-1)


def _quarter(s, bounds):
    """Quarter 0..3 of each sample index ``s`` from the five quarter boundaries."""
    return jnp.sum(s[:, None] >= bounds[None, 1:4], axis=1, dtype=jnp.int32)


def _lookup(tables, a, q, cell):
    """``c_{a,B}(s)`` for every sample and output: ``(C, n_out)``."""
    n_out = tables.shape[2]
    b = jnp.arange(n_out)[None, :]
    full = tables[0, a][b, cell]
    half = tables[(1 + q // 2)[:, None], a, b, cell]
    return full + half + tables[(3 + q)[:, None], a, b, cell]


def _cells(spec: Spec, ia, va, iy, vy):
    """Flat cell of each (sample, output) pair for one input column; the zero slot if invalid."""
    cells = spec.bx.bins * spec.by.bins
    return jnp.where(va[:, None] & vy, ia[:, None] * spec.by.bins + iy, cells)


def buffer_blocks(blocks: int) -> int:
    """Static length of the block-sum buffer for a run spanning ``blocks`` blocks (a power of
    two, so that few sizes compile)."""
    return 1 << max(0, (blocks - 1).bit_length())


def _per_block(v, spec):
    """Sums of ``v (..., C)`` over each block of the chunk: ``(..., m)``."""
    return jnp.sum(v.reshape(*v.shape[:-1], spec.blocks_per_step, BLOCK), axis=-1)


def _write(acc, sums, t, n_dev, dev, m):
    return jax.lax.dynamic_update_slice_in_dim(acc, sums, (t * n_dev + dev) * m, axis=-1)


def _blocks_loop(spec: Spec, blocks: int, lead: tuple, step, args):
    """The loop both passes share: replays the run's sample blocks, and writes the per-block
    sums ``step(x, w, q, ix, vx) -> (*lead, m)`` of each step at the blocks' places."""
    m = spec.blocks_per_step

    def loop(key, params, tables, bounds, start, stop, n_dev, dev):
        b0, n_steps = block_range(start, stop, m * n_dev)

        def body(t, acc):
            ids = sharding.step_ids(b0, t, m, n_dev, dev)
            x, w = noise(spec, key, ids, start, stop)
            ix, vx, _ = _b.bin_values(x.reshape(x.shape[0], -1), spec.bx)
            sums = step(params, tables, x, w, _quarter(sample_indices(ids), bounds), ix, vx)
            return _write(acc, sums, t, n_dev, dev, m)

        size = blocks + m * n_dev  # room for the last step's spare blocks
        return (jax.lax.fori_loop(0, n_steps, body, jnp.zeros((*lead, size), jnp.float32))[..., :blocks],)

    return sharding.sharded(loop, spec.devices, args)[0]


def _column(ix, vx, a):
    return (jax.lax.dynamic_index_in_dim(ix, a, 1, keepdims=False),
            jax.lax.dynamic_index_in_dim(vx, a, 1, keepdims=False))


@functools.partial(jax.jit, static_argnames=("spec", "blocks"))
def pair_influence_loop(key, params, tables, bounds, start, stop, *, spec: Spec, blocks: int):
    """``sum_s (sum_AB c_AB(s))^2`` of every block of samples ``[start, stop)``.

    Args:
      tables: float32 ``(7, n_in, n_out, kx*ky + 1)`` from :func:`padded`.
      bounds: int32 ``(5,)`` quarter boundaries of the whole run.
      blocks: :func:`buffer_blocks` of the blocks the samples span.

    Returns:
      float32 ``(blocks,)``: entry ``i`` is block ``start // BLOCK + i``'s sum (0 past the run).
    """

    def step(params, tables, x, w, q, ix, vx):
        iy, vy, _ = _b.bin_values(forward(spec, params, x), spec.by)
        vy = vy & w[:, None]

        def per_input(a, h):
            return h + jnp.sum(_lookup(tables, a, q, _cells(spec, *_column(ix, vx, a), iy, vy)), axis=1)

        h = jax.lax.fori_loop(0, spec.n_in, per_input, jnp.zeros((x.shape[0],), jnp.float32))
        return _per_block(h * h, spec)

    return _blocks_loop(spec, blocks, (), step, (key, params, tables, bounds, start, stop))


@functools.partial(jax.jit, static_argnames=("spec", "baseline", "blocks"))
def sensitivity_influence_loop(key, params, tables, bounds, start, stop, *, spec: Spec,
                               baseline: float, blocks: int):
    """``sum_s (sum_B c_AB(s))^2`` for every input A under do(x_A = H^max) and every block:
    float32 ``(n_in, blocks)`` (as :func:`pair_influence_loop`)."""
    n_in = spec.n_in

    def step(params, tables, u, w, q, ix, vx):
        u = u.reshape(u.shape[0], n_in)

        def per_input(a):
            xa = one_at_a_time(u, a, baseline).reshape(u.shape[0], *spec.in_shape)
            iy, vy, _ = _b.bin_values(forward(spec, params, xa), spec.by)
            cells = _cells(spec, *_column(ix, vx, a), iy, vy & w[:, None])
            h = jnp.sum(_lookup(tables, a, q, cells), axis=1)
            return _per_block(h * h, spec)

        return jax.lax.map(per_input, jnp.arange(n_in))

    return _blocks_loop(spec, blocks, (n_in,), step, (key, params, tables, bounds, start, stop))
