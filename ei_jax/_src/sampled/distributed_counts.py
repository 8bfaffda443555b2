"""Vector MI across processes with memory bounded by each process's share of the rows.

Under ``jax.distributed`` every process holds the row codes of its own devices' samples
(:func:`ei_jax._src.sampled.sharding.local_valid_rows`). An entropy needs, for every distinct code,
how many rows carry it -- and a code's rows may sit on any process. Gathering every code on
every process would cost each of them the memory of a single process doing all the work.

Instead each process first counts its own codes (one ``(code, count)`` pair per distinct
code), and each distinct code is owned by one of ``B = ROUNDS_PER_PROCESS * P`` hash buckets.
Round ``b`` gathers only the pairs of bucket ``b`` from every process (about ``D / B`` pairs
for ``D`` locally distinct codes in all; a code that fills most rows is still one pair per
process) and bucket ``b``'s owner, process ``b % P``, adds up each code's counts. A distinct
code lives in exactly one bucket, so the owners' sums are the global counts. What comes back
is the *multiplicity histogram* -- how many distinct codes occur exactly ``k`` times -- which
is all an entropy needs (``sum_i c_i log c_i = sum_k m_k k log k``), integers that add
exactly across buckets and processes. The entropy is then one float formula of the same
integers on every process and in a single process (:func:`plugin.entropy_of_multiplicities`),
so the result is bit-identical to one process with one device.

Memory per process: its own rows, one code column being counted (its distinct codes and
their counts), and one round's gathered pairs (``12 D / B`` bytes), i.e. bounded by its
share. Only uint32/int32 arrays cross processes (no x64
needed), through ``jax.experimental.multihost_utils.process_allgather`` of one padded shape
per call.
"""

import numpy as np

from ei_jax._src.info import plugin, row_codes
from ei_jax._src.sampled import sharding

#: Buckets per process: a round gathers about 1 / (this x processes) of all the codes.
ROUNDS_PER_PROCESS = 4
_BUCKET_SALT = np.uint64(0xD1B54A32D192ED03)


def bucket_of(values: np.ndarray, buckets: int) -> np.ndarray:
    """Bucket in ``[0, buckets)`` of each uint64 code, in the smallest unsigned dtype (from a
    mix of the code, so structured codes -- exact row packings -- spread evenly)."""
    mixed = row_codes.mix64(values ^ _BUCKET_SALT)   # a new array: values stay as they are
    mixed >>= np.uint64(32)
    mixed %= np.uint64(buckets)
    return mixed.astype(np.min_scalar_type(buckets - 1))


def _owner_counts(words: np.ndarray) -> np.ndarray:
    """Every process's ``(code, count)`` words ``(n, 3)`` of one bucket -> the global count of
    each distinct code among them (int64, in code order)."""
    if words.shape[0] == 0:
        return np.zeros((0,), np.int64)
    values = np.ascontiguousarray(words[:, :2]).view(np.uint64).reshape(-1)
    order = np.argsort(values, kind="stable")
    starts = np.flatnonzero(row_codes.sorted_run_edges(values[order])[:-1])
    return np.add.reduceat(words[order, 2].astype(np.int64), starts)


def _distinct_counts(values: list) -> tuple[np.ndarray, np.ndarray]:
    """The distinct codes of ``values[0]``, ascending, and their int32 counts (a count is
    below 2**31: at most ``MAX_SAMPLES`` rows). The column is taken out of the list (its only
    reference), sorted in place and dropped once its distinct codes are out, before the run
    lengths are made."""
    column = values.pop()
    column.sort()
    edge = row_codes.sorted_run_edges(column)
    distinct = column[edge[:-1]]
    del column
    return distinct, np.diff(np.flatnonzero(edge)).astype(np.int32)


