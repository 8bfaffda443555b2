"""Bin edges that reproduce deep-ei's binning exactly, and the jittable binning op.

deep-ei bins values in two ways (see ``docs/concepts.md``, "Binning"):

* **pairwise** quantities (EI_parts, its matrix, sensitivity) use fast_histogram on
  ``[lo - 1e-6, hi + 1e-6)`` split into ``k`` equal bins, computed in float64 from
  float32 activations: ``i = trunc((v - xmin) * k / (xmax - xmin))`` (``k`` clamped to
  ``k - 1``), and a value outside ``[xmin, xmax)`` is dropped from that pair;
* **vector** quantities (vector EI, groups) use
  ``i = floor((v - lo) / (hi - lo + 1e-4) * k)`` evaluated in float32 (torch), and a row
  with any index ``>= k`` is dropped. deep-ei keeps negative indices as extra bins; ei_jax
  drops such rows too (documented difference).

Both maps are monotone non-decreasing functions of a float32 value ``v``. So each is
described exactly by ``k + 1`` float32 *thresholds* ``t_0 < ... < t_k``: ``v`` falls in bin
``j`` iff ``t_j <= v < t_{j+1}``, and outside iff ``v < t_0`` or ``v >= t_k``. The
thresholds are found once, in NumPy, by bisection over the float32 numbers; the jitted
binning then only compares against them, so float32 device arithmetic reproduces the
float64 (pairwise) or torch-float32 (vector) reference bit for bit.
"""

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from ei_jax._src.base.errors import InvalidBinsError, InvalidRangeError

PAIR = "pair"
VECTOR = "vector"
#: deep-ei's widening of a pairwise histogram's range: ``[lo - PAIR_WIDEN, hi + PAIR_WIDEN)``.
PAIR_WIDEN = 1e-6
#: deep-ei's widening of a vector bin: ``(hi - lo + VECTOR_WIDEN) / k`` per bin.
VECTOR_WIDEN = 1e-4

#: Largest bin count accepted for one variable (the histograms are limited separately).
MAX_BINS = 1 << 20
#: Up to this many bins, values are binned by comparisons with every threshold: on CPU that
#: vectorised compare-and-add beats the floor estimate with its gathered corrections up to
#: at least 128 bins (64 bins: 2x faster).
SMALL_BINS = 128


def check_range(name: str, value) -> tuple[float, float]:
    """Validates a ``(lo, hi)`` range and returns it as two Python floats."""
    try:
        lo, hi = value
        lo, hi = float(lo), float(hi)
    except (TypeError, ValueError):
        raise InvalidRangeError(
            f"{name} must be a pair (lo, hi) of numbers. Got {value!r}."
        ) from None
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise InvalidRangeError(f"{name} must be finite. Got {value!r}.")
    if not lo < hi:
        raise InvalidRangeError(
            f"{name} must satisfy lo < hi. Got lo={lo}, hi={hi}; swap them or widen the range."
        )
    return lo, hi


def check_bins(name: str, value) -> int:
    """Validates a bin count and returns it as a Python int."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise InvalidBinsError(f"{name} must be a positive int. Got {value!r}.")
    value = int(value)
    if value < 1:
        raise InvalidBinsError(f"{name} must be >= 1. Got {value}.")
    if value > MAX_BINS:
        raise InvalidBinsError(
            f"{name}={value} is more than the {MAX_BINS} bins ei_jax supports per neuron; "
            "use fewer bins."
        )
    return value


# --- float32 <-> ordered integers -------------------------------------------------------

def _f32_to_ordered(v: np.ndarray) -> np.ndarray:
    bits = np.asarray(v, np.float32).view(np.int32).astype(np.int64)
    return np.where(bits >= 0, bits, -(bits & 0x7FFFFFFF))


def _ordered_to_f32(k: np.ndarray) -> np.ndarray:
    k = np.asarray(k, np.int64)
    bits = np.where(k >= 0, k, (-k) | 0x80000000).astype(np.uint32)
    return bits.view(np.float32)


def _pair_index(v32: np.ndarray, lo: float, hi: float, k: int) -> np.ndarray:
    """deep-ei / fast_histogram pairwise bin of float32 values: -1 below, k above."""
    xmin, xmax = lo - PAIR_WIDEN, hi + PAIR_WIDEN
    norm = float(k) / (xmax - xmin)
    d = np.asarray(v32, np.float32).astype(np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        ix = np.trunc((d - xmin) * norm)
    ix = np.minimum(ix, k - 1)
    ix = np.where(d < xmin, -1, ix)
    ix = np.where((d >= xmax) | np.isnan(d), k, ix)
    return ix.astype(np.int64)


def _vector_index(v32: np.ndarray, lo: float, hi: float, k: int) -> np.ndarray:
    """deep-ei's vector bin, floor((v - lo) / (hi - lo + 1e-4) * k) in float32."""
    v = np.asarray(v32, np.float32)
    with np.errstate(invalid="ignore", over="ignore"):
        t = (v - np.float32(lo)) / np.float32(hi - lo + VECTOR_WIDEN) * np.float32(k)
        ix = np.floor(t)
    ix = np.clip(np.nan_to_num(ix, nan=k), -1, k)
    return ix.astype(np.int64)


