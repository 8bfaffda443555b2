"""Reference oracle: answer questions by running deep-ei 0.7.0 itself.

This script runs under the *reference* interpreter (the old-pinned virtualenv
``.venv-ref`` with torch, deep-ei 0.7.0, networkx 2.5.1, numpy 1.26,
fast-histogram, scikit-learn), never under the dev interpreter.  The pytest
suite talks to it through ``tests/reference/oracle.py`` (``run_oracle``), which
pays the torch import once for a whole batch of requests.

Usage::

    <ref-python> deepei_oracle.py IN.npz OUT.npz

Wire format
-----------
IN.npz and OUT.npz are plain ``np.savez`` archives (no pickles, so numpy 2 on
the dev side and numpy 1.26 here interoperate).  Key ``__manifest__`` holds a
UTF-8 JSON document as a uint8 array; every other key holds one array.  In the
JSON, an array is written as ``{"__ndarray__": "<key>"}``.  IN's manifest is
``{"requests": [request, ...]}``; OUT's is ``{"results": [result, ...]}``, one
result per request, in order.  Every result carries ``"kind"`` (echoed) and
``"seconds"`` (float, wall time spent on that request).

A ``range`` is a 2-list ``[lo, hi]`` (ints or floats, passed to deep-ei as a
tuple exactly as given).  Input arrays must already be float32 (what deep-ei's
torch buffers hold); anything else is rejected rather than silently rounded.

Request kinds (fields -> result fields):

``pairwise``
    ``x`` float32 (S, n_in), ``y`` float32 (S, n_out), ``in_range``,
    ``in_bins`` int, ``out_range``, ``out_bins`` int
    -> ``mi`` float64 (n_in, n_out): deep-ei's per-pair MI in bits, i.e.
    ``deep_ei.MI(x[:, A], y[:, B], bins=(in_bins, out_bins),
    range=(in_range, out_range))`` -- the same fast_histogram.histogram2d with
    ``hack_range`` (+-1e-6) and sklearn ``mutual_info_score`` that
    ``ei_parts_matrix`` applies to its sample buffers.  Where a pair's 2-d
    histogram is empty (every sample out of range) deep-ei itself crashes with
    ``ValueError: math domain error``; such entries are NaN here.
    ``empty`` bool (n_in, n_out): True exactly where ``mi`` is NaN for that
    reason.  ``counted`` int64 (n_in, n_out): samples inside the pair's
    histogram (its total count).

``vector``
    same fields as ``pairwise``
    -> ``mi`` float (bits): ``_entropy(histx) + _entropy(histy) -
    _entropy(histxy)`` over the rows kept by deep-ei's vector-EI loop, where
    rows come from ``deep_ei._tuples1d`` and a row pair is kept iff every x
    index < in_bins and every y index < out_bins (negative indices, i.e.
    values below lo, are *kept*, as in deep-ei).  ``n_x``, ``n_y``, ``n_xy``
    int: distinct x rows / y rows / (x, y) row pairs kept; ``n_kept`` int:
    number of samples kept.  With nothing kept, ``mi`` is 0.0 (deep-ei's
    ``_entropy`` of an empty dict).

``vector_bins``
    ``v`` float32 (S, n), ``range``, ``bins`` int
    -> ``index`` int64 (S, n): ``deep_ei._tuples1d(v, r=range, bins=bins)``,
    i.e. ``floor((v - lo) / (hi - lo + 1e-4) * bins)`` as torch computes it
    (may be negative or >= bins; not clipped).

``pair_bins``
    ``v`` float32 (S,), ``range``, ``bins`` int
    -> ``index`` int64 (S,): the bin fast_histogram.histogram2d assigns each
    value along one axis with ``bins`` bins over ``hack_range(range)``, or -1
    where it drops the value (outside ``[lo - 1e-6, hi + 1e-6)``, or NaN).
    Derived by histogramming the values against a second coordinate that puts
    each value in its own column, along both the x and the y axis (the two
    must agree, else the script fails).

``sampled``
    ``weights``: list of float32 arrays, torch layout [out, in];
    optional ``biases``: list (one per layer) of float32 arrays (out,) or null
    (omitted or null -> no bias anywhere, the original behaviour);
    ``activations``: list of str per layer, each in
    {"sigmoid", "tanh", "relu", "identity"} ("identity" adds no module, which
    deep-ei treats as no activation, default range (-10, 10));
    ``layer`` int (index into the Linear layers); optional ``in_layer`` int;
    ``function`` in {"ei", "ei_parts", "sensitivity", "ei_parts_matrix",
    "sensitivity_matrix", "vector_and_pairwise_ei"};
    ``kwargs``: dict with any of samples, batch_size, in_range, in_bins,
    out_range, out_bins, threshold (omitted or null -> deep-ei's default;
    ranges may also be the string "dynamic" where deep-ei allows it);
    ``seeds``: list of int.
    The net is ``nn.Sequential`` of ``nn.Linear(in, out, bias=b is not None)``
    (+ the activation module) per layer, topology from
    ``deep_ei.topology_of(net, input=torch.zeros((1, n_in)))``; for each seed,
    ``torch.manual_seed(seed)`` then ``deep_ei.<function>(...)``, with
    ``torch.set_num_threads(1)``.
    -> ``seeds`` int64 (n_seeds,), ``seconds_per_seed`` float64 (n_seeds,),
    and ``values`` float64: (n_seeds,) for ei / ei_parts / sensitivity,
    (n_seeds, n_in, n_out) for the two ``*_matrix`` functions; for
    ``vector_and_pairwise_ei`` instead ``vector`` and ``pairwise`` float64
    (n_seeds,) each.  If deep-ei raises (e.g. its math domain error), the
    whole invocation fails.

Any error: traceback on stderr, exit status 1, no OUT file.
"""

