"""Measures of torch networks converted by bridges agree with deep-ei 0.7.0 on the torch networks.

deep-ei runs in its own virtualenv through ``tests/reference/oracle.py`` (one process for the
whole module, started in a background thread so that it overlaps with ei_jax's compilation).

* **Identical samples** (exact, <= 1e-3 bits): the same float32 noise ``x`` goes through the
  torch layer (torch computes ``y_torch``) and through the converted Flax layer of
  ``ei_jax.topology_of`` (``y_flax``); ei_jax's estimators on ``(x, y_flax)`` must equal deep-ei's
  on ``(x, y_torch)`` -- its pairwise ``MI`` path (64 bins, deep-ei's default) and its vector-EI
  path (8 bins), on 10,000 samples.
* **deep-ei's own sampling** (within 4 standard errors of the difference of the means): ei_jax's
  measures over 5 keys vs deep-ei's over 5 seeds, 20,000 samples each (sensitivity: 500 per input,
  deep-ei's default, and 64 bins), on the layers where the converted topology supplies the
  defaults (ranges from the activations), biases, vector EI and the receptive field.

Networks: deep-ei's README networks (``nn.Linear(5, 5, bias=False)`` measured with a sigmoid
activation; ``Linear(20, 10)/Sigmoid/Linear(10, 5)/Tanh`` without biases), a 25-6-6-6-5 sigmoid
MNIST-shaped network with biases, and the first convolution of a small conv net, measured over
one receptive field. deep-ei cannot measure a ``Conv2d`` node itself (its topology gives the
node an empty output shape and every measure fails with ``reduce() of empty iterable``), so the
receptive-field map is compared with deep-ei on torch's own conv applied to one patch
(identical samples) and on the equivalent ``Linear(c_in*kh*kw, c_out)`` (sampling).
"""

import concurrent.futures
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

import bridges  # noqa: E402
import ei_jax  # noqa: E402
from tests.reference.oracle import run_oracle  # noqa: E402

SAMPLES = 20_000          # deep-ei's own sampling, per key / seed
IDENTICAL_SAMPLES = 10_000  # identical samples (agreement is exact at any count)
SEEDS = 5
RANGES = {"sigmoid": (0.0, 1.0), "tanh": (-1.0, 1.0), None: (-10.0, 10.0)}
ACTS = {"sigmoid": jax.nn.sigmoid, "tanh": jnp.tanh, None: lambda v: v}


def _readme1():
    torch.manual_seed(10)
    return nn.Linear(5, 5, bias=False)


def _readme2():
    torch.manual_seed(11)
    return nn.Sequential(nn.Linear(20, 10, bias=False), nn.Sigmoid(), nn.Linear(10, 5, bias=False), nn.Tanh())


def _mnist():
    torch.manual_seed(12)
    mods = []
    for a, b in ((25, 6), (6, 6), (6, 6), (6, 5)):
        mods += [nn.Linear(a, b), nn.Sigmoid()]
    return nn.Sequential(*mods)


def _conv():
    torch.manual_seed(13)
    return nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.Sigmoid(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(3 * 3 * 3, 4), nn.Sigmoid())


NETS = {"readme1": (_readme1, (1, 5)), "readme2": (_readme2, (1, 20)), "mnist": (_mnist, (1, 25)),
        "conv": (_conv, (1, 6, 6, 2))}


