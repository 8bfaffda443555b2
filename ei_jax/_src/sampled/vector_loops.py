"""Vector statistics: the jitted loop behind vector EI and EI between groups of neurons.

Each valid sample (every input and output inside its range) becomes one row code per group
(:mod:`row_codes`); the entropies of the codes give the vector MI. Unlike pairwise counts,
the codes of every sample must be kept (16 bytes per row and group). A run covers samples
``[start, stop)``, so rounds of an automatic run add codes instead of recounting.
"""

import dataclasses
import functools

import jax
import jax.numpy as jnp

from ei_jax._src.info import binning as _b
from ei_jax._src.base import checks
from ei_jax._src.info import counting
from ei_jax._src.info import row_codes
from ei_jax._src.sampled import sharding
from ei_jax._src.base.errors import ShapeMismatchError
from ei_jax._src.base.interface import BLOCK
from ei_jax._src.sampled.pairwise_loops import noise, pair_step, zeros
from ei_jax._src.sampled.spec import Spec, forward


def spanned_blocks(start: int, stop: int) -> int:
    """Sample blocks that samples ``[start, stop)`` touch."""
    return -(-stop // BLOCK) - start // BLOCK


def capacity_steps(blocks: int, m: int, n_dev: int) -> int:
    """Static number of loop steps covering ``blocks`` blocks: rounded up to 3 significant
    bits (at most 12.5% spare rows; one compiled size per eighth of an octave), then to a
    multiple of the device count."""
    steps = -(-blocks // m)
    grain = 1 << max(0, steps.bit_length() - 3)
    steps = -(-steps // grain) * grain
    return -(-steps // n_dev) * n_dev


def rows_bound(blocks: int) -> int:
    """Rows the device entropy stage sorts: ``blocks`` rounded up to a power of two, times
    ``BLOCK`` -- it depends on the samples only, not on the chunk or device count."""
    return BLOCK << max(0, (blocks - 1).bit_length())


def _columns(a, idx):
    """``a[:, idx]`` for a static tuple of column indices, without a gather where the indices
    are a run (the whole layer's vector EI selects every column: as a gather that was ~60% of
    the loop's time at 784 -> 100)."""
    lo = idx[0]
    if tuple(idx) == tuple(range(lo, lo + len(idx))):
        return a if len(idx) == a.shape[1] else a[:, lo:lo + len(idx)]
    return a[:, list(idx)]


@functools.partial(jax.jit, static_argnames=("spec", "pair_spec", "n_steps", "groups", "bound",
                                             "compact"))
def vector_loop(key, params, start, stop, *, spec: Spec, pair_spec: Spec | None, n_steps: int,
                groups, bound: int, compact: bool):
    """Row codes ``(R, G, 4)`` uint32 and validity ``(R,)`` of samples ``[start, stop)``, the
    out-of-range counts, and pairwise :class:`PairStats` of the same samples (or None).

    ``compact=True`` (GPU/TPU) moves the valid rows first, in order, in ``bound`` rows.
    """
    m = spec.blocks_per_step
    chunk = m * BLOCK

    def loop(key, params, start, stop, n_dev, dev):
        # Only the steps that hold samples run (a dynamic trip count); the row buffer has a
        # static capacity of ``n_steps // n_dev`` steps per device.
        b0 = start // BLOCK
        run_steps = ((stop + BLOCK - 1) // BLOCK - b0 + m * n_dev - 1) // (m * n_dev)

        def body(t, acc):
            codes_buf, valid_buf, below, above, pairs = acc
            x, w = noise(spec, key, sharding.step_ids(b0, t, m, n_dev, dev), start, stop)
            y = forward(spec, params, x)
            xf = x.reshape(x.shape[0], -1)
            ix, vx, _ = _b.bin_values(xf, spec.bx)
            iy, vy, side = _b.bin_values(y, spec.by)
            valid = w & jnp.all(vx, axis=1) & jnp.all(vy, axis=1)
            codes = [jnp.concatenate([row_codes.row_codes(_columns(ix, gin), spec.bx.bins),
                                      row_codes.row_codes(_columns(iy, gout), spec.by.bins)], axis=1)
                     for gin, gout in groups]
            codes_buf = jax.lax.dynamic_update_slice_in_dim(codes_buf, jnp.stack(codes, axis=1), t * chunk, 0)
            valid_buf = jax.lax.dynamic_update_slice_in_dim(valid_buf, valid, t * chunk, 0)
            b, a = counting.out_of_range(side, w[:, None])
            if pair_spec is not None:
                pairs = jax.tree.map(jnp.add, pairs, pair_step(pair_spec, xf, y, w))
            return codes_buf, valid_buf, below + b, above + a, pairs

        rows = (n_steps // n_dev) * chunk
        none = jnp.zeros((spec.out_dim,), jnp.int32)
        init = (jnp.zeros((rows, len(groups), 4), jnp.uint32), jnp.zeros((rows,), bool), none, none,
                zeros(pair_spec) if pair_spec is not None else None)
        return jax.lax.fori_loop(0, run_steps, body, init)

    codes, valid, below, above, pairs = sharding.sharded(loop, spec.devices, (key, params, start, stop),
                                                         gathered=(0, 1))
    if not compact:
        return codes, valid, below, above, pairs
    # Integer-only compaction (a cumsum and a scatter): valid rows first, in order, cut to a
    # length that depends only on the samples, so the entropy stage sees the same arrays for
    # any device count or chunk size.
    length = min(valid.shape[0], bound)
    pos = jnp.cumsum(valid.astype(jnp.int32)) - 1
    dest = jnp.where(valid, pos, length)
    packed = jnp.zeros((length, *codes.shape[1:]), codes.dtype).at[dest].set(codes, mode="drop")
    n_valid = jnp.sum(valid, dtype=jnp.int32)
    return packed, jnp.arange(length) < n_valid, below, above, pairs


def check_groups(groups, n_in: int, n_out: int):
    """Groups as a tuple of ``(input indices, output indices)`` tuples, checked against the layer."""
    try:
        out = tuple((tuple(int(i) for i in gin), tuple(int(j) for j in gout)) for gin, gout in groups)
    except (TypeError, ValueError):
        raise ShapeMismatchError(
            "groups must be a list of (input indices, output indices) pairs, e.g. [((0, 1), (2,))]. "
            f"Got {groups!r}."
        ) from None
    if not out:
        raise ShapeMismatchError("groups must contain at least one (inputs, outputs) pair.")
    for gin, gout in out:
        if not gin or not gout:
            raise ShapeMismatchError(f"Each group needs at least one input and one output. Got {(gin, gout)}.")
        if any(i < 0 or i >= n_in for i in gin) or any(j < 0 or j >= n_out for j in gout):
            raise ShapeMismatchError(
                f"Group {(gin, gout)} indexes outside the layer: inputs must be in [0, {n_in}), "
                f"outputs in [0, {n_out})."
            )
    return out


def vector_codes(key, spec: Spec, params, start: int, stop: int, *, groups, pair_spec=None,
                 gather: bool = True):
    """Runs :func:`vector_loop` for samples ``[start, stop)``: ``(codes, valid, below, above,
    pairs)``, with codes compacted on GPU/TPU and committed to the first device.

    With ``gather=False``, codes made on several processes' devices stay sharded there
    (global arrays; read this process's rows with :func:`sharding.local_valid_rows`)."""
    blocks = spanned_blocks(start, stop)
    params = checks.measured_params(params)
    traced = any(isinstance(v, jax.core.Tracer) for v in jax.tree.leaves((key, params)))
    if traced and spec.devices > 1 and jax.default_backend() == "cpu":
        # Under the caller's jit/vmap the CPU entropy (a host callback on one device) would
        # sit in the same program as the other devices' collectives and deadlock them: the
        # loop runs on this process's first device instead (the same rows, the same number).
        spec = dataclasses.replace(spec, devices=1)
        pair_spec = None if pair_spec is None else dataclasses.replace(pair_spec, devices=1)
    # GPU/TPU compact the rows for their device entropy; rows left on several processes are
    # counted on the host (distributed_counts), which needs no compaction.
    compact = jax.default_backend() != "cpu" and (gather or spec.devices <= len(jax.local_devices()))
    codes, valid, below, above, pairs = vector_loop(
        key, params, jnp.int32(start), jnp.int32(stop), spec=spec, pair_spec=pair_spec,
        n_steps=capacity_steps(blocks, spec.blocks_per_step, spec.devices), groups=groups,
        bound=rows_bound(blocks), compact=compact)
    if gather or not sharding.spans_processes(codes):
        codes, valid = sharding.on_first_device((codes, valid))
    return codes, valid, below, above, pairs
