"""The compiled banded joint of a whole layer equals the JAX path column by column, and an
independent dense table written here (cell = overlap of an input bin with an output bin's
preimage, MI by its definition)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ei_jax._src.exact import banded
from ei_jax._src.exact.banded_compiled import point_input_mi_layer
from ei_jax._src.exact.preimages import input_bins, output_bins


def _bins(act, in_range, out_range, in_bins, out_bins):
    return input_bins(in_range, in_bins)[0], output_bins(act, out_range, out_bins).t


def _jax(w, b, lo, hi, a, t):
    """``banded.point_input_mi`` on every column (float64)."""
    with jax.enable_x64(True):
        fn = jax.vmap(lambda v, bb: banded.point_input_mi(v, bb, lo, hi, a, t))
        mi, kept = fn(jnp.asarray(w.T, jnp.float64), jnp.asarray(b, jnp.float64))
        return np.asarray(mi).T, np.asarray(kept).T


def _dense(w, b, lo, hi, a, t):
    """The joint from interval overlaps in ``x``: ``P(i, j) = |[a_i, a_{i+1}] cap {x :
    t_j <= w x + b < t_{j+1}}|`` renormalised; MI = sum P log2(P / (P_x P_y))."""
    v = w[:, :, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        x = (t[None, None, :] - b[None, :, None]) / v                  # (n, M, k_out + 1)
        xl = np.minimum(x[..., :-1], x[..., 1:])[..., None, :]         # v < 0: reversed
        xh = np.maximum(x[..., :-1], x[..., 1:])[..., None, :]
        cell = np.maximum(np.minimum(a[1:, None], xh) - np.maximum(a[:-1, None], xl), 0.0)
        kept = cell.sum(axis=(-2, -1))                                 # (n, M, k_in, k_out)
        p = cell / np.where(kept > 0, kept, 1.0)[..., None, None]
        px, py = p.sum(-1, keepdims=True), p.sum(-2, keepdims=True)
        terms = np.where(p > 0, p * np.log2(p / (px * py)), 0.0)
    mi = np.maximum(terms.sum(axis=(-2, -1)), 0.0)
    return np.where(w == 0, 0.0, mi), np.where(w == 0, 1.0, kept)


# (activation, in_range, out_range, (in_bins, out_bins), weight scale, bias scale, (n, M))
CASES = [
    ("sigmoid", (0.0, 1.0), (0.0, 1.0), (64, 64), 1 / np.sqrt(64), 0.1, (64, 48)),
    ("sigmoid", (0.0, 1.0), (0.0, 1.0), (8, 8), 3.0, 1.0, (20, 16)),
    ("tanh", (-1.0, 1.0), (-1.0, 1.0), (3, 64), 10.0, 1.0, (16, 12)),     # bins per input bin
    ("tanh", (-1.0, 1.0), (-1.0, 1.0), (64, 3), 1e-3, 0.5, (16, 12)),     # one out bin per in bin
    ("relu", (0.0, 1.0), (0.0, 1.0), (64, 2), 1.0, 0.5, (24, 10)),
    ("relu", (0.0, 1.0), (0.0, 1.0), (2, 8), 1e3, 1.0, (10, 10)),
    ("identity", (-1.0, 2.0), (-1.0, 1.0), (2, 3), 1.0, 0.5, (12, 9)),
    ("sigmoid", (0.0, 1.0), (0.45, 0.55), (64, 8), 1.0, 0.2, (16, 16)),   # narrow out_range
    ("sigmoid", (0.0, 1.0), (-1.0, 2.0), (8, 64), 4.0, 1.0, (16, 16)),    # repeated +-inf t
    ("sigmoid", (0.0, 1.0), (0.0, 1.0), (64, 64), 1 / np.sqrt(200), 0.1, (200, 150)),  # threads
]


def _layer(case, seed):
    act, in_range, out_range, (ib, ob), scale, bscale, (n, m) = case
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(n, m)) * scale
    w[0, 0], w[1, 0], w[-1, -1] = 0.0, 1e-12, -1e-12       # a zero and tiny weights, both signs
    w[:, 1] = 0.0                                          # a column of zeros
    b = rng.normal(size=m) * bscale
    b[2], b[3] = 1e3, -1e3                                 # every output above / below the range
    return w, b, in_range, _bins(act, in_range, out_range, ib, ob)


@pytest.mark.parametrize("case", CASES,
                         ids=[f"{c[0]}-{c[3][0]}x{c[3][1]}-w{c[4]:.3g}" for c in CASES])
def test_layer_equals_jax_path(case):
    w, b, (lo, hi), (a, t) = _layer(case, len(case[3]) * case[6][0] + case[3][0])
    mi, kept = point_input_mi_layer(w, b, lo, hi, a, t)
    ref_mi, ref_kept = _jax(w, b, lo, hi, a, t)
    assert mi.shape == kept.shape == w.shape and mi.dtype == kept.dtype == np.float64
    np.testing.assert_allclose(mi, ref_mi, rtol=0, atol=1e-12)
    np.testing.assert_allclose(kept, ref_kept, rtol=0, atol=1e-14)
    assert np.all(mi[w == 0] == 0.0) and np.all(kept[w == 0] == 1.0)
    # every output outside [t_0, t_k): nothing kept (columns 2 and 3 where a threshold is finite)
    zmin, zmax = b + np.minimum(w * lo, w * hi), b + np.maximum(w * lo, w * hi)
    empty = ((zmax <= t[0]) | (zmin >= t[-1])) & (w != 0)
    assert np.all(kept[empty] == 0.0) and np.all(mi[empty] == 0.0)
    assert np.any(empty) == bool(np.isfinite(t[0]) or np.isfinite(t[-1]))
    assert np.all(np.isfinite(mi)) and np.all(mi >= 0.0)
    if 1e-2 <= case[4] <= 100:     # else the kept part of x is mostly in one input bin: MI ~0
        assert np.max(ref_mi) > 0.3


def test_bins_inside_bins():
    """Every output bin inside one input bin: MI = the input bins' entropy; the converse (the
    whole image inside one output bin): MI exactly 0."""
    a, t = _bins("identity", (0.0, 1.0), (0.0, 1.0), 4, 64)
    w, b = np.array([[1.0, -1.0]]), np.array([0.0, 1.0])    # z = x, 1 - x: 16 output bins
    mi, kept = point_input_mi_layer(w, b, 0.0, 1.0, a, t)     # per input bin
    ref, _ = _jax(w, b, 0.0, 1.0, a, t)
    # I(x; y) = H(input bin) when every output bin lies in one input bin: ~2 bits, up to
    # the widened edges (an output bin straddling an input edge by ~1e-6)
    np.testing.assert_allclose(mi, 2.0, atol=1e-4)
    np.testing.assert_allclose(mi, ref, rtol=0, atol=1e-12)
    w = np.array([[1e-6]])
    mi, _ = point_input_mi_layer(w, np.array([0.3]), 0.0, 1.0, a, t)
    assert mi[0, 0] == 0.0


@pytest.mark.parametrize("case", [CASES[1], CASES[2], CASES[4], CASES[6], CASES[8]],
                         ids=["sigmoid-8", "tanh-3x64", "relu-64x2", "identity-2x3",
                              "sigmoid-wide"])
def test_layer_equals_dense_table(case):
    act, in_range, out_range, bins, scale, bscale, _ = case
    w, b, (lo, hi), (a, t) = _layer((act, in_range, out_range, bins, scale, bscale, (6, 5)), 7)
    w[1, 0] = w[-1, -1] = 0.3                              # no tiny weights: x = (t - b) / v
    b[2], b[3] = 0.2, -0.1
    mi, kept = point_input_mi_layer(w, b, lo, hi, a, t)
    ref_mi, ref_kept = _dense(w, b, lo, hi, a, t)
    assert np.max(ref_mi) > 0.3
    np.testing.assert_allclose(mi, ref_mi, rtol=0, atol=1e-12)
    np.testing.assert_allclose(kept, ref_kept, rtol=0, atol=1e-12)
