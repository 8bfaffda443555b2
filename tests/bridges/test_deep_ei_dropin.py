"""bridges.deep_ei used the way deep-ei's users use deep-ei: torch modules, weights set after
``topology_of``, ``torch.manual_seed``, lambdas as activations, spans, groups, custom modules.

Ground truths (no sampling error beyond what is stated):

* an identity 1 -> 1 map on (0, 1) binned alike on both sides puts every sample on the diagonal
  of the joint histogram, so its pairwise MI is the plug-in entropy of the input's k bins:
  ``log2 k`` minus at most ``(k - 1) / (2 n ln 2)`` plus fluctuations of order ``sqrt(k / n^2)``
  -- with n = 20,000 and k = 8 the value is within 1e-3 bits of 3 except with negligible
  probability (the entropy's standard deviation is ~1e-5 bits);
* the same holds for vector EI of an identity n -> n layer (``n log2 k``), for a span whose
  composition is the identity (ReLU of a positive input), and for group EI;
* a zero layer has a constant output: EI_parts is exactly 0;
* two inputs that are independent of an output give (plug-in) MI of order (k-1)^2 / (2 n ln 2)
  ~ 2.5e-4 bits at k = 8, n = 20,000: asserted below 5e-3.

Equalities between two calls are exact (same torch seed -> same key -> same samples).
"""

import doctest
import inspect
import math
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

import bridges  # noqa: E402
import ei_jax  # noqa: E402
from bridges import deep_ei  # noqa: E402
from bridges._src import deep_ei_activations as _activations  # noqa: E402
from bridges._src import deep_ei_measures as _measures  # noqa: E402
from bridges._src import deep_ei_topology as _topology  # noqa: E402
from bridges._src import torch_trace as _trace  # noqa: E402
from bridges._src import deep_ei_vector as _vector  # noqa: E402
from bridges.deep_ei import (  # noqa: E402
    ei,
    ei_parts,
    ei_parts_matrix,
    eis_between_groups,
    sensitivity,
    sensitivity_matrix,
    topology_of,
    vector_and_pairwise_ei,
)

N = 20_000
K = 8
UNIT = dict(in_range=(0, 1), in_bins=K, out_range=(0, 1), out_bins=K)


def _set(layer, weight):
    with torch.no_grad():  # what deep-ei users write: change the weights after topology_of
        layer.weight.copy_(torch.as_tensor(weight, dtype=torch.float32))


def _seeded(fn, *args, seed=0, **kw):
    torch.manual_seed(seed)
    return fn(*args, **kw)


@pytest.fixture(scope="module")
def one():
    layer = nn.Linear(1, 1, bias=False)
    return layer, topology_of(layer, input=torch.zeros((1, 1)))


def test_identity_layer_set_after_topology_of_has_ei_parts_log2_k(one):
    layer, top = one
    _set(layer, [[0.0]])
    assert ei_parts(layer, top, samples=N, **UNIT) == pytest.approx(0.0, abs=1e-9)  # constant output
    _set(layer, [[1.0]])
    value = ei_parts(layer, top, samples=N, **UNIT)
    assert isinstance(value, float)
    assert value == pytest.approx(math.log2(K), abs=1e-3)
    # deep-ei's precedence: extrapolate=True ignores samples (4 samples could give at most 2 bits)
    assert ei_parts(layer, top, samples=4, extrapolate=True, **UNIT) == pytest.approx(math.log2(K), abs=5e-3)
    layer.weight.data[0, 0] = 1.0  # .data assignment also counts
    m = ei_parts_matrix(layer, top, samples=N, **UNIT)
    assert isinstance(m, np.ndarray) and m.shape == (1, 1)
    assert m[0, 0] == pytest.approx(math.log2(K), abs=1e-3)


