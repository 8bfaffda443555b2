"""Exact EI_parts against ei_jax's sampled plug-in estimate (plain Monte Carlo).

The plug-in estimate of a pair's MI from N samples is biased upward by about
``(occupied cells - occupied rows - occupied columns + 1) / (2 N ln 2)`` bits (Miller-Madow)
and has standard error ``sqrt(Var psi / N)`` with the influence function
``psi(x) = sum_{A,B} log2 P_AB(i_A, j_B) / (P_A(i_A) P_B(j_B))`` (delta method; the tables
``P`` are the exact ones). So ``plug-in - exact - bias`` must be within 4 standard errors:
a chance failure has probability ~6e-5 per layer under the normal approximation. N is 2e6
(the issue asks 1e7-1e8; 2e6 keeps this file within the suite's time, and the bias is still
resolved: at 64 bins it is ~40 standard errors).
"""

import jax
import numpy as np
import pytest

import ei_jax
from ei_jax._src.exact import kernel as exact_core
from ei_jax._src.exact.preimages import widened_edges

N = 2_000_000

ACT = {"sigmoid": jax.nn.sigmoid, "tanh": jax.numpy.tanh, "identity": lambda z: z,
       "relu": jax.nn.relu}

# (seed, n_in, n_out, scale, bias, activation, out_range, bins); no output leaves its range.
LAYERS = [
    (0, 25, 6, 0.5, False, "sigmoid", (0, 1), 8),
    (1, 10, 4, 1.0, True, "tanh", (-1, 1), 64),
    (2, 6, 3, 1.0, True, "relu", (0, 10), 8),
    (3, 5, 2, 2.0, True, "identity", (-10, 10), 32),
]


def _mi(counts):
    c = counts.astype(np.float64)
    n = c.sum(axis=(-2, -1))

    def s(x, ax):
        return np.sum(np.where(x > 0, x * np.log2(np.where(x > 0, x, 1)), 0), axis=ax)

    return np.log2(n) + (s(c, (-2, -1)) - s(c.sum(-1), -1) - s(c.sum(-2), -1)) / n


def _bias(counts):
    occ = (counts > 0).sum(axis=(-2, -1))
    rows = (counts.sum(-1) > 0).sum(-1)
    cols = (counts.sum(-2) > 0).sum(-1)
    return (occ - rows - cols + 1) / (2 * counts.sum(axis=(-2, -1)) * np.log(2))


def _influence_sd(w, b, act, out_range, bins, tables, m=200_000, seed=0):
    """Standard deviation of psi over m fresh inputs (binned with the float64 edges)."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, size=(m, w.shape[0]))
    y = np.asarray(ACT[act](x @ w + b))
    ix = np.clip(np.searchsorted(widened_edges(0, 1, bins), x, side="right") - 1, 0, bins - 1)
    iy = np.clip(np.searchsorted(widened_edges(*out_range, bins), y, side="right") - 1, 0, bins - 1)
    pa = tables.sum(-1)                       # (n_in, n_out, k_in)
    pb = tables.sum(-2)                       # (n_in, n_out, k_out)
    psi = np.zeros(m)
    for a in range(w.shape[0]):
        for bb in range(w.shape[1]):
            i, j = ix[:, a], iy[:, bb]
            psi += np.log2(tables[a, bb, i, j] / (pa[a, bb, i] * pb[a, bb, j]))
    return psi.std()


@pytest.mark.parametrize("layer", LAYERS, ids=[f"{c[1]}x{c[2]}-{c[5]}-{c[7]}" for c in LAYERS])
def test_plug_in_minus_exact_is_the_plug_in_bias(layer):
    seed, n, m, scale, has_bias, act, out_range, bins = layer
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(n, m)) * scale
    b = rng.normal(size=m) * scale if has_bias else np.zeros(m)
    kw = dict(in_range=(0, 1), in_bins=bins, out_range=out_range, out_bins=bins)

    def apply(p, x):
        return ACT[act](x @ p["kernel"] + p["bias"][None, :])

    params = {"kernel": jax.numpy.asarray(w, jax.numpy.float32),
              "bias": jax.numpy.asarray(b, jax.numpy.float32)}
    st = ei_jax.core.pairwise_stats(jax.random.key(seed), apply, params, in_shape=(n,),
                                    samples=N, **kw)
    counts = np.asarray(st.counts, np.int64)
    assert int(np.asarray(st.below).sum() + np.asarray(st.above).sum()) == 0
    with jax.enable_x64(True):
        exact = np.asarray(exact_core.exact_ei_parts_matrix(w, b, activation=act, **kw))
        tables = np.asarray(exact_core.exact_joint_tables(w, b, activation=act, **kw))
    plug_in, bias = _mi(counts), _bias(counts)
    se = _influence_sd(w, b, act, out_range, bins, tables) / np.sqrt(N)
    diff = plug_in.sum() - exact.sum() - bias.sum()
    assert abs(diff) <= 4 * se, (plug_in.sum(), exact.sum(), bias.sum(), se)