from __future__ import annotations

import json
import sys
import time
import traceback
from collections import defaultdict
from typing import Any, Callable

import numpy as np
import torch
import torch.nn as nn
import deep_ei
from fast_histogram import histogram2d

MANIFEST_KEY = "__manifest__"
ARRAY_TAG = "__ndarray__"


# --------------------------------------------------------------------------
# wire format
# --------------------------------------------------------------------------
def _decode(obj: Any, arrays: Any) -> Any:
    if isinstance(obj, dict):
        if set(obj) == {ARRAY_TAG}:
            return arrays[obj[ARRAY_TAG]]
        return {k: _decode(v, arrays) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_decode(v, arrays) for v in obj]
    return obj


def _encode(obj: Any, arrays: dict[str, np.ndarray]) -> Any:
    if isinstance(obj, np.ndarray):
        key = f"a{len(arrays)}"
        arrays[key] = obj
        return {ARRAY_TAG: key}
    if isinstance(obj, dict):
        return {str(k): _encode(v, arrays) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_encode(v, arrays) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def load_requests(path: str) -> list[dict[str, Any]]:
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    manifest = json.loads(arrays.pop(MANIFEST_KEY).tobytes().decode("utf-8"))
    return _decode(manifest["requests"], arrays)


def save_results(path: str, results: list[dict[str, Any]]) -> None:
    arrays: dict[str, np.ndarray] = {}
    manifest = _encode({"results": results}, arrays)
    arrays[MANIFEST_KEY] = np.frombuffer(json.dumps(manifest).encode("utf-8"), dtype=np.uint8)
    np.savez(path, **arrays)


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------
def _f32(a: Any, name: str, ndim: int) -> np.ndarray:
    if not isinstance(a, np.ndarray) or a.dtype != np.float32 or a.ndim != ndim:
        got = f"{a.dtype} {a.shape}" if isinstance(a, np.ndarray) else type(a).__name__
        raise TypeError(f"{name} must be a float32 array with {ndim} dims, got {got}")
    return np.ascontiguousarray(a)


def _range(r: Any) -> Any:
    if isinstance(r, str):
        return r
    lo, hi = r
    return (lo, hi)


def _check_pair_inputs(req: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    x = _f32(req["x"], "x", 2)
    y = _f32(req["y"], "y", 2)
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"x and y have different sample counts: {x.shape} vs {y.shape}")
    return x, y


def _is_math_domain_error(exc: BaseException) -> bool:
    return isinstance(exc, ValueError) and "math domain error" in str(exc)


# --------------------------------------------------------------------------
# request handlers
# --------------------------------------------------------------------------
def do_pairwise(req: dict[str, Any]) -> dict[str, Any]:
    x, y = _check_pair_inputs(req)
    in_range, out_range = _range(req["in_range"]), _range(req["out_range"])
    in_bins, out_bins = int(req["in_bins"]), int(req["out_bins"])
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    n_in, n_out = x.shape[1], y.shape[1]
    mi = np.zeros((n_in, n_out), dtype=np.float64)
    empty = np.zeros((n_in, n_out), dtype=bool)
    counted = np.zeros((n_in, n_out), dtype=np.int64)
    hr = deep_ei.hack_range((in_range, out_range))
    for a in range(n_in):
        for b in range(n_out):
            # the histogram deep-ei builds for this pair (only for the count)
            cm = histogram2d(xt[:, a].numpy(), yt[:, b].numpy(), bins=(in_bins, out_bins), range=hr)
            counted[a, b] = int(cm.sum())
            try:
                mi[a, b] = deep_ei.MI(xt[:, a], yt[:, b], bins=(in_bins, out_bins),
                                      range=(in_range, out_range))
            except ValueError as exc:
                if not (_is_math_domain_error(exc) and counted[a, b] == 0):
                    raise
                mi[a, b] = np.nan
                empty[a, b] = True
    return {"mi": mi, "empty": empty, "counted": counted}


def do_vector(req: dict[str, Any]) -> dict[str, Any]:
    x, y = _check_pair_inputs(req)
    in_range, out_range = _range(req["in_range"]), _range(req["out_range"])
    in_bins, out_bins = int(req["in_bins"]), int(req["out_bins"])
    histx: defaultdict = defaultdict(int)
    histy: defaultdict = defaultdict(int)
    histxy: defaultdict = defaultdict(int)
    kept = 0
    # same loop and keep-rule as deep_ei._vector_ei_of_layer_manual_samples
    for xs, ys in zip(deep_ei._tuples1d(torch.from_numpy(x), r=in_range, bins=in_bins),
                      deep_ei._tuples1d(torch.from_numpy(y), r=out_range, bins=out_bins)):
        if all(b < in_bins for b in xs) and all(b < out_bins for b in ys):
            histx[xs] += 1
            histy[ys] += 1
            histxy[(xs, ys)] += 1
            kept += 1
    mi = deep_ei._entropy(histx) + deep_ei._entropy(histy) - deep_ei._entropy(histxy)
    return {"mi": float(mi), "n_x": len(histx), "n_y": len(histy), "n_xy": len(histxy),
            "n_kept": kept}


def do_vector_bins(req: dict[str, Any]) -> dict[str, Any]:
    v = _f32(req["v"], "v", 2)
    rows = list(deep_ei._tuples1d(torch.from_numpy(v), r=_range(req["range"]), bins=int(req["bins"])))
    index = np.array(rows, dtype=np.int64).reshape(v.shape)
    return {"index": index}


def do_pair_bins(req: dict[str, Any]) -> dict[str, Any]:
    v = _f32(req["v"], "v", 1)
    rng = _range(req["range"])
    bins = int(req["bins"])
    axis_range = deep_ei.hack_range((rng, rng))[0]
    index = np.full(v.shape[0], -1, dtype=np.int64)
    chunk = max(1, 2_000_000 // bins)
    for s in range(0, v.shape[0], chunk):
        vc = v[s:s + chunk]
        c = vc.shape[0]
        # position j lands exactly in column j: (j + 0.5) * c / c = j + 0.5
        pos = np.arange(c, dtype=np.float64)
        pos_range = (-0.5, c - 0.5)
        hx = histogram2d(vc, pos, bins=(bins, c), range=(axis_range, pos_range))
        hy = histogram2d(pos, vc, bins=(c, bins), range=(pos_range, axis_range))
        if not np.array_equal(hx, hy.T):
            raise AssertionError("fast_histogram assigns bins differently on its x and y axes")
        per_value = hx.sum(axis=0)
        if per_value.max(initial=0) > 1:
            raise AssertionError("position trick failed: a column holds more than one value")
        index[s:s + c] = np.where(per_value > 0, hx.argmax(axis=0), -1)
    return {"index": index}


ACTIVATIONS: dict[str, Callable[[], nn.Module] | None] = {
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "identity": None,
}
SAMPLED_FUNCTIONS = {"ei", "ei_parts", "sensitivity", "ei_parts_matrix",
                     "sensitivity_matrix", "vector_and_pairwise_ei"}
SAMPLED_KWARGS = {"samples", "batch_size", "in_range", "in_bins", "out_range", "out_bins",
                  "threshold"}


def build_net(weights: list[np.ndarray], activations: list[str],
              biases: list[Any] | None = None) -> tuple[nn.Sequential, list[nn.Linear]]:
    if len(weights) != len(activations) or not weights:
        raise ValueError("need one activation name per weight matrix (and at least one layer)")
    if biases is None:
        biases = [None] * len(weights)
    if len(biases) != len(weights):
        raise ValueError("need one bias (or null) per weight matrix")
    modules: list[nn.Module] = []
    linears: list[nn.Linear] = []
    for i, (w, act, b) in enumerate(zip(weights, activations, biases)):
        w = _f32(w, f"weights[{i}]", 2)
        if i and w.shape[1] != weights[i - 1].shape[0]:
            raise ValueError(f"weights[{i}] has {w.shape[1]} inputs, previous layer has "
                             f"{weights[i - 1].shape[0]} outputs")
        if act not in ACTIVATIONS:
            raise ValueError(f"unknown activation {act!r}; expected one of {sorted(ACTIVATIONS)}")
        lin = nn.Linear(w.shape[1], w.shape[0], bias=b is not None)
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(w))
            if b is not None:
                b = _f32(b, f"biases[{i}]", 1)
                if b.shape != (w.shape[0],):
                    raise ValueError(f"biases[{i}] has shape {b.shape}, expected ({w.shape[0]},)")
                lin.bias.copy_(torch.from_numpy(b))
        modules.append(lin)
        linears.append(lin)
        factory = ACTIVATIONS[act]
        if factory is not None:
            modules.append(factory())
    return nn.Sequential(*modules), linears


def do_sampled(req: dict[str, Any]) -> dict[str, Any]:
    function = req["function"]
    if function not in SAMPLED_FUNCTIONS:
        raise ValueError(f"unknown function {function!r}; expected one of {sorted(SAMPLED_FUNCTIONS)}")
    kwargs_in = dict(req.get("kwargs") or {})
    unknown = set(kwargs_in) - SAMPLED_KWARGS
    if unknown:
        raise ValueError(f"unsupported kwargs {sorted(unknown)}; allowed: {sorted(SAMPLED_KWARGS)}")
    kwargs: dict[str, Any] = {}
    for k, v in kwargs_in.items():
        if v is None:
            continue
        kwargs[k] = _range(v) if k in ("in_range", "out_range") else v
    biases = req.get("biases")
    net, linears = build_net(list(req["weights"]), list(req["activations"]),
                             None if biases is None else list(biases))
    topology = deep_ei.topology_of(net, input=torch.zeros((1, linears[0].in_features)))
    layer = linears[int(req["layer"])]
    if req.get("in_layer") is not None:
        kwargs["in_layer"] = linears[int(req["in_layer"])]
    fn = getattr(deep_ei, function)
    seeds = [int(s) for s in req["seeds"]]
    outs: list[Any] = []
    secs: list[float] = []
    for seed in seeds:
        torch.manual_seed(seed)
        t0 = time.perf_counter()
        outs.append(fn(layer, topology, **kwargs))
        secs.append(time.perf_counter() - t0)
    res: dict[str, Any] = {"seeds": np.array(seeds, dtype=np.int64),
                           "seconds_per_seed": np.array(secs, dtype=np.float64)}
    if function == "vector_and_pairwise_ei":
        res["vector"] = np.array([float(o[0]) for o in outs], dtype=np.float64)
        res["pairwise"] = np.array([float(o[1]) for o in outs], dtype=np.float64)
    elif function.endswith("_matrix"):
        res["values"] = np.stack([np.asarray(o, dtype=np.float64) for o in outs])
    else:
        res["values"] = np.array([float(o) for o in outs], dtype=np.float64)
    return res


HANDLERS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "pairwise": do_pairwise,
    "vector": do_vector,
    "vector_bins": do_vector_bins,
    "pair_bins": do_pair_bins,
    "sampled": do_sampled,
}


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(f"usage: {argv[0]} IN.npz OUT.npz", file=sys.stderr)
        return 2
    torch.set_num_threads(1)
    requests = load_requests(argv[1])
    results = []
    for i, req in enumerate(requests):
        kind = req.get("kind")
        if kind not in HANDLERS:
            raise ValueError(f"request {i}: unknown kind {kind!r}; expected one of {sorted(HANDLERS)}")
        t0 = time.perf_counter()
        try:
            res = HANDLERS[kind](req)
        except Exception as exc:
            raise RuntimeError(f"request {i} (kind {kind!r}) failed: {exc!r}") from exc
        res["kind"] = kind
        res["seconds"] = time.perf_counter() - t0
        results.append(res)
    save_results(argv[2], results)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv))
    except SystemExit:
        raise
    except BaseException:
        traceback.print_exc()
        sys.exit(1)
