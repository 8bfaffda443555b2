"""Vector EI's estimate (``stderr=True``) from rows spread over processes
(``ei_jax/_src/distributed_uncertainty.py``), with the collective run by threads of this process
standing in for processes: every "process" must get, bit for bit, what one process gets from
all the rows, and no round may carry the rows themselves. The one-process value is checked
against an independent computation in tests/unit/measures/test_vector_stack.py (seven sorts, one per
sub-sample); the real 2-process run is in tests/system/test_multiprocess.py."""

import numpy as np
import pytest

from ei_jax._src.sampled import distributed_uncertainty
from ei_jax._src.measures import vector_uncertainty
from tests.unit.sampled.test_distributed_counts import run_processes
from tests.unit.measures.test_vector_stack import _seven_sorts

ONE = dict(gather=None, process=0, processes=1)


def _quarters(rng, sizes, inputs, noise):
    """Rows ``(R_q, 4)`` of 4 quarters: outputs a function of the inputs plus some noise, and a
    skew (a third of the rows on one input), so cells range from very full to single rows."""
    out = []
    for s in sizes:
        x = rng.integers(0, inputs, s)
        x[rng.random(s) < 0.33] = 7
        rows = np.zeros((s, 4), np.uint32)
        rows[:, 0], rows[:, 1] = x, x // 3
        rows[:, 2] = (x * 5 + rng.integers(0, noise, s)) % 97
        out.append(rows)
    return out


def _split(rng, quarters, processes, empty=None):
    """Each row to a random process (``empty``: one process gets none)."""
    owner = [rng.integers(0, processes, len(q)) for q in quarters]
    if empty is not None:
        owner = [np.where(o == empty, (empty + 1) % processes, o) for o in owner]
    return [[q[o == me] for q, o in zip(quarters, owner)] for me in range(processes)]


@pytest.mark.parametrize("processes, inputs, noise", [(2, 40, 3), (3, 5000, 50), (4, 2**30, 2)])
def test_any_process_count_gives_the_single_process_estimate_bit_for_bit(processes, inputs, noise):
    rng = np.random.default_rng(processes)
    quarters = _quarters(rng, (6000, 6100, 5900, 6003), inputs, noise)
    single = distributed_uncertainty.global_group_estimate(quarters, **ONE)
    want = _seven_sorts(quarters)                       # an independent computation
    assert single[0] == pytest.approx(want[0], rel=1e-12) and single[3] == want[3]
    assert single[1] == pytest.approx(want[1], rel=1e-11)
    assert single[2] == pytest.approx(want[2], rel=1e-9, abs=1e-13)
    assert single[2] > 0 or inputs > 10**6               # a real spread, not zeros

    per_process = _split(rng, quarters, processes, empty=1 if processes == 3 else None)
    seen = [[] for _ in range(processes)]

    def one(rows, gather, process, processes):
        def counted(x):                                  # what each round of cell records carries
            if x.ndim == 2 and x.shape[1] in (8, 11, 12):
                seen[process].append(x.nbytes * processes)
            return gather(x)
        return distributed_uncertainty.global_group_estimate(rows, gather=counted, process=process,
                                                   processes=processes)

    results = run_processes(per_process, one)
    assert results == [single] * processes               # floats equal to the last bit
    # A round carries, from each of the P processes, the cells (48 bytes at most) of one of
    # ROUNDS_PER_PROCESS * P bucket groups: 48 / ROUNDS_PER_PROCESS = 3 bytes per row of the
    # largest share on average, whatever P -- bounded by a process's share of the rows (4x:
    # codes with few distinct values, y here, crowd some rounds; 7.2 bytes at 4 processes),
    # never all of them (16 bytes a row).
    largest_share = max(sum(len(q) for q in rows) for rows in per_process)
    rounds = max(max(s) for s in seen)
    assert rounds < 4 * 48 / distributed_uncertainty.ROUNDS_PER_PROCESS * largest_share
    assert rounds < 0.5 * 16 * sum(len(q) for q in quarters)


def test_no_rows_on_one_process_and_few_rows_in_all():
    rng = np.random.default_rng(11)
    quarters = _quarters(rng, (3, 0, 5, 2), 4, 2)        # an empty quarter
    single = distributed_uncertainty.global_group_estimate(quarters, **ONE)
    results = run_processes(_split(rng, quarters, 2, empty=0),
                            lambda r, **kw: distributed_uncertainty.global_group_estimate(r, **kw))
    assert results == [single, single]
    assert np.isfinite(single[:3]).all()


def test_the_library_call_is_the_one_process_path():
    rng = np.random.default_rng(3)
    quarters = _quarters(rng, (900, 1000, 1100, 1003), 30, 4)
    assert vector_uncertainty.group_estimate(quarters, 4003) == distributed_uncertainty.global_group_estimate(quarters, **ONE)


@pytest.mark.parametrize("buckets", [8, 6])
def test_as_many_rounds_as_buckets(monkeypatch, buckets):
    """With more processes than ``BUCKETS / ROUNDS_PER_PROCESS``, every bucket is a round of
    its own (owned by ``bucket % P``, here also for a bucket count that 4 does not divide)."""
    monkeypatch.setattr(distributed_uncertainty, "BUCKETS", buckets)
    rng = np.random.default_rng(buckets)
    quarters = _quarters(rng, (700, 800, 650, 720), 300, 5)
    single = distributed_uncertainty.global_group_estimate(quarters, **ONE)
    assert min(buckets, distributed_uncertainty.ROUNDS_PER_PROCESS * 4) == buckets
    results = run_processes(_split(rng, quarters, 4),
                            lambda r, **kw: distributed_uncertainty.global_group_estimate(r, **kw))
    assert results == [single] * 4
