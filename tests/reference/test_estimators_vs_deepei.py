"""Identical samples: ei_jax's estimators equal deep-ei 0.7.0's own computation.

The arrays are generated here, then binned and measured both by ei_jax and by deep-ei
itself (its ``MI``/fast_histogram path for pairs and its ``_tuples1d``/``_entropy`` path for
vectors), run in its own virtualenv through ``tests/reference/oracle.py``. Tolerance: 1e-3
bits per entry (the estimators are the same; differences are float32 rounding).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ei_jax
from ei_jax._src.info.binning import Binning
from tests.reference.oracle import run_oracle

RNG = np.random.default_rng(20201027)


def _layer(act, n_in, n_out, samples, in_range, scale):
    w = RNG.normal(0, scale, (n_in, n_out)).astype(np.float32)
    if act == "relu":
        w = np.abs(w)  # so that a good share of outputs exceeds the (0, 10) range
    x = RNG.uniform(in_range[0], in_range[1], (samples, n_in)).astype(np.float32)
    z = x @ w
    y = {"sigmoid": lambda v: 1 / (1 + np.exp(-v)), "tanh": np.tanh,
         "relu": lambda v: np.maximum(v, 0)}[act](z).astype(np.float32)
    return x, y


def _edge_values(lo, hi, bins, mode, n):
    """Values exactly on every bin threshold, their float32 neighbours, and the range ends."""
    t = Binning(float(lo), float(hi), bins, mode).thresholds
    t = t[np.isfinite(t)]
    vals = np.concatenate([t, np.nextafter(t, np.float32(-np.inf)), np.nextafter(t, np.float32(np.inf)),
                           np.float32([lo, hi])]).astype(np.float32)
    vals = vals[(vals >= lo) & (vals <= hi)]
    return np.resize(vals, n).astype(np.float32)


CASES = [
    # (activation, n_in, n_out, in_range, out_range, bins, samples, weight scale)
    ("sigmoid", 5, 5, (0, 1), (0, 1), 8, 20_000, 2.0),
    ("sigmoid", 4, 3, (0, 1), (0, 1), 64, 20_000, 4.0),
    ("tanh", 6, 4, (-1, 1), (-1, 1), 16, 20_000, 1.5),
    ("tanh", 3, 3, (0, 1), (-1, 1), 256, 30_000, 3.0),
    ("relu", 5, 4, (0, 10), (0, 10), 16, 20_000, 0.8),   # some outputs exceed 10
    ("relu", 4, 2, (0, 1), (0, 10), 64, 20_000, 9.0),    # many outputs exceed 10
]


@pytest.fixture(scope="module")
def pairwise_results():
    data, requests = [], []
    for act, n_in, n_out, r_in, r_out, bins, s, scale in CASES:
        x, y = _layer(act, n_in, n_out, s, r_in, scale)
        # Put exact bin edges and range ends into both x and y.
        x[:500, 0] = _edge_values(*r_in, bins, "pair", 500)
        y[:500, 0] = _edge_values(*r_out, bins, "pair", 500)
        data.append((x, y, r_in, r_out, bins))
        requests.append({"kind": "pairwise", "x": x, "y": y, "in_range": list(r_in), "in_bins": bins,
                         "out_range": list(r_out), "out_bins": bins})
    return data, run_oracle(requests)


@pytest.mark.parametrize("case", range(len(CASES)), ids=[f"{c[0]}-{c[5]}bins" for c in CASES])
@pytest.mark.parametrize("method", ["onehot", "bits", "scatter"])
def test_pairwise_mi_equals_deep_ei(pairwise_results, case, method):
    (x, y, r_in, r_out, bins), ref = pairwise_results[0][case], pairwise_results[1][case]
    got = np.asarray(ei_jax.pairwise_mutual_information(
        x, y, in_range=r_in, in_bins=bins, out_range=r_out, out_bins=bins, method=method))
    np.testing.assert_allclose(got, ref["mi"], atol=1e-3, rtol=0)
    counts, below, above = ei_jax.joint_histograms(x, y, in_range=r_in, in_bins=bins, out_range=r_out,
                                                   out_bins=bins, method=method)
    # Same samples counted per pair as deep-ei's fast_histogram.
    np.testing.assert_array_equal(np.asarray(counts).sum(axis=(2, 3)), ref["counted"])


@pytest.mark.parametrize("case", [4, 5])
def test_relu_cases_really_have_values_above_range(pairwise_results, case):
    x, y, *_ = pairwise_results[0][case]
    assert (y > 10).mean() > 0.05


@pytest.fixture(scope="module")
def vector_results():
    data, requests = [], []
    for act, n_in, n_out, r_in, r_out, bins, s, scale in CASES:
        if act == "relu" or bins > 16:
            continue  # deep-ei's vector path is a Python loop: keep it quick
        x, y = _layer(act, n_in, n_out, s, r_in, scale)
        x[:300, 0] = _edge_values(*r_in, bins, "vector", 300)
        y[:300, 0] = _edge_values(*r_out, bins, "vector", 300)
        data.append((x, y, r_in, r_out, bins))
        requests.append({"kind": "vector", "x": x, "y": y, "in_range": list(r_in), "in_bins": bins,
                         "out_range": list(r_out), "out_bins": bins})
    # A wide layer whose rows do not fit 64 bits: exercises the hashed row codes.
    x, y = _layer("sigmoid", 30, 3, 20_000, (0, 1), 1.0)
    data.append((x, y, (0, 1), (0, 1), 8))
    requests.append({"kind": "vector", "x": x, "y": y, "in_range": [0, 1], "in_bins": 8,
                     "out_range": [0, 1], "out_bins": 8})
    # A case with values above the range: rows with an index >= bins are dropped by both.
    x, y = _layer("relu", 3, 2, 20_000, (0, 10), 0.8)
    data.append((x, y, (0, 10), (0, 10), 8))
    requests.append({"kind": "vector", "x": x, "y": y, "in_range": [0, 10], "in_bins": 8,
                     "out_range": [0, 10], "out_bins": 8})
    return data, run_oracle(requests)


def test_vector_mi_equals_deep_ei(vector_results):
    data, refs = vector_results
    assert len(data) >= 4
    for (x, y, r_in, r_out, bins), ref in zip(data, refs):
        got = float(ei_jax.mutual_information(x, y, in_range=r_in, in_bins=bins, out_range=r_out,
                                              out_bins=bins))
        assert abs(got - ref["mi"]) <= 1e-3, (r_in, r_out, bins, got, ref["mi"])


def test_entropy_equals_deep_ei_marginal(vector_results):
    # H(X) + H(Y) - MI = H(X, Y): check H of x rows against deep-ei's count of distinct rows
    # indirectly through an all-distinct case, where H = log2(rows).
    x = np.linspace(0, 1, 4096, endpoint=False, dtype=np.float32)[:, None]
    h = float(ei_jax.entropy(x, range=(0, 1 - 1e-4), bins=4096))
    assert abs(h - 12.0) < 1e-4


def _bins_requests():
    reqs, cases = [], []
    for lo, hi, bins in [(0, 1, 8), (0, 1, 64), (-1, 1, 16), (0, 10, 256), (-10, 10, 64), (0.1, 0.7, 7)]:
        for mode in ("pair", "vector"):
            t = Binning(float(lo), float(hi), bins, mode).thresholds
            t = t[np.isfinite(t)]
            v = np.concatenate([
                RNG.uniform(lo - 0.3 * (hi - lo), hi + 0.3 * (hi - lo), 20_000),
                t, np.nextafter(t, np.float32(-np.inf)), np.nextafter(t, np.float32(np.inf)),
                [lo, hi, lo - 1e-6, hi + 1e-6, lo - 2e-6, hi + 2e-6],
            ]).astype(np.float32)
            # XLA flushes subnormal floats to zero (documented); deep-ei's torch does not.
            v = v[~((v != 0) & (np.abs(v) < np.finfo(np.float32).tiny))]
            cases.append((lo, hi, bins, mode, v))
            if mode == "pair":
                reqs.append({"kind": "pair_bins", "v": v, "range": [lo, hi], "bins": bins})
            else:
                reqs.append({"kind": "vector_bins", "v": v[:, None], "range": [lo, hi], "bins": bins})
    return cases, reqs


def test_bin_indices_equal_deep_ei_bit_for_bit():
    cases, reqs = _bins_requests()
    for (lo, hi, bins, mode, v), ref in zip(cases, run_oracle(reqs)):
        idx, valid, side = ei_jax._src.info.binning.bin_values(jnp.asarray(v), Binning(float(lo), float(hi), bins, mode))
        idx, valid = np.asarray(idx), np.asarray(valid)
        want = ref["index"].reshape(-1)
        want_valid = (want >= 0) & (want < bins)
        np.testing.assert_array_equal(valid, want_valid, err_msg=f"{mode} {lo} {hi} {bins}")
        np.testing.assert_array_equal(idx[valid], want[valid], err_msg=f"{mode} {lo} {hi} {bins}")
        # deep-ei keeps vector values below lo as negative bins; ei_jax reports them as below.
        if mode == "vector":
            np.testing.assert_array_equal(np.asarray(side) < 0, want < 0)


def test_estimators_are_jittable_and_match_eager():
    x = jax.random.uniform(jax.random.key(3), (5000, 3))
    y = jax.nn.sigmoid(x @ jnp.ones((3, 2)))
    kw = dict(in_range=(0, 1), in_bins=8, out_range=(0, 1), out_bins=8)
    eager = ei_jax.pairwise_mutual_information(x, y, **kw)
    jitted = jax.jit(lambda a, b: ei_jax.pairwise_mutual_information(a, b, **kw))(x, y)
    np.testing.assert_allclose(np.asarray(eager), np.asarray(jitted), atol=1e-6)
    v_eager = ei_jax.mutual_information(x, y, **kw)
    v_jit = jax.jit(lambda a, b: ei_jax.mutual_information(a, b, **kw))(x, y)
    assert abs(float(v_eager) - float(v_jit)) < 1e-5
