"""The pure exact core under JAX transformations: grad, vmap, jit without recompiling."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ei_jax._src.exact import kernel as exact_core


def _fd_grad(f, x, eps, entries):
    """Central finite differences of a scalar function of a float64 array at some entries."""
    g = np.full(x.shape, np.nan)
    for idx in entries:
        e = np.zeros_like(x)
        e[idx] = eps
        g[idx] = (f(x + e) - f(x - e)) / (2 * eps)
    return g


# (n_in, n_out, activation, out_range, bins): the three routes (1 input, trapezoid, series),
# one with outputs dropped (sigmoid outputs outside (0.3, 0.8)).
GRAD_CASES = [
    (2, 2, "tanh", (-1, 1), 8),
    (3, 2, "sigmoid", (0.3, 0.8), 8),
    (6, 2, "sigmoid", (0, 1), 8),
]


@pytest.mark.parametrize("case", GRAD_CASES, ids=[f"{c[0]}x{c[1]}" for c in GRAD_CASES])
def test_grad_equals_central_differences(case):
    n, m, act, orr, bins = case
    rng = np.random.default_rng(n)
    w0, b0 = rng.normal(size=(n, m)) * 1.5, np.full(m, 0.3)
    kw = dict(activation=act, in_range=(0, 1), in_bins=bins, out_range=orr, out_bins=bins)
    entries = [(0, 0), (n - 1, m - 1), (n // 2, 0)]
    for fn in (exact_core.exact_ei_parts_matrix, exact_core.exact_sensitivity_matrix):
        extra = {"terms": 256} if fn is exact_core.exact_ei_parts_matrix else {}
        with jax.enable_x64(True):
            total = jax.jit(lambda w, b: fn(w, b, **kw, **extra).sum())
            gw, gb = jax.grad(total, argnums=(0, 1))(w0, b0)
            fd_w = _fd_grad(lambda w: float(total(w, b0)), w0, 1e-6, entries)
            fd_b = _fd_grad(lambda b: float(total(w0, b)), b0, 1e-6, [(0,)])
        sel = ~np.isnan(fd_w)
        assert np.abs(fd_w[sel]).max() > 1e-2
        np.testing.assert_allclose(np.asarray(gw)[sel], fd_w[sel], rtol=1e-4,
                                   atol=1e-6 * np.abs(fd_w[sel]).max())
        np.testing.assert_allclose(np.asarray(gb)[0], fd_b[0], rtol=1e-4, atol=1e-6)


def test_grad_in_a_float32_program():
    w = jnp.asarray(np.random.default_rng(0).normal(size=(5, 3)), jnp.float32)
    kw = dict(activation="sigmoid", in_range=(0, 1), in_bins=8, out_range=(0, 1), out_bins=8)
    g = jax.jit(jax.grad(lambda w: exact_core.exact_ei_parts_matrix(w, None, **kw).sum()))(w)
    assert g.dtype == jnp.float32 and bool(jnp.all(jnp.isfinite(g))) and float(jnp.abs(g).max()) > 0


def test_vmap_over_540_weights_equals_the_loop_and_new_weights_do_not_recompile():
    ws = jnp.linspace(-8.0, 8.0, 540).reshape(540, 1, 1)
    kw = dict(activation="sigmoid", in_range=(0, 1), in_bins=16, out_range=(0, 1), out_bins=16)
    f = jax.jit(jax.vmap(lambda w: exact_core.exact_ei_parts_matrix(w, None, **kw)[0, 0]))
    batched = np.asarray(f(ws))
    loop = np.array([float(exact_core.exact_ei_parts_matrix(w, None, **kw)[0, 0]) for w in ws])
    np.testing.assert_allclose(batched, loop, rtol=0, atol=1e-6)
    assert batched[270] == 0.0 or abs(float(ws[270, 0, 0])) > 0      # w = 0 gives exactly 0
    assert batched.max() > 2.5                                       # w = 8: 2.6 bits

    f(ws * 0.5).block_until_ready()
    assert f._cache_size() == 1                                      # new weights: no recompile
    g = jax.jit(lambda k, b: exact_core.exact_ei_parts_matrix(k, b, terms=64, **kw))
    g(jnp.ones((6, 4), jnp.float32), jnp.zeros(4, jnp.float32)).block_until_ready()
    g(jnp.full((6, 4), 0.3, jnp.float32), jnp.ones(4, jnp.float32)).block_until_ready()
    assert g._cache_size() == 1
    before = exact_core._matrix._cache_size()                        # eager calls: one program
    exact_core.exact_ei_parts_matrix(jnp.full((1, 1), 0.7), None, **kw).block_until_ready()
    assert exact_core._matrix._cache_size() == before


def test_vmap_over_kernel_and_bias_of_a_stack():
    rng = np.random.default_rng(5)
    ks, bs = rng.normal(size=(3, 6, 2)), rng.normal(size=(3, 2))
    kw = dict(activation="tanh", in_range=(0, 1), in_bins=8, out_range=(-1, 1), out_bins=8, terms=128)
    with jax.enable_x64(True):
        stacked = np.asarray(jax.vmap(lambda k, b: exact_core.exact_sensitivity_matrix(
            k, b, **{x: y for x, y in kw.items() if x != "terms"}))(ks, bs))
        parts = np.asarray(jax.vmap(lambda k, b: exact_core.exact_ei_parts_matrix(k, b, **kw))(ks, bs))
        for i in range(3):
            np.testing.assert_allclose(parts[i], np.asarray(exact_core.exact_ei_parts_matrix(
                ks[i], bs[i], **kw)), atol=1e-12)
            np.testing.assert_allclose(stacked[i], np.asarray(exact_core.exact_sensitivity_matrix(
                ks[i], bs[i], **{x: y for x, y in kw.items() if x != "terms"})), atol=1e-12)


def test_series_cut_equals_the_shorter_series_under_vmap():
    # One program at 96 terms, each kernel's series cut at its own count: equal to that
    # count's own series (the cut terms are exact zeros; only the sum's rounding may differ).
    # Counts below what the weights need make the cut visible: 64 and 96 terms differ.
    kw = dict(activation="sigmoid", in_range=(0.0, 1.0), in_bins=8, out_range=(0.0, 1.0), out_bins=8)
    ws = np.asarray(jax.random.normal(jax.random.key(3), (2, 5, 2)), np.float64)
    bs = np.asarray(jax.random.normal(jax.random.key(4), (2, 2)), np.float64)
    counts = np.array([64, 96], np.int32)
    with jax.enable_x64(True):
        got = np.asarray(jax.vmap(lambda w, b, c: exact_core.ei_parts_matrix_cut(
            w, b, c, terms=96, **kw))(ws, bs, counts))
        alone = [np.asarray(exact_core.exact_ei_parts_matrix(w, b, terms=int(c), **kw))
                 for w, b, c in zip(ws, bs, counts)]
        longer = np.asarray(exact_core.exact_ei_parts_matrix(ws[0], bs[0], terms=96, **kw))
    np.testing.assert_allclose(got, np.stack(alone), rtol=1e-12, atol=1e-13)
    assert np.abs(alone[0] - longer).max() > 1e-9
    with pytest.raises(exact_core.InvalidOptionError, match="n_in >= 4"):
        exact_core.ei_parts_matrix_cut(np.ones((3, 2)), None, 8, terms=64, **kw)
