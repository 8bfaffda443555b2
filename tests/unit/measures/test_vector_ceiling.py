"""No silent ceiling: a vector EI at ``log2 N`` says so (issue #25).

Ground truth: an identity layer with many bins (4 inputs x 256 bins: 2^32 cells for 4,000
rows), where every row is alone in its cell, so H(X) = H(Y) = H(X, Y) = log2 N and the
plug-in vector EI is exactly ``log2 N`` -- a number about the sample count, not the layer.
"""

import math
import warnings

import flax.linen as nn
import jax
import jax.numpy as jnp
import pytest

import ei_jax
from ei_jax import core
from ei_jax._src.measures.vector_uncertainty import limited_summary

N = 4_000
KW = dict(in_range=(0.0, 1.0), in_bins=256, out_range=(0.0, 1.0), out_bins=256)


@pytest.fixture(scope="module")
def identity():
    net = nn.Dense(4, use_bias=False)
    x0 = jnp.zeros((1, 4))
    return ei_jax.topology_of(net, {"params": {"kernel": jnp.eye(4)}}, x0)


def test_plain_ei_at_the_ceiling_warns_with_the_counts(identity):
    with pytest.warns(ei_jax.SampleLimitedWarning, match=r"4,000 of the 4,000 rows \(100%\).*log2 N = 11\.9658"):
        v = ei_jax.ei(jax.random.key(0), identity, "Dense", samples=N, **KW)
    assert v == pytest.approx(math.log2(N), abs=1e-5)      # the analytic ceiling
    with pytest.warns(ei_jax.SampleLimitedWarning, match="alone in their"):
        g = ei_jax.eis_between_groups(jax.random.key(0), identity, "Dense", [((0, 1, 2, 3), (0, 1, 2, 3))],
                                      samples=N, **KW)
    assert g[0] == pytest.approx(math.log2(N), abs=1e-5)


def test_the_estimate_is_flagged_and_says_so(identity):
    with pytest.warns(ei_jax.SampleLimitedWarning, match=r"4,000 of the 4,000 rows \(100%\)") as rec:
        est = ei_jax.ei(jax.random.key(0), identity, "Dense", samples=N, stderr=True, **KW)
    assert est.limited and est.value == pytest.approx(math.log2(N), abs=1e-9)
    w = next(r.message for r in rec if isinstance(r.message, ei_jax.SampleLimitedWarning))
    assert w.singletons == 1.0 and w.rows == N


def test_a_layer_far_from_its_ceiling_is_quiet():
    net = nn.Sequential([nn.Dense(1, use_bias=False), nn.sigmoid])
    x0 = jnp.zeros((1, 1))
    top = ei_jax.topology_of(net, {"params": {"layers_0": {"kernel": jnp.array([[8.0]])}}}, x0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ei_jax.SampleLimitedWarning)
        v = ei_jax.ei(jax.random.key(0), top, "layers_0", samples=20_000, in_range=(-1.0, 1.0),
                      in_bins=4, out_bins=4)
    assert 1.0 < v <= 2.0


def test_the_core_under_vmap_exposes_what_the_host_checks():
    """No warning can be raised under vmap: the documented check on vector_stats flags it."""
    def apply(w, x):
        return x @ w

    stack = jnp.stack([jnp.eye(4), 1e-3 * jnp.eye(4)])       # saturated; one output cell
    stats = jax.vmap(lambda w: core.vector_stats(jax.random.key(0), apply, w, in_shape=(4,),
                                                 samples=N, **KW))(stack)
    flagged = stats.mi[:, 0] > jnp.log2(stats.rows) - 1
    assert flagged.tolist() == [True, False]
    assert float(stats.mi[0, 0]) == pytest.approx(math.log2(N), abs=1e-5)


def test_the_run_summary_gives_the_real_numbers():
    figures = [dict(singletons=f, rows=1000, shift=s) for f, s in ((0.05, 0.3), (0.38, 0.1), (0.33, 0.2))]
    text = limited_summary(3, 9, 20_000, 8, figures)
    assert "5-38% of the rows alone in their cell" in text and "0.1 to 0.3 bits" in text
    assert "most" not in text
    text = limited_summary(2, 9, 20_000, 8, [dict(singletons=0.9, shift=0.1), dict(singletons=0.1, shift=0.1)])
    assert "10-90% of the rows" in text and "most rows in 1 of them" in text
