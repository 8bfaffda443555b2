"""Pipelined vector EI of a stack of checkpoints (ei_jax._src.measures.vector_stack) against measuring each
checkpoint alone with ei_jax.ei(..., stderr=True), and the faster host estimate against the
seven-sort one it replaced (an independent re-implementation here)."""

import warnings

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ei_jax
from ei_jax._src.info import row_codes
from ei_jax._src.measures import vector_stack
from ei_jax._src.measures import vector_uncertainty
from ei_jax._src.info.uncertainty import WEIGHTS


def _stack(widths, n, seed=0):
    net = nn.Sequential([nn.Dense(widths[1]), nn.sigmoid])
    x0 = jnp.zeros((1, widths[0]))
    nets = [net.init(jax.random.key(seed + i), x0)["params"]["layers_0"] for i in range(n)]
    nets = [jax.tree.map(lambda a, i=i: a * (1 + i), p) for i, p in enumerate(nets)]  # varied weights
    top = ei_jax.topology_of(net, {"params": {"layers_0": nets[0]}}, x0)
    return top, nets, jax.tree.map(lambda *a: jnp.stack(a), *nets)


def _alone(top, params, **kw):
    top.nodes["layers_0"]["params"] = params
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        est = ei_jax.ei(jax.random.key(3), top, "layers_0", stderr=True, **kw)
    return est, [str(w.message) for w in caught]


@pytest.mark.parametrize("widths,bins", [((3, 2), 4), ((25, 6), 8)])   # exact codes; hashed codes
def test_stack_equals_each_checkpoint_alone(widths, bins):
    top, nets, stacked = _stack(widths, 5)
    kw = dict(samples=6_001, in_range=(0, 1), in_bins=bins, out_bins=bins)
    seen = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = vector_stack.ei_stack(jax.random.key(3), top, "layers_0", stacked, progress=seen.append, **kw)
    assert seen == [1] * 5                  # one progress step per checkpoint
    messages = [str(w.message) for w in caught]
    expected = []
    for j, params in enumerate(nets):
        est, msgs = _alone(top, params, **kw)
        assert got[j] == est                    # value, corrected, stderr, counts: all equal
        expected += msgs
    assert messages == expected


def _seven_sorts(quarters):
    """The estimate written plainly: np.unique of every sub-sample (whole, halves, quarters)."""
    codes = [row_codes.joint_codes(q) for q in quarters]

    def pointwise(x, y, xy):
        cnt = [np.unique(c, return_inverse=True, return_counts=True) for c in (x, y, xy)]
        per = [c[2][c[1]].astype(np.float64) for c in cnt]
        pmi = np.log2(per[2] * len(x) / (per[0] * per[1]))
        return pmi, pmi.mean()

    join = lambda idx: [np.concatenate([codes[q][k] for q in idx]) for k in range(3)]  # noqa: E731
    full, i_full = pointwise(*join(range(4)))
    halves = [pointwise(*join((2 * h, 2 * h + 1))) for h in (0, 1)]
    quart = [pointwise(*codes[q]) for q in range(4)]
    corrected = (WEIGHTS[0] * i_full + WEIGHTS[1] * (halves[0][1] + halves[1][1]) / 2
                 + WEIGHTS[2] * sum(q[1] for q in quart) / 4)
    sizes = [len(q) for q in quarters]
    n, at, squares = sum(sizes), 0, 0.0
    for q in range(4):
        h, k = q // 2, sizes[q]
        off = at - (0 if h == 0 else sizes[0] + sizes[1])
        # the split-half influence (2 T_N - T_half(s)) / N of ei_jax._src.info.uncertainty,
        # written out: the run's table / n, minus half the sample's half's table / its size
        c = (2.0 * (full[at:at + k] - i_full) / n
             - 0.5 * (halves[h][0][off:off + k] - halves[h][1]) / (sizes[2 * h] + sizes[2 * h + 1]))
        squares += float(c @ c)
        at += k
    singles = np.sum(np.unique(join(range(4))[2], return_counts=True)[1] == 1) / n
    return i_full, corrected, np.sqrt(squares), singles


@pytest.mark.parametrize("cells", [3, 40, 2**31])   # many repeats ... all rows distinct
def test_one_sort_per_code_equals_seven_sorts(cells):
    rng = np.random.default_rng(cells)
    quarters = [rng.integers(0, cells, size=(s, 4)).astype(np.uint32) for s in (900, 1100, 1000, 1003)]
    for q in quarters:
        q[:, 2] = q[:, 0] % 3                               # outputs depend on inputs
    got = vector_uncertainty.group_estimate(quarters, 4003)
    want = _seven_sorts(quarters)
    assert got[0] == pytest.approx(want[0], rel=1e-13) and got[1] == pytest.approx(want[1], rel=1e-12, abs=1e-13)
    assert got[2] == pytest.approx(want[2], rel=1e-10) and got[3] == want[3]
