"""Table rows with exact columns where exact applies, sampled ones with standard errors.

Exact values are checked against the sampled estimator on the same layer (an independent
method); sampled rows against today's ``measure_layer``; the stacked exact part against each
checkpoint measured alone; the plots render with and without the new columns.
"""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ei_jax
from ei_jax import exact
from ei_jax.experiments import plotting
from ei_jax._src.exact import stacks as stack_exact_module
from ei_jax._src.exact.kernel import exact_ei_parts_matrix
from ei_jax.experiments.table_columns import COLUMNS, ROW_FIELDS, layer_columns, method_summary, table_note
from ei_jax.experiments.measure_rows import MeasureSettings, measure_layer
from ei_jax._src.exact.stacks import stack_values

SETTINGS = MeasureSettings(samples=4_000, sensitivity_samples=400, bins=4, in_range=(0.0, 1.0))
KW = dict(samples=SETTINGS.samples, sensitivity_samples=SETTINGS.sensitivity_samples,
          bins=SETTINGS.bins, in_range=SETTINGS.in_range)
# |corrected - exact| <= 5 stderr: chance failure 5.7e-7 per comparison if the stderr is right
# (the uncertainty tests measure its coverage); the plug-in's own bias is within that here.
Z = 5.0


def _top(kernel, bias=None):
    kernel = jnp.asarray(kernel, jnp.float32)
    net = nn.Sequential([nn.Dense(kernel.shape[1], use_bias=bias is not None), nn.sigmoid])
    x0 = jnp.zeros((1, kernel.shape[0]))
    p = {"kernel": kernel} | ({} if bias is None else {"bias": jnp.asarray(bias, jnp.float32)})
    return ei_jax.topology_of(net, {"params": {"layers_0": p}}, x0)


@pytest.fixture(scope="module")
def rows():
    top = _top([[2.0, -1.5, 3.0], [1.0, 2.5, -2.0]], [0.1, -0.2, 0.0])
    key = jax.random.key(7)
    return dict(top=top, key=key,
                exact=layer_columns(key, top, "layers_0", **KW),
                sampled=layer_columns(key, top, "layers_0", **KW, sampled=True),
                today=_plain_sampled(key, top, "layers_0"),
                measured=measure_layer(key, top, "layers_0", SETTINGS, first=True))


def _plain_sampled(key, top, layer):
    """The row the main job printed before exact columns: the plain sampled measures."""
    common = dict(in_range=SETTINGS.in_range, in_bins=SETTINGS.bins, out_bins=SETTINGS.bins)
    vec, parts = ei_jax.vector_and_pairwise_ei(key, top, layer, samples=SETTINGS.samples, **common)
    sens = ei_jax.sensitivity(key, top, layer, samples=SETTINGS.sensitivity_samples, **common)
    x, y = ei_jax.rotate_causal_plane(sens, sens - parts)
    return dict(ei_parts=parts, vector_ei=vec, sensitivity=sens, degeneracy=sens - parts,
                degeneracy_vector=sens - vec, plane_x=x, plane_y=y)


def test_exact_columns_are_ei_jax_exact_and_agree_with_sampling(rows):
    r, s = rows["exact"], rows["sampled"]
    assert set(r) == set(ROW_FIELDS)
    kw = dict(in_range=(0, 1), in_bins=4, out_bins=4)
    assert r["ei_parts_corrected"] == exact.ei_parts(rows["top"], "layers_0", **kw)
    assert r["sensitivity_corrected"] == exact.sensitivity(rows["top"], "layers_0", **kw)
    for col in ("ei_parts", "sensitivity", "degeneracy", "plane_x", "plane_y"):
        assert r[f"{col}_method"] == "exact" and r[f"{col}_stderr"] == 0.0
        assert r[f"{col}_corrected"] == r[f"{col}_plugin"]      # an exact column: one value
        # independent method: the sampled estimate of the same layer covers the exact value
        assert abs(s[f"{col}_corrected"] - r[f"{col}_corrected"]) <= Z * s[f"{col}_stderr"], col
    assert r["degeneracy_corrected"] == pytest.approx(r["sensitivity_corrected"] - r["ei_parts_corrected"],
                                                      abs=1e-12)
    assert r["plane_x_corrected"] == pytest.approx(r["ei_parts_corrected"] / math.sqrt(2), abs=1e-12)
    # vector EI stays sampled, from the same samples as the sampled row's
    assert r["vector_ei_method"] == r["degeneracy_vector_method"] == "sampled"
    assert r["vector_ei_plugin"] == s["vector_ei_plugin"]
    assert r["vector_ei_corrected"] == s["vector_ei_corrected"] and r["vector_ei_stderr"] == s["vector_ei_stderr"] > 0


