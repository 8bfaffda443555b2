"""bridges.deep_ei against deep-ei 0.7.0 itself (run in its own virtualenv, .venv-ref).

* **Signatures**: every function has deep-ei's parameter names, order, kinds and defaults
  (read from deep-ei with ``inspect.signature`` in the reference interpreter).
* **Topology**: ``topology_of`` gives deep-ei's nodes (in order), edges, shapes and activation
  types for the same networks -- nn.Sequential, a single Linear, a conv net with pooling and
  Flatten, a Dropout between a layer and its activation, and custom modules with activation
  modules. For a custom module with *functional* activations deep-ei records none; the drop-in
  records the functions as their modules (documented difference), with the same shapes.
* **Values** (deep-ei's README networks and settings): means over 10 torch seeds on each side,
  ``|mean_ours - mean_deepei| <= 6.5 * SE`` of the difference (Welch). For 18 degrees of freedom
  ``P(|t| > 6.5) ~ 4e-6`` per comparison, so the chance of a false failure over the 13
  comparisons is < 1e-4 (deep-ei's vector EI loops over rows in Python, so only four
  vector cases).
* **Outputs below out_range** (deep-ei's own tests: a default-initialised Linear(3, 3), identity
  activation, ``out_range=(0, 1)``, so outputs go negative): deep-ei keeps them as extra vector
  bins and the drop-in does too, so ``ei`` and both halves of ``vector_and_pairwise_ei`` agree
  (before, the drop-in dropped those rows and raised ``EmptyHistogramError``).
* **Binning, on deep-ei's own samples**: the drop-in's widened range bins values as deep-ei's
  floor formula does, to a bin index offset (a few values per million sit within float32
  rounding of an edge and may land in the next bin). deep-ei gets the equivalent ``nn.Sequential`` where the drop-in gets
  the README's form (a single Linear with ``activation=nn.Sigmoid()``) or a custom module with
  functional activations (deep-ei would measure that one without its activations).
"""

import concurrent.futures
import functools
import json
import subprocess

import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

from bridges import deep_ei  # noqa: E402
from tests.reference.oracle import reference_python, run_oracle  # noqa: E402

SEEDS = 10
SAMPLES = 10_000
FUNCTIONS = ("topology_of", "ei", "ei_parts", "ei_parts_matrix", "sensitivity", "sensitivity_matrix",
             "eis_between_groups", "vector_and_pairwise_ei")

# Networks built by the same code in both interpreters (deep-ei's and ours).
NETS = '''
import torch, torch.nn as nn

class Mods(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.act1, self.fc2, self.act2 = nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 2), nn.Sigmoid()
    def forward(self, x):
        return self.act2(self.fc2(self.act1(self.fc1(x))))

class Funcs(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(4, 3), nn.Linear(3, 2)
    def forward(self, x):
        return torch.sigmoid(self.fc2(torch.relu(self.fc1(x))))

def nets():
    return {
        "readme2": (nn.Sequential(nn.Linear(20, 10, bias=False), nn.Sigmoid(), nn.Linear(10, 5, bias=False),
                                  nn.Tanh()), torch.zeros((1, 20))),
        "single": (nn.Linear(5, 5, bias=False), torch.zeros((1, 5))),
        "conv": (nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(18, 4),
                               nn.Sigmoid()), torch.zeros((1, 1, 8, 8))),
        "dropout": (nn.Sequential(nn.Linear(3, 3), nn.Dropout(0.5), nn.Tanh(), nn.Linear(3, 2)).eval(),
                    torch.zeros((2, 3))),
        "modules": (Mods(), torch.zeros((3, 4))),
        "functional": (Funcs(), torch.zeros((1, 4))),
    }

def describe(top):
    mods = [n for n in top.nodes if n is not None]          # deep-ei's graph has a None node
    index = {id(m): i for i, m in enumerate(mods)}
    act = lambda a: None if a is None else type(a).__name__
    nodes = [[type(m).__name__, list(top.nodes[m]["input"]["shape"]), list(top.nodes[m]["output"]["shape"]),
              act(top.nodes[m]["input"]["activation"]), act(top.nodes[m]["output"]["activation"])]
             for m in mods]
    edges = sorted([index[id(a)], index[id(b)]] for a, b in top.edges if a is not None)
    return {"nodes": nodes, "edges": edges}
'''

REFERENCE = NETS + '''
import inspect, json, deep_ei
params = lambda name: inspect.signature(getattr(deep_ei, name)).parameters.values()
sigs = {name: [[p.name, str(p.kind), repr(p.default)] for p in params(name)] for name in %r}
tops = {name: describe(deep_ei.topology_of(net, input=x)) for name, (net, x) in nets().items()}
print(json.dumps({"signatures": sigs, "topologies": tops}))
''' % (FUNCTIONS,)


