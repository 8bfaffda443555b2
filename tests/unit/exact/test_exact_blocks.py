"""The series' building blocks and its blocking (issue #27): values do not depend on the blocks.

Leave-one-out products and harmonics against NumPy; the conditional CDFs and EI_parts with
the inputs split into blocks of 1, 3 or all (fan-in not a multiple of the block), and the
column groups of 1 or several (n_out prime, one column), against an unblocked computation
and against bits computed in NumPy from the exact joint tables.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ei_jax._src.exact import columns, conditionals, kernel, sums
from ei_jax._src.exact.preimages import input_bins, output_thresholds

KW = dict(activation="sigmoid", in_range=(0, 1), in_bins=5, out_range=(0, 1), out_bins=6)


@pytest.mark.parametrize("n", [1, 2, 3, 7, 16, 17, 50])
def test_loo_products_match_numpy(n):
    rng = np.random.default_rng(n)
    f = rng.uniform(-1.5, 1.5, (n, 3))
    f[min(2, n - 1), 0] = 0.0                  # a zero factor: no division anywhere
    want = np.array([np.prod(np.delete(f, l, axis=0), axis=0) for l in range(n)])
    with jax.enable_x64(True):
        got = np.asarray(sums.loo_products(jnp.asarray(f)))
    np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-300)


@pytest.mark.parametrize("terms", [1, 2, 7, 64, 97])
def test_harmonics_match_numpy(terms):
    x = np.linspace(-3.0, 3.0, 11)
    k = np.arange(1, terms + 1)[:, None]
    with jax.enable_x64(True):
        c, s = sums.harmonics(jnp.asarray(x), terms)
    assert c.shape == s.shape == (terms, 11)
    np.testing.assert_allclose(np.asarray(c), np.cos(k * x), atol=1e-14)
    np.testing.assert_allclose(np.asarray(s), np.sin(k * x), atol=1e-14)


def _cdf(v, b, block_bytes, monkeypatch, combine=None):
    a, h, m, p = input_bins((0, 1), KW["in_bins"])
    t = output_thresholds(KW["activation"], (0, 1), KW["out_bins"])
    monkeypatch.setattr(conditionals, "BLOCK_BYTES", block_bytes)
    with jax.enable_x64(True):
        out = conditionals.cdf_series(jnp.asarray(v), jnp.asarray(b), 0.0, 1.0, m, h, t, 64,
                                      combine=combine)
        return jax.tree_util.tree_map(np.asarray, out), p


@pytest.mark.parametrize("rows", [1, 3, 7])              # 7 inputs: blocks of 1, 3 (+ padding), all
def test_cdf_blocks_change_nothing(rows, monkeypatch):
    rng = np.random.default_rng(rows)
    v, b = rng.normal(size=7), 0.2
    per_row = 8 * 64 * KW["in_bins"]
    whole, _ = _cdf(v, b, 1 << 30, monkeypatch)
    blocked, p = _cdf(v, b, rows * per_row, monkeypatch)
    assert blocked.shape == whole.shape == (7, KW["in_bins"], KW["out_bins"] + 1)
    np.testing.assert_allclose(blocked, whole, rtol=0, atol=1e-15)
    (mi, kept), _ = _cdf(v, b, rows * per_row, monkeypatch,
                         combine=lambda c: columns.mi_from_conditionals(jnp.asarray(p), c))
    with jax.enable_x64(True):
        want_mi, want_kept = columns.mi_from_conditionals(jnp.asarray(p), jnp.asarray(whole))
    np.testing.assert_allclose(mi, want_mi, rtol=0, atol=1e-13)
    np.testing.assert_allclose(kept, want_kept, rtol=0, atol=1e-15)


def _bits_from_tables(tables):
    """MI of each pair's joint table, in NumPy (independent of the kernel's MI code)."""
    pxy = np.asarray(tables, np.float64)
    px, py = pxy.sum(-1, keepdims=True), pxy.sum(-2, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(pxy > 0, pxy * np.log2(pxy / (px * py)), 0.0)
    return terms.sum((-2, -1))


@pytest.mark.parametrize("n_in, n_out", [(7, 1), (7, 13), (4, 6), (1, 5)])
@pytest.mark.parametrize("budget", [1, 1 << 30])        # one column per group, or all at once
def test_ei_parts_groups_and_blocks(n_in, n_out, budget, monkeypatch):
    rng = np.random.default_rng(n_in * 100 + n_out)
    w = rng.normal(size=(n_in, n_out)) * 2 / np.sqrt(n_in)
    b = 0.3 * rng.normal(size=n_out)
    monkeypatch.setattr(kernel, "SERIES_GROUP_BUDGET", budget)
    monkeypatch.setattr(conditionals, "BLOCK_BYTES", 3 * 8 * 64 * KW["in_bins"])
    kernel._matrix.clear_cache()               # the budgets are read when the program is traced
    with jax.enable_x64(True):
        got = np.asarray(kernel.exact_ei_parts_matrix(w, b, **KW))
        tables = kernel.exact_joint_tables(w, b, **KW)
    assert got.shape == (n_in, n_out)
    kernel._matrix.clear_cache()
    np.testing.assert_allclose(got, _bits_from_tables(tables), rtol=0, atol=1e-12)
