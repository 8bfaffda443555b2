"""topology_of: deep-ei's node layout for linen and NNX networks, and clear refusals."""

import jax
import jax.numpy as jnp
import flax.linen as nn
import numpy as np
import pytest
from flax import nnx

import ei_jax
from ei_jax._src.base.errors import InvalidCallError
from ei_jax._src.model.layer_maps import dense_apply

X0 = jnp.zeros((1, 6))


def _linen(model):
    return ei_jax.topology_of(model, model.init(jax.random.key(0), X0), X0)


def test_sequential_layout_matches_deep_ei():
    net = nn.Sequential([nn.Dense(4, use_bias=False), nn.sigmoid, nn.Dense(3), nn.relu, nn.Dense(2), jnp.tanh])
    top = _linen(net)
    assert list(top) == ["layers_0", "layers_2", "layers_4"]
    assert list(top.edges) == [("layers_0", "layers_2"), ("layers_2", "layers_4")]
    n0, n1, n2 = (top.nodes[n] for n in top)
    assert n0["input"] == {"activation": None, "shape": (1, 6)}
    assert n0["output"] == {"activation": "sigmoid", "shape": (1, 4)}
    assert n1["input"]["activation"] == "sigmoid" and n1["output"]["activation"] == "relu"
    assert n2["output"] == {"activation": "tanh", "shape": (1, 2)}
    assert set(n1["params"]) == {"kernel", "bias"} and set(n0["params"]) == {"kernel"}
    # Each node can be applied alone and reproduces the network.
    x = jax.random.uniform(jax.random.key(1), (7, 6))
    h = jax.nn.sigmoid(n0["apply"](n0["params"], x))
    h = jax.nn.relu(n1["apply"](n1["params"], h))
    out = jnp.tanh(n2["apply"](n2["params"], h))
    np.testing.assert_allclose(out, net.apply(net.init(jax.random.key(0), X0), x), atol=1e-6)


def test_custom_linen_module_activations_are_found_by_probing():
    class Net(nn.Module):
        @nn.compact
        def __call__(self, x):
            x = nn.tanh(nn.Dense(5, name="hidden")(x))
            x = nn.relu(nn.Dense(4)(x))
            return nn.Dense(2, name="out")(x)

    top = _linen(Net())
    assert list(top) == ["hidden", "Dense_0", "out"]
    assert [top.nodes[n]["output"]["activation"] for n in top] == ["tanh", "relu", None]


def test_nnx_sequential_and_custom_module():
    seq = nnx.Sequential(nnx.Linear(6, 4, rngs=nnx.Rngs(0)), nnx.sigmoid, nnx.Linear(4, 2, rngs=nnx.Rngs(1)))
    top = ei_jax.topology_of(seq, X0)
    assert list(top) == ["layers_0", "layers_2"]
    assert top.nodes["layers_0"]["output"] == {"activation": "sigmoid", "shape": (1, 4)}
    np.testing.assert_array_equal(top.nodes["layers_2"]["params"]["kernel"], seq.layers[2].kernel[...])

    class Net(nnx.Module):
        def __init__(self):
            self.a = nnx.Linear(6, 3, rngs=nnx.Rngs(2))
            self.b = nnx.Linear(3, 2, use_bias=False, rngs=nnx.Rngs(3))

        def __call__(self, x):
            return jax.nn.sigmoid(self.b(jnp.tanh(self.a(x))))

    top = ei_jax.topology_of(Net(), X0)
    assert list(top) == ["a", "b"]
    assert top.nodes["b"]["input"] == {"activation": "tanh", "shape": (1, 3)}
    assert top.nodes["b"]["output"]["activation"] == "sigmoid"


def test_single_layers():
    assert list(_linen(nn.Dense(3))) == ["Dense"]
    assert list(ei_jax.topology_of(nnx.Linear(6, 3, rngs=nnx.Rngs(0)), X0)) == ["Linear"]


class _Skip(nn.Module):
    @nn.compact
    def __call__(self, x):
        h = nn.Dense(6)(x)
        return nn.Dense(2)(nn.sigmoid(h) + x)


class _Twice(nn.Module):
    @nn.compact
    def __call__(self, x):
        d = nn.Dense(6)
        return d(nn.sigmoid(d(x)))


class _Norm(nn.Module):
    @nn.compact
    def __call__(self, x):
        return nn.Dense(2)(nn.LayerNorm()(nn.Dense(4)(x)))


class _Attention(nn.Module):
    @nn.compact
    def __call__(self, x):
        h = x[:, None, :]
        return nn.Dense(2)(nn.MultiHeadDotProductAttention(num_heads=1, qkv_features=6)(h)[:, 0, :])


#: Structures the module recorder refuses: the traced path measures every layer; the layers
#: that are one f(x @ W + b) are exact, the others name the operation that is not.
TRACED = {
    "skip": (_Skip(), {"Dense_1"}),
    "twice": (_Twice(), {"Dense_0", "Dense_0_2"}),
    "norm": (_Norm(), {"Dense_0"}),
    "attention": (_Attention(), {"MultiHeadDotProductAttention_0/out", "Dense_0"}),
    "softplus": (nn.Sequential([nn.Dense(3), jax.nn.softplus, nn.Dense(2)]), {"layers_0", "layers_2"}),
    "two_activations": (nn.Sequential([nn.Dense(3), nn.relu, nn.sigmoid, nn.Dense(2)]), {"layers_3"}),
}
RANGES = dict(in_range=(-1.0, 1.0), in_bins=4, out_range=(-10.0, 10.0), out_bins=4)


