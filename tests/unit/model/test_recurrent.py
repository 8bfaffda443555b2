"""EI of a recurrent cell (ei_jax._src.model.recurrent) and torch nn.RNN through bridges."""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from flax import nnx

import bridges
import ei_jax
from ei_jax.experiments.studies import measure as sm
from ei_jax._src.model.activations import function_of
from ei_jax._src.exact.kernel import exact_ei_parts_matrix
from ei_jax._src.model.recurrent import cell_topology

X0 = jnp.zeros((1, 2))


def _linen_cell(w_ih, w_hh, b, act=nn.tanh):
    cell = nn.SimpleCell(np.shape(w_hh)[0], activation_fn=act)
    return cell, {"params": {"i": {"kernel": jnp.asarray(w_ih, jnp.float32),
                                   "bias": jnp.asarray(b, jnp.float32)},
                             "h": {"kernel": jnp.asarray(w_hh, jnp.float32)}}}


def test_identity_linear_cell_has_the_known_ei():
    """W_hh = I with a linear activation copies h: every diagonal pair carries log2(bins)
    bits and no other pair any (analytic), over one step and over the unrolled span."""
    n_h, bins = 3, 8
    cell, v = _linen_cell(np.ones((2, n_h)), np.eye(n_h), np.zeros(n_h), function_of(None))
    top = ei_jax.topology_of(cell, v, X0)
    node = top.nodes["step_1"]
    assert node["input"]["activation"] is None and node["input"]["shape"] == (1, n_h)
    exact = sm.exact_layer_measures(node["params"]["kernel"][None], node["params"]["bias"][None],
                           activation=None, in_range=(-1.0, 1.0), bins=bins)
    assert exact["ei_parts"][0] == pytest.approx(n_h * math.log2(bins), abs=1e-4)
    span = cell_topology(cell, v, X0, steps=4)
    # Sampled (an independent estimator): bias of the plug-in with 2e4 samples in 8 x 8 cells
    # per pair is below 0.01 bits; 4-sigma sampling error below 0.05 bits.
    parts = ei_jax.ei_parts(jax.random.key(0), span, "step_4", in_layer="step_1", in_range=(-1, 1),
                            out_range=(-1, 1), in_bins=bins, out_bins=bins, samples=20_000)
    assert parts == pytest.approx(n_h * math.log2(bins), abs=0.1)


def test_one_unit_tanh_cell_against_the_exact_one_to_one_value():
    """A 1-unit cell's transition is the 1 -> 1 layer tanh(w h + b): topology_of's node,
    measured by the sampled estimator, converges to the exact core on (w, b)."""
    w, b = 2.5, 0.3
    cell, v = _linen_cell([[0.7]], [[w]], [b])
    top = ei_jax.topology_of(cell, v, jnp.zeros((1, 1)))
    exact = float(exact_ei_parts_matrix(jnp.array([[w]]), jnp.array([b]), activation="tanh",
                                        in_range=(-1.0, 1.0), in_bins=8, out_range=(-1.0, 1.0),
                                        out_bins=8)[0, 0])
    sampled = ei_jax.ei_parts(jax.random.key(1), top, "step_1", in_range=(-1, 1), in_bins=8,
                              out_bins=8, samples=200_000)
    # 2e5 samples in 64 cells: plug-in bias ~ 63/(2 N ln 2) < 3e-4 bits; sd ~ 0.005 bits.
    assert 0.5 < exact < 3.0
    assert sampled == pytest.approx(exact, abs=0.03)


def test_baseline_and_intervened_input():
    rng = np.random.default_rng(0)
    w_ih, w_hh, b = rng.normal(size=(2, 4)), rng.normal(size=(4, 4)), rng.normal(size=4)
    cell, v = _linen_cell(w_ih, w_hh, b)
    x0 = np.array([0.5, -1.0])
    top = cell_topology(cell, v, X0, baseline=x0)
    np.testing.assert_allclose(top.nodes["step_1"]["params"]["bias"], b + x0 @ w_ih, rtol=1e-6)
    both = cell_topology(cell, v, X0, intervene_input=True, steps=2)
    np.testing.assert_allclose(both.nodes["step_1"]["params"]["kernel"],
                               np.concatenate([w_hh, w_ih]), rtol=1e-6)
    assert both.nodes["step_2"]["params"]["kernel"].shape == (4, 4)
    assert list(both.edges) == [("step_1", "step_2")]
    # The transition node is the cell at x = baseline: same outputs.
    h = jnp.asarray(rng.uniform(-1, 1, (5, 4)), jnp.float32)
    node = top.nodes["step_1"]
    want, _ = cell.apply(v, h, jnp.tile(jnp.asarray(x0, jnp.float32), (5, 1)))
    np.testing.assert_allclose(jnp.tanh(node["apply"](node["params"], h)), want, rtol=1e-5, atol=1e-6)


def test_bad_cells_and_options_raise_typed_errors():
    cell, v = _linen_cell(np.ones((2, 3)), np.eye(3), np.zeros(3))
    with pytest.raises(ei_jax.errors.InvalidOptionError, match="steps"):
        cell_topology(cell, v, X0, steps=0)
    with pytest.raises(ei_jax.errors.InvalidOptionError, match="baseline"):
        cell_topology(cell, v, X0, baseline=np.zeros(3))
    with pytest.raises(ei_jax.errors.UnsupportedModuleError, match="residual"):
        ei_jax.topology_of(nn.SimpleCell(3, residual=True), v, X0)
    with pytest.raises(ei_jax.errors.InvalidCallError):
        ei_jax.topology_of(cell, X0)
    with pytest.raises(ei_jax.errors.UnsupportedModuleError, match="activation"):
        ei_jax.topology_of(nn.SimpleCell(3, activation_fn=lambda x: x ** 3), v, X0)


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
def test_torch_rnn_through_bridges_equals_the_linen_and_nnx_cells(nonlinearity):
    torch.manual_seed(0)
    rnn = torch.nn.RNN(2, 5, nonlinearity=nonlinearity, batch_first=True)
    xs = torch.randn(3, 7, 2)
    h0 = torch.randn(1, 3, 5)
    with torch.no_grad():
        want, _ = rnn(xs, h0)
    cell, v = bridges.from_torch(rnn)
    ncell = bridges.from_torch(rnn, api="nnx")
    assert isinstance(cell, nn.SimpleCell) and isinstance(ncell, nnx.SimpleCell)
    h = hn = jnp.asarray(h0[0].numpy())
    for t in range(xs.shape[1]):
        x = jnp.asarray(xs[:, t].numpy())
        h, _ = cell.apply(v, h, x)
        hn, _ = ncell(hn, x)
        np.testing.assert_allclose(h, want[:, t].numpy(), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(hn, want[:, t].numpy(), rtol=1e-5, atol=1e-5)
    a, b = ei_jax.topology_of(cell, v, X0), ei_jax.topology_of(ncell, X0)
    for k in ("kernel", "bias"):
        np.testing.assert_array_equal(a.nodes["step_1"]["params"][k], b.nodes["step_1"]["params"][k])
    np.testing.assert_allclose(a.nodes["step_1"]["params"]["kernel"],
                               rnn.weight_hh_l0.detach().numpy().T, rtol=1e-6)
    assert a.nodes["step_1"]["output"]["activation"] == nonlinearity


def test_torch_rnn_with_two_layers_is_refused():
    with pytest.raises(bridges.UnsupportedModuleError, match="num_layers=2"):
        bridges.from_torch(torch.nn.RNN(2, 3, num_layers=2))
