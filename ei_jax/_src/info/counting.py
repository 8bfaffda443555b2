"""Integer histogram kernels: pairwise joint histograms, vector row codes and their entropies.

Counts are int32 within one call. Three kernels count pairwise joint histograms:

* ``"onehot"``: a one-hot matrix product ``onehot(x)^T @ onehot(y)`` in float32, exact while a
  chunk has at most 2**24 samples, then cast to int32 (fast on accelerators and for few bins);
* ``"bits"``: bit-sliced counting: per slice of ``BITS_SLICE`` samples, every (neuron, bin)
  indicator is packed into 16-bit words (one bit per sample) and a joint count is the
  popcount of the AND of two packed words, summed (fast on CPU for few bins: 16 samples per
  integer operation, and each slice stays in cache);
* ``"scatter"``: a scatter-add of one combined index per sample and pair (fast on CPU for
  many bins).

``"auto"`` picks per backend and bin count. All give identical integers.

Vector quantities (row codes and their entropies) are in :mod:`ei_jax._src.info.row_codes`.
"""

import jax
import jax.numpy as jnp

from ei_jax._src.base.errors import InvalidOptionError

ONEHOT = "onehot"
SCATTER = "scatter"
BITS = "bits"
AUTO = "auto"
METHODS = (AUTO, ONEHOT, BITS, SCATTER)

#: Samples per slice of the ``"bits"`` kernel. A joint count within a slice is at most this,
#: so the int16 sums over a slice cannot overflow.
BITS_SLICE = 512
_WORD = 16

#: Largest chunk for which float32 one-hot sums are exact integers.
MAX_ONEHOT_CHUNK = 1 << 24


def choose_method(method: str, in_bins: int, out_bins: int) -> str:
    """Resolves ``"auto"`` to a concrete kernel for the default backend."""
    if method != AUTO:
        return method
    cells = in_bins * out_bins
    if jax.default_backend() == "cpu":
        # Measured on a 2-core EPYC (W1's layer, 1e6 samples): bits beats scatter 2.4x at
        # 8 x 8 bins and 1.6x at 16 x 16 with AVX-512, ties at 16 x 16 limited to AVX2, and
        # loses from 24 x 24 on.
        return BITS if cells <= 256 else SCATTER
    return ONEHOT if cells <= 4096 else SCATTER


def pair_counts(ix, vx, iy, vy, *, in_bins: int, out_bins: int, method: str = AUTO):
    """Joint histograms of every (input column, output column) pair.

    Args:
      ix: int32 ``(C, n_in)`` input bin indices; vx: bool ``(C, n_in)`` validity.
      iy: int32 ``(C, n_out)`` output bin indices; vy: bool ``(C, n_out)`` validity.
      in_bins, out_bins: bin counts (static).
      method: ``"onehot"``, ``"bits"``, ``"scatter"`` or ``"auto"``.

    Returns:
      int32 ``(n_in, n_out, in_bins, out_bins)``: ``counts[A, B, i, j]`` is the number of
      samples with ``ix[:, A] == i`` and ``iy[:, B] == j`` among those valid for both A and B.
    """
    c, n_in = ix.shape
    n_out = iy.shape[1]
    method = choose_method(method, in_bins, out_bins)
    if method == ONEHOT:
        if c > MAX_ONEHOT_CHUNK:
            raise InvalidOptionError(
                f"method='onehot' counts chunks of at most 2**24 samples exactly (float32); got {c}. "
                "Pass a smaller batch_size or another method.")
        ox = ((ix[..., None] == jnp.arange(in_bins)[None, None, :]) & vx[..., None]).astype(jnp.float32)
        oy = ((iy[..., None] == jnp.arange(out_bins)[None, None, :]) & vy[..., None]).astype(jnp.float32)
        prod = jax.lax.dot_general(
            ox.reshape(c, n_in * in_bins),
            oy.reshape(c, n_out * out_bins),
            (((0,), (0,)), ((), ())),
            # 0/1 inputs are exact in any matmul precision (TF32/bf16 on accelerators) and the
            # float32 accumulation is exact up to 2**24, so the fast default is exact here.
            preferred_element_type=jnp.float32,
        )
        counts = jnp.round(prod).astype(jnp.int32).reshape(n_in, in_bins, n_out, out_bins)
        return counts.transpose(0, 2, 1, 3)
    if method == BITS:
        return _bits_counts(ix, vx, iy, vy, in_bins, out_bins)
    if method == SCATTER:
        # One input neuron at a time: its n_out histograms (n_out * in_bins * out_bins ints)
        # stay in cache, about twice as fast on CPU as one scatter into all pairs at once.
        per_input = n_out * in_bins * out_bins
        col = (jnp.arange(n_out) * (in_bins * out_bins))[None, :]

        def one(a):
            xa = jax.lax.dynamic_index_in_dim(ix, a, 1, keepdims=False)
            va = jax.lax.dynamic_index_in_dim(vx, a, 1, keepdims=False)
            code = col + xa[:, None] * out_bins + iy
            code = jnp.where(va[:, None] & vy, code, per_input).reshape(-1)
            hist = jnp.zeros(per_input + 1, jnp.int32).at[code].add(1, mode="promise_in_bounds")
            return hist[:per_input]

        counts = jax.lax.map(one, jnp.arange(n_in))
        return counts.reshape(n_in, n_out, in_bins, out_bins)
    raise InvalidOptionError(f"method must be one of {METHODS}. Got {method!r}.")


