"""``ei-jax measure --arch``: a PyTorch checkpoint with BatchNorm, LayerNorm, GELU and residual
blocks, measured with the architecture it was saved from (issue #24, item 6). The command's
numbers are compared with the library's own call on the same converted model, and the exact
layers with a plain Dense whose weights are folded here from the torch module's own tensors."""

import importlib.util
import json
import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ei_jax
import ei_jax.experiments as ex
from ei_jax import exact, topology_of
from ei_jax.cli import main
from ei_jax.cli import setup as _cli_setup

torch = pytest.importorskip("torch")
import bridges  # noqa: E402  (after torch: the architectures need it)

ARCH = Path(__file__).with_name("torch_architectures.py")
BINS = 4
SMALL = ["--samples", "4000", "--sensitivity-samples", "200", "--bins", str(BINS), "--no-progress"]
SETTINGS = ex.MeasureSettings(samples=4000, sensitivity_samples=200, bins=BINS)
COLUMNS = ("ei_parts_corrected", "vector_ei_corrected", "sensitivity_corrected",
           "degeneracy_corrected", "ei_parts_method")
CASES = {"make_resnet": ((1, 5, 5), (5, 5, 1)), "make_mlp": ((4,), (4,))}


@pytest.fixture(autouse=True)
def _in_process(monkeypatch):
    """In this process JAX has started (the device count is fixed) and no cache is turned on."""
    jax.devices()
    monkeypatch.setenv(_cli_setup.NO_CACHE_ENV, "1")


