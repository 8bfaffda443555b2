"""Vector row codes and their entropies.

Vector quantities encode each binned row as a code (:func:`row_codes`): exactly when the
row's indices fit 64 bits, otherwise by a 2 x 32-bit hash. Their entropies are taken by
sorting the codes, in NumPy float64 on CPU and on the device elsewhere (:func:`vector_mi`,
:func:`vector_entropy`).
"""

import math

import jax
import jax.numpy as jnp
import numpy as np

from ei_jax._src.info import plugin

_HASH_SEED = 0x5EED_E1
#: Added to the output code before mixing it into the joint (input, output) code.
_JOINT_OFFSET = 0x9E3779B97F4A7C15
_MIX1 = np.uint32(0x85EBCA6B)
_MIX2 = np.uint32(0xC2B2AE35)


def _digit_bits(bins: int) -> int:
    return max(1, math.ceil(math.log2(bins))) if bins > 1 else 1


def codes_are_exact(width: int, bins: int) -> bool:
    """Whether rows of ``width`` digits in ``[0, bins)`` get exact (collision-free) codes."""
    per_word = 32 // _digit_bits(bins)
    return width <= 2 * per_word


def _hash_multipliers(width: int) -> np.ndarray:
    rng = np.random.default_rng(_HASH_SEED)
    m = rng.integers(0, 2**32, size=(2, width), dtype=np.uint64).astype(np.uint32)
    return m | np.uint32(1)


def _fmix32(h):
    h = h ^ (h >> 16)
    h = h * _MIX1
    h = h ^ (h >> 13)
    h = h * _MIX2
    return h ^ (h >> 16)


def row_codes(idx, bins: int):
    """Encodes each row of bin indices as two uint32 words.

    Rows of ``width`` indices in ``[0, bins)`` are packed exactly (base ``2**ceil(log2 bins)``)
    when ``width * ceil(log2 bins) <= 64`` fits, per word; otherwise each word is an
    independent random linear hash ``sum_d (idx_d + 1) * m_d mod 2**32`` (odd multipliers
    ``m_d`` from a fixed seed) followed by the murmur3 finaliser (a bijection). Two distinct
    rows whose index differences are all divisible by ``2**v`` but not all by ``2**(v+1)``
    collide in both words with probability ``2**-(64 - 2v)`` over the multipliers; ``v = 0``
    whenever some difference is odd, so typically ``2**-64``: among ``S = 1e7`` distinct rows
    the expected number of merged pairs is below ``3e-6``.

    Args:
      idx: int32 ``(C, width)``.
      bins: number of bins (static).

    Returns:
      uint32 ``(C, 2)``.
    """
    c, width = idx.shape
    u = idx.astype(jnp.uint32)
    if codes_are_exact(width, bins):
        b = _digit_bits(bins)
        per_word = 32 // b
        words = []
        for w in range(2):
            cols = u[:, w * per_word:(w + 1) * per_word]
            if cols.shape[1] == 0:
                words.append(jnp.zeros((c,), jnp.uint32))
                continue
            shifts = jnp.asarray(np.arange(cols.shape[1], dtype=np.uint32) * np.uint32(b))
            words.append(jnp.sum(cols << shifts[None, :], axis=1, dtype=jnp.uint32))
        return jnp.stack(words, axis=1)
    m = jnp.asarray(_hash_multipliers(width))
    h = jnp.sum((u + jnp.uint32(1))[:, None, :] * m[None], axis=2, dtype=jnp.uint32)
    return _fmix32(h)


