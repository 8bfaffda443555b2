"""Self-checks of the deep-ei reference oracle (tests/reference), against facts
that need no ei_jax: plug-in MI computed independently with numpy, documented
edge behaviour of fast_histogram + hack_range, the float32 formula of
deep_ei._tuples1d, and internal consistency of deep-ei's sampling measures.

All requests go to the oracle in one batch (one torch import)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from tests.reference.oracle import run_oracle

RNG_SEED = 20240611


def _f32(a: Any) -> np.ndarray:
    return np.asarray(a, dtype=np.float32)


def near_edges_1d(lo: float, hi: float, bins: int, *, width: float, ulps: int = 8) -> np.ndarray:
    """float32 values within a few ulps of lo + k * width / bins, k = -1 .. bins + 1."""
    out = []
    for k in range(-1, bins + 2):
        e = np.float32(lo + k * width / bins)
        step = np.spacing(np.abs(e)) if e != 0 else np.float32(1e-30)
        out.append(e + np.arange(-ulps, ulps + 1, dtype=np.float32) * step)
    return np.concatenate(out).astype(np.float32)


# ---------------------------------------------------------------------------
# independent numpy computations
# ---------------------------------------------------------------------------
def np_pair_bins(v: np.ndarray, lo: float, hi: float, bins: int) -> np.ndarray:
    """numpy's own binning on deep-ei's widened edges (searchsorted, not fast_histogram)."""
    edges = np.linspace(lo - 1e-6, hi + 1e-6, bins + 1)
    v64 = v.astype(np.float64)
    idx = np.searchsorted(edges, v64, side="right") - 1
    inside = (v64 >= edges[0]) & (v64 < edges[-1])
    return np.where(inside, idx, -1)


def fast_histogram_emulation(v: np.ndarray, lo: float, hi: float, bins: int) -> np.ndarray:
    """fast_histogram's C rule, in float64: keep xmin <= v < xmax, bin = int((v - xmin) * (n / (xmax - xmin)))."""
    xmin, xmax = lo - 1e-6, hi + 1e-6
    v64 = v.astype(np.float64)
    with np.errstate(invalid="ignore"):
        inside = (v64 >= xmin) & (v64 < xmax)
        idx = np.where(inside, (v64 - xmin) * (bins / (xmax - xmin)), -1.0)
    return np.trunc(idx).astype(np.int64)


def plugin_mi_bits(xb: np.ndarray, yb: np.ndarray, in_bins: int, out_bins: int) -> float:
    """Plug-in MI (bits) of two index vectors, dropping -1 entries, via np.histogram2d."""
    keep = (xb >= 0) & (yb >= 0)
    cm, _, _ = np.histogram2d(xb[keep], yb[keep], bins=[np.arange(in_bins + 1) - 0.5, np.arange(out_bins + 1) - 0.5])
    n = cm.sum()
    p = cm / n
    px, py = p.sum(axis=1), p.sum(axis=0)
    nz = p > 0
    return float(np.sum(p[nz] * np.log2(p[nz] / np.outer(px, py)[nz])))


def entropy_bits_of_rows(rows: np.ndarray) -> float:
    _, counts = np.unique(rows, axis=0, return_counts=True)
    p = counts / counts.sum()
    return float(-np.sum(p * np.log2(p)))


def tuples1d_float32(v: np.ndarray, lo: float, hi: float, bins: int) -> np.ndarray:
    """_tuples1d's formula with every operation in float32 (Python scalars rounded to float32)."""
    return np.floor((v - np.float32(lo)) / np.float32(hi - lo + 0.0001) * np.float32(bins)).astype(np.int64)


def tuples1d_float64(v: np.ndarray, lo: float, hi: float, bins: int) -> np.ndarray:
    return np.floor((v.astype(np.float64) - lo) / (hi - lo + 0.0001) * bins).astype(np.int64)


