"""Vector EI's estimate (``stderr=True``) from rows spread over processes: memory bounded by
each process's share, and the same bits for any process count.

A group's estimate (:func:`ei_jax._src.vector_uncertainty.group_estimate`) needs, for every
row, its pointwise MI ``log2 c_xy n_M / (c_x c_y)`` in the whole run, in its half and in its
quarter. Rows in the same joint cell ``(x, y)`` and the same quarter have the same value in
every sub-sample, so everything is a sum over *cells*: distinct ``(xy code, quarter)`` with
their row count ``n``. A cell needs three counts of each of its codes (x, y and xy: in the
whole run, in the cell's half, in its quarter), and a code's rows may sit on any process.

Each process makes its own cells from its rows; then three routings move cell records
between processes, each to the owner of a hash bucket of one code (``BUCKETS`` buckets,
bucket ``b`` owned by process ``b % P``, sent in ``ROUNDS_PER_PROCESS * P`` rounds of
``process_allgather``): by the xy code (the owner merges the cells of every process into
global cells and attaches the xy counts), by the x code (attaches the x counts), by the y
code (attaches the y counts). The y owner then has every count of its cells and adds up each
bucket's terms in one canonical order (cells sorted by their codes). The bucket count is
fixed, so the per-bucket partial sums -- and their sum, taken in bucket order -- are the same
floats for one process as for any number: one process is this same code with a trivial
collective. Only integers and the per-bucket float64 partials (as uint32 words) cross
processes.

Memory per process: its own rows' codes, its cells, the records of the buckets it owns
(its share of the cells) and one round's gathered records.
"""

import math

import numpy as np

from ei_jax._src import distributed_counts, row_codes
from ei_jax._src.estimate import WEIGHTS

#: Hash buckets of the cells. Fixed, whatever the process count: each bucket's partial sum
#: is then the same float on every process count, and so is the total.
BUCKETS = 1024

# Columns of a cell record (uint32): codes as two words each, then the counts attached.
_XY, _X, _Y, _Q, _N = 0, 2, 4, 6, 7
_CXY, _CX, _CY = 8, 11, 14          # each: count in the whole run, in the cell's half, its quarter
_WIDTH = 17


def _code(rec, col) -> np.ndarray:
    """The uint64 code in columns ``col, col + 1`` of records ``(n, w)`` (a new array)."""
    return np.ascontiguousarray(rec[:, col:col + 2]).view(np.uint64).reshape(-1)