def test_sampled_row_is_todays_measure_layer_with_errors(rows):
    assert rows["measured"] == rows["exact"]  # the main job's measure_layer is layer_columns
    s, today = rows["sampled"], rows["today"]
    for col in COLUMNS:
        # the same samples and counts; today's vector EI is float32 on the device, the
        # Estimate's is float64 on the host: equal to float32 rounding
        assert s[f"{col}_plugin"] == pytest.approx(today[col], rel=1e-6, abs=1e-9), col
        assert s[f"{col}_method"] == "sampled"
        assert s[f"{col}_stderr"] > 0, col
    # derived columns: errors of independent parts added in quadrature
    assert s["degeneracy_stderr"] == pytest.approx(math.hypot(s["sensitivity_stderr"], s["ei_parts_stderr"]))
    assert s["plane_x_stderr"] == pytest.approx(s["ei_parts_stderr"] / math.sqrt(2))
    assert s["degeneracy_corrected"] == pytest.approx(s["sensitivity_corrected"] - s["ei_parts_corrected"])


def test_a_layer_without_an_exact_form_falls_back_to_sampling():
    # 5 inputs, nearly all spread in two: the exact series would need > MAX_TERMS terms (one
    # dominant input is integrated analytically, two are not)
    top = _top([[6.0], [5.0], [1e-7], [1e-7], [1e-7]])
    key = jax.random.key(3)
    r = layer_columns(key, top, "layers_0", **KW)
    assert r["ei_parts_method"] == "sampled" and r["ei_parts_stderr"] > 0
    assert r["sensitivity_method"] == "exact"           # sensitivity's closed form still applies
    assert r["degeneracy_method"] == "sampled"
    # independent: the tiny weights carry ~0 bits, so EI_parts is the 2 -> 1 layer's exact value
    # (the trapezoid closed form, no series)
    with jax.enable_x64(True):
        two = float(exact_ei_parts_matrix(np.array([[6.0], [5.0]]), activation="sigmoid",
                                          in_range=(0, 1), in_bins=4, out_range=(0, 1),
                                          out_bins=4).sum())
    assert abs(r["ei_parts_corrected"] - two) <= Z * r["ei_parts_stderr"] + 1e-3
    exact_row = {f"{c}_method": "exact" for c in ("ei_parts", "sensitivity", "degeneracy")}
    assert method_summary([r, exact_row]) == (
        "Exact (infinite-sample) values: sensitivity; exact where the layer allows, sampled "
        "elsewhere: EI_parts, degeneracy; sampled: vector EI.")


def _run_rows(row, extra):
    out = []
    for epoch, scale in ((0, 1.0), (10, 1.1)):
        base = {f"{c}{v}": row[f"{c}{v}"] * scale for c in COLUMNS for v in ("_corrected", "_plugin")}
        out.append(dict(row, **base, **extra, epoch=epoch, layer="layers_0", label="L1", train_loss=1.0 / (1 + epoch),
                        test_loss=float("nan"), test_accuracy=0.5))
    return out