def test_lambda_and_torch_function_activations_equal_the_builtin_ones(one):
    layer, top = one
    _set(layer, [[1.0]])
    base = _seeded(ei_parts, layer, top, samples=N, **UNIT)
    # lambda x: x runs through torch on the host: the same samples give the same counts
    assert _seeded(ei_parts, layer, top, samples=N, activation=lambda x: x, **UNIT) == base
    assert _seeded(ei_parts, layer, top, samples=N, activation=nn.Identity(), **UNIT) == base
    # a torch function the drop-in does not know also runs through torch: identity on (0, 1)
    assert _seeded(ei_parts, layer, top, samples=N, activation=torch.nn.functional.leaky_relu, **UNIT) == base
    _set(layer, [[3.0]])
    sig = _seeded(ei_parts, layer, top, samples=N, activation=nn.Sigmoid(), **UNIT)
    for act in (torch.sigmoid, torch.nn.functional.sigmoid, torch.Tensor.sigmoid, "sigmoid"):
        assert _seeded(ei_parts, layer, top, samples=N, activation=act, **UNIT) == sig, act
    assert 0 < sig < math.log2(K)


def test_torch_seed_makes_calls_reproducible(one):
    layer, top = one
    _set(layer, [[3.0]])
    kw = dict(samples=2_000, activation=nn.Sigmoid(), **UNIT)
    a, b = _seeded(ei_parts, layer, top, seed=5, **kw), _seeded(ei_parts, layer, top, seed=5, **kw)
    c = _seeded(ei_parts, layer, top, seed=6, **kw)
    assert a == b and a != c
    torch.manual_seed(5)
    first, second = ei_parts(layer, top, **kw), ei_parts(layer, top, **kw)
    assert first == a and second != first                       # each call advances torch's RNG


def test_sensitivity_of_identity_and_batch_size_device_do_not_matter(one):
    layer, top = one
    _set(layer, [[1.0]])
    s = _seeded(sensitivity, layer, top, samples=N, **UNIT)
    assert isinstance(s, float) and s == pytest.approx(math.log2(K), abs=1e-3)
    gpu = [{"device": "cuda"}] if torch.cuda.is_available() else []  # else it fails, as in deep-ei
    for extra in ({"batch_size": 7}, *gpu, {"device": "cpu"}, {"device": torch.device("cpu")}):
        assert _seeded(sensitivity, layer, top, samples=N, **UNIT, **extra) == s
    m = _seeded(sensitivity_matrix, layer, top, samples=N, **UNIT)
    assert isinstance(m, np.ndarray) and m.dtype == np.float64 and m.shape == (1, 1) and m[0, 0] == s


@pytest.fixture(scope="module")
def eye3():
    layer = nn.Linear(3, 3, bias=False)
    return layer, topology_of(layer, input=torch.zeros((1, 3)))


def test_groups_vector_and_pairwise_ei_of_an_identity_layer(eye3):
    layer, top = eye3
    _set(layer, np.eye(3))
    kw = dict(samples=N, in_range=(0, 1), in_bins=4, out_range=(0, 1), out_bins=4)
    groups = [((0,), (0,)), ((0,), (1,)), ((0, 1), (0, 1))]
    got = eis_between_groups(layer, top, groups, **kw)
    assert isinstance(got, list) and len(got) == 3
    np.testing.assert_allclose(got, [2, 0, 4], atol=5e-3)
    m = ei_parts_matrix(layer, top, **kw)       # rows are inputs: log2(4) on the diagonal only
    np.testing.assert_allclose(m, 2 * np.eye(3), atol=5e-3)
    np.testing.assert_allclose(sensitivity_matrix(layer, top, **kw), 2 * np.eye(3), atol=5e-3)
    _set(layer, [[0, 1, 0], [0, 0, 1], [1, 0, 0]])   # a permutation moves the diagonal
    expected = 2 * np.array([[0, 0, 1], [1, 0, 0], [0, 1, 0]])   # y_0 = x_1, y_1 = x_2, y_2 = x_0
    np.testing.assert_allclose(ei_parts_matrix(layer, top, **kw), expected, atol=5e-3)
    _set(layer, np.eye(3))
    vec, pairs = vector_and_pairwise_ei(layer, top, **kw)
    assert isinstance(vec, float) and isinstance(pairs, float)
    assert vec == pytest.approx(6, abs=5e-3) and pairs == pytest.approx(6, abs=5e-3)
    assert ei(layer, top, **kw) == pytest.approx(6, abs=5e-3)


