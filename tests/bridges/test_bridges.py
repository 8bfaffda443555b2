"""bridges: torch modules and checkpoint files converted to Flax give torch's outputs.

Every conversion is checked by output equality (atol 1e-5) against the torch module itself on
random inputs, for linen and NNX; the converted networks must also go straight into
``ei_jax.topology_of``. Checkpoint files are written into ``tmp_path`` with torch /
safetensors themselves, and every documented error is triggered with a real bad input.
"""

import pickle

import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional
safetensors_torch = pytest.importorskip("safetensors.torch")

import bridges  # noqa: E402
import ei_jax  # noqa: E402

APIS = ["linen", "nnx"]


def _seeded(make, seed=0):
    torch.manual_seed(seed)
    return make()


def _mlp():
    return nn.Sequential(nn.Linear(20, 10), nn.Sigmoid(), nn.Linear(10, 8, bias=False), nn.Tanh(),
                         nn.Identity(), nn.Sequential(nn.Linear(8, 6), nn.ReLU()), nn.Linear(6, 5))


def _image_mlp():
    # A Flatten first: torch sees (N, 2, 4, 3) images, Flax the same images as NHWC.
    return nn.Sequential(nn.Flatten(), nn.Linear(24, 7), nn.Sigmoid(), nn.Linear(7, 3))


def _conv_net():
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, stride=1, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(4, 6, (3, 2), stride=(2, 1), padding=(1, 0)), nn.Tanh(),
        nn.AvgPool2d(2, stride=1, padding=1, count_include_pad=False),
        nn.Conv2d(6, 5, 2, bias=False), nn.Sigmoid(), nn.AvgPool2d(2),
        nn.Flatten(), nn.Linear(5 * 1 * 2, 7), nn.Sigmoid(), nn.Linear(7, 3))


def _torch_out(net, x):
    with torch.no_grad():
        return net(torch.from_numpy(x)).numpy()


def _nhwc(x):
    return np.ascontiguousarray(x.transpose(0, 2, 3, 1)) if x.ndim == 4 else x


def _flax_out_and_topology(converted, api, x):
    xj = jnp.asarray(_nhwc(x))
    if api == "linen":
        model, variables = converted
        return np.asarray(model.apply(variables, xj)), ei_jax.topology_of(model, variables, xj[:1])
    return np.asarray(converted(xj)), ei_jax.topology_of(converted, xj[:1])


# --- live modules ---------------------------------------------------------------------------

@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize("make,shape,acts", [
    (_mlp, (64, 20), ["sigmoid", "tanh", "relu", None]),
    (_image_mlp, (64, 2, 4, 3), ["sigmoid", None]),
    (lambda: nn.Linear(5, 5, bias=False), (64, 5), [None]),
    (lambda: nn.Sequential(nn.Linear(5, 5), nn.Sigmoid()), (64, 5), ["sigmoid"]),
])
def test_mlp_outputs_equal_torch(api, make, shape, acts):
    net = _seeded(make)
    x = np.random.default_rng(1).normal(0, 2, shape).astype(np.float32)
    y, top = _flax_out_and_topology(bridges.from_torch(net, api=api), api, x)
    np.testing.assert_allclose(y, _torch_out(net, x), atol=1e-5, rtol=0)
    assert [top.nodes[n]["output"]["activation"] for n in top] == acts
    linears = [m for m in net.modules() if isinstance(m, nn.Linear)]
    for name, lin in zip(top, linears):  # Linear [out, in] -> kernel [in, out]
        np.testing.assert_array_equal(np.asarray(top.nodes[name]["params"]["kernel"]),
                                      lin.weight.detach().numpy().T)


@pytest.mark.parametrize("api", APIS)
def test_conv_net_outputs_equal_torch(api):
    net = _seeded(_conv_net)
    x = np.random.default_rng(2).normal(0, 1, (16, 3, 8, 10)).astype(np.float32)
    y, top = _flax_out_and_topology(bridges.from_torch(net, api=api), api, x)
    np.testing.assert_allclose(y, _torch_out(net, x), atol=1e-5, rtol=0)

    names = list(top)
    assert [top.nodes[n]["kind"] for n in names] == ["conv", "conv", "conv", "dense", "dense"]
    c0, c1, c2, d0, d1 = (top.nodes[n] for n in names)
    # One receptive field per conv: (1, kh, kw, c_in) -> (1, c_out).
    assert (c0["input"]["shape"], c0["output"]["shape"]) == ((1, 3, 3, 3), (1, 4))
    assert (c1["input"]["shape"], c1["output"]["shape"]) == ((1, 3, 2, 4), (1, 6))
    assert [type(op).__name__ for op in c0["after"]] == ["MaxPool"]
    assert [type(op).__name__ for op in c2["after"]] == ["AvgPool", "Flatten"]
    assert c1["after"][0] == ei_jax.AvgPool(2, 1, 1, count_include_pad=False)
    # Activations carry through pooling / Flatten to the next layer's input.
    assert [(n["input"]["activation"], n["output"]["activation"]) for n in (c0, c1, c2, d0, d1)] == [
        (None, "relu"), ("relu", "tanh"), ("tanh", "sigmoid"), ("sigmoid", "sigmoid"), ("sigmoid", None)]
    assert d0["input"]["shape"] == (1, 10)


