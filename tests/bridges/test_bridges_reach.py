"""bridges converts the networks people train: BatchNorm, LayerNorm, GELU, SiLU, Dropout and
residual blocks.

Each conversion gives torch's outputs (eval mode, float32 tolerance); its traced topology gives
every layer a sampled number; the layers with a BatchNorm fold to ``f(x @ W + b)`` and their
exact measures equal those of the BatchNorm folded by hand into a plain Linear measured on the
Sequential path (for a convolution: its Jacobian as a Linear over the whole feature map).
"""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

import bridges  # noqa: E402
import ei_jax  # noqa: E402
from ei_jax import exact  # noqa: E402
from ei_jax.errors import ExactUnavailableError  # noqa: E402

BINS = dict(in_bins=4, out_bins=4)


def _warmed(net, *shape):
    """``net`` with BatchNorm running statistics away from (0, 1), then in eval mode."""
    net.train()
    with torch.no_grad():
        for _ in range(4):
            net(torch.randn(32, *shape) * 2 + 0.5)
    return net.eval()


def _mlp():
    torch.manual_seed(0)
    return _warmed(nn.Sequential(
        nn.Linear(5, 6), nn.BatchNorm1d(6), nn.Sigmoid(), nn.Dropout(0.3),
        nn.Linear(6, 6), nn.LayerNorm(6), nn.GELU(),
        nn.Linear(6, 4), nn.SiLU(), nn.Linear(4, 3), nn.Tanh()), 5)


class BasicBlock(nn.Module):
    """torchvision's basic block: conv-BN-relu-conv-BN, identity skip, relu."""

    def __init__(self, c):
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c)

    def forward(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += identity
        return self.relu(out)


class ResNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.BatchNorm2d(2), nn.ReLU())
        self.block = BasicBlock(2)
        self.pool = nn.AvgPool2d(2)
        self.fc = nn.Linear(2 * 2 * 2, 3)

    def forward(self, x):
        return torch.sigmoid(self.fc(torch.flatten(self.pool(self.block(self.stem(x))), 1)))


def _resnet():
    torch.manual_seed(1)
    return _warmed(ResNet(), 1, 4, 4)


def _nhwc(x):
    return jnp.asarray(x.permute(0, 2, 3, 1).numpy())


@pytest.mark.parametrize("api", ["linen", "nnx"])
def test_a_sequential_with_norms_gives_torchs_outputs(api):
    net = _mlp()
    x = torch.randn(7, 5) * 2
    with torch.no_grad():
        want = net(x).numpy()
    if api == "linen":
        model, variables = bridges.from_torch(net)
        got = model.apply(variables, jnp.asarray(x.numpy()))
    else:
        got = bridges.from_torch(net, api="nnx")(jnp.asarray(x.numpy()))
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5, atol=1e-5)


def test_a_residual_network_gives_torchs_outputs():
    net = _resnet()
    x = torch.randn(6, 1, 4, 4)
    with torch.no_grad():
        want = net(x).numpy()
    model, variables = bridges.from_torch(net, x=x[:1])
    assert sorted(variables["batch_stats"]) == ["block_bn1", "block_bn2", "stem_1"]
    np.testing.assert_allclose(np.asarray(model.apply(variables, _nhwc(x))), want, rtol=1e-5, atol=1e-5)


def _sampled_all(top, shape):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i, name in enumerate(top):
            v = ei_jax.ei_parts(jax.random.key(i), top, name, samples=500, **BINS)
            assert np.isfinite(float(v)), name


def _folded_linear(weight, bias, bn):
    """A BatchNorm folded by hand into the Linear / affine map before it."""
    s = (bn.weight / torch.sqrt(bn.running_var + bn.eps)).detach()
    lin = nn.Linear(weight.shape[1], weight.shape[0])
    with torch.no_grad():
        lin.weight.copy_(weight * s[:, None])
        lin.bias.copy_((bias - bn.running_mean) * s + bn.bias)
    return lin


def test_the_mlp_every_layer_sampled_and_batchnorm_folded_exactly():
    net = _mlp()
    model, variables = bridges.from_torch(net)
    top = ei_jax.topology_of(model, variables, jnp.zeros((1, 5)))
    assert list(top) == ["layers_0", "layers_3", "layers_6", "layers_8"]
    _sampled_all(top, 5)
    # layer 0 (Linear -> BatchNorm -> sigmoid) is exact, and equals the hand-folded Linear's
    got = exact.ei_parts(top, "layers_0", in_range=(-1, 1), **BINS)
    plain = nn.Sequential(_folded_linear(net[0].weight.detach(), net[0].bias.detach(), net[1]),
                          nn.Sigmoid())
    m2, v2 = bridges.from_torch(plain)
    top2 = ei_jax.topology_of(m2, v2, jnp.zeros((1, 5)))
    assert top2.nodes["layers_0"].get("kind") != "traced"     # the old (Sequential) path
    want = exact.ei_parts(top2, "layers_0", in_range=(-1, 1), **BINS)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    assert 0 < want
    # LayerNorm -> GELU is sampled only (the normalisation), and says which operation; the
    # layer ending in SiLU is exact (its preimages are unions of intervals)
    with pytest.raises(ExactUnavailableError, match="before its activation 'gelu'"):
        exact.ei_parts(top, "layers_3", in_range=(0, 1), out_range=(-1, 5), **BINS)
    assert top.nodes["layers_3"]["output"]["activation"] == "gelu"
    assert top.nodes["layers_6"]["output"]["activation"] == "silu"
    assert np.isfinite(exact.ei_parts(top, "layers_6", in_range=(0, 1), out_range=(-1, 5), **BINS))
    # the last layer (no BatchNorm) is exact too
    assert np.isfinite(exact.ei_parts(top, "layers_8", in_range=(-1, 1), **BINS))


