"""Bad input gets a typed exception (or warning) whose message says what to do."""

import warnings

import jax
import jax.numpy as jnp
import flax.linen as nn
import numpy as np
import pytest

import ei_jax
from ei_jax import core, exact


@pytest.fixture(scope="module")
def top():
    net = nn.Sequential([nn.Dense(4, use_bias=False), nn.sigmoid, nn.Dense(3, use_bias=False), nn.relu])
    x0 = jnp.zeros((1, 5))
    return ei_jax.topology_of(net, net.init(jax.random.key(0), x0), x0)


GOOD = dict(samples=1000, in_range=(0, 1), in_bins=8, out_bins=8)


@pytest.mark.parametrize("bad", [(1, 0), (1, 1), (float("nan"), 1), (0, float("inf")), "ab", (0,), None])
def test_invalid_ranges(top, bad):
    with pytest.raises(ei_jax.errors.InvalidRangeError, match="range"):
        ei_jax.ei_parts(jax.random.key(0), top, "layers_0", **dict(GOOD, in_range=bad if bad is not None else "x"))


def test_invalid_out_range_and_estimator_ranges(top):
    with pytest.raises(ei_jax.errors.InvalidRangeError, match="lo < hi"):
        ei_jax.sensitivity(jax.random.key(0), top, "layers_2", **dict(GOOD, out_range=(5, 5)))
    x = np.zeros((10, 2), np.float32)
    with pytest.raises(ei_jax.errors.InvalidRangeError):
        ei_jax.pairwise_mutual_information(x, x, in_range=(1, 0), in_bins=4, out_range=(0, 1), out_bins=4)


@pytest.mark.parametrize("bins", [0, -3, 2.5, "8", True, 1 << 21])
def test_invalid_bins(top, bins):
    with pytest.raises(ei_jax.errors.InvalidBinsError, match="bins"):
        ei_jax.ei_parts(jax.random.key(0), top, "layers_0", **dict(GOOD, in_bins=bins))


def test_histograms_too_large_for_memory(top):
    with pytest.raises(ei_jax.errors.MemoryBudgetError, match="fewer bins"):
        ei_jax.ei_parts(jax.random.key(0), top, "layers_0", **dict(GOOD, in_bins=4096, out_bins=4096))
    assert issubclass(ei_jax.errors.MemoryBudgetError, MemoryError)


@pytest.mark.parametrize("samples", [0, -5, 2.0, "100"])
def test_invalid_samples(top, samples):
    with pytest.raises(ei_jax.errors.InvalidSamplesError, match="samples"):
        ei_jax.ei_parts(jax.random.key(0), top, "layers_0", **dict(GOOD, samples=samples))


def test_too_many_samples_is_refused_before_running(top):
    with pytest.raises(ei_jax.errors.InvalidSamplesError, match="int32"):
        ei_jax.ei_parts(jax.random.key(0), top, "layers_0", **dict(GOOD, samples=1 << 32))


@pytest.mark.parametrize("threshold", [0, -0.1, float("nan"), "x"])
def test_invalid_threshold(top, threshold):
    with pytest.raises(ei_jax.errors.InvalidSamplesError, match="threshold"):
        ei_jax.ei_parts(jax.random.key(0), top, "layers_0", in_range=(0, 1), in_bins=8, out_bins=8,
                        threshold=threshold)


def test_invalid_batch_size(top):
    # An option, not a sample count: InvalidOptionError (was InvalidSamplesError).
    with pytest.raises(ei_jax.errors.InvalidOptionError, match="batch_size"):
        ei_jax.ei_parts(jax.random.key(0), top, "layers_0", **dict(GOOD, batch_size=0))


def test_unknown_layer_lists_the_layers(top):
    with pytest.raises(ei_jax.errors.LayerNotFoundError, match="layers_0"):
        ei_jax.ei_parts(jax.random.key(0), top, "layers_7", **GOOD)
    with pytest.raises(LookupError):
        ei_jax.ei(jax.random.key(0), top, "layers_0", in_layer="nope", **GOOD)


def test_in_layer_after_layer(top):
    with pytest.raises(ei_jax.errors.LayerOrderError, match="comes after"):
        ei_jax.ei_parts(jax.random.key(0), top, "layers_0", in_layer="layers_2", **GOOD)


def test_shape_mismatches():
    with pytest.raises(ei_jax.errors.ShapeMismatchError, match="same number of samples"):
        ei_jax.pairwise_mutual_information(np.zeros((10, 2)), np.zeros((9, 2)), in_range=(0, 1),
                                           in_bins=2, out_range=(0, 1), out_bins=2)
    with pytest.raises(ei_jax.errors.ShapeMismatchError, match="2-d"):
        ei_jax.mutual_information(np.zeros(10), np.zeros((10, 1)), in_range=(0, 1), in_bins=2,
                                  out_range=(0, 1), out_bins=2)
    with pytest.raises(ei_jax.errors.ShapeMismatchError, match="apply_fn"):
        core.ei_parts(jax.random.key(0), lambda w, x: x @ w, jnp.ones((3, 2)), in_shape=(4,),
                      in_range=(0, 1), in_bins=4, out_range=(0, 1), out_bins=4, samples=10)


