"""Exact pairwise measures against an independent reference, and their invariants.

The reference (tests/reference/exact_reference.py) shares no code with ei_jax: thresholds by
bisection on the forward activation, the joint from SPEC §8's antiderivative form divided by
the weight, the vertex closed form in extended precision (n_in <= 10) or Gil-Pelaez quadrature
(more inputs). Deterministic: no chance failures.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import ei_jax
from ei_jax import exact
from ei_jax._src.exact import kernel as exact_core
from ei_jax._src.base.errors import (
    EmptyHistogramError,
    ExactUnavailableError,
    InvalidBinsError,
    InvalidRangeError,
    UnknownActivationError,
)
from tests.reference import exact_reference as ref

TOL = 1e-6   # bits per matrix entry (the acceptance)


def _layer(seed, n, m, scale, bias):
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(n, m)) * scale
    return w, (rng.normal(size=m) * scale if bias else None)


# (seed, n_in, n_out, scale, bias, activation, in_range, in_bins, out_range, out_bins)
CASES = [
    (0, 1, 1, 6.0, False, "sigmoid", (0, 1), 256, (0, 1), 256),
    (1, 1, 2, 1.5, True, "relu", (0, 1), 32, (0, 1), 16),           # ReLU above 1 dropped
    (2, 2, 2, 2.0, True, "tanh", (-1, 1), 16, (-1, 1), 8),
    (3, 3, 2, 2.0, True, "relu", (0, 1), 64, (0, 1.5), 32),          # drops above 1.5
    (4, 5, 3, 1.5, True, "identity", (0, 1), 8, (-1, 1), 12),        # identity drops both sides
    (5, 8, 4, 1.0, True, "sigmoid", (0, 1), 16, (0.2, 0.9), 16),     # sigmoid drops both sides
    (6, 25, 6, 0.5, False, "sigmoid", (0, 1), 8, (0, 1), 8),
    (7, 100, 1, 0.2, True, "tanh", (0, 1), 8, (-1, 1), 10),
]


@pytest.mark.parametrize("case", CASES, ids=[f"{c[1]}x{c[2]}-{c[5]}" for c in CASES])
def test_matches_independent_reference(case):
    seed, n, m, scale, bias, act, ir, ib, orr, ob = case
    w, b = _layer(seed, n, m, scale, bias)
    kw = dict(activation=act, in_range=ir, in_bins=ib, out_range=orr, out_bins=ob)
    with jax.enable_x64(True):
        got = np.asarray(exact_core.exact_ei_parts_matrix(w, b, **kw))
        got_s = np.asarray(exact_core.exact_sensitivity_matrix(w, b, **kw))
    want = ref.ei_parts_matrix(w, b, **kw)
    want_s = ref.ei_parts_matrix(w, b, sensitivity=True, **kw)
    assert np.nanmax(want) > 1e-2                                  # a non-trivial layer
    for g, r in ((got, want), (got_s, want_s)):
        np.testing.assert_array_equal(np.isnan(g), np.isnan(r))   # the same empty pairs
        np.testing.assert_allclose(np.nan_to_num(g), np.nan_to_num(r), rtol=0, atol=TOL)


def test_reference_vertex_form_agrees_with_its_gil_pelaez_form():
    # The two reference routes against each other where both apply (8 inputs).
    w, b = _layer(11, 8, 2, 1.0, True)
    kw = dict(activation="sigmoid", in_range=(0, 1), in_bins=8, out_range=(0, 1), out_bins=8)
    np.testing.assert_allclose(ref.ei_parts_matrix(w, b, method="vertex", **kw),
                               ref.ei_parts_matrix(w, b, method="gil", **kw), atol=1e-7)


def test_zero_weights_give_exact_zero_and_empty_pairs_are_nan():
    w, b = _layer(3, 6, 3, 1.0, True)
    w[2, 1] = 0.0
    kw = dict(activation="sigmoid", in_range=(0, 1), in_bins=16, out_range=(0, 1), out_bins=16)
    with jax.enable_x64(True):
        m = np.asarray(exact_core.exact_ei_parts_matrix(w, b, **kw))
        s = np.asarray(exact_core.exact_sensitivity_matrix(w, b, **kw))
        assert m[2, 1] == 0.0 and s[2, 1] == 0.0 and (np.delete(m.ravel(), 2 * 3 + 1) > 0).all()
        zero = np.asarray(exact_core.exact_ei_parts_matrix(np.zeros((6, 3)), None, **kw))
        np.testing.assert_array_equal(zero, 0.0)
        # identity outputs in [0, 6] never reach out_range (-10, -5): every pair is empty
        empty = np.asarray(exact_core.exact_ei_parts_matrix(
            np.ones((6, 2)), None, activation="identity", in_range=(0, 1), in_bins=8,
            out_range=(-10, -5), out_bins=8))
        assert np.isnan(empty).all()


def _dense_top(kernel, bias=None):
    net = nn.Dense(kernel.shape[1], use_bias=bias is not None)
    params = {"kernel": jnp.asarray(kernel, jnp.float32)}
    if bias is not None:
        params["bias"] = jnp.asarray(bias, jnp.float32)
    x0 = jnp.zeros((1, kernel.shape[0]))
    return ei_jax.topology_of(net, {"params": params}, x0)


def test_topology_api_errors():
    top = _dense_top(np.ones((4, 2)))
    kw = dict(in_range=(0, 1), in_bins=8, out_range=(0, 1), out_bins=8)
    with pytest.raises(EmptyHistogramError, match="out_range"):
        exact.ei_parts(top, "Dense", in_range=(0, 1), out_range=(-10, -5), in_bins=8, out_bins=8)
    with pytest.raises(ExactUnavailableError, match="sampled"):
        exact.ei_parts(top, "Dense", activation=lambda x: x ** 3, **kw)
    with pytest.raises(InvalidRangeError):
        exact.ei_parts(top, "Dense", in_range=(1, 0), in_bins=8, out_range=(0, 1), out_bins=8)
    with pytest.raises(InvalidBinsError):
        exact.ei_parts(top, "Dense", in_range=(0, 1), in_bins=0, out_range=(0, 1), out_bins=8)
    with pytest.raises(UnknownActivationError):
        exact_core.exact_ei_parts_matrix(np.ones((2, 1)), activation="softsign", **kw)
    seq = nn.Sequential([nn.Dense(3), nn.sigmoid, nn.Dense(2), nn.sigmoid])
    x0 = jnp.zeros((1, 4))
    top2 = ei_jax.topology_of(seq, seq.init(jax.random.key(0), x0), x0)
    with pytest.raises(ExactUnavailableError, match="span"):
        exact.ei_parts(top2, "layers_2", in_layer="layers_0", **kw)


def test_causal_plane_and_layer_values():
    w, b = _layer(8, 6, 3, 1.0, True)
    top = _dense_top(w, b)
    kw = dict(in_range=(0, 1), in_bins=8, out_range=(0, 1), out_bins=8, activation="sigmoid")
    p = exact.causal_plane(top, "Dense", **kw)
    assert isinstance(p, ei_jax.CausalPlanePoint) and p.versus == "parts"
    assert p.ei == pytest.approx(exact.ei_parts(top, "Dense", **kw), abs=1e-12)
    assert p.sensitivity == pytest.approx(exact.sensitivity(top, "Dense", **kw), abs=1e-12)
    assert p.degeneracy == pytest.approx(p.sensitivity - p.ei, abs=1e-12)
    assert exact.degeneracy(top, "Dense", **kw) == pytest.approx(p.degeneracy, abs=1e-12)
    np.testing.assert_allclose(exact.ei_parts_matrix(top, "Dense", **kw).sum(), p.ei, atol=1e-12)


def test_linen_and_nnx_give_the_same_numbers():
    seq = nnx.Sequential(nnx.Linear(5, 4, rngs=nnx.Rngs(0)), nnx.sigmoid,
                         nnx.Linear(4, 3, rngs=nnx.Rngs(1)), nnx.tanh)
    x0 = jnp.zeros((1, 5))
    top_nnx = ei_jax.topology_of(seq, x0)
    lin = nn.Sequential([nn.Dense(4), nn.sigmoid, nn.Dense(3), nn.tanh])
    params = {"params": {f"layers_{i}": {"kernel": seq.layers[i].kernel[...],
                                         "bias": seq.layers[i].bias[...]} for i in (0, 2)}}
    top_lin = ei_jax.topology_of(lin, params, x0)
    kw = dict(in_bins=16, out_bins=16)
    for layer in ("layers_0", "layers_2"):
        with pytest.warns(ei_jax.DefaultRangeWarning) if layer == "layers_0" else _nothing():
            a = exact.ei_parts_matrix(top_nnx, layer, **kw)
        with pytest.warns(ei_jax.DefaultRangeWarning) if layer == "layers_0" else _nothing():
            c = exact.ei_parts_matrix(top_lin, layer, **kw)
        np.testing.assert_array_equal(a, c)
        assert a.shape == (5, 4) if layer == "layers_0" else (4, 3)


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_conv_receptive_field_equals_its_patch_dense():
    class Net(nn.Module):
        @nn.compact
        def __call__(self, x):
            return nn.relu(nn.Conv(3, (2, 2), padding="VALID")(x))

    x0 = jnp.zeros((1, 5, 5, 2))
    variables = Net().init(jax.random.key(3), x0)
    top = ei_jax.topology_of(Net(), variables, x0)
    (layer,) = list(top)
    kw = dict(in_range=(0, 1), in_bins=8, out_range=(0, 10), out_bins=8)
    got = exact.ei_parts_matrix(top, layer, **kw)
    k = np.asarray(variables["params"]["Conv_0"]["kernel"], np.float64)
    dense = _dense_top(k.reshape(8, 3), np.asarray(variables["params"]["Conv_0"]["bias"]))
    want = exact.ei_parts_matrix(dense, "Dense", activation="relu", **kw)
    assert got.shape == (8, 3)
    np.testing.assert_array_equal(got, want)


def test_float32_caller_gets_float32_close_to_float64():
    w, b = _layer(9, 6, 2, 1.0, True)
    kw = dict(activation="tanh", in_range=(0, 1), in_bins=16, out_range=(-1, 1), out_bins=16)
    m32 = exact_core.exact_ei_parts_matrix(jnp.asarray(w, jnp.float32), jnp.asarray(b, jnp.float32), **kw)
    assert m32.dtype == jnp.float32
    with jax.enable_x64(True):
        m64 = exact_core.exact_ei_parts_matrix(np.float32(w), np.float32(b), **kw)
    assert m64.dtype == jnp.float64
    np.testing.assert_allclose(np.asarray(m32), np.asarray(m64), rtol=1e-6, atol=1e-7)
