"""Standard errors and bias corrections (``stderr=True``, ``core.*_estimate``) against the
exact values of :mod:`ei_jax.exact`, over many keys.

Chance failures: the pooled coverage bound fails with probability < 1e-6 and each per-layer
bound below with probability < 3e-5 when the intervals have their measured coverage
(0.92-0.95 at 200 keys; binomial tails), the stderr/spread bound (25%, with the spread of 200
keys known to ~5%) < 1e-6; in all, below 1e-4.
"""

import jax
import jax.numpy as jnp
import flax.linen as nn
import numpy as np
import pytest

import ei_jax
from ei_jax import core
from ei_jax._src.exact.kernel import exact_ei_parts_matrix, exact_sensitivity_matrix

KEYS = 200


def sigmoid_apply(w, x):
    return jax.nn.sigmoid(x @ w)


def relu_apply(w, x):
    return jax.nn.relu(x @ w)


# (apply, activation, shape, bins, samples, weight scale): 8 and 64 bins, and a ReLU layer
# whose outputs above out_range=(0, 1) are dropped from their pairs.
LAYERS = {
    "4->3 sigmoid, 8 bins": (sigmoid_apply, "sigmoid", (4, 3), 8, 20_000, 2.0),
    "2->2 sigmoid, 64 bins": (sigmoid_apply, "sigmoid", (2, 2), 64, 100_000, 3.0),
    "3->2 relu, 8 bins, dropped outputs": (relu_apply, "relu", (3, 2), 8, 20_000, 1.5),
}


def _kw(shape, bins):
    return dict(in_shape=(shape[0],), in_range=(0, 1), in_bins=bins, out_range=(0, 1), out_bins=bins)


@pytest.fixture(scope="module")
def over_keys():
    """Corrected values, stderrs, plug-ins and exact values of every layer over KEYS keys."""
    out = {}
    for name, (fn, act, shape, bins, samples, scale) in LAYERS.items():
        w = jax.random.normal(jax.random.key(7), shape) * scale
        exact = float(np.sum(exact_ei_parts_matrix(w, None, activation=act, in_range=(0, 1),
                                                   in_bins=bins, out_range=(0, 1), out_bins=bins)))
        keys = jax.random.split(jax.random.key(1), KEYS)
        est = jax.lax.map(lambda k: core.ei_parts_estimate(k, fn, w, samples=samples, **_kw(shape, bins)),
                          keys, batch_size=50)
        out[name] = (np.asarray(est.corrected), np.asarray(est.stderr), np.asarray(est.value), exact,
                     np.asarray(est.above))
    return out


def test_intervals_cover_the_exact_value(over_keys):
    hits = []
    for name, (c, se, _, exact, _) in over_keys.items():
        inside = np.abs(c - exact) < 1.96 * se
        assert 0.84 <= inside.mean() <= 0.995, (name, inside.mean())
        hits.append(inside)
    pooled = np.concatenate(hits).mean()
    assert 0.88 <= pooled <= 0.99, pooled


def test_stderr_matches_the_spread_over_keys(over_keys):
    for name, (c, se, _, _, _) in over_keys.items():
        assert abs(se.mean() / c.std(ddof=1) - 1) < 0.25, name


def test_corrected_is_closer_to_exact_than_the_plug_in(over_keys):
    for name, (c, _, v, exact, above) in over_keys.items():
        assert np.mean(np.abs(c - exact)) < np.mean(np.abs(v - exact)), name
    assert over_keys["3->2 relu, 8 bins, dropped outputs"][4].min() > 0  # outputs really dropped


def test_sensitivity_intervals_cover_the_exact_value():
    w = jax.random.normal(jax.random.key(8), (3, 2)) * 3
    kw = _kw((3, 2), 16)
    exact = float(np.sum(exact_sensitivity_matrix(w, None, activation="sigmoid", in_range=(0, 1),
                                                  in_bins=16, out_range=(0, 1), out_bins=16)))
    keys = jax.random.split(jax.random.key(2), KEYS)
    est = jax.vmap(lambda k: core.sensitivity_estimate(k, sigmoid_apply, w, samples=4000, **kw))(keys)
    c, se = np.asarray(est.corrected), np.asarray(est.stderr)
    assert 0.84 <= np.mean(np.abs(c - exact) < 1.96 * se) <= 0.995
    assert abs(se.mean() / c.std(ddof=1) - 1) < 0.25


@pytest.fixture(scope="module")
def top():
    net = nn.Sequential([nn.Dense(3, use_bias=False), nn.sigmoid])
    x0 = jnp.zeros((1, 4))
    return ei_jax.topology_of(net, net.init(jax.random.key(3), x0), x0)


KW = dict(in_range=(0, 1), in_bins=8, out_bins=8)


def test_convenient_estimate_equals_the_core_and_the_plain_value(top):
    est = ei_jax.ei_parts(jax.random.key(4), top, "layers_0", samples=30_000, stderr=True, **KW)
    assert isinstance(est, ei_jax.Estimate) and est.samples == 30_000
    plain = ei_jax.ei_parts(jax.random.key(4), top, "layers_0", samples=30_000, **KW)
    assert est.value == pytest.approx(plain, abs=1e-12)
    w = top.nodes["layers_0"]["params"]
    core_est = core.ei_parts_estimate(jax.random.key(4), lambda p, x: jax.nn.sigmoid(x @ p["kernel"]),
                                      w, in_shape=(4,), out_range=(0, 1), samples=30_000, **KW)
    for f in ("value", "corrected", "stderr"):
        assert float(getattr(core_est, f)) == pytest.approx(getattr(est, f), rel=1e-4)
    mat = ei_jax.ei_parts_matrix(jax.random.key(4), top, "layers_0", samples=30_000, stderr=True, **KW)
    assert mat.value.shape == (4, 3) and mat.corrected.sum() == pytest.approx(est.corrected, abs=1e-9)
    assert "± " in repr(est) and "30000 samples" in repr(est)


