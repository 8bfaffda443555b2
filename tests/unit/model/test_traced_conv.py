"""Traced convolutions and pooling (issue #24): a traced conv layer is measured over one
receptive field, as on the Sequential path, unless its slice mixes positions; average pooling
(``ei_jax.AvgPool``'s generic ``reduce_window`` as well as Flax's ``avg_pool``) folds into the
next layer's kernel. References are computed here: pooling matrices and conv matrices built by
hand, kernels copied into a plain Dense measured on the Sequential path."""


import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ei_jax
from ei_jax import exact, topology_of

from tests.unit.model.traced_common import BINS, flax_default_promotion  # noqa: F401  (autouse)


def _dense_exact(kernel, bias, act, in_range):
    """Independent reference: a plain flax Dense with these weights, on the Sequential path."""
    kernel = jnp.asarray(kernel, jnp.float32)
    top = topology_of(nn.Dense(kernel.shape[1]), {"params": {
        "kernel": kernel, "bias": jnp.asarray(bias, jnp.float32)}}, jnp.zeros((1, kernel.shape[0])))
    return exact.ei_parts(top, "Dense", in_range=in_range, activation=act, **BINS)


def _pool_matrix(h, w, c, k, pad, include_pad):
    """(h*w*c, h'*w'*c): average pooling with a k x k window, stride k, zero padding ``pad``,
    as a matrix on row-major (h, w, c) vectors; the divisor counts padded zeros or not."""
    ho, wo = (h + 2 * pad - k) // k + 1, (w + 2 * pad - k) // k + 1
    m = np.zeros((h * w * c, ho * wo * c))
    for i in range(ho):
        for j in range(wo):
            rows = [r for r in range(i * k - pad, i * k - pad + k) if 0 <= r < h]
            cols = [q for q in range(j * k - pad, j * k - pad + k) if 0 <= q < w]
            n = k * k if include_pad else len(rows) * len(cols)
            for r in rows:
                for q in cols:
                    for ch in range(c):
                        m[(r * w + q) * c + ch, (i * wo + j) * c + ch] = 1.0 / n
    return m


@pytest.mark.parametrize("pad,include_pad", [(0, True), (1, False)])
def test_avgpool_folds_like_flax_avg_pool(pad, include_pad):
    w = 0.7 * jax.random.normal(jax.random.key(0), (2 * 2 * 2 if pad == 0 else 3 * 3 * 2, 3))
    params = {"w": w, "b": jnp.array([0.1, -0.2, 0.3])}
    pool = ei_jax.AvgPool(2, padding=pad, count_include_pad=include_pad)

    def ours(p, x):
        return jax.nn.sigmoid(ei_jax.Flatten()(pool(x)) @ p["w"] + p["b"])

    def flax_pool(p, x):
        y = nn.avg_pool(x, (2, 2), (2, 2), padding=((pad, pad), (pad, pad)),
                        count_include_pad=include_pad)
        return jax.nn.sigmoid(y.reshape(1, -1) @ p["w"] + p["b"])

    x = jnp.zeros((1, 4, 4, 2))
    values = []
    for fn in (ours, flax_pool):
        top = topology_of(fn, params, x)
        assert top.nodes["w"]["exact"] is None, top.nodes["w"]["exact"]
        values.append(exact.ei_parts(top, "w", in_range=(0, 1), **BINS))
    by_hand = _pool_matrix(4, 4, 2, 2, pad, include_pad) @ np.asarray(w)
    assert values[0] == pytest.approx(_dense_exact(by_hand, params["b"], "sigmoid", (0, 1)), rel=1e-6)
    assert values[0] == pytest.approx(values[1], abs=1e-12)


def test_plain_cnn_recorded_and_traced_agree():
    net = nn.Sequential([nn.Conv(3, (3, 3), strides=2), nn.relu,
                         nn.Conv(2, (2, 2), padding="VALID", kernel_dilation=2), nn.tanh,
                         ei_jax.Flatten(), nn.Dense(2), nn.sigmoid])
    x = jnp.zeros((1, 9, 9, 2))
    v = net.init(jax.random.key(0), x)
    recorded = topology_of(net, v, x)
    traced = topology_of(lambda p, xb: net.apply(p, xb), v, x)       # the traced path
    assert traced.nodes["layers_0"]["kind"] == "traced" != recorded.nodes["layers_0"]["kind"]
    assert list(traced) == list(recorded) == ["layers_0", "layers_2", "layers_5"]
    for name in recorded:
        assert traced.nodes[name]["input"]["shape"] == recorded.nodes[name]["input"]["shape"]
        assert traced.nodes[name]["output"]["shape"] == recorded.nodes[name]["output"]["shape"]
        for fn in (exact.ei_parts, exact.sensitivity):
            assert fn(traced, name, **BINS) == pytest.approx(fn(recorded, name, **BINS), abs=1e-12)
        # the same key draws the same patches: the sampled estimates agree too
        s = [float(ei_jax.ei_parts(jax.random.key(1), t, name, samples=4000, **BINS))
             for t in (recorded, traced)]
        assert s[0] == pytest.approx(s[1], abs=1e-9)
    assert [traced.nodes[n]["scope"] for n in traced] == ["receptive field"] * 2 + [None]


class _Mixing(nn.Module):
    """A conv layer with pooling inside it, and a residual conv block: both mix positions."""

    @nn.compact
    def __call__(self, x):
        h = nn.relu(nn.avg_pool(nn.Conv(1, (3, 3))(x), (2, 2), (2, 2)))   # conv -> pool -> relu
        return jnp.tanh(h + nn.Conv(1, (3, 3), use_bias=False)(h))       # skip connection