def test_bad_groups(top):
    with pytest.raises(ei_jax.errors.ShapeMismatchError, match="outside the layer"):
        ei_jax.eis_between_groups(jax.random.key(0), top, "layers_0", [((0, 9), (0,))], **GOOD)
    with pytest.raises(ei_jax.errors.ShapeMismatchError, match="pairs"):
        ei_jax.eis_between_groups(jax.random.key(0), top, "layers_0", [1, 2], **GOOD)


def test_nan_weights():
    net = nn.Dense(2)
    x0 = jnp.zeros((1, 2))
    variables = {"params": {"kernel": jnp.array([[1.0, jnp.nan], [0.0, 1.0]]), "bias": jnp.zeros(2)}}
    top = ei_jax.topology_of(net, net.init(jax.random.key(0), x0), x0)
    top.nodes["Dense"]["params"] = variables["params"]
    with pytest.raises(ei_jax.errors.NonFiniteParamsError, match="NaN"):
        ei_jax.ei_parts(jax.random.key(0), top, "Dense", **GOOD)


def test_all_out_of_range_pair_is_a_clear_error_not_a_math_domain_error():
    """One rule (docs/concepts.md): a pair that kept nothing is 0 bits with an
    OutOfRangeWarning naming it; EmptyHistogramError only when every pair is empty."""
    net = nn.Dense(2, use_bias=True)
    x0 = jnp.zeros((1, 2))
    params = {"params": {"kernel": jnp.array([[1.0, 0.0], [0.0, 1.0]]), "bias": jnp.array([50.0, 0.0])}}
    top = ei_jax.topology_of(net, params, x0)
    kw = dict(in_range=(0, 1), in_bins=4, out_range=(0, 1), out_bins=4)
    with pytest.warns(ei_jax.OutOfRangeWarning, match=r"pair\(s\) \(0, 0\), \(1, 0\) \(2 of 4\).*0 bits.*clip=True"):
        m = ei_jax.ei_parts_matrix(jax.random.key(0), top, "Dense", samples=1000, **kw)
    assert m[0, 0] == m[1, 0] == 0.0 and m[1, 1] > 1.0
    with pytest.warns(ei_jax.OutOfRangeWarning, match="0 bits"):
        assert ei_jax.ei_parts(jax.random.key(0), top, "Dense", samples=1000, **kw) == m.sum()
    with pytest.warns(ei_jax.OutOfRangeWarning, match=r"\(0, 0\), \(1, 0\) \(2 of 4\).*0 bits"):
        em = exact.ei_parts_matrix(top, "Dense", **kw)             # exact: the same rule
    assert em[0, 0] == em[1, 0] == 0.0 and em[1, 1] > 1.0
    every = ei_jax.topology_of(net, {"params": {"kernel": jnp.eye(2), "bias": jnp.array([50.0, 50.0])}}, x0)
    with pytest.raises(ei_jax.errors.EmptyHistogramError, match="clip=True"):
        ei_jax.ei_parts(jax.random.key(0), every, "Dense", samples=1000, **kw)
    with pytest.raises(ei_jax.errors.EmptyHistogramError, match="outside out_range"):
        exact.ei_parts(every, "Dense", **kw)
    # clip=True puts them in the edge bin instead, and says so.
    with pytest.warns(ei_jax.OutOfRangeWarning, match="edge bins"):
        v = ei_jax.ei_parts(jax.random.key(0), top, "Dense", samples=1000, in_range=(0, 1), in_bins=4,
                            out_range=(0, 1), out_bins=4, clip=True)
    assert v > 1.0  # the identity-like second output still carries information
    x = np.full((10, 1), 5.0, np.float32)
    with pytest.raises(ei_jax.errors.EmptyHistogramError):
        ei_jax.pairwise_mutual_information(x, x, in_range=(0, 1), in_bins=2, out_range=(0, 1), out_bins=2)
    with pytest.raises(ei_jax.errors.EmptyHistogramError):
        ei_jax.mutual_information(x, x, in_range=(0, 1), in_bins=2, out_range=(0, 1), out_bins=2)


def test_out_of_range_outputs_are_counted_and_reported(top):
    # ReLU outputs above 10 are dropped from their pairs, as in deep-ei; ei_jax says how many.
    big = {"kernel": jnp.full((4, 3), 10.0)}
    top = top.copy()
    top.nodes["layers_2"]["params"] = big
    with pytest.warns(ei_jax.OutOfRangeWarning, match=r"\d+ of 3000 output values"):
        ei_jax.ei_parts(jax.random.key(0), top, "layers_2", samples=1000, in_bins=8, out_bins=8)


def test_first_layer_default_range_warns(top):
    with pytest.warns(ei_jax.DefaultRangeWarning, match=r"in_range=\(lo, hi\)"):
        ei_jax.ei_parts(jax.random.key(0), top, "layers_0", samples=100, in_bins=8, out_bins=8)