def test_plots_render_with_and_without_the_new_columns(rows):
    new = _run_rows(rows["sampled"], {})
    keep = {"epoch", "layer", "label", "train_loss", "test_loss", "test_accuracy"}
    old = [{**{k: v for k, v in r.items() if k in keep}, **{c: r[f"{c}_plugin"] for c in COLUMNS}}
           for r in new]                                                # a run from before
    assert not any(k.endswith("_stderr") for k in old[0]) and "ei_parts" in old[0]
    for rs, settings in ((new, SETTINGS), (old, None)):           # old runs: the old call
        for fn in (plotting.ei_over_training_png, plotting.causal_plane_png):
            assert fn(rs, "t", settings=settings).startswith(b"\x89PNG\r\n\x1a\n")
    text = plotting.caption(new, SETTINGS)
    for part in ("4 bins", "4,000 samples", "400 per input", "1.96", "bin edge", "negative",
                 "Sampled: EI_parts, sensitivity, degeneracy, vector EI"):
        assert part in text, part
    note = table_note(SETTINGS, [rows["exact"]])
    assert note.startswith("Exact (infinite-sample) values: EI_parts, sensitivity, degeneracy; "
                           "sampled: vector EI.")


def test_stacked_exact_part_equals_each_checkpoint_alone(monkeypatch):
    # 4 -> 2 (the series: its term count set by the stack) then 2 -> 2 tanh on (0, 1) inputs.
    # One program at the longest series (2048), each checkpoint's cut at its own; 2 at a time,
    # so the 3 checkpoints also need the padding of the last chunk.
    monkeypatch.setattr(stack_exact_module, "CHUNK", 2)
    net = nn.Sequential([nn.Dense(2), nn.sigmoid, nn.Dense(2), nn.tanh])
    x0 = jnp.zeros((1, 4))
    nets = [net.init(jax.random.key(j), x0) for j in range(3)]     # series lengths 1536, 2048, 1536
    stacked = {f"layers_{i}": jax.tree.map(lambda *a: jnp.stack(a), *[v["params"][f"layers_{i}"] for v in nets])
               for i in (0, 2)}
    top = ei_jax.topology_of(net, nets[0], x0)
    got = stack_values(top, stacked, bins=8, in_range=(0.0, 1.0))
    for j, v in enumerate(nets):
        top_j = ei_jax.topology_of(net, v, x0)
        for i, layer in enumerate(top_j):
            alone = exact.layer_values(top_j, layer, in_range=(0.0, 1.0) if i == 0 else None, in_bins=8,
                                       out_bins=8)
            for col in ("ei_parts", "sensitivity"):
                # the same series length as alone, vmapped: equal to float64 rounding
                assert got[layer][col][j] == pytest.approx(alone[col], rel=1e-12, abs=1e-12), (j, layer, col)


def test_exact_points_in_a_sampled_line_are_marked(rows):
    """A vector EI line that is exact at some epochs (within --exact-vector-work) and sampled
    at others: the plots mark the exact points and the caption says what the dots are; a line
    of one method has none."""
    mixed = _run_rows(rows["sampled"], {}) + _run_rows(rows["sampled"], {})
    for epoch, r in enumerate(mixed):
        r["epoch"] = epoch
    for r in mixed[1::2]:
        r.update(vector_ei_method="exact", vector_ei_stderr=0.0)
    assert list(plotting.exact_among_sampled(mixed, "vector_ei")) == [1, 3]
    assert plotting.exact_among_sampled(mixed, "ei_parts").size == 0         # all sampled
    assert plotting.ei_over_training_png(mixed, "t", settings=SETTINGS).startswith(b"\x89PNG")
    assert "Dots: exact values" in plotting.caption(mixed, SETTINGS)
    assert "Dots" not in plotting.caption(_run_rows(rows["sampled"], {}), SETTINGS)