@pytest.mark.parametrize("api", APIS)
def test_conv_node_is_torch_conv_on_one_patch(api):
    """A conv node's apply is torch's Conv2d on one (c_in, kh, kw) patch, in NHWC order."""
    net = _seeded(_conv_net)
    converted = bridges.from_torch(net, api=api)
    _, top = _flax_out_and_topology(converted, api, np.zeros((1, 3, 8, 10), np.float32))
    patches = np.random.default_rng(3).uniform(0, 1, (128, 4, 3, 2)).astype(np.float32)  # NCHW
    conv = net[3]
    with torch.no_grad():
        want = F.conv2d(torch.from_numpy(patches), conv.weight, conv.bias).numpy().reshape(128, -1)
    node = top.nodes[list(top)[1]]
    got = np.asarray(node["apply"](node["params"], jnp.asarray(_nhwc(patches))))
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)


def test_same_padding_and_dilation():
    net = _seeded(lambda: nn.Sequential(nn.Conv2d(2, 3, (4, 3), padding="same", dilation=(1, 2)),
                                        nn.Sigmoid(), nn.Flatten(), nn.Linear(3 * 6 * 7, 2)))
    x = np.random.default_rng(4).normal(0, 1, (8, 2, 6, 7)).astype(np.float32)
    with pytest.warns(UserWarning):  # torch warns about even kernels with padding="same"
        want = _torch_out(net, x)
    y, _ = _flax_out_and_topology(bridges.from_torch(net), "linen", x)
    np.testing.assert_allclose(y, want, atol=1e-5, rtol=0)


class _Custom(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 2)

    def forward(self, x):
        return self.fc(x) * 2


@pytest.mark.parametrize("module,named", [
    (nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4)), "BatchNorm1d at '1'"),
    (nn.Sequential(nn.Linear(4, 4), nn.Dropout()), "Dropout at '1'"),
    (nn.Sequential(nn.Conv2d(4, 4, 3, groups=2)), "groups=2"),
    (nn.Sequential(nn.Conv2d(1, 1, 3, padding=1, padding_mode="reflect")), "padding_mode='reflect'"),
    (nn.Sequential(nn.MaxPool2d(2, ceil_mode=True)), "ceil_mode=True"),
    (nn.Sequential(nn.Flatten(0)), "start_dim=0"),
    (_Custom(), "_Custom at '<root>'"),
    (nn.Sequential(nn.ReLU()), "no Linear or Conv2d"),
    (nn.Sequential(nn.Conv2d(1, 2, 3), nn.Linear(4, 4)), "feature map"),
])
def test_unsupported_torch_module_is_named(module, named):
    with pytest.raises(bridges.UnsupportedModuleError, match=named) as err:
        bridges.from_torch(module)
    assert isinstance(err.value, (ei_jax.EIJaxError, TypeError))
    if named not in ("no Linear or Conv2d", "feature map"):
        assert "nn.Linear, nn.Conv2d" in str(err.value)  # lists what is supported


def test_bad_arguments():
    with pytest.raises(TypeError, match="torch.nn.Module"):
        bridges.from_torch(np.zeros((2, 2)))
    with pytest.raises(ValueError, match="api must be one of"):
        bridges.from_torch(nn.Linear(2, 2), api="haiku")


# --- checkpoint files -----------------------------------------------------------------------

@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize("kind", ["torch", "torch-legacy", "training-dict", "data-parallel", "safetensors"])
def test_conv_checkpoint_with_architecture(tmp_path, api, kind):
    net = _seeded(_conv_net, seed=5)
    sd = net.state_dict()
    path = tmp_path / "ckpt.bin"  # the format is read from the bytes, not the name
    if kind == "torch":
        torch.save(sd, path)
    elif kind == "torch-legacy":
        torch.save(sd, path, _use_new_zipfile_serialization=False)
    elif kind == "training-dict":
        torch.save({"epoch": 3, "model_state_dict": sd, "lr": 0.1}, path)
    elif kind == "data-parallel":
        torch.save({f"module.{k}": v for k, v in sd.items()}, path)
    else:
        safetensors_torch.save_file(sd, str(path))
    architecture = _seeded(_conv_net, seed=6)  # same structure, other weights (ignored)
    converted = bridges.load_checkpoint(path, architecture=architecture, api=api)
    x = np.random.default_rng(6).normal(0, 1, (8, 3, 8, 10)).astype(np.float32)
    y, _ = _flax_out_and_topology(converted, api, x)
    np.testing.assert_allclose(y, _torch_out(net, x), atol=1e-5, rtol=0)
    assert not np.allclose(y, _torch_out(architecture, x), atol=1e-3)