def test_unknown_activations():
    net = nn.Dense(2)
    x0 = jnp.zeros((1, 2))
    top = ei_jax.topology_of(net, net.init(jax.random.key(0), x0), x0)
    with pytest.raises(ei_jax.errors.UnknownActivationError, match="Unknown activation"):
        ei_jax.ei_parts(jax.random.key(0), top, "Dense", activation="softplusplus", **GOOD)
    with pytest.raises(ei_jax.errors.UnknownActivationError, match="out_range"):
        ei_jax.ei_parts(jax.random.key(0), top, "Dense", activation=jax.nn.softplus, **GOOD)
    # With an explicit out_range a custom callable is fine.
    v = ei_jax.ei_parts(jax.random.key(0), top, "Dense", activation=jax.nn.softplus, out_range=(0, 3), **GOOD)
    assert v >= 0


def test_bad_key_and_topology(top):
    with pytest.raises(TypeError, match="jax.random.key"):
        ei_jax.ei_parts("seed", top, "layers_0", **GOOD)
    with pytest.raises(TypeError, match="topology_of"):
        ei_jax.ei_parts(jax.random.key(0), {"layers_0": {}}, "layers_0", **GOOD)
    # An int seed is accepted at the convenient boundary and equals the typed key.
    assert ei_jax.ei_parts(3, top, "layers_0", **GOOD) == ei_jax.ei_parts(jax.random.key(3), top, "layers_0", **GOOD)


def test_errors_are_also_builtin_exceptions():
    assert issubclass(ei_jax.errors.InvalidRangeError, ValueError)
    assert issubclass(ei_jax.errors.LayerNotFoundError, LookupError)
    assert issubclass(ei_jax.errors.UnsupportedModuleError, TypeError)
    assert issubclass(ei_jax.errors.EmptyHistogramError, ei_jax.EIJaxError)


def test_nearly_empty_pairs_sampled_and_exact_agree():
    """A ReLU layer whose out_range keeps ~1e-6 of two pairs' mass: both give those pairs 0
    bits (the sampled measure warns: it kept no sample of them; exact measures the kept
    sliver, all in one output bin), and agree on the rest."""
    net = nn.Sequential([nn.Dense(2), nn.relu])
    x0 = jnp.zeros((1, 2))
    # output 0 = relu(x0 + x1 + 1.999999): inside (0, 2) only for x0 + x1 < 1e-6
    p = {"params": {"layers_0": {"kernel": jnp.array([[1.0, 0.5], [1.0, 0.0]]),
                                 "bias": jnp.array([1.999999, 0.0])}}}
    top = ei_jax.topology_of(net, p, x0)
    kw = dict(in_range=(0, 1), in_bins=4, out_range=(0, 2), out_bins=4)
    want = exact.sensitivity_matrix(top, "layers_0", **kw)      # the kept sliver: one bin, 0 bits
    with pytest.warns(ei_jax.OutOfRangeWarning, match=r"\(0, 0\), \(1, 0\).*0 bits"):
        got = ei_jax.sensitivity_matrix(jax.random.key(0), top, "layers_0", samples=5000, **kw)
    assert got[0, 0] == got[1, 0] == 0.0
    np.testing.assert_allclose(want[:, 0], 0.0, atol=1e-9)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ei_jax.OutOfRangeWarning)
        est = ei_jax.sensitivity(jax.random.key(0), top, "layers_0", samples=5000, stderr=True, **kw)
        total = exact.sensitivity(top, "layers_0", **kw)
    assert abs(est.corrected - total) <= 5 * est.stderr + 1e-3


def test_checkpoint_stacks_follow_the_same_empty_pair_rule():
    """The exact values of a checkpoint stack (``ei-jax measure`` of many checkpoints) zero an
    empty pair as the single-layer measures do, instead of refusing the whole stack: checkpoint
    1's output 0 sits at relu(x @ w + 20) > 10, outside ReLU's default range (0, 10)."""
    from ei_jax._src.exact.stacks import checkpoint_topology, stack_values

    net = nn.Sequential([nn.Dense(2), nn.relu])
    x0 = jnp.zeros((1, 3))
    kernel = jnp.stack([jnp.full((3, 2), 2.0), jnp.full((3, 2), 2.0)])
    bias = jnp.array([[0.5, 0.5], [20.0, 0.5]])
    stacked = {"layers_0": {"kernel": kernel, "bias": bias}}
    top = ei_jax.topology_of(net, {"params": {"layers_0": {"kernel": kernel[0], "bias": bias[0]}}}, x0)
    with pytest.warns(ei_jax.OutOfRangeWarning, match="checkpoint 1.*0 bits"):
        got = stack_values(top, stacked, bins=8, in_range=(0.0, 1.0))["layers_0"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ei_jax.OutOfRangeWarning)
        for j in range(2):
            one = checkpoint_topology(top, stacked, j)
            kw = dict(in_range=(0.0, 1.0), in_bins=8, out_bins=8)
            np.testing.assert_allclose(got["ei_parts"][j], exact.ei_parts(one, "layers_0", **kw), atol=1e-9)
            np.testing.assert_allclose(got["sensitivity"][j], exact.sensitivity(one, "layers_0", **kw),
                                       atol=1e-9)