def test_outputs_below_out_range_get_deep_ei_extra_vector_bins():
    """deep-ei's own tests measure identity layers whose outputs leave out_range=(0, 1)
    downwards: its vector bins keep them (negative indices). y = (x_0, -x_1) bins x_1 one to one
    (floor(-x/w) = -floor(x/w) - 1 except on the measure-zero edges): vector EI 2 log2 8."""
    layer = nn.Linear(2, 2, bias=False)
    top = topology_of(layer, input=torch.zeros((1, 2)))
    _set(layer, [[1, 0], [0, -1]])
    kw = dict(samples=N, **UNIT, activation=lambda x: x)
    with warnings.catch_warnings():
        warnings.simplefilter("error")    # nothing is dropped: no OutOfRangeWarning
        assert _seeded(ei, layer, top, **kw) == pytest.approx(2 * math.log2(K), abs=5e-3)  # bias 2e-3
        got = _seeded(eis_between_groups, layer, top, [((1,), (1,)), ((0,), (1,))], **kw)
    np.testing.assert_allclose(got, [math.log2(K), 0], atol=5e-3)
    _set(layer, [[1, 0], [0.5, -0.5]])    # output 1 straddles 0: pairwise bins see its upper half
    with pytest.warns(ei_jax.errors.OutOfRangeWarning):   # from the pairwise half only
        vec, pairs = _seeded(vector_and_pairwise_ei, layer, top, **kw)
    assert vec == _seeded(ei, layer, top, **kw)          # same samples, deep-ei's vector bins
    assert pairs == _seeded(ei_parts, layer, top, **kw)  # and deep-ei's pairwise bins, unchanged
    assert 0 < pairs < vec
    _set(layer, [[1, 0], [0, -2]])        # rows above out_range are still dropped, as in deep-ei
    with pytest.warns(ei_jax.errors.OutOfRangeWarning, match="widened"):
        _seeded(ei, layer, top, samples=N, in_range=(-1, 1), in_bins=K, out_range=(0, 1), out_bins=K)


@pytest.mark.parametrize("device", ["cuda", "cuda:0", "mps"])
def test_a_device_torch_does_not_have_fails_as_in_deep_ei(one, device):
    layer, top = one
    _set(layer, [[1.0]])
    try:
        torch.empty(0, device=device)
        pytest.skip(f"this machine has {device}")
    except Exception as e:  # noqa: BLE001 - what deep-ei would fail with
        theirs = type(e)
    for dev in (device, torch.device(device)):
        with pytest.raises(deep_ei.DeviceUnavailableError, match="not available") as info:
            ei_parts(layer, top, samples=N, device=dev, **UNIT)
        builtin = AssertionError if issubclass(theirs, AssertionError) else RuntimeError
        assert issubclass(theirs, builtin)  # torch: no CUDA build / no driver / no MPS backend
        assert isinstance(info.value, builtin) and isinstance(info.value, ei_jax.EIJaxError)
    for dev in ("cpu", torch.device("cpu"), None):
        assert ei_parts(layer, top, samples=1000, device=dev, **UNIT) >= 0

