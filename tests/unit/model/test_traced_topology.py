"""The traced topology (issue #24): networks the Sequential path refuses, cut at their linear
operations. Exact layers are checked against an independent computation written here (BatchNorm
folded by hand into a plain Dense measured on the Sequential path, weights copied into a plain
Dense), and sampled values against the exact ones within 4 standard errors."""


import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import ei_jax
from ei_jax import exact, topology_of
from ei_jax.errors import ExactUnavailableError, UnsupportedModuleError

from tests.unit.model.traced_common import BINS, flax_default_promotion  # noqa: F401  (autouse)


def _sampled(top, name, **kw):
    return ei_jax.ei_parts(jax.random.key(1), top, name, samples=10_000, stderr=True, **BINS, **kw)


def _agrees(top, name, **kw):
    """The sampled estimate is within 4 standard errors of the exact value; returns exact."""
    e = exact.ei_parts(top, name, **BINS, **kw)
    s = _sampled(top, name, **kw)
    assert abs(float(s.corrected) - e) < 4 * float(s.stderr) + 1e-3, (name, s, e)
    return e


def _dense_exact(kernel, bias, act, in_range):
    """Independent reference: a plain flax Dense with these weights, on the Sequential path."""
    kernel = jnp.asarray(kernel, jnp.float32)
    net = nn.Dense(kernel.shape[1])
    top = topology_of(net, {"params": {"kernel": kernel, "bias": jnp.asarray(bias, jnp.float32)}},
                      jnp.zeros((1, kernel.shape[0])))
    return exact.ei_parts(top, "Dense", in_range=in_range, activation=act, **BINS)


class _CNN(nn.Module):
    @nn.compact
    def __call__(self, x):
        h = nn.relu(nn.BatchNorm(use_running_average=True)(nn.Conv(2, (3, 3))(x)))
        h = nn.avg_pool(h, (2, 2), (2, 2)).reshape(x.shape[0], -1)
        h = nn.relu(nn.Dense(4)(h))
        h = nn.relu(h + nn.Dense(4)(h))                       # residual block
        return nn.Dense(3)(h)


def _randomise(variables, seed=3):
    leaves, tree = jax.tree.flatten(variables)
    keys = jax.random.split(jax.random.key(seed), len(leaves))
    leaves = [jax.random.uniform(k, a.shape, minval=0.5, maxval=1.5) if "var" in str(p) else
              0.6 * jax.random.normal(k, a.shape)
              for k, a, p in zip(keys, leaves, jax.tree_util.tree_flatten_with_path(variables)[0])]
    return jax.tree.unflatten(tree, leaves)


