"""Every public function of ``ei_jax``, ``ei_jax.core`` and ``ei_jax.exact`` answers a wrong
call with an ``ei_jax`` error (never a raw Python/JAX/NumPy exception). The property tests of
``test_wrong_use.py`` search the arguments of the main measures; here every other public
function gets the wrong uses a user makes: a layer that is not in the topology, a range that
is not a pair, a bin count that is not a positive int, a topology that is not one."""

import warnings

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ei_jax
from ei_jax import core, exact
from ei_jax.errors import EIJaxError

NET = nn.Sequential([nn.Dense(3, use_bias=False), nn.sigmoid])
X0 = jnp.zeros((1, 4))
TOP = ei_jax.topology_of(NET, NET.init(jax.random.key(0), X0), X0)
KEY = jax.random.key(1)
KW = dict(in_range=(0, 1), in_bins=8, out_range=(0, 1), out_bins=8)
CORE_KW = dict(in_shape=(4,), **KW)
W = jax.random.normal(jax.random.key(2), (4, 3))


def apply(w, x):
    return jax.nn.sigmoid(x @ w)


#: The wrong uses of a measure on a topology: (what is wrong, the changed arguments).
TOPOLOGY_WRONGS = [
    ("no such layer", dict(layer="nope")),
    ("a range that is not a pair", dict(in_range=1)),
    ("a reversed range", dict(out_range=(1, 0))),
    ("bins that are not a positive int", dict(in_bins=0)),
    ("bins of the wrong type", dict(out_bins="8")),
    ("a topology that is not one", dict(topology={"a": 1})),
]

SAMPLED_ON_TOPOLOGY = {
    "ei_jax.ei_parts_matrix": (ei_jax.ei_parts_matrix, dict(samples=1000)),
    "ei_jax.sensitivity_matrix": (ei_jax.sensitivity_matrix, dict(samples=1000)),
    "ei_jax.causal_plane": (ei_jax.causal_plane, dict(samples=1000, sensitivity_samples=200)),
    "ei_jax.degeneracy": (ei_jax.degeneracy, dict(samples=1000, sensitivity_samples=200)),
    "ei_jax.vector_and_pairwise_ei": (ei_jax.vector_and_pairwise_ei, dict(samples=1000)),
}
EXACT_ON_TOPOLOGY = {
    "exact.ei_parts_matrix": exact.ei_parts_matrix,
    "exact.sensitivity_matrix": exact.sensitivity_matrix,
    "exact.causal_plane": exact.causal_plane,
    "exact.degeneracy": exact.degeneracy,
    "exact.layer_values": exact.layer_values,
    "exact.exact_layer": exact.exact_layer,
    "exact.ei": exact.ei,
}


