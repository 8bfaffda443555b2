"""Benchmarks of issue 10: the exact measures against sampling (ei_jax and deep-ei), in one run.

    .venv/bin/python benchmarks/exact.py                 # everything (deep-ei W1 at 1e7: ~10-20 s)
    .venv/bin/python benchmarks/exact.py --skip-deep-ei  # ei_jax only
    .venv/bin/python benchmarks/exact.py --only E1,E3

Every workload runs in a fresh subprocess (``--child``), so its peak RSS (``ru_maxrss``) is its
own. Workloads:

* E1: W1's layer (Linear(25, 6) no bias, sigmoid, 8 bins, the weights of ``benchmarks/run.py``):
  exact EI_parts against deep-ei 0.7.0 at 1e7 samples (``_child_deep_ei.py``, W1) and ei_jax's
  sampled EI_parts at 1e7 samples.
* E2: 784 -> 100 sigmoid, 8 bins: exact against ei_jax's sampled EI_parts at 1e5 samples.
* E3: the same layer at 64 bins, exact: time and peak RSS.
* E4: the paper's toy figure, exact: EI_parts of a 1 -> 1 layer for 540 weights x 3 activations
  (sigmoid, tanh, ReLU) x 4 bin counts (8, 16, 32, 64), one vmapped call per curve.

"first" includes tracing and compilation; "steady" is a second call with other weights of
the same shape (the term count of the series is chosen from the weights, so it can differ).
"""

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def _rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def child(name, weights_path):
    import jax
    import jax.numpy as jnp
    import numpy as np

    from ei_jax import core
    from ei_jax._src.exact import kernel as exact_core

    res = {"workload": name}
    sig = dict(activation="sigmoid", in_range=(0, 1), out_range=(0, 1))

    def exact_sum(w, bins):
        with jax.enable_x64(True):
            return float(np.asarray(exact_core.exact_ei_parts_matrix(
                w, None, in_bins=bins, out_bins=bins, **sig)).sum())

    def sampled(w, samples, key):
        def apply(k, x):
            return jax.nn.sigmoid(x @ k)
        out = core.ei_parts(jax.random.key(key), apply, jnp.asarray(w, jnp.float32),
                            in_shape=(w.shape[0],), in_range=(0, 1), in_bins=8, out_range=(0, 1),
                            out_bins=8, samples=samples)
        return float(out)

    if name in ("E1", "E2", "E3"):
        if name == "E1":
            w = np.load(weights_path)["w1"].T.astype(np.float64)            # (25, 6)
            w2 = w * 1.01
        else:
            rng = np.random.default_rng(784)
            w = rng.uniform(-1, 1, (784, 100)) / np.sqrt(784)               # torch's default init
            w2 = w[::-1].copy()
        bins = 64 if name == "E3" else 8
        res["exact_value"], res["exact_first_s"] = _timed(lambda: exact_sum(w, bins))
        _, res["exact_steady_s"] = _timed(lambda: exact_sum(w2, bins))
        if name != "E3":
            samples = 10_000_000 if name == "E1" else 100_000
            res["samples"] = samples
            res["sampled_value"], res["sampled_first_s"] = _timed(lambda: sampled(w, samples, 1))
            _, res["sampled_steady_s"] = _timed(lambda: sampled(w, samples, 2))
    elif name == "E4":
        ws = jnp.linspace(0.0, 27.0, 540).reshape(540, 1, 1)
        acts = {"sigmoid": (0, 1), "tanh": (-1, 1), "relu": (0, 1)}

        def figure():
            curves = {}
            for act, rng in acts.items():
                for bins in (8, 16, 32, 64):
                    f = jax.vmap(lambda w: exact_core.exact_ei_parts_matrix(
                        w, None, activation=act, in_range=rng, in_bins=bins, out_range=rng,
                        out_bins=bins)[0, 0])
                    curves[f"{act}/{bins}"] = np.asarray(f(ws))
            return curves

        curves, res["exact_first_s"] = _timed(figure)
        _, res["exact_steady_s"] = _timed(figure)
        res["exact_value"] = float(curves["sigmoid/64"].max())
    res["peak_rss_mb"] = _rss_mb()
    print(json.dumps(res))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default="E1,E2,E3,E4")
    ap.add_argument("--skip-deep-ei", action="store_true")
    ap.add_argument("--child", nargs=2, metavar=("NAME", "WEIGHTS"))
    args = ap.parse_args()
    if args.child:
        return child(*args.child)
    import run  # benchmarks/run.py: the shared weights, the deep-ei child and its venv

    with tempfile.TemporaryDirectory() as tmp:
        weights = Path(tmp) / "weights.npz"
        run.make_weights(weights, 2)
        rows = []
        for name in args.only.split(","):
            proc = subprocess.run([sys.executable, __file__, "--child", name, str(weights)],
                                  capture_output=True, text=True)
            lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
            if not lines:
                print(name, "failed:", proc.stderr[-2000:])
                continue
            res = json.loads(lines[-1])
            if name == "E1" and not args.skip_deep_ei:
                python = run.reference_python() if hasattr(run, "reference_python") else \
                    run.ROOT / ".venv-ref" / "bin" / "python"
                spec = dict(workload="W1", weights=str(weights), samples=10_000_000, bins=8, seeds=[0])
                dres = run.run_child(python, run.DEEP_EI_CHILD, spec, Path(tmp))
                if "error" in dres:
                    print("deep-ei failed:", dres["error"])
                else:
                    res["deep_ei_s"] = dres["calls"][0]["wall_s"]
                    res["deep_ei_value"] = dres["calls"][0]["value"]
                    res["deep_ei_peak_rss_mb"] = dres["peak_rss_mb"]
            rows.append(res)
            print(json.dumps(res))
    print()
    print("| id | exact first / steady | exact value | reference | reference value | ratio (steady) | peak RSS |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        refs = []
        if "deep_ei_s" in r:
            refs.append(("deep-ei 1e7", r["deep_ei_s"], r["deep_ei_value"]))
        if "sampled_steady_s" in r:
            refs.append((f"ei_jax sampled {r['samples']:.0e}", r["sampled_steady_s"], r["sampled_value"]))
        if not refs:
            refs.append(("-", None, None))
        for label, t, v in refs:
            ratio = f"{t / r['exact_steady_s']:.1f}x" if t else "-"
            tt = f"{t:.3g} s" if t else "-"
            vv = f"{v:.4f}" if v is not None else "-"
            print(f"| {r['workload']} | {r['exact_first_s']:.3g} s / {r['exact_steady_s']:.3g} s | "
                  f"{r['exact_value']:.4f} | {label}: {tt} | {vv} | {ratio} | {r['peak_rss_mb']:.0f} MB |")


if __name__ == "__main__":
    main()