def entropy_of_codes(keys, weight, length=None):
    """Plug-in entropy (bits) of the distinct rows among the valid ones.

    Args:
      keys: a tuple of uint32 ``(S,)`` arrays; a row is the tuple of its keys.
      weight: bool ``(S,)``, which rows count.
      length: static bound on the number of valid rows (default ``S``). After sorting,
        valid rows come first; only the first ``length`` rows enter the sum, so the float
        summation does not depend on how much padding ``S`` includes (device count, chunking).

    Returns:
      ``(entropy, n)``: float32 entropy in bits, and the int32 number of rows counted
      (the entropy is NaN when no row counts).
    """
    invalid = (~weight).astype(jnp.uint32)
    srt = jax.lax.sort((invalid, *keys), num_keys=1 + len(keys))
    if length is not None and length < weight.shape[0]:
        srt = tuple(k[:length] for k in srt)
    s = srt[0].shape[0]
    changed = jnp.zeros((s - 1,), bool)
    for k in srt:
        changed = changed | (k[1:] != k[:-1])
    start = jnp.concatenate([jnp.ones((1,), bool), changed])
    run = jnp.cumsum(start.astype(jnp.int32)) - 1
    counts = jax.ops.segment_sum(1 - srt[0].astype(jnp.int32), run, num_segments=s)
    n = jnp.sum(1 - srt[0].astype(jnp.int32))
    return plugin.entropy_of_run_counts(counts, n), n


# --- vector MI from row codes ----------------------------------------------------------

def sorted_run_edges(srt: np.ndarray) -> np.ndarray:
    """bool ``(n + 1,)`` of a sorted array: True where a run of equal values starts, and at
    ``n`` (so ``np.diff(np.flatnonzero(edges))`` are the runs' lengths)."""
    n = srt.shape[0]
    edge = np.empty(n + 1, bool)
    edge[0] = edge[n] = True
    np.not_equal(srt[1:], srt[:-1], out=edge[1:n])
    return edge


