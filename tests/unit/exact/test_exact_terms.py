"""The series length comes from the layer's shape: new weights never recompile (issue #27)."""

import jax
import numpy as np
import pytest

from ei_jax._src.exact import kernel as exact_core
from ei_jax._src.exact import terms
from tests.reference import exact_reference as ref

KW = dict(activation="sigmoid", in_range=(0, 1), in_bins=8, out_range=(0, 1), out_bins=8)


def _weights(seed, n, m, kind):
    rng = np.random.default_rng(seed)
    if kind == "normal":
        return rng.normal(size=(n, m)) * 2 / np.sqrt(n)
    if kind == "signs":
        return rng.choice([-1.0, 1.0], size=(n, m)) * 2 / np.sqrt(n)
    return rng.uniform(-2, 2, size=(n, m)) / np.sqrt(n)


@pytest.mark.parametrize("n", [10, 12, 16, 32, 100, 784])
def test_random_weights_need_no_more_than_the_shape_count(n):
    # the bound on the truncation error of F is met by the count from n_in alone
    for seed, kind in ((0, "normal"), (1, "uniform")):
        w = _weights(seed, n, 100, kind)
        assert terms.choose_terms(w, (0, 1)) == terms.default_terms(n), (n, kind)


def test_concentrated_weights_still_get_more_terms_or_none():
    w = np.full((6, 2), 1e-3)
    w[0] = 5.0
    assert terms.choose_terms(w, (0, 1)) > terms.default_terms(6)
    w[1:] = 1e-7
    assert terms.choose_terms(w, (0, 1)) > terms.MAX_TERMS
    # one dominant input is integrated analytically (test_exact_dominant.py); two are not
    w[1] = 4.0
    with pytest.raises(exact_core.ExactUnavailableError):
        exact_core.exact_ei_parts_matrix(w, None, **KW)


@pytest.mark.parametrize("n,m", [(10, 10), (100, 20)])
def test_new_weights_compile_nothing_and_match_the_reference(n, m):
    # equal magnitudes need far fewer terms than uniform ones: a count from the weights
    # recompiled here (10 -> 10: 1 s instead of 0.01 s)
    w1, w2 = _weights(2, n, m, "signs"), _weights(3, n, m, "uniform")
    b1, b2 = np.full(m, 0.1), np.full(m, -0.2)
    with jax.enable_x64(True):
        first = np.asarray(exact_core.exact_ei_parts_matrix(w1, b1, **KW))
        before = exact_core._matrix._cache_size()
        second = np.asarray(exact_core.exact_ei_parts_matrix(w2, b2, **KW))
        assert exact_core._matrix._cache_size() == before            # eager: no new program
        jitted = jax.jit(lambda k, b: exact_core.exact_ei_parts_matrix(k, b, **KW))
        traced = [np.asarray(jitted(w, b)) for w, b in ((w1, b1), (w2, b2))]
        assert jitted._cache_size() == 1                              # jit: no recompile
    # traced weights get the same count as concrete ones: the same numbers
    np.testing.assert_allclose(traced[0], first, rtol=0, atol=1e-12)
    np.testing.assert_allclose(traced[1], second, rtol=0, atol=1e-12)
    if n <= 10:                       # the reference's vertex form (Gil-Pelaez beyond is slow)
        for got, w, b in ((first, w1, b1), (second, w2, b2)):
            want = ref.ei_parts_matrix(w, b, **KW)
            assert np.nanmax(want) > 1e-2
            np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)


def test_traced_weights_that_the_default_count_cannot_serve_are_nan_with_a_warning():
    """Under jax.jit the count comes from the fan-in alone; a column with almost all its
    spread in one input would be truncated silently. The bound is evaluated in the traced
    computation: that column is NaN with an ExactTruncatedWarning, the others equal the
    concrete values, and the traced bound agrees with the host's choice column by column."""
    from ei_jax._src.exact import traced_guard
    from ei_jax.errors import ExactTruncatedWarning

    rng = np.random.default_rng(0)
    w = np.column_stack([np.r_[1.0, np.full(5, 1e-3)], rng.normal(size=6), np.full(6, 0.5)])
    concrete = np.asarray(exact_core.exact_ei_parts_matrix(w, None, **KW))
    jitted = jax.jit(lambda k: exact_core.exact_ei_parts_matrix(k, None, **KW))
    with pytest.warns(ExactTruncatedWarning, match=r"column\(s\) \[0\].*NaN"):
        traced = np.asarray(jax.block_until_ready(jitted(w)))
    assert np.isnan(traced[:, 0]).all() and np.isfinite(concrete[:, 0]).all()
    np.testing.assert_allclose(traced[:, 1:], concrete[:, 1:], rtol=0, atol=1e-12)
    # the traced bound says "not enough" exactly where the host picks more terms per column
    default = terms.default_terms(6)
    need = terms.terms_per_column(np.abs(w), terms.TERMS_TOL)
    bound = np.asarray(traced_guard.tail_bound(jax.numpy.asarray(w), (0.0, 1.0), default))
    assert list(bound > traced_guard.TRACED_TOL) == list(need > default) == [True, False, False]
