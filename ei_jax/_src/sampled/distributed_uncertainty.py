"""Vector EI's estimate (``stderr=True``) from rows spread over processes: memory bounded by
each process's share, and the same bits for any process count.

A group's estimate (:func:`ei_jax._src.measures.vector_uncertainty.group_estimate`) needs, for every
row, its pointwise MI ``log2 c_xy n_M / (c_x c_y)`` in the whole run, in its half and in its
quarter. Rows in the same joint cell ``(x, y)`` and the same quarter have the same value in
every sub-sample, so everything is a sum over *cells*: distinct ``(xy code, quarter)`` with
their row count ``n``. A cell needs three counts of each of its codes (x, y and xy: in the
whole run, in the cell's half, in its quarter), and a code's rows may sit on any process.

Each process makes its own cells from its rows; then three routings move cells between
processes, each to the owner of a hash bucket of one code (``BUCKETS`` buckets, bucket ``b``
owned by process ``b % P``, sent in ``ROUNDS_PER_PROCESS * P`` rounds of
``process_allgather``): by the xy code (the owner merges the cells of every process into
global cells and attaches the xy counts), by the x code (attaches the x counts), by the y
code (attaches the y counts). The y owner then has every count of its cells and adds up each
bucket's terms in one canonical order (cells sorted by their codes). The bucket count is
fixed, so the per-bucket partial sums -- and their sum, taken in bucket order -- are the same
floats for one process as for any number: one process is this same code with a trivial
collective. Only integers and the per-bucket float64 partials (as uint32 words) cross
processes.

Cells are kept as columns (a dict of arrays), so that a routing moves only the columns still
needed, a sort permutes one column at a time, and what arrives is written straight into its
final arrays. Memory per process: its own rows' codes, its cells, the cells of the buckets
it owns (its share) and one round's gathered cells.
"""

import math

import numpy as np

from ei_jax._src.sampled import distributed_counts
from ei_jax._src.info import plugin, row_codes
from ei_jax._src.info.uncertainty import INFLUENCE, WEIGHTS

#: Hash buckets of the cells. Fixed, whatever the process count: each bucket's partial sum
#: is then the same float on every process count, and so is the total.
BUCKETS = 1024
#: Rounds of a routing per process: a round's gathered cells are a ``1 / ROUNDS_PER_PROCESS``
#: share of one process's, so more rounds mean less memory in flight (and more collectives).
ROUNDS_PER_PROCESS = 16

# The columns of the cells: codes (uint64), quarter, row count, and each code's three counts
# (in the whole run, in the cell's half, in its quarter).
_DTYPES = dict(xy=np.uint64, x=np.uint64, y=np.uint64, q=np.uint8, n=np.uint32,
               cxy=np.uint32, cx=np.uint32, cy=np.uint32)
_TRIPLES = ("cxy", "cx", "cy")


def _empty(names) -> dict:
    return {k: np.zeros((0, 3) if k in _TRIPLES else (0,), _DTYPES[k]) for k in names}


def _width(name: str) -> int:
    """uint32 words of one cell's ``name`` column."""
    return 3 if name in _TRIPLES else np.dtype(_DTYPES[name]).itemsize // 4 or 1


def _local_cells(quarter_rows) -> dict:
    """This process's cells: one per distinct ``(xy code, quarter)`` of its rows, with its x
    and y codes and row count."""
    parts = []
    for q, rows in enumerate(quarter_rows):
        if len(rows) == 0:
            continue
        xy = row_codes.code_column(rows, "xy")
        order = np.argsort(xy, kind="stable")
        xy = xy[order]
        starts = np.flatnonzero(row_codes.sorted_run_edges(xy)[:-1])
        first = order[starts]
        del order
        parts.append(dict(xy=xy[starts], x=row_codes.code_column(rows, "x", first),
                          y=row_codes.code_column(rows, "y", first),
                          q=np.full(len(starts), q, np.uint8),
                          n=np.diff(np.append(starts, len(xy))).astype(np.uint32)))
        del xy
    if not parts:
        return _empty(("xy", "x", "y", "q", "n"))
    return {k: np.concatenate([p.pop(k) for p in parts]) for k in list(parts[0])}


def _pack(cells: dict, names, idx, out: np.ndarray) -> None:
    """Columns ``names`` of the cells ``idx`` as uint32 words, into ``out[:len(idx)]``."""
    at, m = 0, len(idx)
    for k in names:
        w, col = _width(k), cells[k][idx]
        out[:m, at:at + w] = col[:, None] if col.itemsize < 4 else col.view(np.uint32).reshape(m, w)
        at += w