def test_the_residual_network_every_layer_sampled_and_batchnorm_folded_exactly():
    net = _resnet()
    model, variables = bridges.from_torch(net, x=torch.zeros(1, 1, 4, 4))
    top = ei_jax.topology_of(model, variables, jnp.zeros((1, 4, 4, 1)))
    assert list(top) == ["stem_0", "block_conv1", "block_conv2", "fc"]
    _sampled_all(top, (4, 4, 1))
    # block_conv1 is relu(bn1(conv1(h))): exact, equal to its Jacobian as a plain Linear over the
    # whole feature map (EI_parts is a sum over input-output pairs, so the order does not matter)
    got = exact.ei_parts(top, "block_conv1", in_range=(0, 1), **BINS)
    f = lambda h: net.block.bn1(net.block.conv1(h.reshape(1, 2, 4, 4))).reshape(-1)  # noqa: E731
    with torch.no_grad():
        bias = f(torch.zeros(32))
    jac = torch.autograd.functional.jacobian(f, torch.zeros(32)).detach()
    lin = nn.Linear(32, 32)
    with torch.no_grad():
        lin.weight.copy_(jac)
        lin.bias.copy_(bias)
    m2, v2 = bridges.from_torch(nn.Sequential(lin, nn.ReLU()))
    want = exact.ei_parts(ei_jax.topology_of(m2, v2, jnp.zeros((1, 32))), "layers_0",
                          in_range=(0, 1), **BINS)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    assert np.isfinite(exact.ei_parts(top, "stem_0", in_range=(0, 1), **BINS))
    assert np.isfinite(exact.ei_parts(top, "fc", in_range=(0, 1), **BINS))


def test_a_residual_checkpoint_loads_with_its_architecture(tmp_path):
    net = _resnet()
    path = tmp_path / "resnet.pt"
    torch.save(net.state_dict(), path)
    x = torch.randn(3, 1, 4, 4)
    with torch.no_grad():
        want = net(x).numpy()
    torch.manual_seed(5)
    fresh = ResNet()                                  # other weights, training mode
    model, variables = bridges.load_checkpoint(path, architecture=fresh, x=x[:1])
    np.testing.assert_allclose(np.asarray(model.apply(variables, _nhwc(x))), want, rtol=1e-5, atol=1e-5)
    assert fresh.training                              # the caller's module is not changed
    with pytest.raises(bridges.UnsupportedModuleError, match="custom"):
        bridges.load_checkpoint(path, architecture=fresh)


def test_a_sequential_checkpoint_with_batchnorm_loads(tmp_path):
    net = _mlp()
    path = tmp_path / "mlp.pt"
    torch.save(net.state_dict(), path)
    torch.manual_seed(3)
    model, variables = bridges.load_checkpoint(path, architecture=_warmed(_mlp_arch(), 5).train())
    x = torch.randn(4, 5)
    with torch.no_grad():
        want = net(x).numpy()
    np.testing.assert_allclose(np.asarray(model.apply(variables, jnp.asarray(x.numpy()))), want,
                               rtol=1e-5, atol=1e-5)


def _mlp_arch():
    return nn.Sequential(
        nn.Linear(5, 6), nn.BatchNorm1d(6), nn.Sigmoid(), nn.Dropout(0.3),
        nn.Linear(6, 6), nn.LayerNorm(6), nn.GELU(),
        nn.Linear(6, 4), nn.SiLU(), nn.Linear(4, 3), nn.Tanh())