@pytest.mark.parametrize("fmt", ["torch", "safetensors"])
def test_linear_stack_is_inferred(tmp_path, fmt):
    # 12 layers: natural name order ("2" < "10") is needed for safetensors files.
    torch.manual_seed(7)
    mods = []
    for i in range(12):
        mods += [nn.Linear(6 if i else 25, 6 if i < 11 else 5, bias=i % 2 == 0), nn.Sigmoid()]
    net = nn.Sequential(*mods)
    path = tmp_path / f"net.{fmt}"
    if fmt == "torch":
        torch.save(net.state_dict(), path)
    else:
        safetensors_torch.save_file(net.state_dict(), str(path))
    model, variables = bridges.load_checkpoint(path, activation="sigmoid")
    x = np.random.default_rng(8).normal(0, 2, (32, 25)).astype(np.float32)
    y, top = _flax_out_and_topology((model, variables), "linen", x)
    np.testing.assert_allclose(y, _torch_out(net, x), atol=1e-5, rtol=0)
    assert len(top) == 12


def test_per_layer_activations(tmp_path):
    net = _seeded(lambda: nn.Sequential(nn.Linear(20, 10, bias=False), nn.Sigmoid(),
                                        nn.Linear(10, 5, bias=False), nn.Tanh()))
    path = tmp_path / "readme.safetensors"
    safetensors_torch.save_file(net.state_dict(), str(path))
    model = bridges.load_checkpoint(path, activation=("sigmoid", "tanh"), api="nnx")
    x = np.random.default_rng(9).normal(0, 2, (32, 20)).astype(np.float32)
    y, top = _flax_out_and_topology(model, "nnx", x)
    np.testing.assert_allclose(y, _torch_out(net, x), atol=1e-5, rtol=0)
    assert top.nodes["layers_2"]["input"] == {"activation": "sigmoid", "shape": (1, 10)}


def _error(exc, match, path, **kw):
    with pytest.raises(exc, match=match) as err:
        bridges.load_checkpoint(path, **kw)
    assert isinstance(err.value, ei_jax.EIJaxError)
    return err.value


def test_missing_and_corrupt_files(tmp_path):
    e = _error(bridges.CheckpointNotFoundError, "No checkpoint file", tmp_path / "nope.pt",
               activation="sigmoid")
    assert isinstance(e, FileNotFoundError)
    _error(bridges.CheckpointNotFoundError, "not a file", tmp_path, activation="sigmoid")
    (tmp_path / "empty.pt").write_bytes(b"")
    _error(bridges.CheckpointError, "empty", tmp_path / "empty.pt", activation="sigmoid")
    (tmp_path / "junk.pt").write_bytes(b"hello, not a checkpoint")
    e = _error(bridges.CheckpointError, "neither a torch.save file", tmp_path / "junk.pt",
               activation="sigmoid")
    assert isinstance(e, ValueError)

    net = nn.Sequential(nn.Linear(4, 3), nn.Sigmoid())
    torch.save(net.state_dict(), tmp_path / "good.pt")
    data = (tmp_path / "good.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    _error(bridges.CheckpointError, "corrupt or truncated", tmp_path / "cut.pt", activation="sigmoid")
    safetensors_torch.save_file(net.state_dict(), str(tmp_path / "good.safetensors"))
    data = (tmp_path / "good.safetensors").read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[:-4])
    _error(bridges.CheckpointError, "corrupt or truncated safetensors", tmp_path / "cut.safetensors",
           activation="sigmoid")

    torch.save(net, tmp_path / "pickled_module.pt")  # a whole module, not a state_dict
    _error(bridges.CheckpointError, "weights_only=True.*state_dict", tmp_path / "pickled_module.pt",
           activation="sigmoid")
    torch.save({"epoch": 1, "notes": "x"}, tmp_path / "no_state.pt")
    _error(bridges.CheckpointError, "not a state_dict", tmp_path / "no_state.pt", activation="sigmoid")