def _architectures():
    spec = importlib.util.spec_from_file_location("torch_architectures_ref", ARCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _trained_looking(net, seed):
    """Random weights and BatchNorm running statistics (not the identity they start as)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in net.state_dict().items():
            if t.dtype != torch.float32:
                continue
            if name.endswith("running_var"):
                t.copy_(0.5 + torch.rand(t.shape, generator=gen))
            else:
                t.copy_(0.6 * torch.randn(t.shape, generator=gen))
    return net


def _dense_exact(kernel, bias, act, in_range):
    """Independent reference: a plain flax Dense with these weights, on the Sequential path."""
    import flax.linen as nn

    kernel = jnp.asarray(np.asarray(kernel), jnp.float32)
    top = topology_of(nn.Dense(kernel.shape[1]), {"params": {
        "kernel": kernel, "bias": jnp.asarray(np.asarray(bias), jnp.float32)}},
        jnp.zeros((1, kernel.shape[0])))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ei_jax.DefaultRangeWarning)
        return exact.ei_parts(top, "Dense", in_range=in_range, activation=act, in_bins=BINS,
                              out_bins=BINS)


def _measure(tmp_path, factory, *extra):
    net = _trained_looking(getattr(_architectures(), factory)(), seed=len(factory))
    ckpt = tmp_path / "net.pt"
    torch.save(net.state_dict(), ckpt)
    out = tmp_path / "m.json"
    shape = ",".join(map(str, CASES[factory][0]))
    status = main(["measure", str(ckpt), "--arch", f"{ARCH}:{factory}", "--input-shape", shape,
                   *SMALL, "--json", str(out), *extra])
    assert status == 0
    return net, ckpt, json.loads(out.read_text())["rows"]


@pytest.mark.parametrize("factory", sorted(CASES))
def test_measure_with_architecture_matches_the_library(factory, tmp_path, capsys):
    net, ckpt, rows = _measure(tmp_path, factory)
    # The library's own call on the same converted model, with the command's key.
    torch_shape, flax_shape = CASES[factory]
    model, variables = bridges.load_checkpoint(ckpt, architecture=getattr(_architectures(), factory)(),
                                               x=torch.zeros((1, *torch_shape)))
    top = topology_of(model, variables, jnp.zeros((1, *flax_shape)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lib = ex.measure_network(ex.run_keys(0)[3], top, SETTINGS)
    assert [r["checkpoint_name"] for r in rows] == list(top) == [r["layer"] for r in lib]
    for got, want in zip(rows, lib):
        for c in COLUMNS:
            assert got[c] == (pytest.approx(want[c], abs=1e-12, nan_ok=True)
                              if isinstance(want[c], float) else want[c]), (got["layer"], c)
    assert "architecture" in capsys.readouterr().out
    if factory == "make_resnet":
        assert list(top) == ["stem_0", "conv1", "conv2", "fc"]
        # stem: conv + BatchNorm (eval) + relu over one 3x3 receptive field, folded here
        conv, bn = net.stem[0], net.stem[1]
        g = (bn.weight / torch.sqrt(bn.running_var + bn.eps)).detach().numpy()
        w = conv.weight.detach().numpy().transpose(2, 3, 1, 0).reshape(9, -1) * g
        b = (conv.bias.detach().numpy() - bn.running_mean.numpy()) * g + bn.bias.detach().numpy()
        assert rows[0]["ei_parts_method"] == "exact"
        assert rows[0]["ei_parts_corrected"] == pytest.approx(_dense_exact(w, b, "relu", (0, 1)),
                                                               rel=1e-6)
        assert rows[0]["n_in"] == 9 and rows[0]["n_out"] == 2
    else:
        assert list(top)[-1] == "head" and rows[-1]["ei_parts_method"] == "exact"
        # head's layer reads the two terms the residual stream adds: embed's output (its bias
        # is in the embedding's layer, which feeds it to the LayerNorm too) and down's product
        # (its bias folds into head's): kernel [W; W]
        wh = net.head.weight.detach().numpy().T
        b = net.down.bias.detach().numpy() @ wh + net.head.bias.detach().numpy()
        assert rows[-1]["n_in"] == 8
        assert rows[-1]["ei_parts_corrected"] == pytest.approx(
            _dense_exact(np.vstack([wh, wh]), b, None, (-10, 10)), rel=1e-6)
        assert rows[1]["ei_parts_method"] == "exact"      # GELU: exact (a union of intervals)


def _misuse(capsys, *argv) -> str:
    with pytest.raises(SystemExit) as exit_info:
        raise SystemExit(main(list(argv)))
    assert exit_info.value.code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(errors) == 1, errors
    return errors[0]


@pytest.mark.parametrize("extra,message", [
    (["--arch", f"{ARCH}:make_resnet"], "--input-shape"),
    (["--arch", f"{ARCH}:make_resnet", "--input-shape", "1,5,5", "--activation", "relu"],
     "--activation does not apply"),
    (["--input-shape", "1,5,5", "--activation", "relu"], "--input-shape goes with --arch"),
    (["--arch", "no_colon_here"], "FILE.py:NAME"),
    (["--arch", f"{ARCH}:make_nothing", "--input-shape", "1,5,5"], "has no 'make_nothing'"),
    (["--arch", f"{ARCH.with_name('missing.py')}:make", "--input-shape", "4"], "does not exist"),
    (["--arch", f"{ARCH}:BINS_OF_NOTHING", "--input-shape", "4"], "has no"),
    (["--arch", f"{ARCH}:make_mlp", "--input-shape", "0,4"], "positive sizes"),
    (["--arch", f"{ARCH}:make_mlp", "--input-shape", "4"], "does not fit|missing|unexpected"),
])
def test_architecture_misuse(extra, message, tmp_path, capsys):
    ckpt = tmp_path / "net.pt"
    torch.save(_architectures().make_resnet().state_dict(), ckpt)
    line = _misuse(capsys, "measure", str(ckpt), *extra, "--no-progress")
    assert __import__("re").search(message, line), line


def test_a_stack_needs_its_architecture(tmp_path, capsys):
    """Without --arch a checkpoint with convolutions says how to measure it."""
    ckpt = tmp_path / "net.pt"
    torch.save(_architectures().make_resnet().state_dict(), ckpt)
    line = _misuse(capsys, "measure", str(ckpt), "--activation", "relu", "--no-progress")
    assert "--arch" in line and "architecture=" not in line


FLAX_ARCH = Path(__file__).with_name("flax_architectures.py")


@pytest.fixture
def _standard_promotion():
    # flax's own avg_pool mixes int and float: the default promotion its users run with.
    with jax.numpy_dtype_promotion("standard"):
        yield


@pytest.mark.usefixtures("_standard_promotion")
def test_measure_a_flax_checkpoint_with_its_architecture(tmp_path, capsys):
    from ei_jax.experiments.checkpoints import save_checkpoint

    spec = importlib.util.spec_from_file_location("flax_architectures_ref", FLAX_ARCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model, x = module.make_cnn(), jnp.zeros((1, 6, 6, 1))
    variables = model.init(jax.random.key(0), x)
    paths, tree = jax.tree_util.tree_flatten_with_path(variables)
    keys = jax.random.split(jax.random.key(5), len(paths))
    variables = jax.tree.unflatten(tree, [
        jax.random.uniform(k, a.shape, minval=0.5, maxval=1.5) if "var" in str(p) else
        0.6 * jax.random.normal(k, a.shape) for k, (p, a) in zip(keys, paths)])
    ckpt = tmp_path / "cnn.msgpack"
    save_checkpoint(str(ckpt), variables)
    out = tmp_path / "m.json"
    assert main(["measure", str(ckpt), "--arch", f"{FLAX_ARCH}:make_cnn", "--input-shape", "6,6,1",
                 *SMALL, "--json", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    top = topology_of(model, variables, x)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lib = ex.measure_network(ex.run_keys(0)[3], top, SETTINGS)
    assert [r["checkpoint_name"] for r in rows] == ["Conv_0", "Dense_0"]
    for got, want in zip(rows, lib):
        for c in COLUMNS:
            assert got[c] == (pytest.approx(want[c], abs=1e-12, nan_ok=True)
                              if isinstance(want[c], float) else want[c]), (got["layer"], c)
    # Conv_0: one 3x3 receptive field, BatchNorm folded by hand
    p, s = variables["params"], variables["batch_stats"]["BatchNorm_0"]
    g = p["BatchNorm_0"]["scale"] / jnp.sqrt(s["var"] + 1e-5)
    w = p["Conv_0"]["kernel"].reshape(9, 2) * g[None, :]
    b = (p["Conv_0"]["bias"] - s["mean"]) * g + p["BatchNorm_0"]["bias"]
    assert rows[0]["ei_parts_corrected"] == pytest.approx(_dense_exact(w, b, "relu", (0, 1)), rel=1e-6)
    # a checkpoint of another network does not fit the architecture
    save_checkpoint(str(ckpt), {"params": {"Dense_0": {"kernel": np.ones((4, 3), np.float32)}}})
    line = _misuse(capsys, "measure", str(ckpt), "--arch", f"{FLAX_ARCH}:make_cnn",
                   "--input-shape", "6,6,1", "--no-progress")
    assert "does not fit" in line and "Conv_0/kernel" in line
