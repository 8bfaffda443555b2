"""The pure, jittable core of every layer measure.

Each function takes ``(key, apply_fn, params, *, ...)`` where ``apply_fn(params, x)`` maps a
batch of inputs ``x`` of shape ``(C, *in_shape)`` to the layer's *activated* outputs
``(C, *out_shape)``. They return ``jax.Array``s and can be wrapped in ``jax.vmap`` over
``params`` (e.g. a stack of checkpoints) or over keys.

``apply_fn`` is a static argument compared by identity: define it once (not as a new
``lambda`` per call), so that measuring new weights reuses the compiled program.

The sample count of pairwise measures is a traced value: changing ``samples`` does not
recompile. Vector measures compile once per power-of-two bucket of sample blocks.
"""

import dataclasses
import functools
import math
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ei_jax._src import binning as _b
from ei_jax._src import counting
from ei_jax._src.errors import InvalidSamplesError, MemoryBudgetError, ShapeMismatchError
from ei_jax._src.estimators import mutual_information_from_counts
from ei_jax._src.interventions import BLOCK, one_at_a_time, sample_indices, uniform_blocks

#: Working memory aimed at per chunk of samples (bytes).
CHUNK_BUDGET = 128 << 20
#: Largest joint-histogram array accepted (bytes).
MAX_HISTOGRAM_BYTES = 1 << 30
#: Most samples counted in one call; int32 counts cannot overflow below this.
MAX_SAMPLES_PER_CALL = (1 << 31) - BLOCK


class PairStats(NamedTuple):
    """Integer statistics of a pairwise measure.

    Attributes:
      counts: int32 ``(n_in, n_out, in_bins, out_bins)`` joint histograms.
      below: int32 ``(..., n_out)`` output values below ``out_range`` (per input for sensitivity).
      above: int32 ``(..., n_out)`` output values above ``out_range`` or not finite.
    """

    counts: jax.Array
    below: jax.Array
    above: jax.Array


class VectorStats(NamedTuple):
    """Results of a vector measure.

    Attributes:
      mi: float32 ``(G,)`` vector MI of each group, in bits.
      rows: int32 number of rows counted (all inputs and outputs in range).
      below, above: int32 ``(n_out,)`` output values below / above ``out_range``.
      pairs: :class:`PairStats` from the same samples, or None.
    """

    mi: jax.Array
    rows: jax.Array
    below: jax.Array
    above: jax.Array
    pairs: PairStats | None


@dataclasses.dataclass(frozen=True)
class Spec:
    """Static description of one measurement (hashable; ``apply_fn`` by identity)."""

    apply_fn: Callable
    in_shape: tuple[int, ...]
    out_dim: int
    bx: _b.Binning
    by: _b.Binning
    method: str
    blocks_per_step: int
    devices: int = 1

    @property
    def n_in(self) -> int:
        return math.prod(self.in_shape)

    @property
    def chunk(self) -> int:
        return self.blocks_per_step * BLOCK


def _forward(spec: Spec, params, x):
    y = spec.apply_fn(params, x)
    return y.reshape(x.shape[0], -1).astype(jnp.float32)


def _check_samples(samples, start=0) -> tuple[int, int]:
    if isinstance(samples, bool) or not isinstance(samples, int):
        try:
            import numpy as np

            if isinstance(samples, np.integer):
                samples = int(samples)
            else:
                raise TypeError
        except TypeError:
            raise InvalidSamplesError(f"samples must be a positive int. Got {samples!r}.") from None
    if samples < 1:
        raise InvalidSamplesError(f"samples must be >= 1. Got {samples}.")
    if start < 0:
        raise InvalidSamplesError(f"start must be >= 0. Got {start}.")
    if start + samples > MAX_SAMPLES_PER_CALL:
        raise InvalidSamplesError(
            f"start + samples = {start + samples} exceeds {MAX_SAMPLES_PER_CALL} samples per call "
            "(int32 counts). The convenient API (ei_jax.ei_parts etc.) splits larger runs into "
            "several calls and adds the counts in int64; use it, or call the core with "
            "consecutive `start` offsets and add the counts yourself."
        )
    return int(start), int(start + samples)


