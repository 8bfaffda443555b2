"""The activation registry (ei_jax._src.model.activations) is the one list of activations.

One new entry -- softsign ``x / (1 + |x|)``, range ``(-1, 1)``, inverse ``y / (1 - |y|)`` --
registered for a test's duration reaches every consumer with no other edit: topology
inference, the sampled and exact measures, the ``ei-jax`` command's ``--activation``, and
``bridges`` (``from_torch``, checkpoints, the deep-ei drop-in's activations).
"""

import re
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import ei_jax
from ei_jax import exact
from ei_jax._src.exact import preimages
from ei_jax._src.model import activations as reg
from ei_jax.cli import args as cli_args

ROOT = Path(__file__).resolve().parents[3]

SOFTSIGN = reg.Activation(
    "softsign", jax.nn.soft_sign, (-1.0, 1.0), aliases=("soft_sign",),
    inverse=lambda v: v / (1.0 - np.abs(v)), image=(-1.0, 1.0), functions=(jax.nn.soft_sign,),
    flax_name="soft_sign", torch_modules=("Softsign",), torch_functions=("softsign",))


@pytest.fixture
def softsign():
    """softsign in the registry for the test's duration (removed afterwards)."""
    reg.register(SOFTSIGN)
    try:
        yield SOFTSIGN
    finally:
        del reg.REGISTRY[SOFTSIGN.name]


def _deep_ei_mi(x_edges, y_edges, x, y):
    """deep-ei's plug-in MI (bits) of paired values, outside-range values dropped."""
    joint, _, _ = np.histogram2d(x, y, bins=(x_edges, y_edges))
    p = joint / joint.sum()
    px, py = p.sum(1, keepdims=True), p.sum(0, keepdims=True)
    nz = p > 0
    return float(np.sum(p[nz] * np.log2(p[nz] / (px @ py)[nz])))


def test_topology_of_names_a_registered_activation(softsign):
    net = nn.Sequential([nn.Dense(3), jax.nn.soft_sign, nn.Dense(2), nn.soft_sign])
    x0 = jnp.zeros((1, 4))
    top = ei_jax.topology_of(net, net.init(jax.random.key(0), x0), x0)
    assert [top.nodes[n]["output"]["activation"] for n in top] == ["softsign", "softsign"]
    assert top.nodes["layers_2"]["input"]["activation"] == "softsign"
    mod = nnx.Sequential(nnx.Linear(4, 3, rngs=nnx.Rngs(0)), nnx.soft_sign)
    assert ei_jax.topology_of(mod, x0).nodes["layers_0"]["output"]["activation"] == "softsign"


def test_without_the_entry_the_activation_is_sampled_only():
    """Without the entry the layer is traced and sampled, but it is not one f(x @ W + b) with a
    known preimage: ei_jax.exact says so, naming the operation soft_sign is made of."""
    net = nn.Sequential([nn.Dense(3), jax.nn.soft_sign])
    x0 = jnp.zeros((1, 4))
    top = ei_jax.topology_of(net, net.init(jax.random.key(0), x0), x0)
    ranges = dict(in_range=(-1.0, 1.0), in_bins=4, out_range=(-1.0, 1.0), out_bins=4)
    assert ei_jax.ei_parts(jax.random.key(0), top, "layers_0", samples=4096, **ranges) > 0
    with pytest.raises(ei_jax.errors.ExactUnavailableError, match="'abs'"):
        ei_jax.exact.ei_parts(top, "layers_0", **ranges)


def test_exact_and_sampled_measures_use_the_entry(softsign):
    """A 1 -> 1 softsign layer: the exact EI_parts (out_range from the entry's default range)
    equals deep-ei's binned MI on a fine grid of uniform inputs (an independent quadrature),
    and the sampled estimate agrees within 4 standard errors."""
    w, b, lo, hi, bins = 3.0, 0.2, -1.0, 1.0, 8
    net = nn.Sequential([nn.Dense(1), jax.nn.soft_sign])
    x0 = jnp.zeros((1, 1))
    variables = {"params": {"layers_0": {"kernel": jnp.array([[w]]), "bias": jnp.array([b])}}}
    top = ei_jax.topology_of(net, variables, x0)
    got = exact.ei_parts(top, "layers_0", in_range=(lo, hi), in_bins=bins, out_bins=bins)
    assert exact.exact_layer(top, "layers_0", in_range=(lo, hi)).out_range == (-1.0, 1.0)

    n = 2_000_000
    x = lo + (np.arange(n) + 0.5) * (hi - lo) / n
    y = (w * x + b) / (1 + np.abs(w * x + b))
    edges = preimages.widened_edges(-1.0, 1.0, bins)  # deep-ei's widened bins (both ranges)
    want = _deep_ei_mi(edges, edges, x, y)
    assert got == pytest.approx(want, abs=2e-4)

    est = ei_jax.ei_parts(jax.random.key(0), top, "layers_0", in_range=(lo, hi), in_bins=bins,
                          out_bins=bins, samples=200_000, stderr=True)
    assert abs(float(est.value) - got) < 4 * float(est.stderr) + 1e-3


def test_exact_kernel_takes_the_name_and_alias(softsign):
    kw = dict(in_range=(0.0, 1.0), in_bins=4, out_range=(-1.0, 1.0), out_bins=4)
    a = exact.exact_ei_parts_matrix(jnp.array([[2.0]]), activation="softsign", **kw)
    b = exact.exact_ei_parts_matrix(jnp.array([[2.0]]), activation="Soft_Sign", **kw)
    assert float(a[0, 0]) == float(b[0, 0]) > 0