def _conv_matrix(kernel, n):
    """(n*n, n*n): a 'SAME' 1 -> 1 channel convolution as a matrix, from the unit images."""
    eye = jnp.eye(n * n).reshape(n * n, n, n, 1)
    conv = jax.lax.conv_general_dilated(eye, kernel, (1, 1), "SAME",
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return np.asarray(conv).reshape(n * n, n * n)


def test_mixing_conv_layers_keep_the_whole_map():
    x = jnp.zeros((1, 4, 4, 1))
    model = _Mixing()
    v = model.init(jax.random.key(2), x)
    top = topology_of(model, v, x)
    assert list(top) == ["Conv_0", "Conv_1"]
    first, second = (top.nodes[n] for n in top)
    assert first["scope"] == second["scope"] == "whole map"
    assert "reduce_window_sum" in first["whole_map"] and "test_traced_conv.py" in first["whole_map"]
    assert "skip" in second["whole_map"]
    assert first["input"]["shape"] == (1, 16) and second["input"]["shape"] == (1, 4)
    p = v["params"]
    # Conv_0: the whole 4x4 map, conv matrix then the 2x2 pooling matrix.
    w0 = _conv_matrix(p["Conv_0"]["kernel"], 4) @ _pool_matrix(4, 4, 1, 2, 0, True)
    b0 = np.full(4, float(p["Conv_0"]["bias"][0]))
    assert exact.ei_parts(top, "Conv_0", in_range=(0, 1), **BINS) == pytest.approx(
        _dense_exact(w0, b0, "relu", (0, 1)), rel=1e-6)
    # Conv_1 reads h twice (the conv and the skip): kernel conv matrix + I.
    w1 = _conv_matrix(p["Conv_1"]["kernel"], 2) + np.eye(4)
    assert exact.ei_parts(top, "Conv_1", **BINS) == pytest.approx(
        _dense_exact(w1, np.zeros(4), "tanh", (0, 10)), rel=1e-6)


def test_a_parameter_per_position_keeps_the_whole_map():
    params = {"k": 0.5 * jax.random.normal(jax.random.key(3), (2, 2, 1, 2)),
              "pos": jax.random.normal(jax.random.key(4), (1, 3, 3, 2)),
              "c": jnp.array([0.3, -0.1])}

    def fn(p, x):
        y = jax.lax.conv_general_dilated(x, p["k"], (1, 1), "VALID",
                                         dimension_numbers=("NHWC", "HWIO", "NHWC"))
        return jax.nn.sigmoid(y + p["pos"]), jax.nn.sigmoid(y * 2.0 + p["c"])

    top = topology_of(lambda p, x: fn(p, x)[0], params, jnp.zeros((1, 4, 4, 1)))
    assert top.nodes["k"]["scope"] == "whole map"
    assert "differs between positions" in top.nodes["k"]["whole_map"]
    top = topology_of(lambda p, x: fn(p, x)[1], params, jnp.zeros((1, 4, 4, 1)))
    assert top.nodes["k"]["scope"] == "receptive field"
    w = 2.0 * np.asarray(params["k"]).reshape(4, 2)
    assert exact.ei_parts(top, "k", in_range=(0, 1), **BINS) == pytest.approx(
        _dense_exact(w, params["c"], "sigmoid", (0, 1)), rel=1e-6)


def test_operations_before_the_convolution():
    """A per-channel affine map before the convolution (pre-activation BatchNorm) stays one
    receptive field, folded by hand here; so does a flat input reshaped into an image; a
    per-feature scale before that reshape tells positions apart: the whole map."""
    k = 0.5 * jax.random.normal(jax.random.key(5), (2, 2, 1, 2))
    params = {"k": k, "a": jnp.array([2.0]), "c": jnp.array([0.5]), "s": jnp.linspace(0, 1, 16)}

    def conv(p, x):
        return jax.lax.conv_general_dilated(x, p["k"], (1, 1), "VALID",
                                            dimension_numbers=("NHWC", "HWIO", "NHWC"))

    top = topology_of(lambda p, x: jnp.tanh(conv(p, x * p["a"] + p["c"])), params, jnp.zeros((1, 4, 4, 1)))
    assert top.nodes["k"]["scope"] == "receptive field"
    w = np.asarray(k).reshape(4, 2)
    assert exact.ei_parts(top, "k", in_range=(0, 1), **BINS) == pytest.approx(
        _dense_exact(2.0 * w, 0.5 * w.sum(0), "tanh", (0, 1)), rel=1e-6)
    flat = topology_of(lambda p, x: jnp.tanh(conv(p, x.reshape(1, 4, 4, 1))), params, jnp.zeros((1, 16)))
    assert flat.nodes["k"]["input"]["shape"] == (1, 2, 2, 1)
    assert exact.ei_parts(flat, "k", in_range=(0, 1), **BINS) == pytest.approx(
        _dense_exact(w, np.zeros(2), "tanh", (0, 1)), rel=1e-6)
    scaled = topology_of(lambda p, x: jnp.tanh(conv(p, (x * p["s"]).reshape(1, 4, 4, 1))), params,
                         jnp.zeros((1, 16)))
    assert scaled.nodes["k"]["scope"] == "whole map" and "reshaped" in scaled.nodes["k"]["whole_map"]