def test_same_key_same_estimate_for_any_batch_size(top):
    a = ei_jax.ei_parts(jax.random.key(5), top, "layers_0", samples=12_345, stderr=True, **KW)
    b = ei_jax.ei_parts(jax.random.key(5), top, "layers_0", samples=12_345, stderr=True, batch_size=2048, **KW)
    assert (a.value, a.corrected) == (b.value, b.corrected)
    assert a.stderr == pytest.approx(b.stderr, rel=1e-5)  # float32 sums in a different order
    va = ei_jax.ei(jax.random.key(5), top, "layers_0", samples=12_345, stderr=True, **KW)
    vb = ei_jax.ei(jax.random.key(5), top, "layers_0", samples=12_345, stderr=True, batch_size=4096, **KW)
    assert va == vb


def test_stderr_under_a_users_vmap_is_per_network():
    ws = jax.random.normal(jax.random.key(6), (3, 4, 2)) * jnp.array([0.5, 2.0, 6.0])[:, None, None]
    kw = _kw((4, 2), 8)
    batched = jax.vmap(lambda w: core.ei_parts_estimate(jax.random.key(0), sigmoid_apply, w,
                                                        samples=8000, **kw))(ws)
    for i in range(3):
        one = core.ei_parts_estimate(jax.random.key(0), sigmoid_apply, ws[i], samples=8000, **kw)
        np.testing.assert_allclose(np.asarray(batched.corrected[i]), np.asarray(one.corrected), rtol=1e-5)
        np.testing.assert_allclose(np.asarray(batched.stderr[i]), np.asarray(one.stderr), rtol=1e-4)
    assert len(set(np.round(np.asarray(batched.value), 6))) == 3


def test_stderr_target_stops_once_the_stderr_is_below_it(top):
    est = ei_jax.ei_parts(jax.random.key(7), top, "layers_0", stderr_target=0.01, **KW)
    assert est.stderr < 0.01
    # one round less would not have met it (rounds double the samples)
    half = ei_jax.ei_parts(jax.random.key(7), top, "layers_0", samples=est.samples // 2, stderr=True, **KW)
    assert half.stderr >= 0.01
    vec = ei_jax.ei(jax.random.key(7), top, "layers_0", stderr_target=0.02, **KW)
    assert vec.stderr < 0.02


def test_vector_ei_is_sample_limited_with_too_few_rows(top):
    with pytest.warns(ei_jax.SampleLimitedWarning, match="sample-limited"):
        ei_jax.ei(jax.random.key(8), top, "layers_0", samples=2000, stderr=True, in_range=(0, 1),
                  in_bins=32, out_bins=32)


def test_causal_plane_with_stderr_and_bad_combinations(top):
    p = ei_jax.causal_plane(jax.random.key(9), top, "layers_0", samples=20_000, stderr=True, **KW)
    assert p.degeneracy.corrected == pytest.approx(p.sensitivity.corrected - p.ei.corrected)
    assert p.degeneracy.stderr == pytest.approx(np.hypot(p.sensitivity.stderr, p.ei.stderr))
    with pytest.raises(ei_jax.errors.InvalidOptionError, match="extrapolate"):
        ei_jax.ei_parts(0, top, "layers_0", extrapolate=True, stderr=True, **KW)
    with pytest.raises(ei_jax.errors.InvalidSamplesError, match="16 samples"):
        ei_jax.ei_parts(0, top, "layers_0", samples=10, stderr=True, **KW)


def test_estimate_is_a_pytree():
    est = ei_jax.Estimate(jnp.ones(2), jnp.zeros(2), jnp.ones(2), 100)
    doubled = jax.tree.map(lambda a: a * 2, est)
    assert doubled.samples == 100 and float(doubled.value[0]) == 2.0


DEVICE_SCRIPT = """
import json, sys
import jax, jax.numpy as jnp, flax.linen as nn, ei_jax
net = nn.Sequential([nn.Dense(3, use_bias=False), nn.sigmoid])
x0 = jnp.zeros((1, 4))
top = ei_jax.topology_of(net, net.init(jax.random.key(3), x0), x0)
kw = dict(in_range=(0, 1), in_bins=8, out_bins=8, stderr=True)
out = [jax.device_count()]
for est in (ei_jax.ei_parts(1, top, "layers_0", samples=20_001, **kw),
            ei_jax.sensitivity(1, top, "layers_0", samples=3001, **kw),
            ei_jax.ei(1, top, "layers_0", samples=20_001, **kw)):
    out.append([est.value, est.corrected, est.stderr, est.below, est.above])
json.dump(out, sys.stdout)
"""


def test_same_key_same_estimate_on_one_or_three_devices():
    import json

    from tests.children import device_env, run_at_once

    runs = [(["-c", DEVICE_SCRIPT], device_env(d)) for d in (1, 3)]   # independent: at the same time
    one, three = (json.loads(o) for o in run_at_once(runs, timeout=600))
    assert one.pop(0) == 1 and three.pop(0) == 3
    assert one == three  # bit for bit, standard errors included
