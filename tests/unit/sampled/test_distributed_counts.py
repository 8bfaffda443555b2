"""The bucketed cross-process count behind multi-process vector EI, with the collective run by
threads of this process (each thread one "process", exchanging through a barrier), against
counting the union of every process's codes directly. The real 2-process run is in
tests/system/test_multiprocess.py."""

import threading

import numpy as np
import pytest

from ei_jax._src.sampled import distributed_counts
from ei_jax._src.info import row_codes


class Collective:
    """``processes`` threads calling ``gather(x)`` in lockstep get every thread's ``x`` stacked."""

    def __init__(self, processes: int):
        self.slots = [None] * processes
        self.barrier = threading.Barrier(processes, timeout=60)

    def gather_of(self, me: int):
        def gather(x):
            self.slots[me] = np.array(x)
            self.barrier.wait()
            out = np.stack(self.slots)
            self.barrier.wait()
            return out
        return gather


def run_processes(per_process, fn):
    """``fn(local arrays, **collective)`` on one thread per entry of ``per_process``."""
    p = len(per_process)
    coll, out, errors = Collective(p), [None] * p, []

    def one(me):
        try:
            out[me] = fn(per_process[me], gather=coll.gather_of(me), process=me, processes=p)
        except BaseException as e:  # noqa: BLE001 -- re-raised below
            errors.append(e)
            coll.barrier.abort()

    threads = [threading.Thread(target=one, args=(me,)) for me in range(p)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return out


def skewed_codes(rng, n):
    """uint64 codes with one value in ~40% of rows, a Zipf-like middle and many singletons."""
    kind = rng.random(n)
    common = np.full(n, 12345, np.uint64)
    zipf = (rng.zipf(1.5, n) % 5000).astype(np.uint64) << np.uint64(20)
    unique = rng.integers(0, 2**63, n, dtype=np.uint64)
    return np.where(kind < 0.4, common, np.where(kind < 0.8, zipf, unique))


@pytest.mark.parametrize("processes", [1, 2, 3])
def test_histograms_equal_counting_the_union(processes):
    rng = np.random.default_rng(processes)
    sizes = [30_000, 0, 17_001][:processes] if processes > 1 else [25_000]
    cols = [[skewed_codes(rng, n), rng.integers(0, 50, n).astype(np.uint64)] for n in sizes]
    expected = [row_codes.multiplicities(np.concatenate([c[i] for c in cols])) for i in range(2)]
    total = sum(sizes)
    for i, (ek, em) in enumerate(expected):
        results = run_processes([[c[i].copy()] for c in cols],
                                lambda v, **kw: distributed_counts.global_multiplicities(v, **kw))
        for (k, m), peak in results:
            np.testing.assert_array_equal(k, ek)
            np.testing.assert_array_equal(m, em)
            assert int(np.dot(k, m)) == total
            # One round holds a bucket's (code, count) pairs, never every row: the code in 40%
            # of the rows is one pair per process.
            assert peak < 0.2 * total


def test_vector_mi_equals_the_host_mi_of_all_rows_bit_for_bit():
    rng = np.random.default_rng(7)
    idx = rng.integers(0, 4, size=(60_000, 5))
    idx[:, 3] = idx[:, 0] ^ (rng.random(60_000) < 0.1)           # outputs that depend on inputs
    idx[:, 4] = (idx[:, 1] + idx[:, 2]) % 4
    import jax.numpy as jnp

    words = np.asarray(row_codes.row_codes(jnp.asarray(idx[:, :3], jnp.int32), 4))
    out_words = np.asarray(row_codes.row_codes(jnp.asarray(idx[:, 3:], jnp.int32), 4))
    rows = np.concatenate([words, out_words], axis=1)[:, None, :].repeat(2, axis=1)
    rows[:, 1, 2:] = rows[::-1, 1, 2:]                              # group 2: outputs shuffled
    single = row_codes.vector_mi_numpy(rows, np.ones(len(rows), bool))
    assert single[0] > 1.0 and single[1] < 0.03            # 0.03: ~2.5x the plug-in bias (63 * 15 / (2 N ln 2))
    parts = [rows[:21_000], rows[21_000:21_000], rows[21_000:]]
    for mi, total, _ in run_processes(parts, lambda r, **kw: distributed_counts.global_vector_mi(r, **kw)):
        assert total == len(rows)
        np.testing.assert_array_equal(mi, single)


def test_no_rows_anywhere_is_nan():
    empty = np.zeros((0, 1, 4), np.uint32)
    for mi, total, _ in run_processes([empty, empty], lambda r, **kw: distributed_counts.global_vector_mi(r, **kw)):
        assert total == 0 and np.isnan(mi).all()