def _unpack(words: np.ndarray, names, out: dict, start: int) -> None:
    """uint32 words of cells (as :func:`_pack` wrote them) into ``out[k][start:]``."""
    at, m = 0, len(words)
    for k in names:
        w, dst = _width(k), out[k][start:start + m]
        if dst.itemsize < 4:
            dst[:] = words[:, at]
        else:
            dst.view(np.uint32).reshape(m, w)[:] = words[:, at:at + w]
        at += w


def route(cells: dict, by: str, names, *, gather, process: int, processes: int) -> dict:
    """Columns ``names`` of every process's cells whose ``by`` code is in a bucket this
    process owns.

    Round ``r`` of ``rounds = min(BUCKETS, ROUNDS_PER_PROCESS * processes)`` gathers, from
    every process, its cells of the buckets ``b`` with ``b % rounds == r``, in one padded
    shape for every round. ``processes`` divides ``rounds`` (or ``rounds`` is ``BUCKETS``
    and ``r = b``), so they all have one owner, ``r % processes``, who copies them into its
    result, whose size it knows from the counts gathered first. With one process, the cells
    as they are.
    """
    if processes == 1:
        return {k: cells[k] for k in names}
    rounds = min(BUCKETS, ROUNDS_PER_PROCESS * processes)
    which = distributed_counts.bucket_of(cells[by], BUCKETS) % rounds
    order = np.argsort(which, kind="stable")
    sizes = gather(np.bincount(which, minlength=rounds).astype(np.int32))   # (P, rounds)
    del which
    starts = np.concatenate([[0], np.cumsum(sizes[process])])
    mine = np.arange(rounds) % processes == process
    out = {k: np.empty((int(sizes[:, mine].sum()),) + cells[k].shape[1:], cells[k].dtype)
           for k in names}
    payload = np.zeros((max(1, int(sizes.max())), sum(_width(k) for k in names)), np.uint32)
    at = 0
    for r in range(rounds):
        if not sizes[:, r].any():                                  # nobody sends: skip on all
            continue
        _pack(cells, names, order[starts[r]:starts[r + 1]], payload)
        got = gather(payload)                                      # (P, cap, words)
        if mine[r]:
            for p in range(processes):
                _unpack(got[p, :sizes[p, r]], names, out, at)
                at += sizes[p, r]
        del got
    return out


def _permute(cells: dict, order) -> None:
    """Every column of the cells in ``order``, in place of the dict (one column at a time)."""
    for k in list(cells):
        cells[k] = cells[k][order]


def _merge_cells(cells: dict) -> None:
    """Cells of the same ``(xy, quarter)`` from several processes as one (counts added), in
    ``(xy, quarter)`` order."""
    _permute(cells, np.lexsort((cells["q"], cells["xy"])))
    xy, q = cells["xy"], cells["q"]
    same = np.zeros(len(xy), bool)
    same[1:] = (xy[1:] == xy[:-1]) & (q[1:] == q[:-1])
    if not same.any():
        return
    starts = np.flatnonzero(~same)
    n = np.add.reduceat(cells["n"].astype(np.int64), starts)
    _permute(cells, starts)
    cells["n"] = n.astype(np.uint32)


def _attach_counts(cells: dict, by: str, name: str, *, code_sorted=False) -> None:
    """Column ``name``: the count of each cell's ``by`` code in the whole run, in the cell's
    half and in its quarter, over the cells here (which hold every cell of that code: its
    owner's). ``code_sorted``: the cells are in code order already."""
    code = cells[by]
    order = slice(None) if code_sorted else np.argsort(code, kind="stable")
    idx = np.empty(len(code), np.int64)                   # 4 * (the code's run) + quarter
    idx[order] = np.cumsum(row_codes.sorted_run_edges(code[order])[:-1]) - 1
    del order
    runs = int(idx.max()) + 1 if len(code) else 0
    idx *= 4
    idx += cells["q"]
    # Per code and quarter, its rows: float64 sums of integers below 2**31, exact (and so
    # are the sums over halves and over the whole run, written as uint32).
    table = np.bincount(idx, weights=cells["n"], minlength=4 * runs)
    out = np.empty((len(code), 3), np.uint32)
    out[:, 2] = table[idx]
    table = table.reshape(-1, 2).sum(axis=1)              # (runs * 2,): code, half
    idx //= 2
    out[:, 1] = table[idx]
    idx //= 2
    out[:, 0] = table.reshape(-1, 2).sum(axis=1)[idx]
    cells[name] = out