def test_what_is_refused_says_why():
    net = _mlp().train()
    with pytest.raises(bridges.UnsupportedModuleError, match=r"eval\(\)"):
        bridges.from_torch(net)
    # an approximate= torch has no registry entry for names the ones bridges converts
    with pytest.raises(bridges.UnsupportedModuleError,
                       match=r"approximate='sigmoid'; bridges converts approximate='none' \(gelu\) "
                             r"or approximate='tanh' \(gelu_tanh\)"):
        bridges.from_torch(nn.Sequential(nn.Linear(2, 2), nn.GELU(approximate="sigmoid")))
    with pytest.raises(bridges.UnsupportedModuleError, match="x="):
        bridges.from_torch(_resnet())
    with pytest.raises(bridges.UnsupportedModuleError, match="linen"):
        bridges.from_torch(_resnet(), api="nnx", x=torch.zeros(1, 1, 4, 4))

    class Scaled(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(2, 2)

        def forward(self, x):
            return torch.exp(self.fc(x))

    with pytest.raises(bridges.UnsupportedModuleError, match="exp"):
        bridges.from_torch(Scaled(), x=torch.zeros(1, 2))


class _FunctionalGelu(nn.Module):
    """Linear -> F.gelu(approximate=...) -> Linear, in a forward of its own (traced)."""

    def __init__(self, approximate):
        super().__init__()
        self.fc1, self.fc2, self.approximate = nn.Linear(5, 6), nn.Linear(6, 3), approximate

    def forward(self, x):
        return self.fc2(torch.nn.functional.gelu(self.fc1(x), approximate=self.approximate))


def _gelu_nets(approximate):
    """The same weights as a Sequential with nn.GELU and as a module calling F.gelu."""
    torch.manual_seed(4)
    seq = nn.Sequential(nn.Linear(5, 6), nn.GELU(approximate=approximate), nn.Linear(6, 3)).eval()
    fn = _FunctionalGelu(approximate).eval()
    fn.load_state_dict({k.replace("0.", "fc1.").replace("2.", "fc2."): v
                        for k, v in seq.state_dict().items()})
    return seq, fn


@pytest.mark.parametrize("approximate, name", [("tanh", "gelu_tanh"), ("none", "gelu")])
def test_gelu_in_both_torch_forms_converts_to_its_registry_entry(approximate, name):
    seq, fn = _gelu_nets(approximate)
    x = torch.randn(9, 5) * 2
    with torch.no_grad():
        want = seq(x).numpy()
        np.testing.assert_allclose(fn(x).numpy(), want, rtol=0, atol=0)
    for net, hidden in ((seq, "layers_0"), (fn, "fc1")):
        model, variables = bridges.from_torch(net, x=x[:1])
        np.testing.assert_allclose(np.asarray(model.apply(variables, jnp.asarray(x.numpy()))), want,
                                   rtol=1e-5, atol=1e-5)
        top = ei_jax.topology_of(model, variables, jnp.zeros((1, 5)))
        assert top.nodes[hidden]["output"]["activation"] == name, type(net).__name__
    # the Sequential path (no x=), linen and NNX
    model, variables = bridges.from_torch(seq)
    np.testing.assert_allclose(np.asarray(model.apply(variables, jnp.asarray(x.numpy()))), want,
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(bridges.from_torch(seq, api="nnx")(jnp.asarray(x.numpy()))),
                               want, rtol=1e-5, atol=1e-5)


def test_tanh_gelu_is_measured_exactly_as_a_flax_dense_with_jax_gelu():
    import flax.linen as fnn

    class Plain(fnn.Module):       # independent path: jax.nn.gelu's tanh form, weights by hand
        @fnn.compact
        def __call__(self, x):
            h = jax.nn.gelu(fnn.Dense(6)(x), approximate=True)
            return fnn.Dense(3)(h)

    seq, fn = _gelu_nets("tanh")
    plain_vars = {"params": {
        f"Dense_{i}": {"kernel": jnp.asarray(lin.weight.detach().numpy().T),
                       "bias": jnp.asarray(lin.bias.detach().numpy())}
        for i, lin in enumerate((seq[0], seq[2]))}}
    plain = ei_jax.topology_of(Plain(), plain_vars, jnp.zeros((1, 5)))
    assert plain.nodes["Dense_0"]["output"]["activation"] == "gelu_tanh"
    # bins fine enough near GELU's minimum that the two forms' measures differ (by ~2e-4 bits)
    fine = dict(in_range=(-1, 1), out_range=(-0.2, 1.0), in_bins=8, out_bins=8)
    want = exact.ei_parts(plain, "Dense_0", **fine)
    assert 0 < want
    for net, hidden, x in ((seq, "layers_0", None), (seq, "layers_0", torch.zeros(1, 5)),
                           (fn, "fc1", torch.zeros(1, 5))):
        model, variables = bridges.from_torch(net, x=x)
        top = ei_jax.topology_of(model, variables, jnp.zeros((1, 5)))
        np.testing.assert_allclose(exact.ei_parts(top, hidden, **fine), want, rtol=0, atol=1e-12)
    erf, _ = _gelu_nets("none")
    model, variables = bridges.from_torch(erf)
    top = ei_jax.topology_of(model, variables, jnp.zeros((1, 5)))
    assert abs(exact.ei_parts(top, "layers_0", **fine) - want) > 1e-6   # the test tells them apart


def test_a_traced_gelu_call_maps_by_its_keywords():
    # torch 2.x itself refuses F.gelu(x, approximate="sigmoid") before bridges records it, so the
    # refusal (for a future torch value) is checked on the recorder's mapping directly
    from bridges._src import torch_graph

    assert torch_graph._activation("gelu", {}) == "gelu"
    assert torch_graph._activation("gelu_", {"approximate": "tanh"}) == "gelu_tanh"
    with pytest.raises(bridges.UnsupportedModuleError,
                       match=r"gelu with approximate='sigmoid'; bridges converts approximate='none'"):
        torch_graph._activation("gelu", {"approximate": "sigmoid"})
    assert torch_graph._activation("exp", {}) is None
