"""The compiled CPU kernel of the exact EI_parts series against the XLA path it stands in for.

Concrete weights on the CPU take :mod:`ei_jax._src.exact.parts_compiled` (numba); traced
weights take XLA. Both compute the same float64 series with different sequences of rounding
(harmonics by rotation against blocked products, another summation order), so they agree to
a few 1e-15 bits, never exactly; the bound asserted is 1e-12 bits (issue 27's "values
unchanged"). The independent references of the other test files (mpmath, exact rationals,
deep-ei) now run through the compiled kernel wherever they call the measure eagerly.
"""

import jax
import numpy as np
import pytest

from ei_jax._src.exact import compiled_path, terms
from ei_jax._src.exact.kernel import exact_ei_parts_matrix

OUT = {"sigmoid": (0.0, 1.0), "tanh": (-1.0, 1.0), "relu": (0.0, 2.0), "identity": (-3.0, 3.0),
       "softplus": (0.0, 3.0), "elu": (-1.0, 2.0), "leaky_relu": (-0.5, 2.0),
       "gelu": (-0.2, 1.5), "gelu_tanh": (-0.2, 1.5), "silu": (-0.3, 1.5), "mish": (-0.35, 1.5)}


def _both(kernel, bias, **kw):
    """(compiled, XLA) float64 results of the same call."""
    with jax.enable_x64(True):
        try:
            compiled_path.FORCE = True
            fast = np.asarray(exact_ei_parts_matrix(kernel, bias, **kw))
            compiled_path.FORCE = False
            slow = np.asarray(exact_ei_parts_matrix(kernel, bias, **kw))
        finally:
            compiled_path.FORCE = None
    return fast, slow


def _assert_same(fast, slow):
    assert fast.dtype == slow.dtype == np.float64
    np.testing.assert_array_equal(np.isnan(fast), np.isnan(slow))
    assert np.nanmax(np.abs(fast - slow), initial=0.0) <= 1e-12


@pytest.mark.parametrize("activation", sorted(OUT))
def test_every_activation_agrees_with_the_xla_path(activation):
    rng = np.random.default_rng(len(activation))
    n, m = 70, 5                             # 70 inputs: a full chunk of 64 and a remainder
    kernel = rng.normal(size=(n, m)) * rng.uniform(0.2, 3.0, size=m) / np.sqrt(n)
    bias = rng.normal(size=m)
    kw = dict(activation=activation, in_range=(-1.0, 1.0), in_bins=5, out_range=OUT[activation],
              out_bins=7)
    fast, slow = _both(kernel, bias, **kw)
    assert np.isfinite(fast).all() and fast.max() > 1e-4     # informative pairs, not all zeros
    _assert_same(fast, slow)


@pytest.mark.parametrize("n, m, in_bins, out_bins", [(4, 3, 2, 2), (5, 4, 3, 8), (37, 6, 8, 8),
                                                     (130, 3, 64, 4), (64, 2, 1, 5)])
def test_shapes_and_bin_counts(n, m, in_bins, out_bins):
    rng = np.random.default_rng(n * 100 + in_bins)
    kernel = rng.uniform(-1, 1, size=(n, m)) * 2 / np.sqrt(n)
    bias = 0.3 * rng.normal(size=m)
    kw = dict(activation="sigmoid", in_range=(0.0, 1.0), in_bins=in_bins, out_range=(0.0, 1.0),
              out_bins=out_bins)
    _assert_same(*_both(kernel, bias, **kw))


