"""Exact measures for activations that are not monotone: GELU (erf and tanh forms), SiLU, mish.

An output bin's preimage is then a union of intervals. The reference here shares nothing with
ei_jax's kernel: each bin's preimage is found by scanning the activation (its own formula,
from scipy) on a dense grid of ``z`` through its minimum (scipy's minimiser) and refining every
crossing of a bin edge with ``brentq``; the pair's joint is the CDF of ``z`` -- a weighted sum
of independent uniforms -- differenced over those intervals, with the CDF from the vertex
(inclusion-exclusion) formula evaluated in exact rational arithmetic (``fractions``).
"""

import functools
import math
from fractions import Fraction

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import optimize, special

import ei_jax
from ei_jax import exact, topology_of

# independent float64 forms of the activations (scipy's normal CDF and logistic)
ACTS = {
    "gelu": lambda z: z * special.ndtr(z),
    "gelu_tanh": lambda z: 0.5 * z * (1 + np.tanh(np.sqrt(2 / np.pi) * (z + 0.044715 * z ** 3))),
    "silu": lambda z: z * special.expit(z),
    "mish": lambda z: z * np.tanh(np.logaddexp(0.0, z)),
}
IN_RANGE = (-1.0, 1.0)
# reaches below 0, where each activation takes every value twice, and below its minimum
OUT_RANGE = (-0.32, 1.2)


def _edges(lo, hi, k):
    """deep-ei's pairwise edges: [lo - 1e-6, hi + 1e-6) in k equal bins (SPEC section 1)."""
    return lo - 1e-6 + np.arange(k + 1) * ((hi - lo + 2e-6) / k)


def _cdf(t, lows, highs, weights, bias):
    """P(bias + sum_l w_l U_l < t), U_l ~ U(lows_l, highs_l): the vertex formula, exactly."""
    t, n = Fraction(float(t)) - Fraction(float(bias)), len(weights)
    spans, starts = [], []
    for w, a, b in zip(weights, lows, highs):
        w, a, b = Fraction(float(w)), Fraction(float(a)), Fraction(float(b))
        lo_end = w * a if w > 0 else w * b
        starts.append(lo_end)
        spans.append(abs(w) * (b - a))
    total = Fraction(0)
    for mask in range(1 << n):
        v = sum(starts) + sum(spans[l] for l in range(n) if mask >> l & 1)
        if t > v:
            sign = -1 if bin(mask).count("1") % 2 else 1
            total += sign * (t - v) ** n
    return float(total / (math.factorial(n) * math.prod(spans)))


@functools.cache
def _minimum(name):
    res = optimize.minimize_scalar(ACTS[name], bounds=(-3.0, 0.0), method="bounded",
                                   options={"xatol": 1e-12})
    return float(res.x)


def _segments(name, zlo, zhi, edges):
    """``[(c, d, j)]``: on ``[c, d]`` the output is in bin ``j`` (``zlo..zhi`` covered)."""
    f = ACTS[name]
    grid = np.union1d(np.linspace(zlo, zhi, 4001), [min(max(_minimum(name), zlo), zhi)])
    vals = f(grid)
    cuts = [zlo, zhi]
    for e in edges:
        g = vals - e
        for s in np.nonzero(np.sign(g[:-1]) * np.sign(g[1:]) < 0)[0]:
            cuts.append(optimize.brentq(lambda z: f(z) - e, grid[s], grid[s + 1], xtol=1e-15,
                                        rtol=1e-15))
    cuts = np.unique(cuts)
    out = []
    for c, d in zip(cuts[:-1], cuts[1:]):
        j = int(np.searchsorted(edges, f(0.5 * (c + d)), side="right")) - 1
        if 0 <= j < len(edges) - 1:
            out.append((c, d, j))
    return out


def _mi(joint):
    p = joint / joint.sum()
    px, py = p.sum(1, keepdims=True), p.sum(0, keepdims=True)
    nz = p > 0
    return float(np.sum(p[nz] * np.log2(p[nz] / (px @ py)[nz])))


def _reference(name, kernel, bias, k_in, k_out, sensitivity):
    """The ``(n_in, n_out)`` exact matrix, independently (module docstring)."""
    lo, hi = IN_RANGE
    a = np.clip(_edges(lo, hi, k_in), lo, hi)
    out_edges = _edges(*OUT_RANGE, k_out)
    n_in, n_out = kernel.shape
    mat = np.zeros((n_in, n_out))
    for B in range(n_out):
        for A in range(n_in):
            others = [] if sensitivity else [l for l in range(n_in) if l != A]
            w = [kernel[A, B]] + [kernel[l, B] for l in others]
            z = [bias[B] + sum(min(x * lo, x * hi) for x in w),
                 bias[B] + sum(max(x * lo, x * hi) for x in w)]
            segs = _segments(name, z[0], z[1], out_edges)
            joint = np.zeros((k_in, k_out))
            for i in range(k_in):
                lows, highs = [a[i]] + [lo] * len(others), [a[i + 1]] + [hi] * len(others)
                for c, d, j in segs:
                    joint[i, j] += ((_cdf(d, lows, highs, w, bias[B])
                                     - _cdf(c, lows, highs, w, bias[B])) * (a[i + 1] - a[i]))
            mat[A, B] = _mi(joint)
    return mat