def test_the_printed_value_and_the_band_centre_are_the_corrected_ones(rows, capsys):
    """The ``±`` and the 95% band belong to the bias-corrected value: the table prints that
    value beside its standard error, the plug-in in its own column; the plots' bands are
    centred on it (issue #25)."""
    from ei_jax.cli import measure as M

    s = rows["sampled"]
    cols = ("ei_parts", "vector_ei", "sensitivity", "degeneracy")
    assert all(s[f"{c}_corrected"] != s[f"{c}_plugin"] for c in cols)
    M.print_table(("layer",) + M.error_header(cols), [("layers_0",) + M.with_errors(s, cols)])
    header, _, line = capsys.readouterr().out.splitlines()
    assert header.split()[1:4] == ["ei_parts", "±", "plug-in"]
    cells = line.split()[1:]
    for i, c in enumerate(cols):
        assert cells[3 * i: 3 * i + 3] == [f"{s[f'{c}_corrected']:.4f}", f"{s[f'{c}_stderr']:.4f}",
                                           f"{s[f'{c}_plugin']:.4f}"], c
    # an exact column: its value, "exact", no plug-in
    e = rows["exact"]
    assert M.with_errors(e, ("ei_parts",)) == (e["ei_parts_corrected"], "exact", "-")
    # the plots: the drawn values and the centre of the 95% band are the corrected ones
    run = _run_rows(s, {})
    for c in cols + ("plane_x", "plane_y"):
        want = [r[f"{c}_corrected"] for r in run]
        assert list(plotting.shown(run, c)) == want
        lo, hi = plotting.band(run, c)
        np.testing.assert_allclose((lo + hi) / 2, want, rtol=1e-12)
        np.testing.assert_allclose((hi - lo) / 2, [1.96 * r[f"{c}_stderr"] for r in run], rtol=1e-12)


def test_exact_vector_ei_within_its_work_budget(rows):
    """With ``exact_vector_work`` the vector column is ``ei_jax.exact.ei`` (stderr 0, method
    exact) and the degeneracy_vector column follows it; over the budget it stays sampled."""
    top, key = rows["top"], rows["key"]
    common = dict(in_range=SETTINGS.in_range, in_bins=SETTINGS.bins, out_bins=SETTINGS.bins)
    want = exact.ei(top, "layers_0", **common)
    r = layer_columns(key, top, "layers_0", **KW, exact_vector_work=1e6)
    assert (r["vector_ei_method"], r["vector_ei_stderr"]) == ("exact", 0.0)
    assert r["vector_ei_corrected"] == r["vector_ei_plugin"] == want
    assert r["degeneracy_vector_method"] == "exact"
    assert r["degeneracy_vector_corrected"] == pytest.approx(r["sensitivity_corrected"] - want, abs=1e-12)
    # the exact value lies within the sampled row's interval (Z standard errors, see above)
    assert abs(rows["exact"]["vector_ei_corrected"] - want) <= Z * rows["exact"]["vector_ei_stderr"]
    over = layer_columns(key, top, "layers_0", **KW, exact_vector_work=1)
    assert over == rows["exact"]


def test_stacked_exact_vector_equals_each_checkpoint_alone():
    """measure_stack with exact_vector_work: each checkpoint's row is the one it gets alone
    (exact vector EI where within the budget, the same sampled estimate elsewhere)."""
    from ei_jax.experiments.measure_rows import measure_network, measure_stack

    net = nn.Sequential([nn.Dense(2), nn.sigmoid, nn.Dense(2), nn.tanh])
    x0 = jnp.zeros((1, 3))
    # small weights: ~no box crosses a threshold (exact); the middle net's first layer needs an
    # estimated 112 simplices, over the budget of 100 (sampled), its second 12 (exact)
    nets = [jax.tree.map(lambda a, s=s: s * a, net.init(jax.random.key(j), x0)) for j, s in
            enumerate((0.05, 3.0, 0.05))]
    stacked = {f"layers_{i}": jax.tree.map(lambda *a: jnp.stack(a), *[v["params"][f"layers_{i}"] for v in nets])
               for i in (0, 2)}
    top = ei_jax.topology_of(net, nets[0], x0)
    settings = MeasureSettings(samples=4_000, sensitivity_samples=200, bins=4, exact_vector_work=100)
    got = measure_stack(jax.random.key(1), top, stacked, settings)
    methods = [r["vector_ei_method"] for rows_j in got for r in rows_j]
    assert "exact" in methods and "sampled" in methods, methods      # both paths, one stack
    for j, v in enumerate(nets):
        alone = measure_network(jax.random.key(1), ei_jax.topology_of(net, v, x0), settings)
        for a, b in zip(got[j], alone):
            assert a["vector_ei_method"] == b["vector_ei_method"]
            assert a["vector_ei_corrected"] == pytest.approx(b["vector_ei_corrected"], abs=1e-12)
            assert a["vector_ei_stderr"] == pytest.approx(b["vector_ei_stderr"], abs=1e-12)