@functools.lru_cache(maxsize=None)
def _layers(name):
    """``(torch net, topology, [(flax node, torch layer module, output activation)])``."""
    make, shape = NETS[name]
    net = make()
    model, variables = bridges.from_torch(net)
    top = ei_jax.topology_of(model, variables, jnp.zeros(shape))
    mods = [m for m in net.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    out = []
    for node, mod in zip(top, mods):
        act = top.nodes[node]["output"]["activation"]
        out.append((node, mod, "sigmoid" if name == "readme1" else act))  # readme1: override
    return net, top, out


# --- identical samples --------------------------------------------------------------------

IDENTICAL = [(net, i) for net, n in (("readme1", 1), ("readme2", 2), ("mnist", 4), ("conv", 1))
             for i in range(n)]


def _identical_case(name, i):
    """``(x_torch_layout, x_flat_flax_order, y_torch, y_flax, in_range, out_range)``."""
    _, top, layers = _layers(name)
    node, mod, act = layers[i]
    in_act = top.nodes[node]["input"]["activation"]
    in_range = (0.0, 1.0) if i == 0 else RANGES[in_act]
    data = top.nodes[node]
    rng = np.random.default_rng(1000 + 10 * i + len(name))
    if isinstance(mod, nn.Conv2d):
        c_out, c_in, kh, kw = mod.weight.shape
        x = rng.uniform(*in_range, (IDENTICAL_SAMPLES, c_in, kh, kw)).astype(np.float32)  # NCHW patches
        x_flax = jnp.asarray(x.transpose(0, 2, 3, 1))
        with torch.no_grad():  # torch's conv on one receptive field (no padding): (S, c_out, 1, 1)
            z = torch.nn.functional.conv2d(torch.from_numpy(x), mod.weight, mod.bias)
    else:
        x = rng.uniform(*in_range, (IDENTICAL_SAMPLES, mod.in_features)).astype(np.float32)
        x_flax = jnp.asarray(x)
        with torch.no_grad():
            z = mod(torch.from_numpy(x))
    with torch.no_grad():
        y_torch = {"sigmoid": torch.sigmoid, "tanh": torch.tanh, None: lambda v: v}[act](z)
    y_torch = y_torch.numpy().reshape(IDENTICAL_SAMPLES, -1).astype(np.float32)
    y_flax = np.asarray(ACTS[act](data["apply"](data["params"], x_flax)), np.float32)
    x_flat = np.asarray(x_flax).reshape(IDENTICAL_SAMPLES, -1)
    return x, x_flat, y_torch, y_flax, in_range, RANGES[act]


def _torch_order(x):
    """Permutation taking Flax's (h, w, c) patch order to torch's (c, h, w) order."""
    _, c, h, w = x.shape
    return np.arange(h * w * c).reshape(h, w, c).transpose(2, 0, 1).reshape(-1)


# --- deep-ei's own sampling ---------------------------------------------------------------

KW8 = dict(in_bins=8, out_bins=8)
SAMPLED = [
    # (id, network, layer index, function, kwargs for both sides)
    ("readme1-ei_parts", "readme1", 0, "ei_parts", dict(KW8, in_range=(0, 1), samples=SAMPLES)),
    ("readme2-layer2-ei_parts", "readme2", 1, "ei_parts", dict(KW8, samples=SAMPLES)),
    ("mnist-layer1-ei_parts", "mnist", 0, "ei_parts", dict(KW8, in_range=(0, 1), samples=SAMPLES)),
    ("mnist-layer4-ei", "mnist", 3, "ei", dict(KW8, samples=SAMPLES)),
    ("mnist-layer4-sensitivity", "mnist", 3, "sensitivity", dict(in_bins=64, out_bins=64, samples=500)),
    ("conv-patch-ei_parts", "conv", 0, "ei_parts", dict(KW8, in_range=(0, 1), samples=SAMPLES)),
]


def _sampled_request(name, layer, fn, kw):
    """deep-ei on the torch network (a conv layer as its equivalent Linear over one patch)."""
    _, _, layers = _layers(name)
    mods = [m for _, m, _ in layers]
    acts = [a or "identity" for _, _, a in layers]
    if name == "conv":
        mods, acts, layer = mods[:1], acts[:1], 0
    weights = [m.weight.detach().numpy().reshape(m.weight.shape[0], -1).astype(np.float32) for m in mods]
    biases = [None if m.bias is None else m.bias.detach().numpy().astype(np.float32) for m in mods]
    return {"kind": "sampled", "weights": weights, "biases": biases, "activations": acts,
            "layer": layer, "function": fn, "kwargs": dict(kw, batch_size=SAMPLES),
            "seeds": list(range(SEEDS))}


@pytest.fixture(scope="module")
def deep_ei():
    """Future of the oracle's results: ``{"identical": [...], "sampled": [...]}``."""
    identical, requests = [], []
    for name, i in IDENTICAL:
        x, x_flat, y_torch, _, r_in, r_out = _identical_case(name, i)
        x_torch = x.reshape(IDENTICAL_SAMPLES, -1)
        for kind, bins in (("pairwise", 64), ("vector", 8)):
            requests.append({"kind": kind, "x": x_torch, "y": y_torch, "in_range": list(r_in),
                             "in_bins": bins, "out_range": list(r_out), "out_bins": bins})
    n_identical = len(requests)
    requests += [_sampled_request(name, layer, fn, kw) for _, name, layer, fn, kw in SAMPLED]

    def run():
        res = run_oracle(requests)
        return {"identical": res[:n_identical], "sampled": res[n_identical:]}

    pool = concurrent.futures.ThreadPoolExecutor(1)
    yield pool.submit(run)
    pool.shutdown(wait=True)


def _mean_var(values):
    v = np.asarray(values, np.float64)
    return v.mean(), v.var(ddof=1) / len(v)


@pytest.mark.parametrize("case", range(len(SAMPLED)), ids=[c[0] for c in SAMPLED])
def test_means_agree_with_deep_ei(deep_ei, case):
    label, name, layer, fn, kw = SAMPLED[case]
    _, top, layers = _layers(name)
    node = layers[layer][0]
    extra = {"activation": "sigmoid"} if name == "readme1" else {}
    ours = [getattr(ei_jax, fn)(jax.random.key(100 + k), top, node, **kw, **extra) for k in range(SEEDS)]
    theirs = deep_ei.result()["sampled"][case]["values"]
    (m1, v1), (m2, v2) = _mean_var(ours), _mean_var(theirs)
    se = float(np.sqrt(v1 + v2))
    assert abs(m1 - m2) <= 4 * se + 1e-4, f"{label}: ei_jax {m1:.4f} vs deep-ei {m2:.4f} (SE {se:.4f})"
    assert m2 > 0.05  # informative


# Every case is padded to the same widths with constant (mid-range) columns, so that all of
# them share one compiled estimator per range: a constant column adds no information to any
# pair and does not change which binned rows are distinct. The padding is cut off again.
PAD_IN, PAD_OUT = 25, 10


def _pad(a, width, value_range):
    fill = np.full((a.shape[0], width - a.shape[1]), sum(value_range) / 2, np.float32)
    return np.concatenate([a, fill], axis=1)


@pytest.mark.parametrize("case", range(len(IDENTICAL)), ids=[f"{n}-layer{i + 1}" for n, i in IDENTICAL])
def test_identical_samples_equal_deep_ei(deep_ei, case):
    name, i = IDENTICAL[case]
    x, x_flat, y_torch, y_flax, r_in, r_out = _identical_case(name, i)
    np.testing.assert_allclose(y_flax, y_torch, atol=1e-5, rtol=0)  # the converted layer is torch's
    n_in, n_out = x_flat.shape[1], y_flax.shape[1]
    xp, yp = _pad(x_flat, PAD_IN, r_in), _pad(y_flax, PAD_OUT, r_out)
    pairs = np.asarray(ei_jax.pairwise_mutual_information(
        xp, yp, in_range=r_in, in_bins=64, out_range=r_out, out_bins=64))[:n_in, :n_out]
    vector = float(ei_jax.mutual_information(xp, yp, in_range=r_in, in_bins=8, out_range=r_out, out_bins=8))
    if x.ndim == 4:  # conv patch: rows in Flax's (h, w, c) order -> torch's (c, h, w)
        pairs = pairs[_torch_order(x)]
    ref_pairs, ref_vector = deep_ei.result()["identical"][2 * case: 2 * case + 2]
    np.testing.assert_allclose(pairs, ref_pairs["mi"], atol=1e-3, rtol=0)
    assert abs(vector - ref_vector["mi"]) <= 1e-3, (vector, ref_vector["mi"])
    assert pairs.sum() > 0.05 and vector > 0.05  # informative