# ---------------------------------------------------------------------------
# data + one oracle batch
# ---------------------------------------------------------------------------
def _build_cases() -> dict[str, dict[str, Any]]:
    rng = np.random.default_rng(RNG_SEED)
    cases: dict[str, dict[str, Any]] = {}

    x = _f32(rng.uniform(0, 1, (20000, 3)))
    cases["identity"] = dict(kind="pairwise", x=x, y=x.copy(), in_range=[0, 1], in_bins=8,
                             out_range=[0, 1], out_bins=8)

    x = _f32(rng.uniform(-1, 1, (5000, 4)))
    w = rng.normal(0, 1, (4, 3))
    y = _f32(np.tanh(x.astype(np.float64) @ w + rng.normal(0, 0.3, (5000, 3))))
    cases["generic"] = dict(kind="pairwise", x=x, y=y, in_range=[-1.0, 1.0], in_bins=16,
                            out_range=[-0.8, 0.8], out_bins=8)

    x = _f32(np.stack([np.full(100, 2.0), rng.uniform(0, 1, 100)], axis=1))
    cases["out_of_range"] = dict(kind="pairwise", x=x, y=_f32(rng.uniform(0, 1, (100, 1))),
                                 in_range=[0, 1], in_bins=4, out_range=[0, 1], out_bins=4)

    for name, (lo, hi, bins) in {"edges_sig": (0, 1, 8), "edges_tanh": (-1, 1, 16),
                                 "edges_relu": (0, 10, 64)}.items():
        special = _f32([lo, hi, np.float32(lo) - np.float32(2e-6), np.float32(hi) + np.float32(2e-6),
                        np.float32(lo) - np.float32(5e-7), np.nan])
        bulk = np.concatenate([
            _f32(rng.uniform(lo - 0.1 * (hi - lo), hi + 0.1 * (hi - lo), 20000)),
            near_edges_1d(lo - 1e-6, hi + 1e-6, bins, width=hi - lo + 2e-6),
        ])
        cases[name] = dict(kind="pair_bins", v=np.concatenate([special, bulk]), range=[lo, hi], bins=bins)

    for lo, hi, bins in [(0, 1, 8), (-1, 1, 16), (0, 10, 64), (-10, 10, 64)]:
        v = np.concatenate([
            _f32(rng.uniform(lo - 0.2 * (hi - lo), hi + 0.2 * (hi - lo), 30000)),
            near_edges_1d(lo, hi, bins, width=hi - lo + 0.0001, ulps=40),
            _f32([lo, hi]),
        ])
        v = np.concatenate([v, np.zeros((-len(v)) % 3, np.float32)]).reshape(-1, 3)
        cases[f"vbins_{lo}_{hi}_{bins}"] = dict(kind="vector_bins", v=v, range=[lo, hi], bins=bins)

    # vector MI with some inputs below lo (negative indices, kept) and above hi (dropped)
    x = _f32(rng.uniform(-0.1, 1.05, (3000, 3)))
    y = _f32(1 / (1 + np.exp(-(x.astype(np.float64) @ rng.normal(0, 3, (3, 2))))))
    cases["vector"] = dict(kind="vector", x=x, y=y, in_range=[0, 1], in_bins=4, out_range=[0, 1], out_bins=4)

    w1 = _f32(rng.normal(0, 2, (5, 5)))
    common = dict(samples=300, batch_size=50, in_range=[0, 1], in_bins=8, out_range=[0, 1], out_bins=8)
    for fn in ["ei", "ei_parts", "sensitivity", "ei_parts_matrix", "sensitivity_matrix",
               "vector_and_pairwise_ei"]:
        cases[f"sampled_{fn}"] = dict(kind="sampled", weights=[w1], activations=["sigmoid"], layer=0,
                                      function=fn, kwargs=common, seeds=[0, 1])
    cases["sampled_repeat"] = dict(kind="sampled", weights=[w1], activations=["sigmoid"], layer=0,
                                   function="ei_parts_matrix", kwargs=common, seeds=[0])
    cases["sampled_two_layer"] = dict(
        kind="sampled", weights=[_f32(rng.normal(0, 1, (4, 5))), _f32(rng.normal(0, 1, (3, 4)))],
        activations=["tanh", "sigmoid"], layer=1, in_layer=0, function="ei_parts_matrix",
        kwargs=dict(samples=200, batch_size=64, in_bins=8, out_bins=8), seeds=[3])
    return cases


