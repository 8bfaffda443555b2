"""Shared types and constants of the measurement core; imports nothing else from ei_jax.

Every module of the data path (interventions -> layer apply -> binning -> counting ->
information) agrees on these: the sample block, the sample limit, the memory budgets and the
integer statistics a measurement returns.
"""

from typing import NamedTuple

import jax

#: Samples per random block: block ``b`` is drawn from ``jax.random.fold_in(key, b)``.
#: Fixed, because changing it changes every result.
BLOCK = 1024

#: Most samples in one measurement. Sample indices and per-call counts are int32, so this
#: is ``2**31`` less one block (a count cannot overflow below it).
MAX_SAMPLES = (1 << 31) - BLOCK

#: Working memory aimed at per chunk of samples (bytes).
CHUNK_BUDGET = 128 << 20

#: Largest joint-histogram array accepted (bytes).
MAX_HISTOGRAM_BYTES = 1 << 30


class PairStats(NamedTuple):
    """Integer statistics of a pairwise measure.

    Attributes:
      counts: int32 ``(n_in, n_out, in_bins, out_bins)`` joint histograms.
      below: int32 ``(..., n_out)`` output values below ``out_range`` (``(n_in, n_out)`` for
        sensitivity: one row per intervened input).
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