@pytest.mark.parametrize("name", list(TRACED))
def test_structures_the_recorder_refused_are_traced_and_measured(name):
    model, exact_layers = TRACED[name]
    top = _linen(model)
    assert exact_layers < set(top) or exact_layers == set(top)
    for layer in top:
        sampled = ei_jax.ei_parts(jax.random.key(0), top, layer, samples=20_000, **RANGES)
        assert np.isfinite(sampled) and sampled >= 0
        if layer in exact_layers:
            # The plug-in's upward bias at 16 cells a pair and 20,000 samples is < 0.01 bits a
            # pair; its noise is smaller still: 0.1 bits is a wide margin for <= 12 pairs.
            exact = ei_jax.exact.ei_parts(top, layer, **RANGES)
            assert abs(sampled - exact) < 0.1, (layer, sampled, exact)
        else:
            with pytest.raises(ei_jax.errors.ExactUnavailableError, match="not one f\\(x @ W \\+ b\\)"):
                ei_jax.exact.ei_parts(top, layer, **RANGES)


def test_wrong_call_signatures_say_how_to_call():
    net = nn.Dense(3)
    with pytest.raises(TypeError, match="variables"):
        ei_jax.topology_of(net, X0)
    with pytest.raises(TypeError, match="NNX"):
        ei_jax.topology_of(nnx.Linear(6, 3, rngs=nnx.Rngs(0)), {}, X0)
    with pytest.raises(TypeError, match="bridges.from_torch"):
        ei_jax.topology_of(object(), X0)


# --- fixes: non-finite weights, errors that say the way out, the node layout ---------------

@pytest.mark.parametrize("api", ["linen", "nnx"])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_weights_are_named_not_called_unsupported(api, bad):
    # Before: UnsupportedModuleError "does not feed the next layer directly" (NaN != NaN).
    if api == "linen":
        net = nn.Sequential([nn.Dense(4), nn.sigmoid, nn.Dense(3)])
        variables = net.init(jax.random.key(0), X0)
        kernel = variables["params"]["layers_2"]["kernel"]
        variables["params"]["layers_2"]["kernel"] = kernel.at[1, 2].set(bad)
        call = lambda: ei_jax.topology_of(net, variables, X0)  # noqa: E731
    else:
        net = nnx.Sequential(nnx.Linear(6, 4, rngs=nnx.Rngs(0)), nnx.sigmoid, nnx.Linear(4, 3, rngs=nnx.Rngs(1)))
        net.layers[2].bias[...] = net.layers[2].bias[...].at[0].set(bad)
        call = lambda: ei_jax.topology_of(net, X0)  # noqa: E731
    with pytest.raises(ei_jax.errors.NonFiniteParamsError, match="'layers_2'.*finite weights") as err:
        call()
    assert isinstance(err.value, ValueError)
    assert ("'kernel'" if api == "linen" else "'bias'") in str(err.value)


def test_the_suggested_way_out_measures_an_unsupported_model():
    # The skip-connection net cannot be a topology, but the pure core measures it as one map.
    model = _Skip()
    variables = model.init(jax.random.key(0), X0)
    common = dict(in_shape=(6,), in_range=(0.0, 1.0), in_bins=8, out_range=(-10.0, 10.0), out_bins=8,
                  samples=4096)
    got = ei_jax.core.ei_parts(jax.random.key(1), lambda p, x: model.apply(p, x), variables, **common)
    # Independent check: the same map written out by hand from the weights.
    p = variables["params"]

    def by_hand(p, x):
        h = jax.nn.sigmoid(x @ p["Dense_0"]["kernel"] + p["Dense_0"]["bias"][None, :])
        return (h + x) @ p["Dense_1"]["kernel"] + p["Dense_1"]["bias"][None, :]

    want = ei_jax.core.ei_parts(jax.random.key(1), by_hand, p, **common)
    np.testing.assert_allclose(float(got), float(want), rtol=1e-6)
    assert np.isfinite(float(got)) and float(got) > 0


def test_node_layout_has_exactly_the_documented_attributes():
    top = _linen(nn.Sequential([nn.Dense(4), nn.relu, nn.Dense(2)]))
    assert set(top.graph) == {"order"} and top.graph["order"] == ["layers_0", "layers_2"]
    for name in top:
        assert set(top.nodes[name]) == {"input", "output", "kind", "module", "path", "params", "apply", "after"}
    assert top.nodes["layers_0"]["apply"] is dense_apply


def test_wrong_call_signatures_raise_typed_errors():
    with pytest.raises(InvalidCallError, match="model.init"):
        ei_jax.topology_of(nn.Dense(3), X0)
    with pytest.raises(InvalidCallError, match="'params' entry. Got int"):
        ei_jax.topology_of(nn.Dense(3), 5, X0)
    with pytest.raises(InvalidCallError, match="no variables"):
        ei_jax.topology_of(nnx.Linear(6, 3, rngs=nnx.Rngs(0)), {}, X0)
    with pytest.raises(ei_jax.errors.UnsupportedModuleError, match="bridges.from_torch"):
        ei_jax.topology_of(object(), X0)
    with pytest.raises(ei_jax.errors.ShapeMismatchError, match="leading batch axis"):
        ei_jax.topology_of(nnx.Linear(6, 3, rngs=nnx.Rngs(0)), jnp.zeros(6))