def test_the_command_accepts_it(softsign):
    assert cli_args.activation_choices() == ("sigmoid", "tanh", "relu", "identity", "softsign")
    assert cli_args.activation("sigmoid,softsign") == ("sigmoid", "softsign")


def test_bridges_converts_the_torch_module(softsign):
    torch = pytest.importorskip("torch")
    import bridges
    from bridges._src import deep_ei_activations as dacts

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Softsign())
    x = torch.linspace(-2.0, 2.0, 15).reshape(5, 3)
    with torch.no_grad():
        want = net(x).numpy()
    model, variables = bridges.from_torch(net)
    np.testing.assert_allclose(np.asarray(model.apply(variables, jnp.asarray(x.numpy()))), want,
                               rtol=1e-6, atol=1e-6)
    top = ei_jax.topology_of(model, variables, jnp.zeros((1, 3)))
    assert top.nodes["layers_0"]["output"]["activation"] == "softsign"
    nnx_model = bridges.from_torch(net, api="nnx")
    np.testing.assert_allclose(np.asarray(nnx_model(jnp.asarray(x.numpy()))), want, rtol=1e-6,
                               atol=1e-6)
    # checkpoints of weights, and the deep-ei drop-in's activations
    chain = bridges.linear_chain({"0.weight": np.ones((2, 3), np.float32)}, "softsign",
                                 ordered=True, source="x")
    assert chain[0].layers[1] is nn.soft_sign
    assert dacts.to_ei_jax(torch.nn.Softsign(), 2) == ("softsign", (-1, 1))
    assert dacts.to_ei_jax(torch.nn.functional.softsign, 2) == ("softsign", (-1, 1))
    assert dacts.module_for("softsign").__class__ is torch.nn.Softsign


def test_the_registry_is_the_only_list():
    """Every name the command accepts, bridges maps and the exact measures know is a registry
    entry; and no other module of the packages writes a list of activation names."""
    names = set(reg.REGISTRY)
    assert set(cli_args.activation_choices()) <= names
    assert set(preimages.exact_activations()) <= names
    assert set(preimages.exact_activations()) == {e.name for e in reg.REGISTRY.values() if e.exact}
    for e in reg.REGISTRY.values():
        if e.exact:
            assert preimages.canonical_exact_activation(e.name.upper()) == e.name
        if e.in_models:
            assert reg.name_of_function(e.fn) == (None if e.name == "identity" else e.name)
            assert e.default_range is not None
    from bridges._src import deep_ei_activations as dacts
    from bridges._src import flax_build, ir

    assert set(ir.activation_names()) <= names
    assert set(flax_build.activation_functions(nn)) <= names
    assert {dacts.name_of(n) for e in reg.REGISTRY.values() for n in e.names if e.torch_modules} \
        <= names | {None}
    assert ei_jax.activations() == tuple(reg.REGISTRY.values())
    # a literal collection of names or functions (``"sigmoid", "tanh", "relu"``, ``"relu":
    # nn.relu``, ``nn.Sigmoid, nn.Tanh``) anywhere else in the packages (an example of two
    # names, ``activation=("sigmoid", "tanh")``, is not a list of the known ones)
    name = r"""["'](?:sigmoid|tanh|relu|identity)["']"""
    pattern = re.compile(rf"""{name}\s*,\s*{name}\s*,\s*{name}"""
                         r"""|["'](sigmoid|tanh|relu)["']\s*:\s*\w+\.\w+"""
                         r"""|nn\.(Sigmoid|Tanh|ReLU)\s*,\s*nn\.""")
    offenders = []
    for path in [*(ROOT / "ei_jax").rglob("*.py"), *(ROOT / "bridges").rglob("*.py")]:
        if path == ROOT / "ei_jax" / "_src" / "model" / "activations.py":
            continue
        for i, line in enumerate(path.read_text().splitlines(), 1):
            if pattern.search(line.split("#")[0]):
                offenders.append(f"{path.relative_to(ROOT)}:{i}: {line.strip()}")
    assert not offenders, "activation lists outside the registry:\n" + "\n".join(offenders)


def test_softplus_is_known_by_name_to_both_measures():
    """softplus has a preimage but no deep-ei default range: the sampled and the exact
    measures take activation="softplus" with an out_range, and both ask for one without."""
    net = nn.Dense(2)
    x0 = jnp.zeros((1, 3))
    top = ei_jax.topology_of(net, net.init(jax.random.key(0), x0), x0)
    kw = dict(in_range=(0.0, 1.0), in_bins=4, out_bins=4, activation="softplus")
    got = exact.ei_parts(top, "Dense", out_range=(0.0, 3.0), **kw)
    est = ei_jax.ei_parts(jax.random.key(1), top, "Dense", out_range=(0.0, 3.0), samples=100_000,
                          stderr=True, **kw)
    assert abs(float(est.value) - got) < 4 * float(est.stderr) + 1e-3
    for measure in (exact.ei_parts, lambda *a, **k: ei_jax.ei_parts(jax.random.key(1), *a, **k)):
        with pytest.raises(ei_jax.errors.UnknownActivationError, match="pass out_range"):
            measure(top, "Dense", **kw)
