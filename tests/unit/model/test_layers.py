"""ei_jax.Flatten / AvgPool / MaxPool: values against a loop written out in NumPy, typed errors.

(How topology_of sees through these layers is in tests/unit/model/test_pooling_topology.py.)
"""

import itertools

import jax.numpy as jnp
import numpy as np
import pytest

import ei_jax
from ei_jax import AvgPool, Flatten, MaxPool
from ei_jax._src.base.errors import InvalidWindowError


def _pool_by_loops(x, window, strides, padding, reduce, fill, count_include_pad=True):
    """Pooling of NHWC images, one output position at a time (the definition, no JAX)."""
    (pt, pb), (pl, pr) = padding
    b, h, w, c = x.shape
    padded = np.full((b, h + pt + pb, w + pl + pr, c), fill, np.float64)
    padded[:, pt:pt + h, pl:pl + w] = x
    real = np.zeros(padded.shape[1:3])
    real[pt:pt + h, pl:pl + w] = 1
    oh = (h + pt + pb - window[0]) // strides[0] + 1
    ow = (w + pl + pr - window[1]) // strides[1] + 1
    out = np.zeros((b, oh, ow, c))
    for i, j in itertools.product(range(oh), range(ow)):
        rows = slice(i * strides[0], i * strides[0] + window[0])
        cols = slice(j * strides[1], j * strides[1] + window[1])
        block = padded[:, rows, cols]
        if reduce == "max":
            out[:, i, j] = block.max(axis=(1, 2))
        else:
            n = window[0] * window[1] if count_include_pad else real[rows, cols].sum()
            out[:, i, j] = block.sum(axis=(1, 2)) / n
    return out


X = np.random.default_rng(5).normal(size=(2, 7, 6, 3)).astype(np.float32)


@pytest.mark.parametrize("window, strides, padding", [
    (2, None, 0), ((3, 2), (2, 1), (1, 0)), (3, 1, ((1, 0), (2, 1))), ((2, 3), 3, 1)])
def test_pooling_equals_the_loop_definition(window, strides, padding):
    mp, ap = MaxPool(window, strides, padding), AvgPool(window, strides, padding)
    np.testing.assert_allclose(np.asarray(mp(jnp.asarray(X))),
                               _pool_by_loops(X, mp.window, mp.strides, mp.padding, "max", -np.inf), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(ap(jnp.asarray(X))),
                               _pool_by_loops(X, ap.window, ap.strides, ap.padding, "avg", 0.0), rtol=1e-5, atol=1e-6)
    exclude = AvgPool(window, strides, padding, count_include_pad=False)
    np.testing.assert_allclose(np.asarray(exclude(jnp.asarray(X))),
                               _pool_by_loops(X, ap.window, ap.strides, ap.padding, "avg", 0.0, False),
                               rtol=1e-5, atol=1e-6)


def test_both_poolings_normalise_their_arguments_alike():
    for cls in (AvgPool, MaxPool):
        p = cls(3, padding=(1, 2))
        assert (p.window, p.strides, p.padding) == ((3, 3), (3, 3), ((1, 1), (2, 2)))
        assert cls((2, 3), np.int64(1), [[0, 1], [1, 0]]) == cls((2, 3), (1, 1), ((0, 1), (1, 0)))
        assert hash(cls(2)) == hash(cls((2, 2), (2, 2), 0))


@pytest.mark.parametrize("kwargs, field", [
    (dict(window=0), "window"), (dict(window="2"), "window"), (dict(window=(2, 2, 2)), "window"),
    (dict(window=2.0), "window"), (dict(window=True), "window"), (dict(window=2, strides=(1, 0)), "strides"),
    (dict(window=2, padding=-1), "padding"), (dict(window=2, padding=((1, 1), (1,))), "padding"),
    (dict(window=2, padding=0.5), "padding")])
@pytest.mark.parametrize("cls", [AvgPool, MaxPool])
def test_bad_window_strides_or_padding_raise_a_typed_error(cls, kwargs, field):
    with pytest.raises(InvalidWindowError, match=f"^{field} must be") as err:
        cls(**kwargs)
    assert isinstance(err.value, (ei_jax.EIJaxError)) and isinstance(err.value, TypeError)
    assert isinstance(err.value, ValueError)


@pytest.mark.parametrize("layer", [AvgPool(2), MaxPool(2)])
def test_pooling_a_non_image_says_what_shape_it_wants(layer):
    with pytest.raises(ei_jax.errors.ShapeMismatchError, match=r"\(batch, height, width, channels\).*\(3, 4\)"):
        layer(jnp.ones((3, 4)))


def test_flatten_orders():
    x = jnp.asarray(X)
    np.testing.assert_array_equal(np.asarray(Flatten()(x)), X.reshape(2, -1))
    np.testing.assert_array_equal(np.asarray(Flatten(channels_first=True)(x)), X.transpose(0, 3, 1, 2).reshape(2, -1))
    # Below rank 4 there is no channel axis to move: the same as Flatten().
    x3 = jnp.asarray(X[..., 0])
    np.testing.assert_array_equal(np.asarray(Flatten(channels_first=True)(x3)), X[..., 0].reshape(2, -1))
