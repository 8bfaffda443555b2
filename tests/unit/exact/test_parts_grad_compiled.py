"""Traced exact EI_parts on the CPU: the compiled series through host callbacks and its
analytic VJP (``parts_grad_compiled``), against two independent references: ``jax.grad`` of
the XLA series (automatic differentiation of another implementation of the forward), and
central differences of the concrete compiled forward in float64."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ei_jax._src.exact import compiled_path
from ei_jax._src.exact import kernel as K


@pytest.fixture
def force():
    """Sets ``compiled_path.FORCE`` for a test and restores it."""
    old = compiled_path.FORCE

    def set_(value):
        compiled_path.FORCE = value
    yield set_
    compiled_path.FORCE = old


def _layer(n, m, seed, scale=2.0):
    rng = np.random.default_rng(seed)
    return (rng.uniform(-1, 1, (n, m)) * scale / np.sqrt(n), 0.3 * rng.normal(size=m),
            rng.normal(size=(n, m)))


def _kw(activation="sigmoid", bins=8, out_range=(0.0, 1.0)):
    return dict(activation=activation, in_range=(0.0, 1.0), in_bins=bins, out_range=out_range,
                out_bins=bins)


def _grad(w, b, cot, kw):
    """float64 ``jax.grad`` (jitted) of ``sum(cot * bits)`` in kernel and bias."""
    with jax.enable_x64(True):
        def total(w, b):
            return jnp.sum(jnp.where(cot != 0, K.exact_ei_parts_matrix(w, b, **kw) * cot, 0.0))
        gw, gb = jax.jit(jax.grad(total, (0, 1)))(jnp.asarray(w), jnp.asarray(b))
        return np.asarray(gw), np.asarray(gb)


CASES = [  # (n_in, n_out, activation, bins, out_range): one window branch, chunking or bins each
    (4, 3, "sigmoid", 8, (0.0, 1.0)),        # 3072 terms, the exact-support window
    (9, 4, "tanh", 16, (-1.0, 1.0)),         # two groups of 8 thresholds, end-bin widths
    (200, 3, "sigmoid", 8, (0.0, 1.0)),      # two chunks of inputs, the Hoeffding window
    (12, 3, "gelu", 8, (-0.2, 1.0)),         # preimages in two pieces (signed CDF sums)
]


@pytest.mark.parametrize("n, m, act, bins, out_range", CASES)
def test_gradient_matches_autodiff_of_the_xla_series(force, n, m, act, bins, out_range):
    w, b, cot = _layer(n, m, seed=n)
    kw = _kw(act, bins, out_range)
    force(None)
    new = _grad(w, b, cot, kw)
    force(False)
    ref = _grad(w, b, cot, kw)
    for got, want in zip(new, ref):
        assert np.isfinite(want).all() and np.abs(want).max() > 1e-3
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-9 * np.abs(want).max())


def test_zero_weights_and_a_dropped_column_give_the_replaced_values_no_gradient(force):
    w, b, cot = _layer(10, 3, seed=3)
    w[[2, 7], 0] = 0.0
    b[2] = 40.0                       # relu output of column 2 always above out_range: NaN bits
    kw = _kw("relu", 8, (0.0, 1.0))
    force(None)
    with jax.enable_x64(True):
        bits = np.asarray(jax.jit(lambda w, b: K.exact_ei_parts_matrix(w, b, **kw))(w, b))
    assert np.isnan(bits[:, 2]).all() and (bits[[2, 7], 0] == 0).all()
    cot[:, 2] = 0.0                   # the caller's sum skips the NaN column
    new = _grad(w, b, cot, kw)
    force(False)
    ref = _grad(w, b, cot, kw)
    assert (new[0][:, 2] == 0).all() and new[1][2] == 0
    for got, want in zip(new, ref):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-9 * np.abs(want).max())


def test_gradient_matches_central_differences_of_the_concrete_forward(force):
    w, b, cot = _layer(6, 2, seed=5)
    kw = _kw("sigmoid", 8)
    force(True)                       # the concrete forward by the compiled kernel too
    new_w, new_b = _grad(w, b, cot, kw)

    def total(w, b):
        with jax.enable_x64(True):
            return float(np.sum(np.asarray(K.exact_ei_parts_matrix(w, b, terms=512, **kw)) * cot))

    eps = 1e-5
    for idx in [(0, 0), (3, 1), (5, 0)]:
        e = np.zeros_like(w)
        e[idx] = eps
        fd = (total(w + e, b) - total(w - e, b)) / (2 * eps)
        assert abs(new_w[idx] - fd) < 1e-6 * max(1.0, abs(fd))
    e = np.array([0.0, eps])
    fd = (total(w, b + e) - total(w, b - e)) / (2 * eps)
    assert abs(new_b[1] - fd) < 1e-6 * max(1.0, abs(fd))


def test_traced_values_match_the_concrete_and_xla_values(force):
    w, b, _ = _layer(40, 5, seed=7)
    kw = _kw("tanh", 8, (-1.0, 1.0))
    force(None)
    with jax.enable_x64(True):
        jitted = np.asarray(jax.jit(lambda w, b: K.exact_ei_parts_matrix(w, b, **kw))(w, b))
        force(True)
        concrete = np.asarray(K.exact_ei_parts_matrix(w, b, **kw))
        force(False)
        xla = np.asarray(jax.jit(lambda w, b: K.exact_ei_parts_matrix(w, b, **kw))(w, b))
    np.testing.assert_allclose(jitted, concrete, rtol=0, atol=1e-12)
    np.testing.assert_allclose(jitted, xla, rtol=0, atol=1e-12)


def test_vmap_float32_and_non_finite_columns(force):
    force(None)
    kw = _kw()
    ws = np.stack([_layer(8, 3, seed=s)[0] for s in range(3)]).astype(np.float32)
    ws[2, 1, 2] = np.nan

    def total(w):
        return jnp.nansum(K.exact_ei_parts_matrix(w, None, **kw))

    grads = jax.jit(jax.vmap(jax.grad(total)))(ws)
    assert grads.dtype == jnp.float32
    for s in range(3):
        one = jax.jit(jax.grad(total))(ws[s])
        np.testing.assert_array_equal(np.asarray(grads[s]), np.asarray(one))
    assert np.isnan(grads[2][:, 2]).all() and np.isfinite(np.delete(np.asarray(grads), 2, 2)).all()
    with jax.enable_x64(True):
        g64 = np.asarray(jax.grad(total)(ws[0].astype(np.float64)))
    np.testing.assert_allclose(np.asarray(grads[0]), g64, rtol=2e-4, atol=1e-6)


def test_second_derivatives_run_the_xla_series(force):
    w, b, cot = _layer(5, 2, seed=11)
    kw = _kw("sigmoid", 4)
    d = np.random.default_rng(0).normal(size=w.shape)

    def hvp():
        with jax.enable_x64(True):
            def total(w):
                return jnp.sum(K.exact_ei_parts_matrix(w, b, **kw) * cot)
            return np.asarray(jax.jit(jax.grad(lambda w: jnp.vdot(jax.grad(total)(w), d)))(w))

    force(None)
    new = hvp()
    force(False)
    ref = hvp()
    np.testing.assert_allclose(new, ref, rtol=0, atol=1e-9 * np.abs(ref).max())


def test_which_traced_calls_take_the_callbacks(force, monkeypatch):
    seen = []
    monkeypatch.setattr(compiled_path, "_host_bits",
                        lambda *a, **k: seen.append(1) or np.zeros_like(a[0], k["dtype"]))
    w = np.ones((6, 2), np.float32) / 6
    for fn, calls in [(lambda w: K.exact_ei_parts_matrix(w, **_kw()), 1),
                      (lambda w: K.exact_ei_parts_matrix(w[:3], **_kw()), 0),      # closed forms
                      (lambda w: K.exact_sensitivity_matrix(w, **_kw()), 0),
                      (lambda w: K.exact_joint_tables(w, **_kw()), 0)]:
        for setting, want in ((None, calls), (False, 0)):
            force(setting)
            seen.clear()
            jax.jit(lambda w: fn(w))(w)          # a new function: no cached trace
            assert len(seen) == want