def _pack_bits(idx, valid, bins):
    """``(W * 16, n)`` bin indices -> uint16 ``(W, n * bins)``: bit ``s`` of word ``w`` in
    column ``(k, b)`` says that sample ``16 w + s`` is valid in column ``k`` and in bin ``b``."""
    rows, n = idx.shape
    hot = (idx[..., None] == jnp.arange(bins, dtype=idx.dtype)[None, None, :]) & valid[..., None]
    hot = hot.reshape(rows // _WORD, _WORD, n * bins).astype(jnp.uint16)
    shifts = jnp.arange(_WORD, dtype=jnp.uint16)[None, :, None]
    return jnp.sum(hot << shifts, axis=1, dtype=jnp.uint16)


def _bits_counts(ix, vx, iy, vy, in_bins, out_bins):
    c, n_in = ix.shape
    n_out = iy.shape[1]
    pad = -c % BITS_SLICE
    if pad:  # padded rows are invalid, so they count nowhere
        ix, vx, iy, vy = (jnp.pad(a, ((0, pad), (0, 0))) for a in (ix, vx, iy, vy))
    n_slices = (c + pad) // BITS_SLICE

    def slice_of(a, t):
        return jax.lax.dynamic_slice_in_dim(a, t * BITS_SLICE, BITS_SLICE, axis=0)

    def body(t, acc):
        px = _pack_bits(slice_of(ix, t), slice_of(vx, t), in_bins)
        py = _pack_bits(slice_of(iy, t), slice_of(vy, t), out_bins)
        # Each cell is <= BITS_SLICE: exact in int16, which halves the vector width needed.
        # XLA fuses the AND, popcount and the sum over words into one loop over the cells;
        # one reduction (not a written-out sum of per-word terms) keeps the program small:
        # the first call of W4 traces and compiles ~0.3 s less, at the same speed.
        total = jnp.sum(jax.lax.population_count(px[:, :, None] & py[:, None, :]).astype(jnp.int16),
                        axis=0, dtype=jnp.int16)
        return acc + total.astype(jnp.int32)

    acc = jnp.zeros((n_in * in_bins, n_out * out_bins), jnp.int32)
    counts = jax.lax.fori_loop(0, n_slices, body, acc)
    return counts.reshape(n_in, in_bins, n_out, out_bins).transpose(0, 2, 1, 3)


def out_of_range(side, valid):
    """Values below and above the range: int32 counts over the sample axis.

    Args:
      side: int ``(C, ...)``: -1 below the range, +1 above (or not finite), 0 inside
        (from :func:`ei_jax._src.info.binning.bin_values`).
      valid: bool, broadcastable to ``side``: the samples to count.

    Returns:
      ``(below, above)``, int32 of shape ``side.shape[1:]``.
    """
    below = jnp.sum((side < 0) & valid, axis=0, dtype=jnp.int32)
    above = jnp.sum((side > 0) & valid, axis=0, dtype=jnp.int32)
    return below, above