@pytest.fixture(scope="module")
def oracle() -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
    cases = _build_cases()
    results = run_oracle(list(cases.values()))
    return {n: (c, r) for (n, c), r in zip(cases.items(), results)}


# ---------------------------------------------------------------------------
# tests
# ---------------------------------------------------------------------------
def test_identity_pair_is_marginal_entropy(oracle: dict) -> None:
    req, res = oracle["identity"]
    mi, x = res["mi"], req["x"]
    assert mi.shape == (3, 3) and mi.dtype == np.float64
    for a in range(3):
        xb = np_pair_bins(x[:, a], 0, 1, 8)
        h = entropy_bits_of_rows(xb[:, None])
        assert abs(mi[a, a] - h) <= 1e-9
        assert np.log2(8) - 0.01 < h <= np.log2(8)
    off = mi[~np.eye(3, dtype=bool)]
    assert np.all(off >= 0) and np.all(off < 0.01)  # independent columns: only plug-in bias
    assert not res["empty"].any() and (res["counted"] == 20000).all()


def test_generic_pairwise_matches_numpy_plugin_mi(oracle: dict) -> None:
    req, res = oracle["generic"]
    x, y = req["x"], req["y"]
    xbs = [np_pair_bins(x[:, a], -1.0, 1.0, 16) for a in range(x.shape[1])]
    ybs = [np_pair_bins(y[:, b], -0.8, 0.8, 8) for b in range(y.shape[1])]
    # this data has no value at an exact bin edge, so numpy and fast_histogram bin it alike
    for a, xb in enumerate(xbs):
        assert np.array_equal(xb, fast_histogram_emulation(x[:, a], -1.0, 1.0, 16))
    for b, yb in enumerate(ybs):
        assert np.array_equal(yb, fast_histogram_emulation(y[:, b], -0.8, 0.8, 8))
    for a, xb in enumerate(xbs):
        for b, yb in enumerate(ybs):
            assert res["counted"][a, b] == int(np.sum((xb >= 0) & (yb >= 0)))
            assert abs(res["mi"][a, b] - plugin_mi_bits(xb, yb, 16, 8)) <= 1e-9
    assert (res["counted"] < x.shape[0]).all()  # some y values fell outside out_range


def test_all_out_of_range_pair_is_nan(oracle: dict) -> None:
    _, res = oracle["out_of_range"]
    assert np.isnan(res["mi"][0, 0]) and res["empty"][0, 0] and res["counted"][0, 0] == 0
    assert np.isfinite(res["mi"][1, 0]) and not res["empty"][1, 0] and res["counted"][1, 0] == 100


@pytest.mark.parametrize("name,lo,hi,bins", [("edges_sig", 0, 1, 8), ("edges_tanh", -1, 1, 16),
                                             ("edges_relu", 0, 10, 64)])
def test_pair_bins_edges(oracle: dict, name: str, lo: float, hi: float, bins: int) -> None:
    req, res = oracle[name]
    idx = res["index"]
    assert idx.dtype == np.int64 and idx.shape == req["v"].shape
    # lo -> 0, hi -> last bin, lo-2e-6 / hi+2e-6 dropped, lo-5e-7 kept in bin 0 (hack_range widens by 1e-6), NaN dropped
    assert idx[:6].tolist() == [0, bins - 1, -1, -1, 0, -1]
    # bulk + values within ulps of the widened edges follow fast_histogram's float64 rule exactly
    assert np.array_equal(idx, fast_histogram_emulation(req["v"], lo, hi, bins))