def test_linen_cnn_batchnorm_pool_residual():
    x = jnp.zeros((1, 4, 4, 1))
    model = _CNN()
    v = _randomise(model.init(jax.random.key(0), x))
    top = topology_of(model, v, x)
    assert list(top) == ["Conv_0", "Dense_0", "Dense_1", "Dense_2"]
    values = {n: _agrees(top, n) for n in top}
    # Conv_0 by hand: one receptive field (3x3x1 patch -> 2 channels, as on the Sequential
    # path), the conv kernel as a Dense kernel with BatchNorm folded into it.
    p, s = v["params"], v["batch_stats"]["BatchNorm_0"]
    assert top.nodes["Conv_0"]["input"]["shape"] == (1, 3, 3, 1)
    assert top.nodes["Conv_0"]["scope"] == "receptive field"
    g = p["BatchNorm_0"]["scale"] / jnp.sqrt(s["var"] + 1e-5)
    w = p["Conv_0"]["kernel"].reshape(9, 2) * g
    b = (p["Conv_0"]["bias"] - s["mean"]) * g + p["BatchNorm_0"]["bias"]
    assert values["Conv_0"] == pytest.approx(_dense_exact(w, b, "relu", (-10, 10)), rel=1e-4)
    # Dense_1 reads h twice (its product and the skip): kernel W + I.
    d1 = p["Dense_1"]
    assert values["Dense_1"] == pytest.approx(
        _dense_exact(d1["kernel"] + jnp.eye(4), d1["bias"], "relu", (0, 10)), rel=1e-4)
    # Dense_0 reads the pooled map: average pooling folded into its kernel.
    pool = np.zeros((32, 8))
    for i in range(4):
        for j in range(4):
            for c in range(2):
                pool[(i * 4 + j) * 2 + c, ((i // 2) * 2 + j // 2) * 2 + c] = 0.25
    d0 = p["Dense_0"]
    assert values["Dense_0"] == pytest.approx(
        _dense_exact(pool @ np.asarray(d0["kernel"]), d0["bias"], "relu", (0, 10)), rel=1e-4)


class _Norm(nn.Module):
    @nn.compact
    def __call__(self, x):
        h = nn.gelu(nn.Dense(4)(x))
        return nn.Dense(3)(nn.LayerNorm()(h + nn.Dense(4)(h)))


def test_layernorm_gelu_residual():
    x = jnp.zeros((1, 3))
    model = _Norm()
    variables = model.init(jax.random.key(0), x)
    top = topology_of(model, variables, x)
    # flax names Dense(3) before the LayerNorm's Dense(4): it is built first.
    assert list(top) == ["Dense_0", "Dense_2", "Dense_1"]
    for name in top:
        assert np.isfinite(float(_sampled(top, name).corrected))
    # flax's gelu is the tanh form; the layer ending in it is exact (issue 24, item 2)
    assert top.nodes["Dense_0"]["output"]["activation"] == "gelu_tanh"
    d0 = variables["params"]["Dense_0"]
    assert _agrees(top, "Dense_0") == pytest.approx(
        _dense_exact(d0["kernel"], d0["bias"], "gelu_tanh", (-10, 10)), rel=1e-4)
    with pytest.raises(ExactUnavailableError, match="test_traced_topology.py"):
        exact.ei_parts(top, "Dense_2", **BINS)                  # residual + LayerNorm
    _agrees(top, "Dense_1")                                     # LayerNorm's shift + a Dense


class _PreLN(nn.Module):
    @nn.compact
    def __call__(self, x):
        h = nn.Dense(2)(x)
        u = nn.gelu(nn.Dense(8)(nn.LayerNorm()(h)), approximate=False)
        h = h + nn.Dense(2)(u)                     # built before the read-out: Dense_2
        return nn.Dense(3)(h)


def test_pre_ln_residual_is_exact():
    x = jnp.zeros((1, 3))
    variables = _PreLN().init(jax.random.key(0), x)
    top = topology_of(_PreLN(), variables, x)
    # Dense_2, the residual add, folds to [u, h] -> [h, W2 u + b]: its copies of h put all
    # their spread in one input (integrated analytically, ei_jax/_src/exact/dominant.py)
    _agrees(top, "Dense_2")
    # independent: a copy's one nonzero pair is a 1 -> 1 identity layer's (banded closed form)
    mat = exact.ei_parts_matrix(top, "Dense_2", **BINS)
    one = _dense_exact(np.ones((1, 1)), np.zeros(1), "identity", (-10, 10))
    np.testing.assert_allclose(mat[8:, :2], one * np.eye(2), rtol=1e-6, atol=1e-12)
    assert np.all(mat[:8, :2] == 0) and np.all(mat[8:, 2:] == 0)


def test_equinox_mlp_and_cnn():
    eqx = pytest.importorskip("equinox")
    mlp = eqx.nn.MLP(3, 2, 4, 2, activation=jax.nn.sigmoid, key=jax.random.key(0))
    top = topology_of(mlp, jnp.zeros((1, 3)))
    assert list(top) == ["layers/0", "layers/1", "layers/2"]
    values = {n: _agrees(top, n) for n in top}
    lin = mlp.layers[1]
    assert values["layers/1"] == pytest.approx(
        _dense_exact(lin.weight.T, lin.bias, "sigmoid", (0, 1)), rel=1e-4)
    cnn = eqx.nn.Sequential([eqx.nn.Conv2d(1, 2, 3, padding=1, key=jax.random.key(1)),
                             eqx.nn.Lambda(jax.nn.tanh), eqx.nn.Lambda(jnp.ravel),
                             eqx.nn.Linear(32, 2, key=jax.random.key(2))])
    top = topology_of(cnn, jnp.zeros((1, 1, 4, 4)))
    # The conv is one receptive field (3x3 patch, 1 channel), the Linear the whole 2x4x4 map.
    assert [top.nodes[n]["input"]["shape"] for n in top] == [(1, 3, 3, 1), (1, 32)]
    values = {n: _agrees(top, n) for n in top}
    conv = cnn.layers[0]                   # weight (out, in, kh, kw) -> Dense rows (kh, kw, in)
    w = jnp.transpose(conv.weight, (2, 3, 1, 0)).reshape(9, 2)
    assert values["layers/0"] == pytest.approx(
        _dense_exact(w, conv.bias.reshape(2), "tanh", (-10, 10)), rel=1e-4)


class _BNNet(nnx.Module):
    def __init__(self):
        self.l1 = nnx.Linear(3, 4, rngs=nnx.Rngs(0))
        self.bn = nnx.BatchNorm(4, rngs=nnx.Rngs(0))
        self.l2 = nnx.Linear(4, 2, rngs=nnx.Rngs(1))

    def __call__(self, x):
        return self.l2(nnx.tanh(self.bn(self.l1(x))))


def _bn_by_hand(net):
    bn = net.bn
    g = bn.scale[...] / jnp.sqrt(bn.var[...] + bn.epsilon)
    w = net.l1.kernel[...] * g
    b = (net.l1.bias[...] - bn.mean[...]) * g + bn.bias[...]
    return _dense_exact(w, b, "tanh", (-10, 10))


def test_nnx_batchnorm_eval_is_live():
    net = _BNNet()
    net.bn.mean.value = jnp.array([0.1, -0.2, 0.3, 0.0])
    net.bn.var.value = jnp.array([0.5, 2.0, 1.0, 1.5])
    net.eval()
    top = topology_of(net, jnp.zeros((1, 3)))
    assert list(top) == ["l1", "l2"]
    assert _agrees(top, "l1") == pytest.approx(_bn_by_hand(net), rel=1e-4)
    _agrees(top, "l2")
    net.l1.kernel.value = 3.0 * net.l1.kernel[...]                 # new weights: new numbers
    assert exact.ei_parts(top, "l1", **BINS) == pytest.approx(_bn_by_hand(net), rel=1e-4)
    net.bn.train()                                                 # training mode: refused
    top = topology_of(net, jnp.zeros((1, 3)))
    assert top.nodes["l1"]["refused"] is not None and top.nodes["l2"]["refused"] is None
    with pytest.raises(UnsupportedModuleError, match="state"):
        _sampled(top, "l1")
    _sampled(top, "l2")


def test_nnx_sequential_is_live():
    net = nnx.Sequential(nnx.Linear(3, 2, rngs=nnx.Rngs(0)), nnx.sigmoid)
    top = topology_of(net, jnp.zeros((1, 3)))
    before = exact.ei_parts(top, "layers_0", in_range=(0, 1), **BINS)
    net.layers[0].kernel.value = jnp.zeros((3, 2))
    assert exact.ei_parts(top, "layers_0", in_range=(0, 1), **BINS) == 0.0 != before


def test_plain_function_and_training_dropout():
    params = {"w1": 0.8 * jax.random.normal(jax.random.key(0), (3, 4)),
              "w2": 0.8 * jax.random.normal(jax.random.key(1), (4, 2))}

    def fn(p, x):
        return jnp.tanh((2 * jax.nn.sigmoid(x @ p["w1"]) - 1) @ p["w2"])

    top = topology_of(fn, params, jnp.zeros((5, 3)))
    assert list(top) == ["w1", "w2"]
    e = _agrees(top, "w2")              # 2x - 1 folds into w2: kernel 2 W, bias -sum W
    w = params["w2"]
    assert e == pytest.approx(_dense_exact(2 * w, -w.sum(0), "tanh", (0, 1)), rel=1e-4)

    class Drop(nn.Module):
        @nn.compact
        def __call__(self, x):
            h = nn.Dropout(0.5, deterministic=False)(nn.relu(nn.Dense(4)(x)))
            return nn.Dense(2)(nn.relu(nn.Dense(4)(h)))

    x = jnp.zeros((1, 3))
    top = topology_of(Drop(), Drop().init(jax.random.key(0), x), x)
    # The dropout sits between Dense_0's activation and Dense_1: it is in Dense_0's layer.
    refused = [n for n in top if top.nodes[n]["refused"]]
    assert refused == ["Dense_0"]
    with pytest.raises(UnsupportedModuleError, match="random"):
        _sampled(top, "Dense_0")
    for name in ("Dense_1", "Dense_2"):
        _agrees(top, name)
