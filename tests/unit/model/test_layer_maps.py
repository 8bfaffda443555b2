"""The pure layer maps against NumPy and against Flax's own layers."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from ei_jax import Flatten
from ei_jax._src.model.layer_maps import CONV, DENSE, apply_of, conv_patch_apply, dense_apply, stack_apply

RNG = np.random.default_rng(11)


def test_dense_apply_is_the_affine_map():
    k, b = RNG.normal(size=(5, 3)).astype(np.float32), RNG.normal(size=3).astype(np.float32)
    x = RNG.normal(size=(4, 5)).astype(np.float32)
    want = np.einsum("ci,ij->cj", x.astype(np.float64), k) + b
    np.testing.assert_allclose(np.asarray(dense_apply({"kernel": k, "bias": b}, jnp.asarray(x))), want, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(dense_apply({"kernel": k}, jnp.asarray(x))), want - b, rtol=1e-5, atol=1e-6)


def test_conv_patch_apply_is_flax_conv_at_one_position():
    conv = nn.Conv(4, (3, 2), padding="VALID")
    patches = jnp.asarray(RNG.normal(size=(6, 3, 2, 2)), jnp.float32)  # one receptive field each
    variables = conv.init(jax.random.key(0), patches)
    want = conv.apply(variables, patches)[:, 0, 0, :]  # VALID on a (3, 2) image: one position
    got = conv_patch_apply(variables["params"], patches)
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-5, atol=1e-6)


def test_stack_apply_composes_like_the_network_and_is_cached():
    net = nn.Sequential([nn.Conv(3, (2, 2), padding="VALID"), nn.tanh, Flatten(), nn.Dense(2), nn.sigmoid])
    x = jnp.asarray(RNG.normal(size=(5, 2, 2, 1)), jnp.float32)  # a 2x2 image: the conv sees one patch
    variables = net.init(jax.random.key(1), x)
    p = variables["params"]
    f = stack_apply((CONV, DENSE), ("tanh", "sigmoid"))
    np.testing.assert_allclose(np.asarray(f((p["layers_0"], p["layers_3"]), x)),
                               np.asarray(net.apply(variables, x)), rtol=1e-5, atol=1e-6)
    assert stack_apply((CONV, DENSE), ("tanh", "sigmoid")) is f
    # A callable activation is used as given; rank > 2 inputs are flattened before a dense layer.
    g = stack_apply((DENSE,), (jax.nn.softplus,))
    k = RNG.normal(size=(4, 2)).astype(np.float32)
    x4 = jnp.asarray(RNG.normal(size=(3, 2, 2, 1)), jnp.float32)
    np.testing.assert_allclose(np.asarray(g(({"kernel": k},), x4)),
                               np.log1p(np.exp(np.asarray(x4).reshape(3, 4) @ k)), rtol=1e-5)
    assert apply_of(DENSE) is dense_apply and apply_of(CONV) is conv_patch_apply
