"""The vector statistics loop (ei_jax/_src/sampled/vector_loops.py): device path vs host path, rounds."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ei_jax import core
from ei_jax._src.info import row_codes
from ei_jax._src.sampled import spec
from ei_jax._src.sampled import vector_loops as vector_stats
from ei_jax._src.core.measures import vector_rows


def sigmoid_apply(w, x):
    return jax.nn.sigmoid(x @ w)


@pytest.fixture(scope="module")
def weights():
    return jax.random.normal(jax.random.key(5), (6, 4)) * 2


@pytest.mark.parametrize("samples", [5_000, 40_000])
def test_device_entropy_path_equals_host_path_for_any_chunk(weights, samples):
    """The GPU/TPU path (integer compaction + on-device sort) run here on CPU: it must give the
    host (NumPy float64) path's numbers, and the same float32 bits for any chunk size."""
    spec_kw = dict(in_shape=(6,), in_range=(0, 1), in_bins=4, out_range=(0, 1), out_bins=4, mode="vector")
    stop = samples
    results = []
    for bs in (1024, 3072, 8192):
        sp = spec.make_spec(sigmoid_apply, weights, batch_size=bs, **spec_kw)
        blocks = vector_stats.spanned_blocks(0, stop)
        n_steps = vector_stats.capacity_steps(blocks, sp.blocks_per_step, 1)
        rows_bound = vector_stats.rows_bound(blocks)
        kw = dict(spec=sp, pair_spec=None, n_steps=n_steps, groups=(((0, 1, 2, 3, 4, 5), (0, 1, 2, 3)),),
                  bound=rows_bound)
        args = (jax.random.key(3), weights, jnp.int32(0), jnp.int32(stop))
        packed, valid, *_ = vector_stats.vector_loop(*args, compact=True, **kw)
        raw, raw_valid, *_ = vector_stats.vector_loop(*args, compact=False, **kw)
        device = np.asarray(row_codes.vector_mi_device(packed, valid))
        host = row_codes.vector_mi_numpy(np.asarray(raw), np.asarray(raw_valid))
        np.testing.assert_allclose(device, host, atol=2e-5)
        assert host[0] > 0.5
        results.append(device)
    for r in results[1:]:
        np.testing.assert_array_equal(r, results[0])


def test_rounds_of_rows_give_the_vector_mi_of_one_run(weights):
    """Rows of [0, 7000) and [7000, 20000) together give the MI of one run of 20,000 (the
    automatic mode adds rounds instead of recounting)."""
    kw = dict(in_shape=(6,), in_range=(0, 1), in_bins=4, out_range=(0, 1), out_bins=4)
    key = jax.random.key(9)
    parts = [vector_rows(key, sigmoid_apply, weights, samples=n, start=s, **kw) for s, n in ((0, 7000), (7000, 13000))]
    rows = np.concatenate([np.asarray(c)[np.asarray(v)] for c, v, *_ in parts])
    joined = row_codes.vector_mi(jnp.asarray(rows), jnp.ones((len(rows),), bool))
    whole = core.vector_stats(key, sigmoid_apply, weights, samples=20_000, **kw)
    assert int(whole.rows) == len(rows)
    np.testing.assert_array_equal(np.asarray(joined), np.asarray(whole.mi))
    np.testing.assert_array_equal(np.asarray(parts[0][2]) + np.asarray(parts[1][2]), np.asarray(whole.below))