def _ours_namespace():
    ns = {}
    exec(NETS, ns)  # noqa: S102 - the test's own network definitions
    return ns


def _weights(seed, sizes):
    torch.manual_seed(seed)
    return [nn.Linear(a, b, bias=False) for a, b in sizes]


# (label, torch seed of the weights, layer sizes, activations, measured layer, in_layer, function, kwargs,
#  the drop-in's form: "sequential" | "single" (README's Linear + activation=nn.Sigmoid()) | "functional")
CASES = [
    ("readme1-ei", 10, [(5, 5)], ["sigmoid"], 0, None, "ei",
     dict(in_range=(0, 1), in_bins=8, out_range=(0, 1), out_bins=8), "single"),
    ("readme3-ei_parts", 10, [(5, 5)], ["sigmoid"], 0, None, "ei_parts",
     dict(in_range=(0, 1), in_bins=8, out_range=(0, 1), out_bins=8), "single"),
    ("readme2-layer2-ei", 11, [(20, 10), (10, 5)], ["sigmoid", "tanh"], 1, None, "ei",
     dict(in_bins=8, out_bins=8), "sequential"),
    ("readme2-span-ei_parts", 11, [(20, 10), (10, 5)], ["sigmoid", "tanh"], 1, 0, "ei_parts",
     dict(in_range=(0, 1), in_bins=8, out_bins=8), "sequential"),
    ("readme2-layer2-vector_and_pairwise", 11, [(20, 10), (10, 5)], ["sigmoid", "tanh"], 1, None,
     "vector_and_pairwise_ei", dict(in_bins=8, out_bins=8), "sequential"),
    ("readme5-sensitivity", 12, [(10, 10)], ["sigmoid"], 0, None, "sensitivity",
     dict(samples=1000, in_range=(0, 1), in_bins=64, out_range=(0, 1), out_bins=64), "single"),
    ("readme6-ei_parts_matrix", 13, [(20, 10)], ["sigmoid"], 0, None, "ei_parts_matrix",
     dict(in_range=(0, 1), in_bins=64, out_range=(0, 1), out_bins=64), "single"),
    ("functional-ei_parts", 14, [(6, 4), (4, 3)], ["sigmoid", "sigmoid"], 1, None, "ei_parts",
     dict(in_bins=8, out_bins=8), "functional"),
    ("identity-below-range-ei", 16, [(3, 3)], ["identity"], 0, None, "ei",
     dict(in_range=(0, 1), in_bins=4, out_range=(0, 1), out_bins=4), "bare"),
    ("identity-below-range-vector_and_pairwise", 16, [(3, 3)], ["identity"], 0, None,
     "vector_and_pairwise_ei", dict(in_range=(0, 1), in_bins=4, out_range=(0, 1), out_bins=4), "bare"),
]


def _request(case):
    label, seed, sizes, acts, layer, in_layer, fn, kw, _ = case
    kwargs = {"samples": SAMPLES, "batch_size": 100, **kw}
    kwargs = {k: (list(v) if isinstance(v, tuple) else v) for k, v in kwargs.items()}
    return {"kind": "sampled", "function": fn, "layer": layer, "in_layer": in_layer, "activations": acts,
            "weights": [m.weight.detach().numpy().astype(np.float32) for m in _weights(seed, sizes)],
            "kwargs": kwargs, "seeds": list(range(SEEDS))}


@pytest.fixture(scope="module")
def reference():
    """deep-ei's answers, computed in two background processes while ei_jax compiles."""
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=2)

    def facts():
        out = subprocess.run([str(reference_python()), "-c", REFERENCE], capture_output=True, text=True,
                             timeout=600)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout.strip().splitlines()[-1])

    futures = {"facts": pool.submit(facts), "sampled": pool.submit(run_oracle, [_request(c) for c in CASES])}
    yield futures
    pool.shutdown(wait=False)


def test_signatures_equal_deep_ei(reference):
    import inspect

    theirs = reference["facts"].result()["signatures"]
    for name in FUNCTIONS:
        ours = [[p.name, str(p.kind), repr(p.default)]
                for p in inspect.signature(getattr(deep_ei, name)).parameters.values()]
        assert ours == theirs[name], name