def test_checkpoint_does_not_fit_architecture(tmp_path):
    torch.save(nn.Sequential(nn.Linear(20, 11), nn.Sigmoid()).state_dict(), tmp_path / "a.pt")
    e = _error(bridges.CheckpointShapeError, r"'0.weight' has shape \(11, 20\).*Linear\(20, 10, "
               r"bias=True\) at '0' expects \(10, 20\)", tmp_path / "a.pt",
               architecture=nn.Sequential(nn.Linear(20, 10), nn.Sigmoid()))
    assert isinstance(e, ei_jax.errors.ShapeMismatchError) and isinstance(e, ValueError)
    torch.save(nn.Sequential(nn.Linear(20, 11, bias=False)).state_dict(), tmp_path / "nobias.pt")
    _error(bridges.CheckpointError, r"missing \['0.bias'\]", tmp_path / "nobias.pt",
           architecture=nn.Sequential(nn.Linear(20, 11)))
    torch.save(nn.Sequential(nn.Linear(20, 11), nn.Linear(11, 2)).state_dict(), tmp_path / "b.pt")
    _error(bridges.CheckpointError, r"unexpected \['1.weight', '1.bias'\]", tmp_path / "b.pt",
           architecture=nn.Sequential(nn.Linear(20, 11)))
    with pytest.raises(TypeError, match="one or the other"):
        bridges.load_checkpoint(tmp_path / "b.pt", architecture=nn.Sequential(nn.Linear(20, 11)),
                                activation="sigmoid")


def test_architecture_cannot_be_inferred(tmp_path):
    torch.save(nn.Sequential(nn.Linear(20, 11), nn.Linear(11, 2)).state_dict(), tmp_path / "b.pt")
    _error(bridges.CheckpointError, "weights only, without the activations", tmp_path / "b.pt")
    _error(bridges.CheckpointError, "holds 2 Linear layers but activation= names 1", tmp_path / "b.pt",
           activation=["sigmoid"])
    _error(bridges.CheckpointError, "Unknown activation 'gelu'", tmp_path / "b.pt", activation="gelu")
    torch.save(nn.Sequential(nn.Linear(20, 11), nn.Linear(12, 2)).state_dict(), tmp_path / "c.pt")
    _error(bridges.CheckpointShapeError, "has 11 outputs but the next layer '1' expects 12",
           tmp_path / "c.pt", activation="relu")
    torch.save(_conv_net().state_dict(), tmp_path / "conv.pt")
    _error(bridges.CheckpointError, "a convolution.*architecture=", tmp_path / "conv.pt", activation="relu")
    torch.save(nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3)).state_dict(), tmp_path / "bn.pt")
    _error(bridges.CheckpointError, "'1.running_mean' is not a Linear weight", tmp_path / "bn.pt",
           activation="relu")


def test_error_hierarchy():
    assert issubclass(bridges.CheckpointError, ei_jax.EIJaxError) and issubclass(bridges.CheckpointError, ValueError)
    assert issubclass(bridges.MissingDependencyError, ei_jax.EIJaxError)
    assert issubclass(bridges.MissingDependencyError, ImportError)
    assert bridges.UnsupportedModuleError is ei_jax.errors.UnsupportedModuleError
    assert not issubclass(bridges.CheckpointError, pickle.UnpicklingError)


def test_example_torch_checkpoint(capsys):
    """examples/torch_checkpoint.py: saves a torch checkpoint, converts it, measures each layer."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "examples" / "torch_checkpoint.py"
    spec = importlib.util.spec_from_file_location("torch_checkpoint_example", path)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    rows = example.main(["--samples", "4000", "--sensitivity-samples", "200", "--format", "safetensors"])
    out = capsys.readouterr().out
    assert [r[:4] for r in rows] == [("layers_0", "conv", 9, 4), ("layers_4", "dense", 36, 5)]
    assert [tuple(r[4]) for r in rows] == [(0.0, 1.0), (-1, 1)]  # tanh's range through MaxPool/Flatten
    for name, _, _, _, _, parts, vector, sens, deg in rows:
        assert parts > 0.1 and vector > 0.1 and sens > parts
        assert deg == pytest.approx(sens - parts)
        assert name in out
    assert "EI_parts" in out and "degeneracy" in out


@pytest.mark.parametrize("fmt", ["torch", "safetensors"])
@pytest.mark.parametrize("dtype", ["bfloat16", "float16", "float64"])
def test_other_float_dtypes_load_as_float32(tmp_path, fmt, dtype):
    net = _seeded(lambda: nn.Sequential(nn.Linear(6, 4), nn.Tanh()))
    sd = {k: v.to(getattr(torch, dtype)) for k, v in net.state_dict().items()}
    path = tmp_path / "half.ckpt"
    torch.save(sd, path) if fmt == "torch" else safetensors_torch.save_file(sd, str(path))
    model, variables = bridges.load_checkpoint(path, activation="tanh")
    net.load_state_dict({k: v.float() for k, v in sd.items()})  # torch with the same rounded weights
    x = np.random.default_rng(10).normal(0, 1, (16, 6)).astype(np.float32)
    assert variables["params"]["layers_0"]["kernel"].dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(model.apply(variables, jnp.asarray(x))), _torch_out(net, x),
                               atol=1e-5, rtol=0)