def _layer(n_in, n_out, seed):
    if (n_in, n_out) == (1, 1):          # z in [-3.5, 2.5]: both branches, and the minimum
        return np.array([[3.0]]), np.array([-0.5])
    r = np.random.default_rng(seed)
    return r.normal(size=(n_in, n_out)) * 2.0, r.normal(size=n_out) * 0.5


@pytest.mark.parametrize("name, shape", [
    (name, shape) for name in ("gelu", "silu", "mish") for shape in ((1, 1), (2, 2), (5, 3))
] + [("gelu_tanh", (2, 2))])
def test_exact_matrices_equal_an_independent_computation(name, shape):
    kernel, bias = _layer(*shape, seed=sum(shape))
    kw = dict(activation=name, in_range=IN_RANGE, in_bins=6, out_range=OUT_RANGE, out_bins=12)
    with jax.enable_x64(True):
        parts = np.asarray(exact.exact_ei_parts_matrix(kernel, bias, **kw))
        sens = np.asarray(exact.exact_sensitivity_matrix(kernel, bias, **kw))
    np.testing.assert_allclose(parts, _reference(name, kernel, bias, 6, 12, False), atol=1e-6,
                               rtol=0)
    np.testing.assert_allclose(sens, _reference(name, kernel, bias, 6, 12, True), atol=1e-6,
                               rtol=0)
    assert parts.sum() > 0.1 and sens.sum() > 0.1


def _dense_top(kernel, bias):
    model = nn.Dense(kernel.shape[1])
    variables = {"params": {"kernel": jnp.asarray(kernel, jnp.float32),
                            "bias": jnp.asarray(bias, jnp.float32)}}
    return topology_of(model, variables, jnp.zeros((1, kernel.shape[0])))


@pytest.mark.parametrize("name", sorted(ACTS))
def test_sampled_agrees_with_exact(name):
    kernel, bias = _layer(2, 2, seed=7)
    kernel, bias = np.float32(kernel).astype(np.float64), np.float32(bias).astype(np.float64)
    top = _dense_top(kernel, bias)
    kw = dict(in_range=IN_RANGE, in_bins=6, out_range=OUT_RANGE, out_bins=12, activation=name)
    want = exact.ei_parts(top, "Dense", **kw)
    sens = exact.sensitivity(top, "Dense", **kw)
    est = ei_jax.ei_parts(jax.random.key(0), top, "Dense", samples=200_000, stderr=True, **kw)
    assert abs(float(est.value) - want) < 4 * float(est.stderr) + 1e-3
    est = ei_jax.sensitivity(jax.random.key(1), top, "Dense", samples=200_000, stderr=True, **kw)
    assert abs(float(est.value) - sens) < 4 * float(est.stderr) + 1e-3


@pytest.mark.parametrize("name, n_in", [("gelu", 2), ("mish", 5)])
def test_gradients_match_finite_differences(name, n_in):
    kernel, bias = _layer(n_in, 2, seed=11)
    kw = dict(activation=name, in_range=IN_RANGE, in_bins=5, out_range=OUT_RANGE, out_bins=9)

    @jax.jit
    def total(k, b):
        return (exact.exact_ei_parts_matrix(k, b, **kw).sum()
                + exact.exact_sensitivity_matrix(k, b, **kw).sum())

    with jax.enable_x64(True):
        gk, gb = jax.grad(total, argnums=(0, 1))(jnp.asarray(kernel), jnp.asarray(bias))
        h = 1e-6
        for arr, g, which in ((kernel, gk, 0), (bias, gb, 1)):
            fd = np.zeros_like(arr)
            for idx in np.ndindex(arr.shape):
                up, down = arr.copy(), arr.copy()
                up[idx] += h
                down[idx] -= h
                args_up = (up, bias) if which == 0 else (kernel, up)
                args_down = (down, bias) if which == 0 else (kernel, down)
                fd[idx] = (float(total(*args_up)) - float(total(*args_down))) / (2 * h)
            assert np.all(np.isfinite(np.asarray(g)))
            np.testing.assert_allclose(np.asarray(g), fd, rtol=1e-4, atol=1e-6)


def test_edges_below_the_minimum_and_out_of_range_mass():
    """An output range wholly below the minimum is empty; one above it drops the rest."""
    kernel, bias = _layer(2, 1, seed=3)
    kw = dict(in_range=IN_RANGE, in_bins=4, out_bins=4, activation="silu")
    with jax.enable_x64(True):
        empty = exact.exact_ei_parts_matrix(kernel, bias, out_range=(-1.0, -0.3), **kw)
        assert np.all(np.isnan(np.asarray(empty)))
        # bins only on the left branch (z < 0) and the matching right-branch values
        part = np.asarray(exact.exact_ei_parts_matrix(kernel, bias, out_range=(-0.2, -0.01), **kw))
    ref = _reference_range("silu", kernel, bias, 4, 4, (-0.2, -0.01))
    np.testing.assert_allclose(part, ref, atol=1e-6, rtol=0)