def test_sequential_defaults_come_from_the_topology():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 3, bias=False), nn.Sigmoid(), nn.Linear(3, 3, bias=False), nn.Tanh(),
                        nn.Linear(3, 3, bias=False), nn.ReLU())
    top = topology_of(net, input=torch.zeros((1, 3)))
    l1, _, l2, _, l3, _ = net
    kw = dict(samples=N, in_bins=K, out_bins=K)
    # layer 2: input from a sigmoid (0, 1), output tanh (-1, 1); layer 3: tanh in, ReLU (0, 10) out
    assert _seeded(ei_parts, l2, top, **kw) == _seeded(ei_parts, l2, top, in_range=(0, 1), out_range=(-1, 1),
                                                       activation="tanh", **kw)
    assert _seeded(ei_parts, l3, top, **kw) == _seeded(ei_parts, l3, top, in_range=(-1, 1), out_range=(0, 10),
                                                       activation=torch.relu, **kw)
    # an override's range is the override's (ei_jax's documented difference from deep-ei)
    assert _seeded(ei_parts, l3, top, activation=nn.Sigmoid(), **kw) == _seeded(
        ei_parts, l3, top, in_range=(-1, 1), out_range=(0, 1), activation="sigmoid", **kw)
    with pytest.warns(ei_jax.DefaultRangeWarning, match="first layer"):
        ei_parts(l1, top, **kw)                                   # deep-ei's (-10, 10), with a warning


def test_spans_compose_the_recorded_activations():
    net = nn.Sequential(nn.Linear(1, 1, bias=False), nn.ReLU(), nn.Linear(1, 1, bias=False))
    top = topology_of(net, input=torch.zeros((1, 1)))
    l1, _, l2 = net
    _set(l1, [[2.0]])
    _set(l2, [[0.5]])           # relu(2x) / 2 = x on (0, 1): the span is the identity
    assert ei_parts(l2, top, in_layer=l1, samples=N, **UNIT) == pytest.approx(math.log2(K), abs=1e-3)
    _set(l1, [[-2.0]])          # relu(-2x) = 0: constant
    assert ei_parts(l2, top, in_layer=l1, samples=N, **UNIT) == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(deep_ei.SpanOrderError, match="comes after") as info:
        ei_parts(l1, top, in_layer=l2, samples=N, **UNIT)
    assert isinstance(info.value, AssertionError) and isinstance(info.value, ei_jax.errors.LayerOrderError)


def test_a_conv_layer_is_measured_over_one_receptive_field():
    net = nn.Sequential(nn.Conv2d(1, 1, 1, bias=False), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                        nn.Linear(4, 1))
    top = topology_of(net, input=torch.zeros((1, 1, 4, 4)))
    conv = net[0]
    assert list(top) == [conv, net[2], net[3], net[4]]          # deep-ei's nodes and its conv shapes
    assert top.nodes[conv]["input"]["shape"] == (1, 1, 1, 1) and top.nodes[conv]["output"]["shape"] == (1,)
    _set(conv, [[[[1.0]]]])     # a 1x1 kernel of weight 1 with ReLU is the identity on (0, 1)
    assert ei_parts(conv, top, samples=N, **UNIT) == pytest.approx(math.log2(K), abs=1e-3)


class _Functional(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(3, 3, bias=False)
        self.fc2 = nn.Linear(3, 2, bias=False)

    def forward(self, x):
        return torch.tanh(self.fc2(torch.sigmoid(self.fc1(x)).view(x.shape[0], -1)))


def test_custom_module_with_functional_activations_equals_its_sequential():
    torch.manual_seed(1)
    net = _Functional()
    top = topology_of(net, input=torch.zeros((4, 3)))
    assert list(top) == [net.fc1, net.fc2]
    node = top.nodes[net.fc2]
    assert type(node["input"]["activation"]) is nn.Sigmoid and type(node["output"]["activation"]) is nn.Tanh
    assert node["input"]["shape"] == (4, 3) and node["output"]["shape"] == (4, 2)
    seq = nn.Sequential(net.fc1, nn.Sigmoid(), net.fc2, nn.Tanh())
    seq_top = topology_of(seq, input=torch.zeros((1, 3)))
    kw = dict(samples=N, in_range=(0, 1), in_bins=K, out_bins=K)
    assert _seeded(ei_parts, net.fc2, top, **kw) == _seeded(ei_parts, net.fc2, seq_top, **kw)
    assert _seeded(ei_parts, net.fc2, top, in_layer=net.fc1, **kw) == _seeded(
        ei_parts, net.fc2, seq_top, in_layer=net.fc1, **kw)


class _Branchy(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(2, 2), nn.Linear(2, 2)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)) + x)     # a skip connection