def merge(histograms) -> tuple[np.ndarray, np.ndarray]:
    """Sum of multiplicity histograms ``(k, m)``: ascending distinct ``k``, summed ``m`` (int64)."""
    k = np.concatenate([np.asarray(k, np.int64) for k, _ in histograms] or [np.zeros((0,), np.int64)])
    m = np.concatenate([np.asarray(m, np.int64) for _, m in histograms] or [np.zeros((0,), np.int64)])
    distinct, where = np.unique(k, return_inverse=True)
    summed = np.zeros(distinct.shape, np.int64)
    np.add.at(summed, where, m)
    return distinct, summed


def gather(x: np.ndarray) -> np.ndarray:
    """``x`` of every JAX process, stacked: ``(processes, *x.shape)``."""
    from jax.experimental import multihost_utils

    with sharding.peer_failures():
        return np.asarray(multihost_utils.process_allgather(x))


def global_multiplicities(values: list, *, gather=gather, process=None, processes=None):
    """Multiplicity histogram of a multiset of uint64 codes spread over processes.

    Args:
      values: a one-element list holding this process's codes, uint64 ``(n_local,)``; the
        array is taken out of the list, sorted in place and freed as soon as possible.
      gather: collective ``x -> (processes, *x.shape)``, the same call on every process.
      process, processes: this process's index and the process count (default: JAX's).

    Returns:
      ``((k, m), peak)``: the histogram, identical on every process and equal to
      :func:`row_codes.multiplicities` of every process's codes together; and the most
      ``(code, count)`` pairs one round gathered into this process (padding included).
    """
    import jax

    me = jax.process_index() if process is None else process
    p = jax.process_count() if processes is None else processes
    n_buckets = ROUNDS_PER_PROCESS * p
    distinct, counts = _distinct_counts(values)
    bucket = bucket_of(distinct, n_buckets)
    sizes = gather(np.bincount(bucket, minlength=n_buckets).astype(np.int32))  # (P, B)
    cap = max(1, int(sizes.max()))
    mine = []
    peak = 0
    for b in range(n_buckets):
        here = bucket == b
        payload = np.zeros((cap, 3), np.uint32)
        payload[:sizes[me, b], :2] = distinct[here].view(np.uint32).reshape(-1, 2)
        payload[:sizes[me, b], 2] = counts[here]          # < 2**31: at most MAX_SAMPLES rows
        got = gather(payload)                              # (P, cap, 3)
        peak = max(peak, got.shape[0] * got.shape[1])
        if b % p == me:
            words = np.concatenate([got[q, :sizes[q, b]] for q in range(p)])
            mine.append(row_codes.histogram_of_counts(_owner_counts(words)))
    k, m = merge(mine)
    lengths = gather(np.asarray([k.size], np.int32))[:, 0]  # (P,)
    table = np.zeros((max(1, int(lengths.max())), 2), np.int32)
    table[:k.size, 0], table[:k.size, 1] = k, m
    tables = gather(table)                                   # (P, width, 2)
    return merge([(tables[q, :lengths[q], 0], tables[q, :lengths[q], 1]) for q in range(p)]), peak


def global_vector_mi(rows: np.ndarray, **collective):
    """Vector MI of every group from this process's valid rows ``(R_local, G, 4)`` uint32.

    One code column at a time (output, input, joint, as :func:`row_codes.vector_mi_numpy`),
    each made from the rows when it is counted, so at most one is alive.

    Returns:
      ``(mi, rows, peak)``: float32 ``(G,)`` bits, identical on every process and to
      :func:`row_codes.vector_mi_numpy` of every process's rows together (NaN when no process
      has a row); the int total of rows; and the largest :func:`global_multiplicities` peak.
    """
    n_groups = rows.shape[1]
    out = np.full((n_groups,), np.nan, np.float32)
    peak, total = 0, 0
    for g in range(n_groups):
        rg = rows[:, g]
        hists = []
        for kind in ("y", "x", "xy"):
            # No name holds the column here: it is freed once counted (its distinct codes stay).
            hist, pk = global_multiplicities([row_codes.code_column(rg, kind)], **collective)
            hists.append(hist)
            peak = max(peak, pk)
        total = int(np.dot(*hists[0]))
        if total:
            out[g] = plugin.mi_of_multiplicities(total, *hists)
    return out, total, peak