def histogram_of_counts(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The multiplicity histogram of per-value counts: ascending int64 ``k`` and ``m[i]``
    values that occur ``k[i]`` times. An entropy depends on nothing else, and histograms of
    disjoint sets of values add."""
    if counts.size == 0:
        return np.zeros((0,), np.int64), np.zeros((0,), np.int64)
    m = np.bincount(counts)
    k = np.flatnonzero(m)
    return k.astype(np.int64), m[k].astype(np.int64)


def multiplicities(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`histogram_of_counts` of a uint64 array's values (sorted in place; the distinct
    values themselves are never copied out)."""
    codes.sort()
    return histogram_of_counts(np.diff(np.flatnonzero(sorted_run_edges(codes))))


def _entropy_bits(codes: np.ndarray) -> float:
    """Plug-in entropy (bits, float64) of the distinct values of a uint64 array (sorted in
    place: the caller's array is scratch)."""
    return plugin.entropy_of_multiplicities(codes.shape[0], *multiplicities(codes))


def mix64(v: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser, a bijection of uint64 (wrapping arithmetic), in place."""
    v ^= v >> np.uint64(30)
    v *= np.uint64(0xBF58476D1CE4E5B9)
    v ^= v >> np.uint64(27)
    v *= np.uint64(0x94D049BB133111EB)
    v ^= v >> np.uint64(31)
    return v


def _word_pair(codes, valid, hi: int) -> np.ndarray:
    """Words ``hi`` and ``hi + 1`` of the valid rows (all rows for ``valid=None``) as one
    uint64 per row (a new array)."""
    rows = slice(None) if valid is None else valid
    v = codes[rows, hi].astype(np.uint64)
    v <<= np.uint64(32)
    v |= codes[rows, hi + 1]
    return v


def code_column(codes, kind: str, valid=None) -> np.ndarray:
    """The output (``"y"``), input (``"x"``) or joint (``"xy"``) uint64 codes of the valid
    rows (all for ``valid=None``) of one group's rows ``(R, 4)``: a new array. The joint code
    is a 64-bit mix of the output code xor the input code (two columns alive at most)."""
    if kind == "xy":
        joint = mix64(_word_pair(codes, valid, 2) + np.uint64(_JOINT_OFFSET))
        joint ^= _word_pair(codes, valid, 0)
        return joint
    return _word_pair(codes, valid, 2 if kind == "y" else 0)


def joint_codes(codes) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(x, y, xy)`` uint64 codes of rows ``(R, 4)`` of one group (all rows valid): the input
    and output codes, and the 64-bit mix of both that :func:`vector_mi_numpy` counts."""
    return tuple(code_column(codes, kind) for kind in ("x", "y", "xy"))


def vector_mi_numpy(codes, valid):
    """Host twin of :func:`vector_mi_device`, in float64.

    NumPy's vectorised sorts of uint64 are ~30x faster than XLA's comparison sort on CPU.
    A row's two uint32 words form one uint64 code; H(X, Y) sorts a 64-bit mix of the input
    and output codes, so two distinct (x, y) rows collide with probability 2**-64 (for 1e7
    distinct rows, about 3e-6 merged pairs expected). Works in place on one uint64 column of
    the valid rows at a time (memory: ~2 x 8 bytes per row and the run boundaries on top of
    the codes).
    """
    codes, valid = np.asarray(codes), np.asarray(valid)
    n_groups = codes.shape[1]
    if not valid.any():
        return np.full((n_groups,), np.nan, np.float32)
    out = np.zeros((n_groups,), np.float32)
    n = int(valid.sum())
    for g in range(n_groups):
        # One code column alive at a time (each is made again from the rows when needed).
        hists = [multiplicities(code_column(codes[:, g], kind, valid)) for kind in ("y", "x", "xy")]
        out[g] = plugin.mi_of_multiplicities(n, *hists)
    return out


@jax.jit
def vector_mi_device(codes, valid):
    """Vector MI (bits) of every group from compacted row codes ``(R, G, 4)``, on the device."""
    mis = []
    for g in range(codes.shape[1]):
        c = codes[:, g]
        hx, _ = entropy_of_codes((c[:, 0], c[:, 1]), valid)
        hy, _ = entropy_of_codes((c[:, 2], c[:, 3]), valid)
        hxy, _ = entropy_of_codes((c[:, 0], c[:, 1], c[:, 2], c[:, 3]), valid)
        mis.append(jnp.maximum(hx + hy - hxy, 0.0))
    return jnp.stack(mis)


def _concrete(*arrays) -> bool:
    return not any(isinstance(a, jax.core.Tracer) for a in arrays)


def vector_mi(codes, valid):
    """Vector MI of every group: NumPy on the host for CPU (through ``pure_callback`` when
    traced, so it still jits and vmaps; called directly on concrete arrays), sorting on the
    device for GPU/TPU.

    Concrete arrays skip the callback: a ``pure_callback`` program re-uploads its arguments
    to the CPU device and waits for that transfer inside the program, and two such programs
    run from two Python threads at once could each hold an XLA worker thread the other's
    transfer needed (a hang seen with measures called from two threads on 2 cores)."""
    if jax.default_backend() != "cpu":
        return vector_mi_device(codes, valid)
    if _concrete(codes, valid):
        return jnp.asarray(vector_mi_numpy(codes, valid))
    out = jax.ShapeDtypeStruct((codes.shape[-2],), jnp.float32)
    return jax.pure_callback(vector_mi_numpy, out, codes, valid, vmap_method="sequential")


def _entropy_numpy(codes, valid):
    codes, valid = np.asarray(codes), np.asarray(valid)
    if not valid.any():
        return np.float32(np.nan)
    return np.float32(_entropy_bits(_word_pair(codes, valid, 0)))


def vector_entropy(codes, valid):
    """Entropy (bits) of the valid rows' codes ``(R, 2)`` (from :func:`row_codes`); NaN if
    none is valid. Host NumPy on CPU, a device sort elsewhere (as :func:`vector_mi`)."""
    if jax.default_backend() != "cpu":
        return entropy_of_codes((codes[:, 0], codes[:, 1]), valid)[0]
    if _concrete(codes, valid):                       # no callback program (see vector_mi)
        return jnp.asarray(_entropy_numpy(codes, valid))
    return jax.pure_callback(_entropy_numpy, jax.ShapeDtypeStruct((), jnp.float32), codes, valid,
                             vmap_method="sequential")