_INDEX_FUNCTIONS = {PAIR: _pair_index, VECTOR: _vector_index}


@functools.lru_cache(maxsize=256)
def _thresholds_cached(mode: str, lo: float, hi: float, k: int) -> tuple[float, ...]:
    index = _INDEX_FUNCTIONS[mode]
    js = np.arange(k + 1, dtype=np.int64)
    max32 = np.finfo(np.float32).max
    lo_key = np.full(k + 1, _f32_to_ordered(np.float32(-max32)), np.int64)
    hi_key = np.full(k + 1, _f32_to_ordered(np.float32(max32)) + 1, np.int64)
    # Invariant: index(lo_key) < j <= index(hi_key), hi_key == max+1 meaning "never".
    for _ in range(70):
        if np.all(hi_key - lo_key <= 1):
            break
        mid = (lo_key + hi_key) // 2
        ok = index(_ordered_to_f32(mid), lo, hi, k) >= js
        hi_key = np.where(ok, mid, hi_key)
        lo_key = np.where(ok, lo_key, mid)
    never = hi_key > _f32_to_ordered(np.float32(max32))
    t = _ordered_to_f32(np.minimum(hi_key, _f32_to_ordered(np.float32(max32)))).astype(np.float64)
    t = np.where(never, np.inf, t)
    if not np.all(np.diff(t) > 0):
        raise InvalidBinsError(
            f"The range ({lo}, {hi}) is too narrow for {k} bins in float32: some bins would be "
            "empty. Use fewer bins or a wider range."
        )
    return tuple(float(x) for x in t)


@dataclasses.dataclass(frozen=True)
class Binning:
    """Static description of how one variable is discretised.

    Attributes:
      lo, hi: the range.
      bins: number of equal-width bins.
      mode: ``"pair"`` (deep-ei's pairwise edges) or ``"vector"`` (deep-ei's vector edges).
      clip: if True, values outside the range go to the first/last bin instead of
        being dropped.
    """

    lo: float
    hi: float
    bins: int
    mode: str = PAIR
    clip: bool = False

    @property
    def thresholds(self) -> np.ndarray:
        """The ``bins + 1`` float32 thresholds ``t_0 < ... < t_k`` (see module docstring)."""
        return np.asarray(_thresholds_cached(self.mode, self.lo, self.hi, self.bins), np.float32)

    def reference_index(self, values) -> np.ndarray:
        """NumPy reference of :func:`bin_values` (slow, for tests): -1 below, ``bins`` above."""
        return _INDEX_FUNCTIONS[self.mode](np.asarray(values, np.float32), self.lo, self.hi, self.bins)


def make_binning(name: str, value_range, bins, *, mode: str, clip: bool = False) -> Binning:
    """Validates user input and returns a :class:`Binning`."""
    lo, hi = check_range(name.replace("bins", "range"), value_range)
    k = check_bins(name, bins)
    return Binning(lo, hi, k, mode, bool(clip))


def bin_values(values: jax.Array, binning: Binning) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Bins float values exactly as deep-ei does.

    Args:
      values: float array of any shape (cast to float32).
      binning: a :class:`Binning`.

    Returns:
      ``(index, valid, side)``: int32 bin indices in ``[0, bins)`` (arbitrary where not
      valid), a bool mask of values that fall in a bin, and an int8 array that is ``-1``
      below the range, ``+1`` above it (or NaN), ``0`` inside. With ``clip=True`` values
      outside are put in the edge bins and count as valid (``side`` still reports them).
    """
    k = binning.bins
    th = binning.thresholds
    t = jnp.asarray(th)
    v = jnp.asarray(values).astype(jnp.float32)
    t0, tk = t[0], t[k]
    if k <= SMALL_BINS:
        # Few bins: count the thresholds at or below v (no gathers; vectorises well).
        est = jnp.zeros(v.shape, jnp.int32)
        for j in range(1, k):
            est = est + (v >= jnp.float32(th[j])).astype(jnp.int32)
    else:
        span = jnp.where(jnp.isfinite(tk - t0), tk - t0, jnp.float32(1.0))
        est = jnp.floor((v - t0) * (jnp.float32(k) / span))
        est = jnp.clip(jnp.nan_to_num(est, nan=0.0), 0, k - 1).astype(jnp.int32)
        # The float32 estimate is off by at most one bin for any bin count we accept; two
        # exact correction steps against the thresholds make the index exact.
        for _ in range(2):
            est = est - (v < t[est]).astype(jnp.int32) + (v >= t[est + 1]).astype(jnp.int32)
            est = jnp.clip(est, 0, k - 1)
    below = v < t0
    above = (v >= tk) | jnp.isnan(v)
    side = jnp.where(below, -1, jnp.where(above, 1, 0)).astype(jnp.int8)
    if binning.clip:
        est = jnp.where(below, 0, jnp.where(v >= tk, k - 1, est))
        valid = ~jnp.isnan(v)
    else:
        valid = ~(below | above)
    return est, valid, side
