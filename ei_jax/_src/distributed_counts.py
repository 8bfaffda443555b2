"""Vector MI across processes with memory bounded by each process's share of the rows.

Under ``jax.distributed`` every process holds the row codes of its own devices' samples
(:func:`ei_jax._src.sharding.local_valid_rows`). An entropy needs, for every distinct code,
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
integers on every process and in a single process (:func:`row_codes.entropy_of_multiplicities`),
so the result is bit-identical to one process with one device.

Memory per process: its own rows plus one round's gathered pairs (``12 D / B`` bytes per
code kind), i.e. bounded by its share. Only uint32/int32 arrays cross processes (no x64
needed), through ``jax.experimental.multihost_utils.process_allgather`` of one padded shape
per call.
"""

import numpy as np

from ei_jax._src import row_codes

#: Buckets per process: a round gathers about 1 / (this x processes) of all the codes.
ROUNDS_PER_PROCESS = 4
_BUCKET_SALT = np.uint64(0xD1B54A32D192ED03)


def bucket_of(values: np.ndarray, buckets: int) -> np.ndarray:
    """int64 bucket in ``[0, buckets)`` of each uint64 code (a mix of it, so structured codes
    -- exact row packings -- spread evenly)."""
    mixed = row_codes.mix64(values ^ _BUCKET_SALT)   # a new array: values stay as they are
    return ((mixed >> np.uint64(32)) % np.uint64(buckets)).astype(np.int64)


def _as_words(values: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """uint64 codes and their int64 counts -> uint32 ``(n, 3)``: no 64-bit dtype crosses
    processes (a count is below 2**31: at most ``MAX_SAMPLES`` rows)."""
    out = np.empty((values.shape[0], 3), np.uint32)
    out[:, :2] = np.ascontiguousarray(values).view(np.uint32).reshape(-1, 2)
    out[:, 2] = counts
    return out


def _owner_counts(words: np.ndarray) -> np.ndarray:
    """Every process's ``(code, count)`` words of one bucket -> the global count of each code."""
    values = np.ascontiguousarray(words[:, :2]).view(np.uint64).reshape(-1)
    order = np.argsort(values, kind="stable")
    values = values[order]
    first = np.ones(values.shape[0], bool)
    np.not_equal(values[1:], values[:-1], out=first[1:])
    return np.add.reduceat(words[order, 2].astype(np.int64), np.flatnonzero(first)) if values.size \
        else np.zeros((0,), np.int64)


def merge(histograms) -> tuple[np.ndarray, np.ndarray]:
    """Sum of multiplicity histograms ``(k, m)``: ascending distinct ``k``, summed ``m`` (int64)."""
    ks = [np.asarray(k, np.int64) for k, _ in histograms]
    ms = [np.asarray(m, np.int64) for _, m in histograms]
    k, m = (np.concatenate(a) if a else np.zeros((0,), np.int64) for a in (ks, ms))
    distinct, where = np.unique(k, return_inverse=True)
    return distinct, np.bincount(where, weights=None if m.size == 0 else m,
                                 minlength=distinct.size).astype(np.int64)


def _gather(x: np.ndarray) -> np.ndarray:
    from jax.experimental import multihost_utils

    return np.asarray(multihost_utils.process_allgather(x))


def global_multiplicities(columns, *, gather=_gather, process=None, processes=None):
    """Multiplicity histograms of several distributed multisets of uint64 codes.

    Args:
      columns: list of uint64 ``(n_local,)`` arrays, this process's codes of each multiset
        (every process passes the same number of columns); sorted in place (scratch).
      gather: collective ``x -> (processes, *x.shape)``, the same call on every process.
      process, processes: this process's index and the process count (default: JAX's).

    Returns:
      ``(histograms, peak)``: one ``(k, m)`` per column, identical on every process and
      equal to :func:`row_codes.multiplicities` of the union of every process's codes; and
      the largest number of ``(code, count)`` pairs one round gathered into this process
      (all columns, padding included).
    """
    import jax

    me = jax.process_index() if process is None else process
    p = jax.process_count() if processes is None else processes
    n_buckets = ROUNDS_PER_PROCESS * p
    ordered, bounds = [], []
    for values in columns:
        distinct, counts = row_codes.distinct_counts(values)
        b = bucket_of(distinct, n_buckets)
        order = np.argsort(b, kind="stable")
        ordered.append(_as_words(distinct[order], counts[order]))
        bounds.append(np.searchsorted(b[order], np.arange(n_buckets + 1)))
    local_sizes = np.stack([np.diff(bd) for bd in bounds]).astype(np.int32)   # (columns, B)
    sizes = gather(local_sizes)                                               # (P, columns, B)
    cap = max(1, int(sizes.max()) if sizes.size else 1)
    mine = [[] for _ in columns]
    peak = 0
    for bucket in range(n_buckets):
        payload = np.zeros((len(columns), cap, 3), np.uint32)
        for c, (words, bd) in enumerate(zip(ordered, bounds)):
            payload[c, :bd[bucket + 1] - bd[bucket]] = words[bd[bucket]:bd[bucket + 1]]
        got = gather(payload)                                                 # (P, columns, cap, 3)
        peak = max(peak, int(np.prod(got.shape[:3])))
        if bucket % p != me:
            continue
        for c in range(len(columns)):
            words = np.concatenate([got[q, c, :sizes[q, c, bucket]] for q in range(p)])
            mine[c].append(row_codes.histogram_of_counts(_owner_counts(words)))
    local = [merge(h) for h in mine]
    lengths = gather(np.asarray([k.size for k, _ in local], np.int32))      # (P, columns)
    width = max(1, int(lengths.max()) if lengths.size else 1)
    table = np.zeros((len(columns), width, 2), np.int32)
    for c, (k, m) in enumerate(local):
        table[c, :k.size, 0], table[c, :k.size, 1] = k, m
    tables = gather(table)                                                    # (P, columns, width, 2)
    out = [merge([(tables[q, c, :lengths[q, c], 0], tables[q, c, :lengths[q, c], 1]) for q in range(p)])
           for c in range(len(columns))]
    return out, peak


def vector_mi(rows: np.ndarray, **collective):
    """Vector MI of every group from this process's valid rows ``(R_local, G, 4)`` uint32.

    Returns:
      ``(mi, rows, peak)``: float32 ``(G,)`` bits, identical on every process and to
      :func:`row_codes.vector_mi_numpy` of every process's rows together (NaN when no process
      has a row); the int total of rows; and :func:`global_multiplicities`' ``peak``.
    """
    n_groups = rows.shape[1]
    columns = []
    for g in range(n_groups):
        x, y, xy = row_codes.joint_codes(np.ascontiguousarray(rows[:, g]))
        columns += [y, x, xy]
    hists, peak = global_multiplicities(columns, **collective)
    total = int(np.dot(hists[0][0], hists[0][1])) if hists else 0
    if total == 0:
        return np.full((n_groups,), np.nan, np.float32), 0, peak
    out = np.zeros((n_groups,), np.float32)
    for g in range(n_groups):
        out[g] = row_codes.mi_of_multiplicities(total, *hists[3 * g:3 * g + 3])
    return out, total, peak