class _Leaky(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(2, 2)

    def forward(self, x):
        return torch.nn.functional.leaky_relu(self.fc(x))


def test_structure_deep_ei_cannot_express_is_refused_clearly():
    net = _Branchy()
    top = topology_of(net, input=torch.zeros((1, 2)))
    assert type(top.nodes[net.fc1]["output"]["activation"]) is nn.ReLU
    words = r"between Linear \(layer 0\) and Linear \(layer 1\), .*add.* ran in between"
    with pytest.raises(bridges.UnsupportedModuleError, match=words):
        ei_parts(net.fc2, top, in_layer=net.fc1, samples=N, **UNIT)
    ei_parts(net.fc2, top, samples=1000, in_range=(0, 1), in_bins=K, out_range=(-10, 10), out_bins=K)
    hard = nn.Sequential(nn.Linear(2, 2), nn.Hardswish())      # a torch activation module: recorded
    htop = topology_of(hard, input=torch.zeros((1, 2)))
    assert type(htop.nodes[hard[0]]["output"]["activation"]) is nn.Hardswish
    with pytest.warns(deep_ei.UnrecognisedOperationWarning, match="leaky_relu"):
        topology_of(_Leaky(), input=torch.zeros((1, 2)))       # a function it cannot name: warned
    double = nn.Sequential(nn.Linear(2, 2), nn.Sigmoid(), nn.Tanh(), nn.Linear(2, 2))
    dtop = topology_of(double, input=torch.zeros((1, 2)))   # deep-ei records the Sigmoid only
    assert type(dtop.nodes[double[0]]["output"]["activation"]) is nn.Sigmoid
    assert type(dtop.nodes[double[3]]["input"]["activation"]) is nn.Tanh
    with pytest.raises(bridges.UnsupportedModuleError, match="Tanh ran in between"):
        ei_parts(double[3], dtop, in_layer=double[0], samples=N, **UNIT)
    train = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5), nn.Linear(2, 2))
    with pytest.warns(deep_ei.UnrecognisedOperationWarning, match="Dropout"):
        ttop = topology_of(train, input=torch.zeros((1, 2)))
    with pytest.raises(bridges.UnsupportedModuleError, match=r"model.eval\(\)"):
        ei_parts(train[2], ttop, in_layer=train[0], samples=N, **UNIT)
    shared = nn.Linear(2, 2)
    with pytest.raises(bridges.UnsupportedModuleError, match="more than once"):
        topology_of(nn.Sequential(shared, nn.Sigmoid(), shared), input=torch.zeros((1, 2)))
    flat = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
    ftop = topology_of(flat, input=torch.zeros((1, 2, 2)))
    with pytest.raises(bridges.UnsupportedModuleError, match="not a layer with weights"):
        ei_parts(flat[0], ftop, samples=N, **UNIT)