@pytest.mark.parametrize("i", range(4))
def test_vector_bins_is_float32_formula(oracle: dict, i: int) -> None:
    names = [n for n in oracle if n.startswith("vbins_")]
    req, res = oracle[names[i]]
    lo, hi = req["range"]
    bins, v = req["bins"], req["v"]
    idx = res["index"]
    assert idx.dtype == np.int64 and idx.shape == v.shape
    assert np.array_equal(idx, tuples1d_float32(v, lo, hi, bins))
    assert idx.min() < 0 and idx.max() >= bins  # not clipped
    flat = idx.reshape(-1)
    vflat = v.reshape(-1)
    assert flat[np.flatnonzero(vflat == np.float32(hi))[0]] == bins - 1
    assert flat[np.flatnonzero(vflat == np.float32(lo))[0]] == 0


def test_vector_bins_is_not_float64_formula(oracle: dict) -> None:
    # torch applies the Python-float scalars in float32; a float64 emulation disagrees near edges
    mismatches = 0
    for name in [n for n in oracle if n.startswith("vbins_")]:
        req, res = oracle[name]
        lo, hi = req["range"]
        mismatches += int(np.sum(res["index"] != tuples1d_float64(req["v"], lo, hi, req["bins"])))
    assert mismatches > 0


def test_vector_mi_matches_numpy(oracle: dict) -> None:
    req, res = oracle["vector"]
    xb = tuples1d_float32(req["x"], 0, 1, 4)
    yb = tuples1d_float32(req["y"], 0, 1, 4)
    keep = (xb < 4).all(axis=1) & (yb < 4).all(axis=1)
    assert (xb[keep] < 0).any()  # negative indices are kept, as in deep-ei
    xk, yk = xb[keep], yb[keep]
    xy = np.concatenate([xk, yk], axis=1)
    expected = entropy_bits_of_rows(xk) + entropy_bits_of_rows(yk) - entropy_bits_of_rows(xy)
    assert abs(res["mi"] - expected) <= 1e-9
    assert res["n_kept"] == int(keep.sum()) < len(keep)
    assert res["n_x"] == len(np.unique(xk, axis=0))
    assert res["n_y"] == len(np.unique(yk, axis=0))
    assert res["n_xy"] == len(np.unique(xy, axis=0))


def test_sampled_tiny_sigmoid_net(oracle: dict) -> None:
    out = {fn: oracle[f"sampled_{fn}"][1] for fn in
           ["ei", "ei_parts", "sensitivity", "ei_parts_matrix", "sensitivity_matrix", "vector_and_pairwise_ei"]}
    for fn in ["ei", "ei_parts", "sensitivity"]:
        assert out[fn]["values"].shape == (2,) and np.isfinite(out[fn]["values"]).all()
    for fn in ["ei_parts_matrix", "sensitivity_matrix"]:
        assert out[fn]["values"].shape == (2, 5, 5) and np.isfinite(out[fn]["values"]).all()
    vp = out["vector_and_pairwise_ei"]
    assert np.isfinite(vp["vector"]).all() and np.isfinite(vp["pairwise"]).all()
    assert out["ei"]["seeds"].tolist() == [0, 1]
    # same seed => same noise, so deep-ei's measures agree with each other
    mat_sum = out["ei_parts_matrix"]["values"].sum(axis=(1, 2))
    np.testing.assert_allclose(vp["pairwise"], mat_sum, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(vp["vector"], out["ei"]["values"])
    np.testing.assert_allclose(out["ei_parts"]["values"], np.where(mat_sum < 0.01, 0.0, mat_sum), rtol=0, atol=1e-9)
    np.testing.assert_allclose(out["sensitivity"]["values"], out["sensitivity_matrix"]["values"].sum(axis=(1, 2)),
                               rtol=0, atol=1e-9)
    # seeding is honoured: seed 0 reproduces, seed 1 differs
    again = oracle["sampled_repeat"][1]["values"]
    np.testing.assert_array_equal(again[0], out["ei_parts_matrix"]["values"][0])
    assert not np.array_equal(out["ei_parts_matrix"]["values"][0], out["ei_parts_matrix"]["values"][1])


def test_sampled_two_layer_in_layer(oracle: dict) -> None:
    _, res = oracle["sampled_two_layer"]
    assert res["values"].shape == (1, 5, 3) and np.isfinite(res["values"]).all()