def _blocks_per_step(batch_size, bytes_per_sample: int, samples=None) -> int:
    if batch_size is None:
        c = max(BLOCK, min(1 << 14, CHUNK_BUDGET // max(1, bytes_per_sample)))
        if samples is not None:
            # Small runs take a smaller power-of-two step instead of computing masked
            # samples (a few compiled variants at most: 1, 2, 4, 8 or 16 blocks).
            need = -(-int(samples) // BLOCK)
            c = min(c, BLOCK << max(0, (need - 1).bit_length()))
    else:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise InvalidSamplesError(f"batch_size must be a positive int. Got {batch_size!r}.")
        c = batch_size
    return max(1, -(-c // BLOCK))


def _check_devices(devices) -> int:
    available = jax.device_count()
    if devices is None:
        return available
    if isinstance(devices, bool) or not isinstance(devices, int) or not 1 <= devices <= available:
        raise InvalidSamplesError(
            f"devices must be an int in [1, {available}] (the devices JAX sees). Got {devices!r}."
        )
    return devices


def make_spec(apply_fn, params, *, in_shape, in_range, in_bins, out_range, out_bins, clip=False,
              method="auto", batch_size=None, mode=_b.PAIR, per_input=False, devices=None,
              samples=None) -> Spec:
    """Validates arguments and builds the static :class:`Spec` (shapes via ``jax.eval_shape``)."""
    if not callable(apply_fn):
        raise TypeError(f"apply_fn must be a callable apply_fn(params, x). Got {apply_fn!r}.")
    try:
        in_shape = tuple(int(d) for d in in_shape)
    except TypeError:
        raise ShapeMismatchError(f"in_shape must be a tuple of ints. Got {in_shape!r}.") from None
    if not in_shape or any(d < 1 for d in in_shape):
        raise ShapeMismatchError(f"in_shape must be a non-empty tuple of positive ints. Got {in_shape}.")
    if method not in counting.METHODS:
        raise ValueError(f"method must be one of {counting.METHODS}; got {method!r}.")
    bx = _b.make_binning("in_bins", in_range, in_bins, mode=mode, clip=False)
    by = _b.make_binning("out_bins", out_range, out_bins, mode=mode, clip=clip)
    probe = jax.ShapeDtypeStruct((BLOCK, *in_shape), jnp.float32)
    try:
        out = jax.eval_shape(apply_fn, params, probe)
    except Exception as e:  # noqa: BLE001 - re-raised with context
        raise ShapeMismatchError(
            f"apply_fn(params, x) failed for x of shape (batch, *in_shape) = {probe.shape}: {e}"
        ) from e
    if out.shape[0] != BLOCK:
        raise ShapeMismatchError(
            f"apply_fn must keep the batch axis first: input batch {BLOCK} gave output shape {out.shape}."
        )
    out_dim = math.prod(out.shape[1:])
    n_in = math.prod(in_shape)
    method = counting.choose_method(method, bx.bins, by.bins)
    hist_bytes = 4 * n_in * out_dim * bx.bins * by.bins
    if mode == _b.PAIR and hist_bytes > MAX_HISTOGRAM_BYTES:
        raise MemoryBudgetError(
            f"{n_in} x {out_dim} joint histograms of {bx.bins} x {by.bins} bins need "
            f"{hist_bytes / 2**30:.1f} GiB (limit {MAX_HISTOGRAM_BYTES / 2**30:.0f} GiB). "
            "Use fewer bins, or measure a sub-span of the layer."
        )
    per_sample = 16 * (n_in + out_dim)
    if method == counting.ONEHOT:
        per_sample += 4 * ((1 if per_input else n_in) * bx.bins + out_dim * by.bins)
    elif method == counting.SCATTER:
        per_sample += 8 * (1 if per_input else n_in) * out_dim
    # (the bits kernel works in fixed slices of counting.BITS_SLICE samples)
    if per_input:
        per_sample += 8 * n_in
    return Spec(apply_fn, in_shape, out_dim, bx, by, method, _blocks_per_step(batch_size, per_sample, samples),
                _check_devices(devices))


# --- sharding over devices -----------------------------------------------------------------
#
# Device ``d`` of ``n`` handles steps ``t * n + d``: the set of blocks, hence of samples, is
# the same for any device count, and integer counts are summed with ``psum``, so results are
# identical on 1 or N devices.

AXIS = "blocks"


@functools.lru_cache(maxsize=None)
def _mesh(n: int):
    from jax.sharding import Mesh

    return Mesh(np.asarray(jax.devices()[:n]), (AXIS,))


def _sharded(loop, spec: Spec, args, *, gathered=None):
    """Runs ``loop(*args, n_dev, dev)`` on every device; psums its integer outputs.

    ``gathered`` names outputs (a tuple of indices into the result tuple) that are
    concatenated along their first axis over devices instead of summed.
    """
    if spec.devices == 1:
        return loop(*args, 1, 0)
    from jax.sharding import PartitionSpec as P

    gathered = gathered or ()

    def per_device(*a):
        out = loop(*a, spec.devices, jax.lax.axis_index(AXIS))
        return tuple(o if i in gathered else jax.tree.map(lambda v: jax.lax.psum(v, AXIS), o)
                     for i, o in enumerate(out))

    probe = jax.eval_shape(lambda *a: loop(*a, 1, 0), *args)
    out_specs = tuple(jax.tree.map(lambda _: P(AXIS) if i in gathered else P(), o)
                      for i, o in enumerate(probe))
    return jax.shard_map(per_device, mesh=_mesh(spec.devices), in_specs=P(), out_specs=out_specs,
                         check_vma=False)(*args)


# --- pairwise statistics ------------------------------------------------------------------

def _block_range(start, stop, per_round):
    b0 = start // BLOCK
    b1 = (stop + BLOCK - 1) // BLOCK
    return b0, (b1 - b0 + per_round - 1) // per_round


def _step_ids(b0, t, m, n_dev, dev):
    return b0 + (t * n_dev + dev) * m + jnp.arange(m, dtype=jnp.int32)


def _zeros_pair(spec: Spec, lead=()):
    return PairStats(
        jnp.zeros((spec.n_in, spec.out_dim, spec.bx.bins, spec.by.bins), jnp.int32),
        jnp.zeros((*lead, spec.out_dim), jnp.int32),
        jnp.zeros((*lead, spec.out_dim), jnp.int32),
    )


def _pair_step(spec: Spec, x, y, w):
    ix, vx, _ = _b.bin_values(x, spec.bx)
    iy, vy, side = _b.bin_values(y, spec.by)
    cnt = counting.pair_counts(ix, vx & w[:, None], iy, vy & w[:, None],
                               in_bins=spec.bx.bins, out_bins=spec.by.bins, method=spec.method)
    below = jnp.sum((side < 0) & w[:, None], axis=0, dtype=jnp.int32)
    above = jnp.sum((side > 0) & w[:, None], axis=0, dtype=jnp.int32)
    return PairStats(cnt, below, above)


def _noise(spec: Spec, key, ids, start, stop):
    x = uniform_blocks(key, ids, spec.in_shape, spec.bx.lo, spec.bx.hi)
    s = sample_indices(ids)
    return x, (s >= start) & (s < stop)


@functools.partial(jax.jit, static_argnames=("spec",))
def _pair_stats(key, params, start, stop, *, spec: Spec):
    m = spec.blocks_per_step

    def loop(key, params, start, stop, n_dev, dev):
        b0, n_steps = _block_range(start, stop, m * n_dev)

        def body(t, acc):
            x, w = _noise(spec, key, _step_ids(b0, t, m, n_dev, dev), start, stop)
            y = _forward(spec, params, x)
            return jax.tree.map(jnp.add, acc, _pair_step(spec, x.reshape(x.shape[0], -1), y, w))

        return (jax.lax.fori_loop(0, n_steps, body, _zeros_pair(spec)),)

    return _sharded(loop, spec, (key, params, start, stop))[0]


@functools.partial(jax.jit, static_argnames=("spec", "baseline"))
def _sensitivity_stats(key, params, start, stop, *, spec: Spec, baseline: float):
    m = spec.blocks_per_step
    n_in = spec.n_in

    def loop(key, params, start, stop, n_dev, dev):
        b0, n_steps = _block_range(start, stop, m * n_dev)

        def body(t, acc):
            u, w = _noise(spec, key, _step_ids(b0, t, m, n_dev, dev), start, stop)
            u = u.reshape(u.shape[0], n_in)
            ix, vx, _ = _b.bin_values(u, spec.bx)

            def per_input(a):
                xa = one_at_a_time(u, a, baseline).reshape(u.shape[0], *spec.in_shape)
                y = _forward(spec, params, xa)
                iy, vy, side = _b.bin_values(y, spec.by)
                ia = jax.lax.dynamic_slice_in_dim(ix, a, 1, axis=1)
                va = jax.lax.dynamic_slice_in_dim(vx, a, 1, axis=1) & w[:, None]
                cnt = counting.pair_counts(ia, va, iy, vy & w[:, None], in_bins=spec.bx.bins,
                                           out_bins=spec.by.bins, method=spec.method)
                below = jnp.sum((side < 0) & w[:, None], axis=0, dtype=jnp.int32)
                above = jnp.sum((side > 0) & w[:, None], axis=0, dtype=jnp.int32)
                return cnt[0], below, above

            batch = max(1, min(n_in, CHUNK_BUDGET // max(1, 64 * spec.chunk * (n_in + spec.out_dim))))
            cnt, below, above = jax.lax.map(per_input, jnp.arange(n_in), batch_size=batch)
            return jax.tree.map(jnp.add, acc, PairStats(cnt, below, above))

        return (jax.lax.fori_loop(0, n_steps, body, _zeros_pair(spec, (n_in,))),)

    return _sharded(loop, spec, (key, params, start, stop))[0]


def _hint(samples):
    """A sample count usable as a chunk-size hint (None when invalid: checked later)."""
    return samples if isinstance(samples, int) and not isinstance(samples, bool) and samples > 0 else None


def _as_i32(v):
    return jnp.asarray(v, jnp.int32)


# --- vector statistics --------------------------------------------------------------------

def _capacity_steps(stop: int, m: int, n_dev: int) -> int:
    """Static number of steps covering ``stop``: rounded up to 3 significant bits (at most
    12.5% spare rows; one compiled size per eighth of an octave), then to a multiple of the
    device count."""
    blocks = -(-stop // BLOCK)
    steps = -(-blocks // m)
    grain = 1 << max(0, steps.bit_length() - 3)
    steps = -(-steps // grain) * grain
    return -(-steps // n_dev) * n_dev


def _rows_bound(stop: int) -> int:
    """Rows the device entropy stage sorts: ``stop`` rounded up to a power-of-two number of
    blocks, so it depends on the sample count only (not on the chunk or device count)."""
    return BLOCK << max(0, (-(-stop // BLOCK) - 1).bit_length())


@functools.partial(jax.jit, static_argnames=("spec", "pair_spec", "n_steps", "groups", "rows_bound",
                                             "compact"))
def _vector_stats(key, params, stop, *, spec: Spec, pair_spec: Spec | None, n_steps: int, groups,
                  rows_bound: int, compact: bool):
    m = spec.blocks_per_step
    chunk = m * BLOCK
    n_groups = len(groups)

    def loop(key, params, stop, n_dev, dev):
        # Only the steps that hold samples run (a dynamic trip count); the row buffer has a
        # static capacity of ``n_steps // n_dev`` steps per device.
        blocks = (stop + BLOCK - 1) // BLOCK
        run_steps = (blocks + m * n_dev - 1) // (m * n_dev)

        def body(t, acc):
            codes_buf, valid_buf, below, above, pairs = acc
            x, w = _noise(spec, key, _step_ids(0, t, m, n_dev, dev), 0, stop)
            y = _forward(spec, params, x)
            xf = x.reshape(x.shape[0], -1)
            ix, vx, _ = _b.bin_values(xf, spec.bx)
            iy, vy, side = _b.bin_values(y, spec.by)
            valid = w & jnp.all(vx, axis=1) & jnp.all(vy, axis=1)
            codes = []
            for gin, gout in groups:
                cx = counting.row_codes(ix[:, list(gin)], spec.bx.bins)
                cy = counting.row_codes(iy[:, list(gout)], spec.by.bins)
                codes.append(jnp.concatenate([cx, cy], axis=1))
            codes_buf = jax.lax.dynamic_update_slice_in_dim(codes_buf, jnp.stack(codes, axis=1), t * chunk, 0)
            valid_buf = jax.lax.dynamic_update_slice_in_dim(valid_buf, valid, t * chunk, 0)
            below = below + jnp.sum((side < 0) & w[:, None], axis=0, dtype=jnp.int32)
            above = above + jnp.sum((side > 0) & w[:, None], axis=0, dtype=jnp.int32)
            if pair_spec is not None:
                pairs = jax.tree.map(jnp.add, pairs, _pair_step(pair_spec, xf, y, w))
            return codes_buf, valid_buf, below, above, pairs

        rows = (n_steps // n_dev) * chunk
        zeros = jnp.zeros((spec.out_dim,), jnp.int32)
        init = (jnp.zeros((rows, n_groups, 4), jnp.uint32), jnp.zeros((rows,), bool), zeros, zeros,
                _zeros_pair(pair_spec) if pair_spec is not None else None)
        return jax.lax.fori_loop(0, run_steps, body, init)

    codes, valid, below, above, pairs = _sharded(loop, spec, (key, params, stop), gathered=(0, 1))
    if not compact:
        return codes, valid, below, above, pairs
    # Integer-only compaction (a cumsum and a scatter): valid rows first, in order, cut to a
    # length that depends only on the sample count, so the entropy stage sees the same
    # arrays for any device count or chunk size.
    length = min(valid.shape[0], rows_bound)
    pos = jnp.cumsum(valid.astype(jnp.int32)) - 1
    dest = jnp.where(valid, pos, length)
    packed = jnp.zeros((length, *codes.shape[1:]), codes.dtype).at[dest].set(codes, mode="drop")
    n_valid = jnp.sum(valid, dtype=jnp.int32)
    return packed, jnp.arange(length) < n_valid, below, above, pairs


def _on_first_device(tree):
    """Commits arrays to one device, so the float stage is one and the same program."""
    dev = jax.devices()[0]
    return jax.tree.map(lambda a: a if isinstance(a, jax.core.Tracer) else jax.device_put(a, dev), tree)


def _check_groups(groups, n_in: int, n_out: int):
    try:
        out = []
        for gin, gout in groups:
            gin = tuple(int(i) for i in gin)
            gout = tuple(int(i) for i in gout)
            out.append((gin, gout))
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
    return tuple(out)


# --- public core --------------------------------------------------------------------------

_DOC_ARGS = """
    Args:
      key: a ``jax.random`` key.
      apply_fn: ``apply_fn(params, x)``: ``(C, *in_shape) -> (C, *out_shape)``, activated.
      params: pytree of parameters passed to ``apply_fn`` (may be batched by ``jax.vmap``).
      in_shape: per-sample input shape, e.g. ``(n_in,)``.
      in_range, out_range: ``(lo, hi)`` ranges; ``in_range`` is also the noise range.
      in_bins, out_bins: bin counts.
      samples: number of noise samples (per input for sensitivity).
      start: index of the first sample (consecutive calls add up to one long run).
      batch_size: samples per step (memory/speed only; rounded up to a multiple of 1024).
      clip: put out-of-range outputs in the edge bins instead of dropping them.
      method: counting kernel, ``"auto"``, ``"onehot"``, ``"bits"`` or ``"scatter"``.
      devices: how many of ``jax.devices()`` share the sample blocks (default: all). The
        result is identical for any number.
"""


def pairwise_stats(key, apply_fn, params, *, in_shape, in_range, in_bins, out_range, out_bins,
                   samples, start=0, batch_size=None, clip=False, method="auto",
                   devices=None) -> PairStats:
    """Joint histograms of every (input, output) neuron pair under do(L1 = H^max).
    """ + _DOC_ARGS + """
    Returns:
      :class:`PairStats` with int32 counts ``(n_in, n_out, in_bins, out_bins)``.
    """
    spec = make_spec(apply_fn, params, in_shape=in_shape, in_range=in_range, in_bins=in_bins,
                     out_range=out_range, out_bins=out_bins, clip=clip, method=method,
                     batch_size=batch_size, devices=devices, samples=_hint(samples))
    lo, hi = _check_samples(samples, start)
    return _pair_stats(key, params, _as_i32(lo), _as_i32(hi), spec=spec)


def sensitivity_stats(key, apply_fn, params, *, in_shape, in_range, in_bins, out_range, out_bins,
                      samples, start=0, batch_size=None, clip=False, method="auto",
                      baseline=0.0, devices=None) -> PairStats:
    """Joint histograms of (x_A, y_B) under do(x_A = H^max), other inputs at ``baseline``.
    """ + _DOC_ARGS + """      baseline: value of the inputs not intervened on (deep-ei: 0).

    Returns:
      :class:`PairStats`; ``below``/``above`` have shape ``(n_in, n_out)``.
    """
    spec = make_spec(apply_fn, params, in_shape=in_shape, in_range=in_range, in_bins=in_bins,
                     out_range=out_range, out_bins=out_bins, clip=clip, method=method,
                     batch_size=batch_size, per_input=True, devices=devices, samples=_hint(samples))
    lo, hi = _check_samples(samples, start)
    return _sensitivity_stats(key, params, _as_i32(lo), _as_i32(hi), spec=spec, baseline=float(baseline))


def vector_stats(key, apply_fn, params, *, in_shape, in_range, in_bins, out_range, out_bins,
                 samples, groups=None, with_pairs=False, pair_bins=None, batch_size=None,
                 clip=False, method="auto", devices=None) -> VectorStats:
    """Vector MI of whole layers (or of groups of neurons) under do(L1 = H^max).
    """ + _DOC_ARGS + """      groups: list of (input indices, output indices); default: all inputs, all outputs.
      with_pairs: also return pairwise statistics from the same samples.
      pair_bins: ``(in_bins, out_bins)`` of those pairwise histograms (default: the same).

    Returns:
      :class:`VectorStats`.
    """
    spec = make_spec(apply_fn, params, in_shape=in_shape, in_range=in_range, in_bins=in_bins,
                     out_range=out_range, out_bins=out_bins, clip=clip, method=method,
                     batch_size=batch_size, mode=_b.VECTOR, devices=devices)
    pair_spec = None
    if with_pairs:
        pin, pout = pair_bins if pair_bins is not None else (in_bins, out_bins)
        pair_spec = make_spec(apply_fn, params, in_shape=in_shape, in_range=in_range, in_bins=pin,
                              out_range=out_range, out_bins=pout, clip=clip, method=method,
                              batch_size=batch_size, devices=devices)
        pair_spec = dataclasses.replace(pair_spec, blocks_per_step=spec.blocks_per_step)
    if groups is None:
        groups = [(range(spec.n_in), range(spec.out_dim))]
    groups = _check_groups(groups, spec.n_in, spec.out_dim)
    _, stop = _check_samples(samples)
    n_steps = _capacity_steps(stop, spec.blocks_per_step, spec.devices)
    rows_bound = _rows_bound(stop)
    on_host = jax.default_backend() == "cpu"
    codes, valid, below, above, pairs = _vector_stats(
        key, params, _as_i32(stop), spec=spec, pair_spec=pair_spec, n_steps=n_steps,
        groups=groups, rows_bound=rows_bound, compact=not on_host)
    codes, valid = _on_first_device((codes, valid))
    return VectorStats(counting.vector_mi(codes, valid), jnp.sum(valid, dtype=jnp.int32), below, above, pairs)


def ei_parts_matrix(key, apply_fn, params, **kwargs) -> jax.Array:
    """Matrix of I(x_A; y_B) under do(L1 = H^max), float32 ``(n_in, n_out)`` bits.

    Same arguments as :func:`pairwise_stats`. An all-out-of-range pair is NaN.
    """
    return mutual_information_from_counts(pairwise_stats(key, apply_fn, params, **kwargs).counts)


def ei_parts(key, apply_fn, params, **kwargs) -> jax.Array:
    """EI_parts = sum of :func:`ei_parts_matrix`, float32 scalar (bits)."""
    return jnp.sum(ei_parts_matrix(key, apply_fn, params, **kwargs))


def sensitivity_matrix(key, apply_fn, params, **kwargs) -> jax.Array:
    """Matrix of I(x_A; y_B) under do(x_A = H^max), float32 ``(n_in, n_out)`` bits.

    Same arguments as :func:`sensitivity_stats`.
    """
    return mutual_information_from_counts(sensitivity_stats(key, apply_fn, params, **kwargs).counts)


def sensitivity(key, apply_fn, params, **kwargs) -> jax.Array:
    """Sensitivity = sum of :func:`sensitivity_matrix`, float32 scalar (bits)."""
    return jnp.sum(sensitivity_matrix(key, apply_fn, params, **kwargs))


def vector_ei(key, apply_fn, params, **kwargs) -> jax.Array:
    """Vector EI: I(X; Y) of whole binned rows under do(L1 = H^max), float32 scalar (bits).

    Same arguments as :func:`vector_stats` (without ``groups``).
    """
    return vector_stats(key, apply_fn, params, **kwargs).mi[0]


def map_params(fn, stacked_params, *shared, group_size=None, memory_budget=1 << 30):
    """Applies a measure to every parameter set of a stack in one compiled call.

    ``fn(params, *shared) -> pytree of arrays`` is e.g.
    ``lambda p, key: ei_parts(key, apply_fn, p, in_shape=..., samples=...)``. The stack is
    processed ``group_size`` parameter sets at a time (vectorised with ``jax.vmap`` within a
    group, sequential across groups with ``jax.lax.map``), so memory stays bounded however
    many checkpoints there are.

    ``shared`` arguments (typically the key) are the same for every parameter set and are
    not mapped over: with one key, every checkpoint is measured on the same noise, which is
    drawn once per group instead of once per checkpoint (and differences between checkpoints
    are not blurred by different noise).

    The call is one ``jax.jit`` of ``fn``: a new ``fn`` object (e.g. a new ``lambda`` closing
    over a new key) compiles again, so define ``fn`` once and pass what changes (the stack,
    the key) as arguments.

    Args:
      fn: a function of one parameter set (and the ``shared`` arguments).
      stacked_params: pytree whose leaves have a leading axis ``N``.
      *shared: arguments passed unchanged to every call of ``fn``.
      group_size: parameter sets measured at once; default ``memory_budget // CHUNK_BUDGET``.
      memory_budget: working memory (bytes) the default group size aims at.

    Returns:
      ``fn``'s output with a leading axis ``N``.

    Example:
      >>> import jax
      >>> from ei_jax import core
      >>> def apply(w, x):
      ...     return jax.nn.sigmoid(x @ w)
      >>> def measure(w, key):
      ...     return core.ei_parts(key, apply, w, in_shape=(3,), in_range=(0, 1), in_bins=8,
      ...                          out_range=(0, 1), out_bins=8, samples=5000)
      >>> ws = jax.random.normal(jax.random.key(0), (20, 3, 2))
      >>> out = core.map_params(measure, ws, jax.random.key(1), group_size=8)
      >>> out.shape
      (20,)
    """
    leaves = jax.tree.leaves(stacked_params)
    if not leaves:
        raise ShapeMismatchError("stacked_params has no arrays.")
    n = leaves[0].shape[0] if leaves[0].ndim else None
    if n is None or any(leaf.ndim == 0 or leaf.shape[0] != n for leaf in leaves):
        raise ShapeMismatchError(
            "Every leaf of stacked_params needs the same leading (stack) axis. Got shapes "
            f"{[tuple(leaf.shape) for leaf in leaves]}."
        )
    if group_size is None:
        group_size = max(1, int(memory_budget) // CHUNK_BUDGET)
    if isinstance(group_size, bool) or not isinstance(group_size, int) or group_size < 1:
        raise InvalidSamplesError(f"group_size must be a positive int. Got {group_size!r}.")
    return _mapped(fn, min(group_size, n))(stacked_params, *shared)


@functools.lru_cache(maxsize=64)
def _mapped(fn, batch_size: int):
    return jax.jit(lambda p, *shared: jax.lax.map(lambda q: fn(q, *shared), p, batch_size=batch_size))
