"""Sensitivity (and one-input EI_parts) from the banded joint equal the dense table's MI."""

import jax
import numpy as np
import pytest

from ei_jax._src.exact import kernel as exact_core

# (n_in, n_out, activation, out_range, bins, weight scale): drops on both sides, ReLU's bin of
# 0, an out_range wider than sigmoid's image (repeated infinite thresholds), unequal bins.
CASES = [
    (6, 4, "sigmoid", (0, 1), (8, 8), 2.0),
    (30, 20, "tanh", (-1, 1), (32, 32), 3.0),
    (20, 16, "relu", (0, 1), (64, 64), 1.0),
    (12, 10, "sigmoid", (0.2, 0.9), (16, 24), 5.0),
    (10, 10, "identity", (-1, 1), (12, 7), 1.0),
    (16, 12, "sigmoid", (-1, 2), (64, 64), 4.0),
    (1, 40, "sigmoid", (0, 1), (3, 64), 4.0),
    (5, 3, "tanh", (-1, 1), (1, 8), 2.0),
    (7, 5, "leaky_relu", (-1, 1), (2, 3), 2.0),
]


def _dense(fn, *args, **kw):
    exact_core._LEGACY = True
    try:
        return np.asarray(fn(*args, **kw))
    finally:
        exact_core._LEGACY = False


@pytest.mark.parametrize("case", CASES, ids=[f"{c[0]}x{c[1]}-{c[2]}-{c[4][0]}" for c in CASES])
def test_banded_equals_dense_table(case):
    n, m, act, orr, (ib, ob), scale = case
    rng = np.random.default_rng(n * m)
    w = rng.normal(size=(n, m)) * scale
    w[0, 0], w[-1, -1] = 0.0, 1e-12                      # a zero and a tiny weight
    b = rng.normal(size=m)
    kw = dict(activation=act, in_range=(0, 1), in_bins=ib, out_range=orr, out_bins=ob)
    with jax.enable_x64(True):
        fns = [exact_core.exact_sensitivity_matrix] + ([exact_core.exact_ei_parts_matrix] if n == 1 else [])
        for fn in fns:
            new = np.asarray(fn(w, b, **kw))
            old = _dense(fn, w, b, **kw)
            np.testing.assert_array_equal(np.isnan(new), np.isnan(old))
            assert ib == 1 or np.nanmax(old) > 0.5
            np.testing.assert_allclose(new, old, rtol=0, atol=1e-12)
            assert new[0, 0] == 0.0 or np.isnan(new[0, 0])
