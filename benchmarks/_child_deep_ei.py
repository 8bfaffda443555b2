"""One deep-ei 0.7.0 measurement in a fresh process; started by ``benchmarks/run.py``.

    .venv-ref/bin/python benchmarks/_child_deep_ei.py SPEC.json

Runs in the reference virtualenv (torch, deep-ei 0.7.0, numpy < 2, networkx < 2.6) and
imports nothing from ei_jax. deep-ei at its best settings: ``torch.set_num_threads(1)`` and
``batch_size=1000``. The weights are the ones the ei_jax side measures (torch layout
``[out, in]``, from the spec's ``.npz``). Prints ONE JSON line: wall time of each call, the
values and the process's peak RSS (``ru_maxrss``) at the end.
"""

import json
import resource
import sys
import time

_T_START = time.perf_counter()


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def main(spec_path: str) -> None:
    with open(spec_path) as f:
        spec = json.load(f)

    import deep_ei
    import numpy as np
    import torch
    from torch import nn

    torch.set_num_threads(1)
    import_s = time.perf_counter() - _T_START
    rss_import = peak_rss_mb()

    weights = dict(np.load(spec["weights"]))
    wid = spec["workload"]
    samples = spec.get("samples")
    bins = spec.get("bins")
    kw = dict(batch_size=1000, in_range=(0, 1), in_bins=bins, out_range=(0, 1), out_bins=bins)

    def linear_sigmoid(w):
        lin = nn.Linear(w.shape[1], w.shape[0], bias=False)
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(np.ascontiguousarray(w, np.float32)))
        net = nn.Sequential(lin, nn.Sigmoid())
        return lin, deep_ei.topology_of(net, input=torch.zeros((1, w.shape[1])))

    if wid == "W1":
        layer, top = linear_sigmoid(weights["w1"])
        work = samples

        def measure():
            return float(deep_ei.ei_parts(layer, top, samples=samples, **kw))
    elif wid == "W2":
        layer, top = linear_sigmoid(weights["w1"])
        work = samples

        def measure():
            return [float(v) for v in deep_ei.vector_and_pairwise_ei(layer, top, samples=samples, **kw)]
    elif wid == "W3":
        ws = np.asarray(weights["w3"], np.float32)
        layer, top = linear_sigmoid(ws[:1].reshape(1, 1))
        work = samples * len(ws)

        def measure():
            out = []
            for w in ws:
                with torch.no_grad():
                    layer.weight.fill_(float(w))
                out.append(float(deep_ei.ei_parts(layer, top, samples=samples, **kw)))
            return out
    elif wid == "W4":
        layer, top = linear_sigmoid(weights["w1"])
        work = samples * weights["w1"].shape[1]

        def measure():
            return float(deep_ei.sensitivity(layer, top, samples=samples, **kw))
    elif wid == "W5":
        layer, top = linear_sigmoid(weights["w5"])
        work = None

        def measure():
            return float(deep_ei.ei_parts(layer, top, threshold=spec["threshold"], **kw))
    else:
        raise ValueError(f"deep-ei has no workload {wid!r}")

    calls = []
    for seed in spec["seeds"]:
        torch.manual_seed(seed)
        t0 = time.perf_counter()
        value = measure()
        calls.append(dict(seed=seed, wall_s=time.perf_counter() - t0, value=value))
    print(json.dumps(dict(
        side="deep_ei", workload=wid, work=work, calls=calls, import_s=import_s,
        rss_import_mb=rss_import, peak_rss_mb=peak_rss_mb(), torch=torch.__version__,
        threads=torch.get_num_threads(),
    )))


if __name__ == "__main__":
    main(sys.argv[1])
