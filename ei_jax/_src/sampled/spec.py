"""The static description of one measurement (:class:`Spec`) and its validation.

A :class:`Spec` is hashable (``apply_fn`` compares by identity) and is the static argument of
every jitted statistics loop: the same structure, bins and chunk always reuse one compiled
program, whatever the weights or the sample count.
"""

import dataclasses
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp

from ei_jax._src.info import binning as _b
from ei_jax._src.base import checks
from ei_jax._src.info import counting
from ei_jax._src.base.errors import InvalidOptionError, MemoryBudgetError, ShapeMismatchError
from ei_jax._src.base.interface import BLOCK, CHUNK_BUDGET, MAX_HISTOGRAM_BYTES


@dataclasses.dataclass(frozen=True)
class Spec:
    """Static description of one measurement.

    Attributes:
      apply_fn: ``apply_fn(params, x)``, ``(C, *in_shape) -> (C, *out_shape)``, activated.
      in_shape: per-sample input shape; out_dim: flattened output size.
      bx, by: input and output :class:`~ei_jax._src.info.binning.Binning`.
      method: the counting kernel (resolved, never ``"auto"``).
      blocks_per_step: sample blocks per loop step (the chunk is this times ``BLOCK``).
      devices: how many of ``jax.devices()`` share the blocks.
    """

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


def forward(spec: Spec, params, x):
    """The layer's activated outputs as float32 ``(C, out_dim)``."""
    y = spec.apply_fn(params, x)
    return y.reshape(x.shape[0], -1).astype(jnp.float32)


def sample_hint(samples):
    """A sample count usable to size small runs' chunks (None when invalid: checked later)."""
    ok = isinstance(samples, int) and not isinstance(samples, bool) and samples > 0
    return samples if ok else None


def blocks_per_step(batch_size, bytes_per_sample: int, samples=None) -> int:
    """Blocks per loop step: from ``batch_size``, or sized to :data:`CHUNK_BUDGET`.

    Small runs take the smallest power-of-two step that holds them (a few compiled variants
    at most: 1, 2, 4, 8 or 16 blocks) instead of computing masked samples.
    """
    if batch_size is None:
        c = max(BLOCK, min(1 << 14, CHUNK_BUDGET // max(1, bytes_per_sample)))
        if samples is not None:
            need = -(-int(samples) // BLOCK)
            c = min(c, BLOCK << max(0, (need - 1).bit_length()))
    else:
        c = checks.positive_int("batch_size", batch_size)
    return max(1, -(-c // BLOCK))


def _in_shape(in_shape) -> tuple[int, ...]:
    try:
        shape = tuple(int(d) for d in in_shape)
    except (TypeError, ValueError):
        raise ShapeMismatchError(f"in_shape must be a tuple of ints. Got {in_shape!r}.") from None
    if not shape or any(d < 1 for d in shape):
        raise ShapeMismatchError(f"in_shape must be a non-empty tuple of positive ints. Got {shape}.")
    return shape


def _out_dim(apply_fn, params, in_shape) -> int:
    probe = jax.ShapeDtypeStruct((BLOCK, *in_shape), jnp.float32)
    try:
        out = jax.eval_shape(apply_fn, params, probe)
    except Exception as e:  # noqa: BLE001 - re-raised with context
        raise ShapeMismatchError(
            f"apply_fn(params, x) failed for x of shape (batch, *in_shape) = {probe.shape}: {e}"
        ) from e
    if not hasattr(out, "shape") or out.shape[:1] != (BLOCK,):
        raise ShapeMismatchError(
            f"apply_fn must return one array with the batch axis first: input batch {BLOCK} gave "
            f"{getattr(out, 'shape', type(out).__name__)}."
        )
    return math.prod(out.shape[1:])


def make_spec(apply_fn, params, *, in_shape, in_range, in_bins, out_range, out_bins, clip=False,
              method="auto", batch_size=None, mode=_b.PAIR, per_input=False, devices=None,
              samples=None) -> Spec:
    """Validates a measurement's arguments and builds its :class:`Spec`.

    Output shapes come from ``jax.eval_shape`` (nothing is computed). ``per_input`` sizes the
    chunk for sensitivity (one intervened input per sample), ``samples`` lets small runs use
    a smaller chunk.
    """
    if not callable(apply_fn):
        raise InvalidOptionError(f"apply_fn must be a callable apply_fn(params, x). Got {apply_fn!r}.")
    in_shape = _in_shape(in_shape)
    method = checks.check_choice("method", method, counting.METHODS)
    bx = _b.make_binning("in_bins", in_range, in_bins, mode=mode, clip=False)
    by = _b.make_binning("out_bins", out_range, out_bins, mode=mode, clip=clip)
    out_dim = _out_dim(apply_fn, params, in_shape)
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
    return Spec(apply_fn, in_shape, out_dim, bx, by, method,
                blocks_per_step(batch_size, per_sample, samples), checks.check_devices(devices))