def _reference_range(name, kernel, bias, k_in, k_out, out_range):
    global OUT_RANGE
    saved, OUT_RANGE = OUT_RANGE, out_range
    try:
        return _reference(name, kernel, bias, k_in, k_out, False)
    finally:
        OUT_RANGE = saved


# ---- traced models: the activation is recognised from its values ----------------------------

class _PreLN(nn.Module):
    """A pre-LN transformer MLP block's read: LayerNorm -> Dense -> act -> Dense."""
    act: object
    norm_inside: bool = False

    @nn.compact
    def __call__(self, x):
        if not self.norm_inside:
            x = nn.LayerNorm()(x)
        h = nn.Dense(5)(x)
        if self.norm_inside:
            h = nn.LayerNorm()(h)
        return nn.Dense(3)(self.act(h))


@pytest.mark.parametrize("act, name", [
    (nn.gelu, "gelu_tanh"),                                   # flax / jax default: tanh form
    (functools.partial(jax.nn.gelu, approximate=False), "gelu"),
    (nn.silu, "silu"), (nn.swish, "silu"), (jax.nn.mish, "mish"),
    (lambda x: x * jax.nn.sigmoid(x), "silu"),                # written out by hand
])
def test_traced_layer_ending_in_the_activation_is_exact(act, name):
    x0 = jnp.zeros((1, 4))
    model = _PreLN(act)
    variables = model.init(jax.random.key(0), x0)
    p = variables["params"]
    r = np.random.default_rng(0)
    p = {**p, "LayerNorm_0": {"scale": jnp.ones(4, jnp.float32),
                              "bias": jnp.asarray(r.normal(size=4), jnp.float32)}}
    top = topology_of(model, {"params": p}, x0)
    node = top.nodes["Dense_0"]
    assert node["output"]["activation"] == name
    assert node["exact"] is None
    lo_hi = ei_jax.activations()[[a.name for a in ei_jax.activations()].index(name)].default_range
    nxt = top.nodes["Dense_1"]["input"]
    assert nxt["activation"] == name and nxt["range"] == lo_hi and not nxt["range_guessed"]
    # the layer's map is the LayerNorm's shift folded into the Dense
    shift = np.asarray(p["LayerNorm_0"]["bias"], np.float64)
    w, b = np.asarray(p["Dense_0"]["kernel"], np.float64), np.asarray(p["Dense_0"]["bias"], np.float64)
    kw = dict(in_range=(-2.0, 2.0), in_bins=6, out_bins=10)
    got = exact.ei_parts_matrix(top, "Dense_0", **kw)
    with jax.enable_x64(True):
        want = np.asarray(exact.exact_ei_parts_matrix(w, shift @ w + b,
                                                      activation=name, out_range=lo_hi, **kw))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
    assert got.sum() > 0.05


def test_layernorm_then_gelu_is_labelled_gelu_and_ranges_the_next_layer():
    """Dense -> LayerNorm -> GELU: sampled only (the normalisation), but its output is GELU's,
    so the label is the activation (not the normalisation's first operation, 'square') and the
    next layer's input range is GELU's, not a guess."""
    x0 = jnp.zeros((1, 4))
    model = _PreLN(nn.gelu, norm_inside=True)
    top = topology_of(model, model.init(jax.random.key(0), x0), x0)
    assert top.nodes["Dense_0"]["output"]["activation"] == "gelu_tanh"
    assert top.nodes["Dense_0"]["output"]["range"] == (-0.18, 10.0)
    nxt = top.nodes["Dense_1"]["input"]
    assert nxt["activation"] == "gelu_tanh" and nxt["range"] == (-0.18, 10.0)
    assert not nxt["range_guessed"]
    with pytest.raises(ei_jax.errors.ExactUnavailableError, match="before its activation"):
        exact.ei_parts(top, "Dense_0", in_range=(-1, 1), in_bins=4, out_bins=4)


def test_torch_gelu_silu_mish_are_exact_through_bridges():
    torch = pytest.importorskip("torch")
    import bridges

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.GELU(), torch.nn.Linear(4, 4),
                              torch.nn.SiLU(), torch.nn.Linear(4, 2), torch.nn.Mish())
    model, variables = bridges.from_torch(net)
    top = topology_of(model, variables, jnp.zeros((1, 3)))
    names = list(top)
    assert [top.nodes[n]["output"]["activation"] for n in names] == ["gelu", "silu", "mish"]
    for n, lin in zip(names, (net[0], net[2], net[4])):
        kw = dict(in_range=(-1.0, 1.0), in_bins=5, out_bins=8)
        got = exact.ei_parts_matrix(top, n, **kw)
        act = top.nodes[n]["output"]["activation"]
        with jax.enable_x64(True):
            want = exact.exact_ei_parts_matrix(
                lin.weight.detach().numpy().T.astype(np.float64),
                lin.bias.detach().numpy().astype(np.float64), activation=act,
                out_range=ei_jax.activations()[[a.name for a in ei_jax.activations()].index(act)]
                .default_range, **kw)
        np.testing.assert_allclose(got, np.asarray(want), rtol=1e-5, atol=1e-7)