def test_zero_weights_empty_columns_and_concentrated_columns():
    """A zero weight gives exactly 0; a column whose outputs all fall outside out_range is NaN;
    a column with most of its spread in one input needs (and gets) more terms."""
    rng = np.random.default_rng(7)
    n = 12
    kernel = rng.normal(size=(n, 4)) / np.sqrt(n)
    kernel[3, :] = 0.0                       # an input that reaches no output
    kernel[:, 1] = 0.0                       # an output that no input reaches
    kernel[0, 2] = 40.0                      # one input dominates: more terms than the default
    bias = np.array([0.1, 0.2, -0.3, 50.0])  # output 3: z far above out_range's preimage
    kw = dict(activation="tanh", in_range=(-1.0, 1.0), in_bins=6, out_range=(-0.9, 0.9),
              out_bins=6)
    assert terms.choose_terms(kernel, (-1.0, 1.0)) > terms.default_terms(n)
    fast, slow = _both(kernel, bias, **kw)
    assert (fast[3, :3] == 0).all() and np.isnan(fast[:, 3]).all()
    assert (fast[:, 1][np.arange(n) != 3] == 0).all()
    _assert_same(fast, slow)


@pytest.mark.parametrize("n, terms", [(20, 96), (4, 16384)])
def test_explicit_terms_and_a_shifted_input_range(n, terms):
    """Also a long series: the compiled harmonics come from term-by-term rotations (rounding
    growing like k eps), XLA's from blocks of sqrt(K) (sqrt(K) eps)."""
    rng = np.random.default_rng(3)
    kernel = rng.normal(size=(n, 3))
    kw = dict(activation="sigmoid", in_range=(-2.0, 0.5), in_bins=4, out_range=(0.0, 1.0),
              out_bins=5, terms=terms)
    _assert_same(*_both(kernel, np.zeros(3), **kw))


def test_traced_and_concrete_weights_agree():
    """Under jit the weights are traced: the compiled series through a host callback with
    the fan-in's term count; eagerly: the compiled kernel with the weights' own. Same numbers."""
    rng = np.random.default_rng(11)
    kernel = rng.normal(size=(30, 4)) / np.sqrt(30)
    kw = dict(activation="sigmoid", in_range=(0.0, 1.0), in_bins=8, out_range=(0.0, 1.0),
              out_bins=8)
    with jax.enable_x64(True):
        jitted = np.asarray(jax.jit(lambda k: exact_ei_parts_matrix(k, None, **kw))(kernel))
        eager = np.asarray(exact_ei_parts_matrix(kernel, None, **kw))
    _assert_same(eager, jitted)


def test_what_takes_the_compiled_kernel(monkeypatch):
    """Concrete weights of a layer past SMALL take it, traced weights (jit, grad) of any size
    on the CPU too; small concrete layers, joint tables and series whose per-thread tables
    would pass SERIES_TABLE do not (the calls to the compiled kernel are counted)."""
    from ei_jax._src.exact import parts_compiled
    from ei_jax._src.exact.kernel import exact_joint_tables

    calls = []
    real = parts_compiled.series_mi
    monkeypatch.setattr(parts_compiled, "series_mi", lambda *a, **k: calls.append(1) or real(*a, **k))
    kernel = np.random.default_rng(5).normal(size=(8, 3)) / 3
    kw = dict(activation="sigmoid", in_range=(0.0, 1.0), in_bins=4, out_range=(0.0, 1.0), out_bins=4)
    exact_ei_parts_matrix(kernel, None, **kw)                  # 8 x 3 x 4 bins x 64 terms: small
    assert calls == []
    monkeypatch.setattr(compiled_path, "SMALL", 8 * 3 * 4 * 64)
    exact_ei_parts_matrix(kernel, None, **kw)
    assert calls == [1]
    jax.jit(lambda k: exact_ei_parts_matrix(k, None, **kw))(kernel)
    assert calls == [1, 1]
    jax.grad(lambda k: exact_ei_parts_matrix(k, None, **kw).sum())(kernel)
    assert calls == [1, 1, 1]                              # the forward; the VJP is its own kernel
    exact_joint_tables(kernel, None, **kw)
    monkeypatch.setattr(compiled_path, "SERIES_TABLE", 8 * 64 - 1)     # 8 inputs x 64 terms
    exact_ei_parts_matrix(kernel, None, **kw)
    jax.jit(lambda k: exact_ei_parts_matrix(k, None, **kw))(kernel)
    assert calls == [1, 1, 1]