def _bucket_sums(slots: int, terms, bucket: np.ndarray, **collective) -> np.ndarray:
    """Sums ``(slots,)`` float64 of ``terms``, ``(slot, value)`` pairs of per-cell arrays (an
    iterable: a generator makes each pair only when it is added), in a fixed order on every
    process count: each bucket's partial sums in the cells' (canonical) order, then the
    ``BUCKETS`` partials in bucket order."""
    gather, p = collective["gather"], collective["processes"]
    partial = np.zeros(BUCKETS * slots, np.float64)
    for slot, value in terms:       # each partial gets one slot's values only: exact adds
        partial += np.bincount(bucket * slots + slot, weights=value, minlength=BUCKETS * slots)
        del value
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


def global_group_estimate(quarter_rows, **collective):
    """``(value, corrected, stderr, singleton fraction)`` of one group from this process's
    valid rows ``(R_q, 4)`` of each quarter (the arguments and result of
    ``vector_uncertainty.group_estimate``; ``collective`` as in
    :func:`distributed_counts.global_multiplicities`, all three required)."""
    sizes = _total([len(r) for r in quarter_rows], **collective)
    n = int(sizes.sum())
    cells = route(_local_cells(quarter_rows), "xy", ("xy", "x", "y", "q", "n"), **collective)
    if collective["processes"] > 1:
        _merge_cells(cells)                      # one process: its cells are distinct already
    _attach_counts(cells, "xy", "cxy", code_sorted=collective["processes"] > 1)
    singletons = int(_total([np.count_nonzero(cells["cxy"][:, 0] == 1)], **collective)[0])
    cells = route(cells, "x", ("x", "y", "xy", "q", "n", "cxy"), **collective)
    _attach_counts(cells, "x", "cx")
    cells = route(cells, "y", ("y", "xy", "q", "n", "cxy", "cx"), **collective)
    _attach_counts(cells, "y", "cy")
    # Canonical order: by bucket, and within a bucket by (xy code, quarter), unique per cell.
    bucket = distributed_counts.bucket_of(cells.pop("y"), BUCKETS)
    order = np.lexsort((cells["q"], cells["xy"], bucket))
    del cells["xy"]
    _permute(cells, order)
    bucket = bucket[order].astype(np.int64)
    del order

    q = cells["q"].astype(np.int64)
    h = q // 2
    rows = cells["n"].astype(np.float64)
    halves = np.array([sizes[0] + sizes[1], sizes[2] + sizes[3]], np.int64)
    cxy, cx, cy = (cells[k] for k in _TRIPLES)

    def n_sub(i):   # rows of each cell's sub-sample: the run, its half, its quarter
        return n if i == 0 else halves[h] if i == 1 else sizes[q]

    def pmi(i):   # computed again where needed: three float64 columns are never alive at once
        return plugin.cell_pointwise_mi(cxy[:, i], n_sub(i), cx[:, i], cy[:, i])

    def pmi_terms():   # slots: the run's, each half's and each quarter's sum of its rows' MI
        yield 0, rows * pmi(0)
        yield 1 + h, rows * pmi(1)
        yield 3 + q, rows * pmi(2)

    sums = _bucket_sums(7, pmi_terms(), bucket, **collective)
    i_full = sums[0] / n
    i_h = np.array([sums[1 + k] / max(int(halves[k]), 1) for k in (0, 1)])
    i_q = np.array([sums[3 + k] / max(int(sizes[k]), 1) for k in range(4)])
    corrected = WEIGHTS[0] * i_full + WEIGHTS[1] * i_h.sum() / 2 + WEIGHTS[2] * i_q.sum() / 4
    # Each row's influence on the corrected estimate, squared: the split-half combination
    # INFLUENCE (the quarters weigh 0), whose table noise matches the corrected value's
    # second-order variance (ei_jax._src.info.uncertainty, module docstring).
    infl = INFLUENCE[0] * (pmi(0) - i_full) / n
    infl += INFLUENCE[1] / 2 * (pmi(1) - i_h[h]) / np.maximum(halves[h], 1)
    if INFLUENCE[2]:                     # the quarters' weight is 0: no third column of logs
        infl += INFLUENCE[2] / 4 * (pmi(2) - i_q[q]) / np.maximum(sizes[q], 1)
    squares = _bucket_sums(1, [(0, rows * infl * infl)], bucket, **collective)[0]
    return float(i_full), float(corrected), math.sqrt(squares), singletons / max(n, 1)
