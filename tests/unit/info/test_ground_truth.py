"""Ground truth: exact binned joint distributions of 1->1 and 2->1 layers.

For a layer ``y = f(w . x + b)`` with ``x`` uniform on ``in_range``, the probability of each
(input bin, output bin) cell is the measure of the inputs that land in it. Pushing a fine
deterministic grid of inputs (cell midpoints) through the layer in float32, and binning with
deep-ei's own edges, gives that distribution to within the grid resolution; its MI is the
exact value the plug-in estimator converges to. With S samples the plug-in estimate exceeds
it by about (cells - 1) / (2 S ln 2) bits; the tests allow 0.005 bits at 2e6+ samples.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ei_jax import core
from ei_jax._src.info.binning import Binning
from ei_jax._src.info.plugin import mi_matrix

ACTS = {"sigmoid": (jax.nn.sigmoid, lambda v: 1 / (1 + np.exp(-v)), (0.0, 1.0)),
        "tanh": (jnp.tanh, np.tanh, (-1.0, 1.0)),
        "relu": (jax.nn.relu, lambda v: np.maximum(v, 0), (0.0, 10.0))}
SAMPLES = 2_000_000
# A steep 1->1 layer with 64 bins has a sampling s.d. of about 0.002 bits at 2e6 samples
# (measured over 20 keys); 8e6 samples make the 0.005 tolerance a > 4 s.d. bound.
SAMPLES_1D = 8_000_000


def _exact_pair_mi(x_cols, y, in_range, out_range, bins):
    """MI (bits) of every (x column, y) pair from grid points (each of equal weight)."""
    bx = Binning(in_range[0], in_range[1], bins, "pair")
    by = Binning(out_range[0], out_range[1], bins, "pair")
    iy = by.reference_index(y)
    out = []
    for x in x_cols:
        ix = bx.reference_index(x)
        ok = (ix >= 0) & (ix < bins) & (iy >= 0) & (iy < bins)
        counts = np.zeros((bins, bins), np.int64)
        np.add.at(counts, (ix[ok], iy[ok]), 1)
        out.append(float(mi_matrix(counts)))
    return out


def _grid(lo, hi, n):
    return (lo + (np.arange(n, dtype=np.float64) + 0.5) * (hi - lo) / n).astype(np.float32)



@pytest.mark.parametrize("act", ["sigmoid", "tanh", "relu"])
@pytest.mark.parametrize("bins", [8, 64])
def test_one_to_one_layer_matches_exact_distribution(act, bins):
    f_jax, f_np, out_range = ACTS[act]
    in_range = (0.0, 1.0)
    # (weight, bias) pairs: flat, moderate, steep, negative, with bias.
    wb = np.array([[0.5, 0.0], [2.0, 0.0], [8.0, -4.0], [-3.0, 1.0], [20.0, -10.0]], np.float32)
    if act == "relu":
        wb = np.array([[5.0, 0.0], [12.0, 0.0], [30.0, -15.0], [-8.0, 6.0], [9.0, 0.5]], np.float32)
    grid = _grid(*in_range, 4_000_000)
    exact = [_exact_pair_mi([grid], f_np(w * grid.astype(np.float64) + b).astype(np.float32),
                            in_range, out_range, bins)[0] for w, b in wb]

    def apply(p, x):
        return f_jax(x @ p[0] + p[1][None, :])

    params = (jnp.asarray(wb[:, :1])[:, None, :], jnp.asarray(wb[:, 1:]))
    est = jax.vmap(lambda p: core.ei_parts(
        jax.random.key(7), apply, p, in_shape=(1,), in_range=in_range, in_bins=bins,
        out_range=out_range, out_bins=bins, samples=SAMPLES_1D))(params)
    est = np.asarray(est)
    for (w, b), e, g in zip(wb, exact, est):
        bias = (bins * bins - 1) / (2 * SAMPLES_1D * np.log(2))
        assert abs(g - e) <= 0.005, f"{act} w={w} b={b}: estimate {g}, exact {e}"
        assert g - e <= bias + 0.005
    # The cases are informative: not all zero, not all saturated.
    assert max(exact) > 0.5 and min(exact) < max(exact) - 0.2


@pytest.mark.parametrize("act", ["sigmoid", "tanh", "relu"])
@pytest.mark.parametrize("bins", [8, 64])
def test_two_to_one_layer_matches_exact_distribution(act, bins):
    f_jax, f_np, out_range = ACTS[act]
    in_range = (0.0, 1.0)
    weights = np.array([[1.0, 1.0], [4.0, -2.0], [6.0, 0.5]], np.float32)
    if act == "relu":
        weights = np.array([[6.0, 6.0], [12.0, -4.0], [3.0, 15.0]], np.float32)
    n = 2000
    g = _grid(*in_range, n)
    x1, x2 = np.repeat(g, n), np.tile(g, n)
    exact = []
    for w in weights:
        z = (w[0] * x1.astype(np.float64) + w[1] * x2.astype(np.float64))
        y = f_np(z).astype(np.float32)
        exact.append(sum(_exact_pair_mi([x1, x2], y, in_range, out_range, bins)))

    def apply(w, x):
        return f_jax(x @ w)

    est = jax.vmap(lambda w: core.ei_parts(
        jax.random.key(11), apply, w, in_shape=(2,), in_range=in_range, in_bins=bins,
        out_range=out_range, out_bins=bins, samples=SAMPLES))(jnp.asarray(weights)[:, :, None])
    for w, e, got in zip(weights, exact, np.asarray(est)):
        assert abs(got - e) <= 0.005, f"{act} w={w}: estimate {got}, exact {e}"
