"""Invariants: determinism, batching, vmap, recompilation, estimator bounds, permutations."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ei_jax
from ei_jax import core
from ei_jax._src.sampled import pairwise_loops as pairwise_stats
from ei_jax._src.measures import sampling

KW = dict(in_range=(0, 1), in_bins=8, out_range=(0, 1), out_bins=8)


def sigmoid_apply(w, x):
    return jax.nn.sigmoid(x @ w)


@pytest.fixture(scope="module")
def weights():
    return jax.random.normal(jax.random.key(5), (6, 4)) * 2


@pytest.mark.parametrize("samples", [12_345, 4096, 1])
def test_batch_size_never_changes_pairwise_results(weights, samples):
    results = [np.asarray(core.pairwise_stats(jax.random.key(1), sigmoid_apply, weights, in_shape=(6,),
                                              samples=samples, batch_size=bs, **KW).counts)
               for bs in (100, 1000, 4096, None)]
    for r in results[1:]:
        np.testing.assert_array_equal(r, results[0])
    assert results[0][0, 0].sum() == samples


def test_batch_size_never_changes_sensitivity_or_vector(weights):
    sens = [np.asarray(core.sensitivity_stats(jax.random.key(2), sigmoid_apply, weights, in_shape=(6,),
                                              samples=3001, batch_size=bs, **KW).counts)
            for bs in (100, 4096, None)]
    for r in sens[1:]:
        np.testing.assert_array_equal(r, sens[0])
    vec = [float(core.vector_ei(jax.random.key(3), sigmoid_apply, weights, in_shape=(6,), samples=5001,
                                batch_size=bs, **KW)) for bs in (100, 1000, None)]
    assert vec[0] == vec[1] == vec[2]


def test_consecutive_runs_add_up_to_one_run(weights):
    kw = dict(in_shape=(6,), **KW)
    whole = core.pairwise_stats(jax.random.key(4), sigmoid_apply, weights, samples=10_000, **kw).counts
    a = core.pairwise_stats(jax.random.key(4), sigmoid_apply, weights, samples=3_333, **kw).counts
    b = core.pairwise_stats(jax.random.key(4), sigmoid_apply, weights, samples=6_667, start=3_333, **kw).counts
    np.testing.assert_array_equal(np.asarray(whole), np.asarray(a + b))


def test_pieces_widen_counts_without_changing_them(monkeypatch, weights):
    """The host adds int32 per-call counts in int64: a tiny piece size gives identical counts."""
    import flax.linen as nn

    net = nn.Dense(4, use_bias=False)
    x0 = jnp.zeros((1, 6))
    top = ei_jax.topology_of(net, {"params": {"kernel": weights}}, x0)
    args = dict(samples=10_000, activation="sigmoid", **KW)
    whole = ei_jax.ei_parts_matrix(jax.random.key(6), top, "Dense", **args)
    monkeypatch.setattr(sampling, "PIECE", 1500)
    pieces = ei_jax.ei_parts_matrix(jax.random.key(6), top, "Dense", **args)
    np.testing.assert_array_equal(whole, pieces)


def test_vmap_over_stacked_weights_equals_python_loop():
    ws = jax.random.normal(jax.random.key(8), (8, 5, 3)) * 3
    kw = dict(in_shape=(5,), samples=20_000, **KW)
    batched = jax.vmap(lambda w: core.ei_parts(jax.random.key(9), sigmoid_apply, w, **kw))(ws)
    looped = [core.ei_parts(jax.random.key(9), sigmoid_apply, w, **kw) for w in ws]
    np.testing.assert_allclose(np.asarray(batched), np.asarray(looped), rtol=1e-6)
    sb = jax.vmap(lambda w: core.sensitivity(jax.random.key(9), sigmoid_apply, w, **kw))(ws)
    sl = [core.sensitivity(jax.random.key(9), sigmoid_apply, w, **kw) for w in ws]
    np.testing.assert_allclose(np.asarray(sb), np.asarray(sl), rtol=1e-6)


def test_map_params_groups_a_stack_and_equals_a_loop():
    ws = jax.random.normal(jax.random.key(14), (11, 5, 3)) * 3
    kw = dict(in_shape=(5,), samples=4000, **KW)
    fn = lambda w: core.ei_parts(jax.random.key(9), sigmoid_apply, w, **kw)  # noqa: E731
    grouped = core.map_params(fn, ws, group_size=4)  # 11 = 4 + 4 + 3: groups need not divide N
    looped = [fn(w) for w in ws]
    np.testing.assert_allclose(np.asarray(grouped), np.asarray(looped), rtol=1e-5)  # float32 MI
    counts = lambda w: core.pairwise_stats(jax.random.key(9), sigmoid_apply, w, **kw).counts  # noqa: E731
    np.testing.assert_array_equal(np.asarray(core.map_params(counts, ws, group_size=4)),
                                  np.stack([np.asarray(counts(w)) for w in ws]))
    # The key as a shared (unmapped) argument: the same numbers, whatever the key is.
    shared = lambda w, key: core.pairwise_stats(key, sigmoid_apply, w, **kw).counts  # noqa: E731
    np.testing.assert_array_equal(np.asarray(core.map_params(shared, ws, jax.random.key(9), group_size=4)),
                                  np.stack([np.asarray(counts(w)) for w in ws]))
    other = np.asarray(core.map_params(shared, ws[:2], jax.random.key(10)))
    np.testing.assert_array_equal(other[1], np.asarray(shared(ws[1], jax.random.key(10))))
    assert not np.array_equal(other[1], np.asarray(counts(ws[1])))
    with pytest.raises(ei_jax.errors.ShapeMismatchError, match="leading"):
        core.map_params(fn, {"a": jnp.ones((3, 2)), "b": jnp.ones((4, 2))})


def test_vmap_over_keys_gives_independent_estimates(weights):
    keys = jax.random.split(jax.random.key(10), 4)
    vals = jax.vmap(lambda k: core.ei_parts(k, sigmoid_apply, weights, in_shape=(6,), samples=5000, **KW))(keys)
    assert len(set(np.asarray(vals).tolist())) == 4


def test_new_weights_and_sample_counts_do_not_recompile(weights):
    # A run of at most one block and a run of many full steps: the two step sizes (small runs
    # take a power-of-two step of 1 to 16 blocks, larger ones the full step). Once both are
    # compiled, new weights and sample counts of either kind compile nothing, whatever ran
    # before this test.
    kw = dict(in_shape=(6,), **KW)
    core.ei_parts(jax.random.key(0), sigmoid_apply, weights, samples=1000, **kw)
    core.ei_parts(jax.random.key(0), sigmoid_apply, weights, samples=777_777, **kw)
    before = pairwise_stats.pair_loop._cache_size()
    core.ei_parts(jax.random.key(1), sigmoid_apply, weights * 2 + 1, samples=1_234_567, **kw)
    core.ei_parts(jax.random.key(2), sigmoid_apply, -weights, samples=5, **kw)
    core.ei_parts(jax.random.key(3), sigmoid_apply, weights, samples=999, **kw)
    assert pairwise_stats.pair_loop._cache_size() == before


def test_convenient_api_does_not_recompile_for_a_new_checkpoint():
    import flax.linen as nn

    net = nn.Sequential([nn.Dense(4, use_bias=False), nn.sigmoid])
    x0 = jnp.zeros((1, 3))
    args = dict(samples=2000, in_range=(0, 1), in_bins=8, out_bins=8)
    v1 = net.init(jax.random.key(0), x0)
    ei_jax.ei_parts(jax.random.key(0), ei_jax.topology_of(net, v1, x0), "layers_0", **args)
    before = pairwise_stats.pair_loop._cache_size()
    v2 = net.init(jax.random.key(1), x0)
    ei_jax.ei_parts(jax.random.key(0), ei_jax.topology_of(net, v2, x0), "layers_0", **args)
    assert pairwise_stats.pair_loop._cache_size() == before


def test_linen_and_nnx_versions_give_the_same_numbers():
    import flax.linen as nn
    from flax import nnx

    lin = nn.Sequential([nn.Dense(6, use_bias=True), nn.tanh, nn.Dense(3, use_bias=False), nn.sigmoid])
    x0 = jnp.zeros((1, 4))
    variables = lin.init(jax.random.key(0), x0)
    p = variables["params"]
    nx_model = nnx.Sequential(nnx.Linear(4, 6, rngs=nnx.Rngs(0)), nnx.tanh,
                              nnx.Linear(6, 3, use_bias=False, rngs=nnx.Rngs(0)), nnx.sigmoid)
    nx_model.layers[0].kernel[...] = p["layers_0"]["kernel"]
    nx_model.layers[0].bias[...] = p["layers_0"]["bias"]
    nx_model.layers[2].kernel[...] = p["layers_2"]["kernel"]
    t1 = ei_jax.topology_of(lin, variables, x0)
    t2 = ei_jax.topology_of(nx_model, x0)
    assert list(t1) == list(t2)
    for layer in t1:
        kw = dict(samples=4000, in_bins=8, out_bins=8, in_range=(0, 1))
        assert ei_jax.ei_parts(jax.random.key(3), t1, layer, **kw) == ei_jax.ei_parts(jax.random.key(3), t2, layer, **kw)
        assert ei_jax.sensitivity(jax.random.key(3), t1, layer, **kw) == ei_jax.sensitivity(jax.random.key(3), t2, layer, **kw)


def test_ei_parts_is_the_sum_of_its_matrix_and_degeneracy_is_their_difference():
    import flax.linen as nn

    net = nn.Dense(4, use_bias=False)
    x0 = jnp.zeros((1, 5))
    top = ei_jax.topology_of(net, net.init(jax.random.key(0), x0), x0)
    kw = dict(samples=6000, activation="tanh", in_range=(0, 1), in_bins=8, out_bins=8)
    m = ei_jax.ei_parts_matrix(jax.random.key(1), top, "Dense", **kw)
    assert ei_jax.ei_parts(jax.random.key(1), top, "Dense", **kw) == pytest.approx(m.sum(), abs=1e-9)
    sm = ei_jax.sensitivity_matrix(jax.random.key(1), top, "Dense", **kw)
    assert ei_jax.sensitivity(jax.random.key(1), top, "Dense", **kw) == pytest.approx(sm.sum(), abs=1e-9)
    point = ei_jax.causal_plane(jax.random.key(1), top, "Dense", **kw)
    assert point.degeneracy == pytest.approx(sm.sum() - m.sum(), abs=1e-9)
    assert point.x == pytest.approx(m.sum() / np.sqrt(2))
    assert point.y == pytest.approx((2 * sm.sum() - m.sum()) / np.sqrt(2))
    vec, parts = ei_jax.vector_and_pairwise_ei(jax.random.key(1), top, "Dense", **kw)
    assert parts == pytest.approx(m.sum(), abs=1e-9)
    assert vec == ei_jax.ei(jax.random.key(1), top, "Dense", **kw)
    groups = ei_jax.eis_between_groups(jax.random.key(1), top, "Dense", [(range(5), range(4)), ((0,), (1,))], **kw)
    assert groups[0] == pytest.approx(vec, abs=1e-6)


def test_permuting_neurons_permutes_the_matrix():
    w = jax.random.normal(jax.random.key(12), (5, 3)) * 2
    x = jax.random.uniform(jax.random.key(13), (30_000, 5))
    y = jax.nn.sigmoid(x @ w)
    pin, pout = np.array([3, 0, 4, 1, 2]), np.array([2, 0, 1])
    m = np.asarray(ei_jax.pairwise_mutual_information(x, y, **KW))
    mp = np.asarray(ei_jax.pairwise_mutual_information(x[:, pin], y[:, pout], **KW))
    np.testing.assert_allclose(mp, m[np.ix_(pin, pout)], atol=1e-6)
    v = float(ei_jax.mutual_information(x, y, **KW))
    vp = float(ei_jax.mutual_information(x[:, pin], y[:, pout], **KW))
    assert abs(v - vp) < 1e-4


def test_zero_layer_in_automatic_mode_is_zero_not_a_crash():
    import flax.linen as nn

    net = nn.Dense(3, use_bias=False)
    x0 = jnp.zeros((1, 4))
    top = ei_jax.topology_of(net, {"params": {"kernel": jnp.zeros((4, 3))}}, x0)
    v = ei_jax.ei_parts(jax.random.key(0), top, "Dense", in_range=(0, 1), in_bins=8, out_bins=8,
                        activation="sigmoid")
    assert v == 0.0
    assert ei_jax.ei(jax.random.key(0), top, "Dense", in_range=(0, 1), in_bins=8, out_bins=8,
                     activation="sigmoid") == 0.0


def test_automatic_mode_converges_near_a_long_run():
    import flax.linen as nn

    net = nn.Dense(3, use_bias=False)
    x0 = jnp.zeros((1, 3))
    top = ei_jax.topology_of(net, net.init(jax.random.key(0), x0), x0)
    kw = dict(in_range=(0, 1), in_bins=16, out_bins=16, activation="sigmoid")
    auto = ei_jax.ei_parts(jax.random.key(1), top, "Dense", threshold=0.05, **kw)
    long = ei_jax.ei_parts(jax.random.key(2), top, "Dense", samples=2_000_000, **kw)
    assert abs(auto - long) <= 0.05 * long


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.sampled_from([1, 300]), bins=st.sampled_from([1, 5, 16]),
       scale=st.floats(0.0, 10.0))
def test_mi_is_between_zero_and_the_marginal_entropies(seed, n, bins, scale):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, (n, 2)).astype(np.float32)
    y = (1 / (1 + np.exp(-scale * (x[:, :1] - 0.5) + rng.normal(0, 0.3, (n, 1))))).astype(np.float32)
    kw = dict(in_range=(0, 1), in_bins=bins, out_range=(0, 1), out_bins=bins)
    counts, _, _ = ei_jax.joint_histograms(x, y, **kw)
    mi = np.asarray(ei_jax.mutual_information_from_counts(counts))
    c = np.asarray(counts, np.int64)
    hx = np.asarray(ei_jax._src.info.plugin.entropy_from_counts(c.sum(axis=3)))
    hy = np.asarray(ei_jax._src.info.plugin.entropy_from_counts(c.sum(axis=2)))
    assert np.all(mi >= 0)
    assert np.all(mi <= np.minimum(hx, hy) + 1e-5)
    v = float(ei_jax.mutual_information(x, y, **kw))
    hvx = float(ei_jax.entropy(x, range=(0, 1), bins=bins))
    hvy = float(ei_jax.entropy(y, range=(0, 1), bins=bins))
    assert -1e-6 <= v <= min(hvx, hvy) + 1e-4


def test_host_and_device_mi_from_counts_agree():
    from ei_jax._src.info.plugin import mi_matrix

    rng = np.random.default_rng(0)
    counts = rng.integers(0, 50, (4, 3, 6, 7)).astype(np.int32)
    counts[0, 0] = 0
    a = np.asarray(ei_jax.mutual_information_from_counts(counts))
    b = mi_matrix(counts)
    np.testing.assert_allclose(a, b, atol=1e-5, equal_nan=True)
    assert np.isnan(a[0, 0]) and np.isnan(b[0, 0])
