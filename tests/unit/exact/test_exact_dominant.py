"""Columns with almost all their spread in one input (residual layers): the dominant input is
integrated analytically (:mod:`ei_jax._src.exact.dominant`). Checked against the CDF of a sum of
independent uniforms by the inclusion-exclusion (box-spline) formula in 40-digit arithmetic,
written here."""

import itertools
import math

import jax
import flax.linen as nn
import jax.numpy as jnp
import mpmath
import numpy as np
import pytest

from ei_jax import topology_of
from ei_jax._src.exact import dominant
from ei_jax._src.exact import kernel as exact_core
from ei_jax._src.exact import terms
from ei_jax._src.exact.preimages import input_bins, output_bins
from ei_jax._src.exact.stacks import stack_values
from ei_jax.errors import ExactUnavailableError

IN, K_IN, K_OUT = (0.0, 1.0), 6, 6
KW = dict(activation="sigmoid", in_range=IN, in_bins=K_IN, out_range=(0, 1), out_bins=K_OUT)
# column 0: one input of weight 4 on [0, 1], four of weight 1.5e-3 .. 6e-3 (its series would
# need ~60,000 terms; MAX_TERMS is 32,768); column 1: a residual stream's copy z = -2 x_3 + b,
# no other input at all (the rest a point mass)
W = np.array([[4.0, 0.0], [3e-3, 0.0], [-6e-3, 0.0], [1.5e-3, -2.0], [-4.5e-3, 0.0]])
B = np.array([-2.0, 0.3])


def _sum_cdf(x, lows, widths):
    """P(sum_l U_l <= x), U_l uniform on [lows_l, lows_l + widths_l]:
    ``sum_S (-1)^|S| (x - sum lows - sum_{l in S} widths_l)_+^n / (n! prod widths)``."""
    s = x - sum(lows)
    widths = [wl for wl in widths if wl > 0]            # zero widths: point masses, in lows
    n = len(widths)
    if n == 0:
        return mpmath.mpf(1 if s > 0 else 0)
    total = mpmath.mpf(0)
    for subset in itertools.product((0, 1), repeat=n):
        r = s - sum(wl for wl, on in zip(widths, subset) if on)
        if r > 0:
            total += (-1) ** sum(subset) * r ** n
    return total / (math.factorial(n) * mpmath.fprod(widths))


def _reference_tables(w, b):
    """``(n_in, k_in, k_out)`` joint tables of every pair (A, 0) of the one column ``w``."""
    mpmath.mp.dps = 40
    a, _, _, p = input_bins(IN, K_IN)
    t = output_bins("sigmoid", (0, 1), K_OUT).t           # the bins' pre-activation edges
    lo, hi = (mpmath.mpf(x) for x in IN)
    out = np.zeros((len(w), K_IN, K_OUT))
    for A in range(len(w)):
        for i in range(K_IN):
            ends = [(mpmath.mpf(float(a[i])), mpmath.mpf(float(a[i + 1]))) if l == A else (lo, hi)
                    for l in range(len(w))]
            # v U on [e0, e1] is uniform on [min, max] of v e0, v e1
            lows = [min(mpmath.mpf(float(v)) * e0, mpmath.mpf(float(v)) * e1) for v, (e0, e1) in zip(w, ends)]
            widths = [abs(mpmath.mpf(float(v))) * (e1 - e0) for v, (e0, e1) in zip(w, ends)]
            cdf = [0.0 if x == -np.inf else 1.0 if x == np.inf
                   else float(_sum_cdf(mpmath.mpf(float(x)) - float(b), lows, widths)) for x in t]
            out[A, i] = p[i] * np.diff(cdf)
    return out / out.sum(axis=(1, 2), keepdims=True)


def test_one_dominant_input_matches_the_uniform_sum_formula():
    assert terms.choose_terms(W[:, :1], IN) > terms.MAX_TERMS       # the new path, not the series
    with jax.enable_x64(True):
        got = np.asarray(exact_core.exact_joint_tables(W, B, **KW))
        bits = np.asarray(exact_core.exact_ei_parts_matrix(W, B, **KW))
    for j in range(2):
        want = _reference_tables(W[:, j], B[j])
        # F has a truncation bound of 1e-8 (terms.TERMS_TOL); a table entry is p_i times a
        # difference of two F values, and the column keeps all its mass (sigmoid on (0, 1))
        err = np.abs(got[:, j] - want).max()
        assert err < 2e-8, (j, err)
        assert err < 1e-11, (j, err)                   # measured 1.9e-16, 2.2e-16: rounding
        outer = want.sum(2, keepdims=True) * want.sum(1, keepdims=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            mi = np.sum(np.where(want > 0, want * np.log2(want / outer), 0.0), axis=(1, 2))
        mi[W[:, j] == 0] = 0.0                         # a zero weight is exactly 0 bits
        np.testing.assert_allclose(bits[:, j], mi, rtol=1e-6, atol=1e-9)


def test_a_checkpoint_stack_measures_each_checkpoint_alone():
    # stack_values vmaps the ordinary series over checkpoints; a dominant column is planned per
    # checkpoint from its concrete weights instead (the same compiled programs as above)
    net = nn.Sequential([nn.Dense(2), nn.sigmoid])
    x0 = jnp.zeros((1, 5))
    biases = np.stack([B, B + 0.5])
    stacked = {"layers_0": {"kernel": np.stack([W, W]), "bias": biases}}
    top = topology_of(net, {"params": {"layers_0": {"kernel": W, "bias": B}}}, x0)
    got = stack_values(top, stacked, bins=K_IN, in_range=IN)["layers_0"]["ei_parts"]
    with jax.enable_x64(True):
        want = [float(jnp.sum(exact_core.exact_ei_parts_matrix(W, b, **KW))) for b in biases]
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_two_dominant_inputs_still_raise():
    w = np.full((6, 1), 1e-7)
    w[0], w[1] = 5.0, 3.0
    with pytest.raises(ExactUnavailableError, match="two or more inputs"):
        exact_core.exact_ei_parts_matrix(w, None, **KW)


def test_derivative_matches_finite_differences():
    # With a concrete kernel and a traced bias (jax.grad over the bias) the public functions
    # take this path; their custom VJP is jax.vjp of it. Forward mode on the path itself checks
    # the same derivative at a third of reverse mode's compile time (jax.grad of the public
    # function gave the same 1.27688562, 4.21955958 when written).
    plan = dominant.plan(W, IN, K_IN)

    def path(b):
        return jnp.sum(dominant.dominant_matrix(jnp.asarray(W), b, plan.dom, plan.rest, tables=False,
                                                terms=plan.terms, **KW))

    def public(b):
        return float(jnp.sum(exact_core.exact_ei_parts_matrix(W, b, **KW)))

    with jax.enable_x64(True):
        b = jnp.asarray(B)
        d = [float(jax.jvp(path, (b,), (e,))[1]) for e in jnp.eye(2)]
        # the sum's curvature is large (the tiny weights' pairs): central differences of
        # column 0 at h = 1e-3, 1e-4, 1e-5, 1e-6 gave 1.254, 1.27666, 1.276883, 1.2768856
        h = 1e-6
        fd = [(public(b + h * e) - public(b - h * e)) / (2 * h) for e in np.eye(2)]
    np.testing.assert_allclose(d, fd, rtol=1e-6)