def _words(codes: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(codes).view(np.uint32).reshape(-1, 2)


def _local_cells(quarter_rows) -> np.ndarray:
    """This process's cells ``(n, _WIDTH)``: one record per distinct ``(xy code, quarter)`` of
    its rows, with its x and y codes and row count (the count columns still zero)."""
    out = []
    for q, rows in enumerate(quarter_rows):
        if len(rows) == 0:
            continue
        xy = row_codes.code_column(rows, "xy")
        order = np.argsort(xy, kind="stable")
        xy = xy[order]
        starts = np.flatnonzero(row_codes.sorted_run_edges(xy)[:-1])
        first = order[starts]
        rec = np.zeros((len(starts), _WIDTH), np.uint32)
        rec[:, _XY:_XY + 2] = _words(xy[starts])
        rec[:, _X:_X + 2] = _words(row_codes.code_column(rows[first], "x"))
        rec[:, _Y:_Y + 2] = _words(row_codes.code_column(rows[first], "y"))
        rec[:, _Q] = q
        rec[:, _N] = np.diff(np.append(starts, len(xy)))
        out.append(rec)
    return np.concatenate(out) if out else np.zeros((0, _WIDTH), np.uint32)


def route(records: np.ndarray, col: int, width: int, *, gather, process: int, processes: int):
    """Every process's records whose code in column ``col`` is in a bucket this process owns
    (only their first ``width`` columns travel; the others come back zero).

    Round ``r`` of ``ROUNDS_PER_PROCESS * processes`` gathers the records of the buckets
    ``b`` with ``b % rounds == r`` from every process, one padded shape per round; each
    process keeps those of its buckets. With one process, the records as they are.
    """
    if processes == 1:
        return records
    rounds = min(BUCKETS, distributed_counts.ROUNDS_PER_PROCESS * processes)
    which = distributed_counts.bucket_of(_code(records, col), BUCKETS) % rounds
    order = np.argsort(which, kind="stable")
    records, which = records[order, :width], which[order]
    sizes = gather(np.bincount(which, minlength=rounds).astype(np.int32))   # (P, rounds)
    starts = np.concatenate([[0], np.cumsum(sizes[process])])
    cap = max(1, int(sizes.max()))
    kept = []
    for r in range(rounds):
        payload = np.zeros((cap, width), np.uint32)
        payload[:sizes[process, r]] = records[starts[r]:starts[r + 1]]
        got = gather(payload)                                               # (P, cap, width)
        for p in range(processes):
            part = got[p, :sizes[p, r]]
            kept.append(part[distributed_counts.bucket_of(_code(part, col), BUCKETS) % processes == process])
    del records
    out = np.zeros((sum(len(k) for k in kept), _WIDTH), np.uint32)
    out[:, :width] = np.concatenate(kept)
    return out


def _merge_cells(rec: np.ndarray) -> np.ndarray:
    """Records of the same ``(xy, quarter)`` from several processes as one (counts added)."""
    order = np.lexsort((rec[:, _Q], _code(rec, _XY)))
    rec = rec[order]
    xy = _code(rec, _XY)
    same = np.zeros(len(rec), bool)
    same[1:] = (xy[1:] == xy[:-1]) & (rec[1:, _Q] == rec[:-1, _Q])
    starts = np.flatnonzero(~same)
    out = rec[starts]
    if len(rec):
        out[:, _N] = np.add.reduceat(rec[:, _N].astype(np.int64), starts)
    return out


def _attach_counts(rec: np.ndarray, col: int, to: int, *, code_sorted=False) -> np.ndarray:
    """Fills columns ``to .. to + 2`` of the records with the count of their code (column
    ``col``) in the whole run, in the record's half and in its quarter, over the records here
    (which hold every cell of that code: its owner's). ``code_sorted``: the records are in
    code order already."""
    code = _code(rec, col)
    order = slice(None) if code_sorted else np.argsort(code, kind="stable")
    run = np.empty(len(rec), np.int64)
    run[order] = np.cumsum(row_codes.sorted_run_edges(code[order])[:-1]) - 1
    del code
    runs = int(run[order][-1]) + 1 if len(rec) else 0
    q = rec[:, _Q].astype(np.int64)
    # Per code and quarter, its rows (float64 sums of integers below 2**31: exact).
    table = np.bincount(run * 4 + q, weights=rec[:, _N], minlength=4 * runs).astype(np.int64)
    by_half = table.reshape(-1, 2).sum(axis=1)                    # (runs * 2,): code, half
    rec[:, to] = by_half.reshape(-1, 2).sum(axis=1)[run]
    rec[:, to + 1] = by_half[2 * run + q // 2]
    rec[:, to + 2] = table[4 * run + q]
    return rec


def _bucket_sums(slots: int, terms, bucket: np.ndarray, **collective) -> np.ndarray:
    """Sums ``(slots,)`` float64 of ``terms``, ``(slot, value)`` pairs of per-cell arrays, in a
    fixed order on every process count: each bucket's partial sums in the cells' (canonical)
    order, then the ``BUCKETS`` partials in bucket order."""
    gather, p = collective["gather"], collective["processes"]
    partial = np.zeros(BUCKETS * slots, np.float64)
    for slot, value in terms:          # each partial gets one slot's values only: exact adds
        partial += np.bincount(bucket * slots + slot, weights=value, minlength=BUCKETS * slots)
    partial = partial.reshape(BUCKETS, slots)
    if p > 1:
        words = partial.view(np.uint32).reshape(BUCKETS, slots, 2)
        got = gather(words).reshape(p, BUCKETS, 2 * slots).view(np.float64)  # (P, BUCKETS, slots)
        partial = got[np.arange(BUCKETS) % p, np.arange(BUCKETS)]
    return partial.sum(axis=0)


def _total(x, **collective) -> np.ndarray:
    """Integer array summed over processes (int64)."""
    if collective["processes"] == 1:
        return np.asarray(x, np.int64)
    return collective["gather"](np.asarray(x, np.int32)).astype(np.int64).sum(axis=0)


def group_estimate(quarter_rows, **collective):
    """``(value, corrected, stderr, singleton fraction)`` of one group from this process's
    valid rows ``(R_q, 4)`` of each quarter (the arguments and result of
    ``vector_uncertainty.group_estimate``; ``collective`` as in
    :func:`distributed_counts.global_multiplicities`, all three required)."""
    sizes = _total([len(r) for r in quarter_rows], **collective)
    n = int(sizes.sum())
    cells = _attach_counts(_merge_cells(route(_local_cells(quarter_rows), _XY, _CXY, **collective)),
                           _XY, _CXY, code_sorted=True)
    singletons = int(_total([np.count_nonzero(cells[:, _CXY] == 1)], **collective)[0])
    cells = _attach_counts(route(cells, _X, _CX, **collective), _X, _CX)
    cells = _attach_counts(route(cells, _Y, _CY, **collective), _Y, _CY)
    # Canonical order: by bucket, and within a bucket by (xy code, quarter), unique per cell.
    order = np.lexsort((cells[:, _Q], _code(cells, _XY)))
    bucket = distributed_counts.bucket_of(_code(cells, _Y), BUCKETS)[order]
    order = order[np.argsort(bucket, kind="stable")]
    cells, bucket = cells[order], np.sort(bucket).astype(np.int64)

    q = cells[:, _Q].astype(np.int64)
    h = q // 2
    rows = cells[:, _N].astype(np.float64)
    halves = np.array([sizes[0] + sizes[1], sizes[2] + sizes[3]], np.int64)
    n_sub = (n, halves[h], sizes[q])
    pmi = [np.log2(cells[:, _CXY + i].astype(np.float64) * n_sub[i]
                   / (cells[:, _CX + i].astype(np.float64) * cells[:, _CY + i])) for i in range(3)]
    # Slots: the run's, each half's and each quarter's sum of its rows' pointwise MI.
    sums = _bucket_sums(7, [(0, rows * pmi[0]), (1 + h, rows * pmi[1]), (3 + q, rows * pmi[2])],
                        bucket, **collective)
    i_full = sums[0] / n
    i_h = np.array([sums[1 + k] / max(int(halves[k]), 1) for k in (0, 1)])
    i_q = np.array([sums[3 + k] / max(int(sizes[k]), 1) for k in range(4)])
    corrected = WEIGHTS[0] * i_full + WEIGHTS[1] * i_h.sum() / 2 + WEIGHTS[2] * i_q.sum() / 4
    # Each row's influence on the corrected estimate (see ei_jax._src.estimate), squared.
    infl = WEIGHTS[0] * (pmi[0] - i_full) / n
    infl += WEIGHTS[1] / 2 * (pmi[1] - i_h[h]) / np.maximum(halves[h], 1)
    infl += WEIGHTS[2] / 4 * (pmi[2] - i_q[q]) / np.maximum(sizes[q], 1)
    squares = _bucket_sums(1, [(0, rows * infl * infl)], bucket, **collective)[0]
    return float(i_full), float(corrected), math.sqrt(squares), singletons / max(n, 1)
