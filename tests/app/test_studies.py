"""`ei-jax study NAME --fast`: outputs, sanity of every measured value, and the table equal to
re-measuring the saved checkpoints."""

import argparse
import json
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import pytest

import ei_jax
from ei_jax import exact
from ei_jax.experiments.studies import measure as sm
from ei_jax.experiments.studies import report as rep
from ei_jax.experiments.studies import runs as study_runs
from ei_jax.experiments.checkpoints import read_flax_checkpoint
from ei_jax._src.model.recurrent import cell_topology
from ei_jax.cli.study import add_study_parser, run_study

MEASURES = ("ei_parts", "sensitivity")


def _parse(argv):
    parser = argparse.ArgumentParser()
    add_study_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


@pytest.fixture(scope="module", params=["dropout", "memorization", "depth", "recurrent"])
def study(request, tmp_path_factory):
    out = tmp_path_factory.mktemp(request.param)
    args = _parse(["study", request.param, "--fast", "--no-progress", "--out", str(out)])
    assert run_study(args) == 0
    return request.param, out


def test_outputs_and_the_summary(study, capsys):
    name, out = study
    for f in ("table.csv", "table.json", "summary.md", "over_training.png", "causal_plane.png"):
        assert (out / f).stat().st_size > 0, f
    doc = json.loads((out / "table.json").read_text())
    rows = rep.read_csv(out / "table.csv")
    assert len(rows) == len(doc["rows"]) > 0 and doc["study"] == name
    for a, b in zip(rows, doc["rows"]):
        assert a["ei_parts"] == pytest.approx(b["ei_parts"], rel=1e-12)
    summary = (out / "summary.md").read_text()
    assert "## Question" in summary and "![" in summary and "(over_training.png)" in summary
    assert all(f in summary for f in doc["findings"]) and " ± " in summary
    assert {r["seed"] for r in rows} == {0, 1}


def test_every_value_is_sane(study):
    _, out = study
    for r in rep.read_csv(out / "table.csv"):
        assert 0.0 <= r["ei_parts"] <= r["max_ei_parts"] + 1e-6, r
        assert r["max_ei_parts"] == pytest.approx(r["n_in"] * r["n_out"] * math.log2(
            8 if r["label"] != "h_0 → h_T" else 4))
        if not math.isnan(r["sensitivity"]):
            assert 0.0 <= r["sensitivity"] <= r["max_ei_parts"] + 1e-6
            assert r["degeneracy"] == pytest.approx(r["sensitivity"] - r["ei_parts"], abs=1e-9)
            x, y = r["plane_x"], r["plane_y"]
            assert x == pytest.approx(r["ei_parts"] / math.sqrt(2), abs=1e-6)
            assert y == pytest.approx((2 * r["sensitivity"] - r["ei_parts"]) / math.sqrt(2), abs=1e-6)
        if not math.isnan(r["vector_ei"]):
            # Plug-in vector EI is at most the output's entropy ceiling n_out log2(bins); the
            # table's vector_ei is the bias-corrected value its stderr belongs to.
            assert 0.0 <= r["vector_ei_plugin"] <= r["n_out"] * math.log2(8) + 1e-6
            assert math.isfinite(r["vector_ei"])
            assert 0.0 <= r["vector_ei_stderr"] < 1.0  # ei_jax.Estimate's standard error
        assert 0.0 <= r["train_accuracy"] <= 1.0


#: The studies whose networks are not sigmoid (depth: tanh, on nested XOR).
_ACTIVATION = {"depth": "tanh"}


def _independent(top, layer, in_range):
    """Exact measures through the public per-layer API (topology_of + ei_jax.exact), one layer
    of one network at a time: not the study's vmapped path."""
    kw = dict(in_range=in_range, in_bins=8, out_bins=8)
    return float(exact.ei_parts(top, layer, **kw)), float(exact.sensitivity(top, layer, **kw))


def test_table_equals_remeasuring_the_checkpoints(study):
    name, out = study
    rows = rep.read_csv(out / "table.csv")
    last = rep.final_step(rows)
    exact_rows = [r for r in rows if not math.isnan(r["sensitivity"])]
    smallest = min(r["n_in"] for r in exact_rows)  # one layer shape: one compilation
    checked = 0
    for r in exact_rows:
        if r["step"] != last or r["seed"] != 1 or r["n_in"] != smallest:
            continue
        params = read_flax_checkpoint(out / r["checkpoint"])["params"]
        one = jax.tree.map(lambda a: jnp.asarray(a[1]), params)
        if name == "recurrent":
            cell = nn.SimpleCell(r["n_out"])
            top = cell_topology(cell, {"params": one["cell"]}, jnp.zeros((1, 1)),
                                intervene_input=r["n_in"] > r["n_out"])
            got = _independent(top, "step_1", (-1.0, 1.0))
        else:
            widths = [one["layers_0"]["kernel"].shape[0]] + [
                one[n]["kernel"].shape[1] for n in study_runs.layer_names(one)]
            net = study_runs.network(widths, _ACTIVATION.get(name, "sigmoid"))
            top = ei_jax.topology_of(net, {"params": one}, jnp.zeros((1, widths[0])))
            got = _independent(top, r["layer"], (0.0, 1.0) if r["layer"] == "layers_0" else None)
        assert got[0] == pytest.approx(r["ei_parts"], rel=2e-4, abs=2e-4), r
        assert got[1] == pytest.approx(r["sensitivity"], rel=2e-4, abs=2e-4), r
        checked += 1
    assert checked >= 1


def test_measure_checkpoint_reproduces_the_rows(study):
    """The study's own re-measuring path gives the stored numbers bit for bit (all seeds)."""
    name, out = study
    rows = rep.read_csv(out / "table.csv")
    sel = [r for r in rows if r["arm"] == rows[0]["arm"] and r["step"] == 0]
    if name == "recurrent":
        params = read_flax_checkpoint(out / sel[0]["checkpoint"])["params"]["cell"]
        got = [sm.exact_layer_measures(params["h"]["kernel"], params["i"]["bias"], activation="tanh",
                              in_range=(-1.0, 1.0), bins=8)]
        sel = [r for r in sel if r["label"] == "h_t → h_t+1"]
        index = {r["layer"]: 0 for r in sel}
    else:
        widths = tuple([sel[0]["n_in"]] + [r["n_out"] for r in sel if r["seed"] == 0])
        got = study_runs.measure_checkpoint(out / sel[0]["checkpoint"], widths=widths,
                                            activation=_ACTIVATION.get(name, "sigmoid"), bins=8)
        index = {r["layer"]: int(r["layer"].split("_")[1]) // 2 for r in sel}
    assert len(sel) >= 2
    for r in sel:
        for f in MEASURES:
            assert got[index[r["layer"]]][f][r["seed"]] == r[f]


def test_cli_rejects_one_seed():
    with pytest.raises(SystemExit):
        _parse(["study", "dropout", "--seeds", "1"])
    assert _parse(["study", "depth", "--seeds", "3"]).seeds == 3