def _typed(call):
    """Runs ``call``; passes when it raises an EIJaxError, fails on any other exception or on
    no exception at all (a wrong call must not return a number)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            call()
        except EIJaxError:
            return
        except Exception as e:  # noqa: BLE001 - the point of the test
            pytest.fail(f"raw {type(e).__module__}.{type(e).__name__}: {e}")
    pytest.fail("a wrong call returned a value")


def _args(change):
    args, kw = dict(topology=TOP, layer="layers_0"), dict(KW)
    for k, v in change.items():
        (args if k in args else kw)[k] = v
    return args, kw


@pytest.mark.parametrize("what, change", TOPOLOGY_WRONGS, ids=[w for w, _ in TOPOLOGY_WRONGS])
@pytest.mark.parametrize("name", list(SAMPLED_ON_TOPOLOGY))
def test_sampled_measures_on_a_topology(name, what, change):
    fn, extra = SAMPLED_ON_TOPOLOGY[name]
    args, kw = _args(change)
    _typed(lambda: fn(KEY, args["topology"], args["layer"], **kw, **extra))


#: exact_layer describes a layer and measures nothing: it takes no bins.
EXACT_CASES = [(name, what, change) for name in EXACT_ON_TOPOLOGY for what, change in TOPOLOGY_WRONGS
               if not (name == "exact.exact_layer" and "bins" in what)]


@pytest.mark.parametrize("name, what, change", EXACT_CASES, ids=[f"{n}-{w}" for n, w, _ in EXACT_CASES])
def test_exact_measures_on_a_topology(name, what, change):
    fn = EXACT_ON_TOPOLOGY[name]
    args, kw = _args(change)
    if name == "exact.exact_layer":
        kw = {k: v for k, v in kw.items() if k not in ("in_bins", "out_bins")}
    _typed(lambda: fn(args["topology"], args["layer"], **kw))


#: Wrong uses of the pure core: (what is wrong, function, call).
CORE_WRONGS = [
    ("estimate with a string key", lambda: core.ei_parts_estimate("k", apply, W, samples=1000, **CORE_KW)),
    ("matrix estimate with zero bins", lambda: core.ei_parts_matrix_estimate(
        KEY, apply, W, samples=1000, **dict(CORE_KW, in_bins=0))),
    ("sensitivity estimate with a bad range", lambda: core.sensitivity_estimate(
        KEY, apply, W, samples=1000, **dict(CORE_KW, in_range=(1, 0)))),
    ("sensitivity matrix estimate with a bad shape", lambda: core.sensitivity_matrix_estimate(
        KEY, apply, W, samples=1000, **dict(CORE_KW, in_shape=(-1,)))),
    ("matrix with negative samples", lambda: core.ei_parts_matrix(KEY, apply, W, samples=-5, **CORE_KW)),
    ("sensitivity matrix with a range that is not a pair", lambda: core.sensitivity_matrix(
        KEY, apply, W, samples=1000, **dict(CORE_KW, out_range=3))),
    ("pairwise stats with a string bin count", lambda: core.pairwise_stats(
        KEY, apply, W, samples=1000, **dict(CORE_KW, out_bins="8"))),
    ("sensitivity stats with zero samples", lambda: core.sensitivity_stats(KEY, apply, W, samples=0, **CORE_KW)),
    ("vector stats with a bad range", lambda: core.vector_stats(
        KEY, apply, W, samples=1000, **dict(CORE_KW, in_range=(0, np.nan)))),
    ("map_params of something that is not callable", lambda: core.map_params(3, W)),
    ("exact core with a 1-d kernel", lambda: core.exact_ei_parts_matrix(
        jnp.ones(4), jnp.zeros(3), activation="sigmoid", **KW)),
    ("exact core with zero bins", lambda: core.exact_sensitivity_matrix(
        W, jnp.zeros(3), activation="sigmoid", **dict(KW, in_bins=0))),
    ("exact core with an unknown activation", lambda: core.exact_ei_parts_matrix(
        W, jnp.zeros(3), activation="nope", **KW)),
    ("uniform blocks with a string key", lambda: core.uniform_blocks("k", jnp.arange(2), (4,), 0.0, 1.0)),
]


@pytest.mark.parametrize("what, call", CORE_WRONGS, ids=[w for w, _ in CORE_WRONGS])
def test_the_pure_core(what, call):
    _typed(call)


rng = np.random.default_rng(0)
XS, YS = rng.uniform(0, 1, (500, 3)), rng.uniform(0, 1, (500, 2))
OWN_SAMPLES_WRONGS = [
    ("entropy with a reversed range", lambda: ei_jax.entropy(YS, range=(1, 0), bins=8)),
    ("entropy with zero bins", lambda: ei_jax.entropy(YS, range=(0, 1), bins=0)),
    ("MI of samples of different lengths", lambda: ei_jax.mutual_information(
        XS, YS[:10], in_range=(0, 1), out_range=(0, 1), in_bins=4, out_bins=4)),
    ("pairwise MI with a range that is not a pair", lambda: ei_jax.pairwise_mutual_information(
        XS, YS, in_range=1, out_range=(0, 1), in_bins=4, out_bins=4)),
    ("joint histograms with string bins", lambda: ei_jax.joint_histograms(
        XS, YS, in_range=(0, 1), out_range=(0, 1), in_bins="4", out_bins=4)),
    ("MI of counts that are not a table", lambda: ei_jax.mutual_information_from_counts(jnp.ones(3))),
    ("topology of something that is not a model", lambda: ei_jax.topology_of(object(), X0)),
]


@pytest.mark.parametrize("what, call", OWN_SAMPLES_WRONGS, ids=[w for w, _ in OWN_SAMPLES_WRONGS])
def test_estimators_of_own_samples_and_set_up(what, call):
    _typed(call)


def test_a_cache_path_that_is_a_file_turns_nothing_on():
    """The documented answer of enable_compilation_cache to a path it cannot use: None, with a
    RuntimeWarning saying why (everything then runs without the cache)."""
    with pytest.warns(RuntimeWarning, match="cannot write"):
        assert ei_jax.enable_compilation_cache(__file__) is None
