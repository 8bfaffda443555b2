"""The integer counting kernels (ei_jax/_src/info/counting.py) against a NumPy count."""

import jax.numpy as jnp
import numpy as np
import pytest

import ei_jax
from ei_jax._src.info import counting


@pytest.mark.parametrize("rows, n_in, n_out, in_bins, out_bins", [
    (1, 1, 1, 1, 1), (1023, 3, 2, 8, 8), (2048, 5, 4, 8, 8), (3000, 2, 3, 16, 5), (2500, 4, 1, 64, 64),
])
@pytest.mark.parametrize("method", ["onehot", "bits", "scatter"])
def test_counting_kernels_equal_a_numpy_count(rows, n_in, n_out, in_bins, out_bins, method):
    rng = np.random.default_rng(rows + n_in)
    ix = rng.integers(0, in_bins, (rows, n_in)).astype(np.int32)
    iy = rng.integers(0, out_bins, (rows, n_out)).astype(np.int32)
    vx = rng.random((rows, n_in)) < 0.9
    vy = rng.random((rows, n_out)) < 0.8
    # Every index in one bin: a cell reaches the slice length (the bits kernel's int16 bound).
    ix[:, 0], vx[:, 0] = 0, True
    iy[:, 0], vy[:, 0] = out_bins - 1, True
    want = np.zeros((n_in, n_out, in_bins, out_bins), np.int64)
    for a in range(n_in):
        for b in range(n_out):
            ok = vx[:, a] & vy[:, b]
            np.add.at(want[a, b], (ix[ok, a], iy[ok, b]), 1)
    got = counting.pair_counts(jnp.asarray(ix), jnp.asarray(vx), jnp.asarray(iy), jnp.asarray(vy),
                               in_bins=in_bins, out_bins=out_bins, method=method)
    assert got.dtype == jnp.int32
    np.testing.assert_array_equal(np.asarray(got), want)
    assert want[0, 0, 0, out_bins - 1] == rows




def test_out_of_range_counts_each_side_over_valid_samples_only():
    side = jnp.array([[-1, 0], [1, 1], [0, -1], [1, 0]])
    valid = jnp.array([[True], [True], [False], [True]])
    below, above = counting.out_of_range(side, valid)
    np.testing.assert_array_equal(np.asarray(below), [1, 0])
    np.testing.assert_array_equal(np.asarray(above), [2, 1])
    assert below.dtype == jnp.int32


def test_unknown_method_is_a_typed_error():
    ix = jnp.zeros((4, 1), jnp.int32)
    v = jnp.ones((4, 1), bool)
    with pytest.raises(ei_jax.errors.InvalidOptionError, match="method must be one of"):
        counting.pair_counts(ix, v, ix, v, in_bins=2, out_bins=2, method="fast")