def test_topology_equals_deep_ei(reference):
    theirs = reference["facts"].result()["topologies"]
    ns = _ours_namespace()
    for name, (net, x) in ns["nets"]().items():
        ours = ns["describe"](deep_ei.topology_of(net, input=x))
        if name == "functional":
            # deep-ei records no activation for torch.relu / torch.sigmoid calls; the drop-in does
            assert [n[4] for n in theirs[name]["nodes"]] == [None, None]
            assert [n[3:] for n in ours["nodes"]] == [[None, "ReLU"], ["ReLU", "Sigmoid"]]
            ours["nodes"] = [n[:3] + [None, None] for n in ours["nodes"]]
        assert ours == theirs[name], name
    net, x = ns["nets"]()["readme2"]
    top = deep_ei.topology_of(net, input=x)
    layer1, act1, layer2, act2 = net
    assert top.nodes[layer1]["output"]["activation"] is act1
    assert top.nodes[layer2]["input"]["activation"] is act1
    assert top.nodes[layer2]["output"]["activation"] is act2 and list(top) == [layer1, layer2]


def _drop_in(case):
    label, seed, sizes, acts, layer, in_layer, fn, kw, form = case
    mods = _weights(seed, sizes)
    if form == "single":
        (net,) = mods
        extra = {"activation": nn.Sigmoid()}
    elif form == "functional":
        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc1, self.fc2 = mods

            def forward(self, x):
                return torch.sigmoid(self.fc2(torch.sigmoid(self.fc1(x))))

        net, extra = Net(), {}
    elif form == "bare":  # no activation module: deep-ei measures the identity
        net, extra = nn.Sequential(*mods), {}
    else:
        net = nn.Sequential(*[m for pair in zip(mods, (nn.Sigmoid(), nn.Tanh())) for m in pair])
        extra = {}
    top = deep_ei.topology_of(net, input=torch.zeros((1, sizes[0][0])))
    call = functools.partial(getattr(deep_ei, fn), mods[layer], top, samples=kw.get("samples", SAMPLES),
                             **({"in_layer": mods[in_layer]} if in_layer is not None else {}),
                             **{k: v for k, v in kw.items() if k != "samples"}, **extra)
    values = []
    for s in range(SEEDS):
        torch.manual_seed(1000 + s)
        values.append(call())
    return values


def _agree(label, ours, theirs):
    ours, theirs = np.asarray(ours, np.float64), np.asarray(theirs, np.float64)
    se = float(np.sqrt(ours.var(ddof=1) / ours.size + theirs.var(ddof=1) / theirs.size))
    diff = ours.mean() - theirs.mean()
    assert abs(diff) <= 6.5 * se + 1e-6, (
        f"{label}: drop-in {ours.mean():.4f} vs deep-ei {theirs.mean():.4f} (SE {se:.4f})")


@pytest.mark.parametrize("case", range(len(CASES)), ids=[c[0] for c in CASES])
def test_means_agree_with_deep_ei(reference, case):
    label, fn = CASES[case][0], CASES[case][6]
    values = _drop_in(CASES[case])
    res = reference["sampled"].result()[case]
    if fn == "vector_and_pairwise_ei":
        assert all(isinstance(v, tuple) and len(v) == 2 for v in values)
        _agree(label + "/vector", [v[0] for v in values], res["vector"])
        _agree(label + "/pairwise", [v[1] for v in values], res["pairwise"])
    elif fn == "ei_parts_matrix":
        assert all(v.shape == res["values"].shape[1:] for v in values)
        _agree(label, [v.sum() for v in values], res["values"].sum(axis=(1, 2)))
    else:
        assert all(isinstance(v, float) for v in values)
        _agree(label, values, res["values"])


def test_widened_vector_bins_equal_deep_ei_on_its_samples():
    """Outputs below out_range: the drop-in's widened range (``deep_ei_vector.widen``) gives
    deep-ei's vector MI on the same float32 samples (negative bins kept, rows above dropped)."""
    import ei_jax
    from bridges._src.deep_ei_vector import output_floor, widen

    (layer,) = _weights(16, [(3, 3)])
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (50_000, 3)).astype(np.float32)
    with torch.no_grad():
        y = layer(torch.from_numpy(x)).numpy().astype(np.float32)
    cases = [((0, 1), 4), ((0, 1), 16), ((0, 0.5), 8), ((-0.2, 0.3), 64)]
    reqs = [{"kind": "vector", "x": x, "y": y, "in_range": [0, 1], "in_bins": 4,
             "out_range": list(r), "out_bins": k} for r, k in cases]
    floor = output_floor([layer], "identity", (0, 1), 3)
    assert floor <= float(y.min()) and (y < 0).any()
    for (rng_, k), ref in zip(cases, run_oracle(reqs)):
        out_range, out_bins, m = widen(rng_, k, floor)
        assert m > 0 and ref["n_kept"] > 0
        ours = float(ei_jax.mutual_information(x, y, in_range=(0, 1), in_bins=4, out_range=out_range,
                                               out_bins=out_bins))
        assert abs(ours - ref["mi"]) <= 1e-3, (rng_, k, ours, ref["mi"])