def test_bad_input_raises_deep_ei_compatible_typed_errors(one, eye3):
    layer, top = one
    other = nn.Linear(1, 1)
    cases = [
        (lambda: ei_parts(other, top, samples=N), deep_ei.LayerKeyError, KeyError, "not a layer"),
        (lambda: ei_parts(layer, top, in_layer=other, samples=N), deep_ei.LayerKeyError,
         ei_jax.errors.LayerNotFoundError, "in_layer"),
        (lambda: eis_between_groups(layer, top, [((0,), (0,))]), deep_ei.SamplesRequiredError, TypeError,
         "needs samples"),
        (lambda: vector_and_pairwise_ei(layer, top), deep_ei.SamplesRequiredError, ei_jax.errors.InvalidSamplesError,
         "needs samples"),
        (lambda: ei_parts(layer, top, samples=N, out_range="dynamic"), deep_ei.DynamicBinningError,
         ValueError, "'dynamic'"),
        (lambda: ei(layer, top, samples=N, in_range="dynamic"), deep_ei.DynamicBinningError, ValueError,
         "in_range"),
        (lambda: ei_parts(layer, top, samples=N, device="gpu7"), deep_ei.DeviceValueError, RuntimeError,
         "device"),
        (lambda: ei_parts(layer, top, samples=N, batch_size=0), ei_jax.errors.InvalidSamplesError, ValueError,
         "batch_size"),
        (lambda: ei_parts(layer, top, samples=N, activation=42), deep_ei.ActivationTypeError, TypeError,
         "activation"),
        (lambda: ei_parts(layer, top, samples=N, activation=lambda x: x.sum()), deep_ei.ActivationTypeError,
         ei_jax.errors.UnknownActivationError, "same shape"),
        (lambda: ei_parts(layer, {}, samples=N), deep_ei.TopologyTypeError, TypeError, "topology_of"),
        (lambda: ei_parts(layer, top, samples=-5, **UNIT), ei_jax.errors.InvalidSamplesError, ValueError, "samples"),
        (lambda: topology_of("net", torch.zeros(1)), bridges.UnsupportedModuleError, TypeError, "nn.Module"),
    ]
    for call, error, builtin, words in cases:
        with pytest.raises(error, match=words) as info:
            call()
        assert isinstance(info.value, builtin) and isinstance(info.value, ei_jax.EIJaxError)
    with pytest.raises(KeyError) as info:    # a deep-ei script's `except KeyError` still works,
        ei(other, top, samples=N)
    assert str(info.value).startswith("layer Linear")  # and the message is not a quoted repr


def test_unknown_activation_without_out_range_uses_deep_ei_default_with_a_warning(one):
    layer, top = one
    _set(layer, [[1.0]])
    with pytest.warns(ei_jax.DefaultRangeWarning, match="no known range"):
        got = _seeded(ei_parts, layer, top, samples=N, in_range=(0, 1), in_bins=K, out_bins=K,
                      activation=lambda x: x)
    assert got == _seeded(ei_parts, layer, top, samples=N, in_range=(0, 1), in_bins=K, out_bins=K,
                          out_range=(-10, 10))


def test_signatures_and_docstrings():
    for fn in (ei, ei_parts, ei_parts_matrix, sensitivity, sensitivity_matrix, eis_between_groups,
               vector_and_pairwise_ei, topology_of):
        doc = inspect.getdoc(fn) or ""
        assert len(doc) > 80 and "Example" in doc and "Returns" in doc, fn.__name__
    assert set(deep_ei.__all__) >= {"topology_of", "ei", "ei_parts", "ei_parts_matrix", "sensitivity",
                                    "sensitivity_matrix", "eis_between_groups", "vector_and_pairwise_ei"}


@pytest.mark.parametrize("module", [deep_ei, _measures, _topology, _activations, _trace, _vector],
                         ids=lambda m: m.__name__)
def test_docstring_examples_run(module):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the examples must not warn
        failures, tried = doctest.testmod(module, optionflags=doctest.ELLIPSIS)[:2]
    assert tried > 0 and failures == 0


def test_without_torch_the_import_says_what_to_install():
    import subprocess
    import sys

    child = (
        "import sys\n"
        "class NoTorch:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'torch' or name.startswith('torch.'):\n"
        "            raise ModuleNotFoundError(name, name=name)\n"
        "sys.meta_path.insert(0, NoTorch())\n"
        "import bridges\n"
        "try:\n"
        "    import bridges.deep_ei\n"
        "except bridges.MissingDependencyError as e:\n"
        "    print('MissingDependencyError', isinstance(e, ImportError), e)\n"
    )
    out = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("MissingDependencyError True") and "pip install torch==2.13.0" in out.stdout
    assert "pip install '.[torch]'" in out.stdout
