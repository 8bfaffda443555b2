"""ei_jax.Flatten / AvgPool / MaxPool and how topology_of sees through them (no torch needed).

The structure layers are what bridges builds converted conv nets from; here they are used in
hand-written linen and NNX networks, Sequential and custom, to check the topology's node
layout (``"after"``, structure before the first layer, activations carried through pooling) and its errors.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import ei_jax
from ei_jax import AvgPool, Flatten, MaxPool, topology_of


def _linen_top(model, shape):
    x0 = jnp.zeros(shape)
    return topology_of(model, model.init(jax.random.key(0), x0), x0)


def test_pooling_matches_a_direct_computation():
    x = jnp.asarray(np.random.default_rng(0).normal(size=(2, 5, 6, 3)), jnp.float32)
    # MaxPool(2), stride 2, no padding: the max of each 2x2 block (the last row/column drops).
    want = np.asarray(x)[:, :4, :6].reshape(2, 2, 2, 3, 2, 3).max(axis=(2, 4))
    np.testing.assert_array_equal(np.asarray(MaxPool(2)(x)), want)
    # AvgPool with padding 1: count_include_pad divides corners by 4, otherwise by 1 (one real value).
    ones = jnp.ones((1, 2, 2, 1))
    assert float(AvgPool(2, padding=1)(ones)[0, 0, 0, 0]) == 0.25
    assert float(AvgPool(2, padding=1, count_include_pad=False)(ones)[0, 0, 0, 0]) == 1.0
    assert AvgPool(2) == AvgPool((2, 2), (2, 2), ((0, 0), (0, 0)))  # normalised, hashable
    # Flatten(channels_first) is torch's NCHW order.
    np.testing.assert_array_equal(np.asarray(Flatten(channels_first=True)(x)),
                                  np.asarray(x).transpose(0, 3, 1, 2).reshape(2, -1))
    with pytest.raises(ValueError, match="images"):
        MaxPool(2)(jnp.ones((3, 4)))


def test_custom_module_activation_after_max_pool():
    class Net(nn.Module):
        @nn.compact
        def __call__(self, x):
            x = MaxPool(2)(nn.Conv(3, (3, 3), padding="VALID")(x))
            x = Flatten(channels_first=True)(nn.sigmoid(x))  # commutes with max pooling
            return nn.tanh(nn.Dense(4)(x))

    top = _linen_top(Net(), (1, 8, 8, 2))
    conv, dense = (top.nodes[n] for n in top)
    assert list(top) == ["Conv_0", "Dense_0"]
    assert conv["output"] == {"activation": "sigmoid", "shape": (1, 3)}
    assert conv["input"]["shape"] == (1, 3, 3, 2)
    assert conv["after"] == (MaxPool(2), Flatten(channels_first=True))
    assert dense["input"] == {"activation": "sigmoid", "shape": (1, 27)}
    assert dense["output"]["activation"] == "tanh"


RANGES = dict(in_range=(-1.0, 1.0), in_bins=4, out_range=(-10.0, 10.0), out_bins=4)


@pytest.fixture
def _standard_promotion():
    # flax's own avg_pool mixes int and float: the default promotion its users run with.
    with jax.numpy_dtype_promotion("standard"):
        yield


@pytest.mark.usefixtures("_standard_promotion")
@pytest.mark.parametrize("api", ["linen", "nnx"])
def test_activation_after_average_pooling_is_traced_and_exact(api):
    """The recorder refuses an activation after AvgPool; the traced path folds the pooling (a
    generic summing reduce_window) into the layer, which is exact -- over its whole map, as the
    pooling mixes positions -- and equals the same network with Flax's own avg_pool."""
    def flax_pool(h):
        return nn.avg_pool(h, (2, 2), (2, 2))

    if api == "linen":
        def make(pool):
            return nn.Sequential([nn.Conv(3, (3, 3)), pool, nn.sigmoid, Flatten(), nn.Dense(2)])

        x0 = jnp.zeros((1, 6, 6, 1))
        variables = make(AvgPool(2)).init(jax.random.key(0), x0)
        top, ref = (topology_of(make(p), variables, x0) for p in (AvgPool(2), flax_pool))
    else:
        def make(pool):
            r = nnx.Rngs(0)
            return nnx.Sequential(nnx.Conv(1, 3, (3, 3), rngs=r), pool, nnx.sigmoid, Flatten(),
                                  nnx.Linear(27, 2, rngs=r))

        top, ref = (topology_of(make(p), jnp.zeros((1, 6, 6, 1))) for p in (AvgPool(2), flax_pool))
    first, last = list(top)
    assert top.nodes[first]["scope"] == "whole map"
    assert "reduce_window_sum" in top.nodes[first]["whole_map"]
    for layer in (first, last):
        assert ei_jax.ei_parts(jax.random.key(0), top, layer, samples=4096, **RANGES) >= 0
        want = ei_jax.exact.ei_parts(ref, layer, **RANGES)
        assert ei_jax.exact.ei_parts(top, layer, **RANGES) == pytest.approx(want, abs=1e-12)
    assert ei_jax.exact.ei_parts(top, last, **RANGES) > 0


def test_structure_before_the_first_layer_and_nnx_names():
    r = nnx.Rngs(0)
    model = nnx.Sequential(Flatten(channels_first=True), nnx.Linear(12, 3, rngs=r), nnx.relu,
                           nnx.Linear(3, 2, rngs=r))
    top = topology_of(model, jnp.zeros((1, 2, 2, 3)))
    assert top.nodes["layers_1"]["input"] == {"activation": None, "shape": (1, 12)}
    assert list(top) == ["layers_1", "layers_3"]
    assert top.nodes["layers_1"]["after"] == () and top.nodes["layers_3"]["input"]["activation"] == "relu"


def test_unknown_items_and_hidden_structure_are_traced():
    """A reshape lambda and a pooling hidden in a custom module: the recorder refuses them, the
    traced path measures every layer (the reshape is linear and folds; the max pooling is not)."""
    reshaped = _linen_top(nn.Sequential([nn.Conv(2, (3, 3)), lambda v: v.reshape(v.shape[0], -1),
                                         nn.Dense(2)]), (1, 5, 5, 1))
    for layer in reshaped:
        assert ei_jax.exact.ei_parts(reshaped, layer, **RANGES) > 0

    class Pooled(nn.Module):  # a pooling the Sequential's list does not show
        @nn.compact
        def __call__(self, x):
            return MaxPool(2)(nn.Conv(2, (3, 3))(x))

    pooled = _linen_top(nn.Sequential([Pooled(), Flatten(), nn.Dense(2)]), (1, 6, 6, 1))
    first, last = list(pooled)
    assert ei_jax.ei_parts(jax.random.key(0), pooled, first, samples=4096, **RANGES) > 0
    with pytest.raises(ei_jax.errors.ExactUnavailableError, match="reduce_window"):
        ei_jax.exact.ei_parts(pooled, first, **RANGES)
    assert ei_jax.exact.ei_parts(pooled, last, **RANGES) > 0
