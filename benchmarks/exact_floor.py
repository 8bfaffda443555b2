"""Issue 27: the exact kernels against their floors and against U, old and new paths in one run.

    .venv/bin/python benchmarks/exact_floor.py                  # S1, P1, G1, G2, F1, G3 (old, new)
    .venv/bin/python benchmarks/exact_floor.py --only S1,G2 --big
    .venv/bin/python benchmarks/exact_floor.py --old a579b57     # "old" = that commit's tree

Every (workload, path) runs in a fresh subprocess (``--child``), so its peak RSS
(``ru_maxrss``) is its own; "old" sets the private ``kernel._LEGACY`` switch (sensitivity's dense
``in_bins x out_bins`` table, no remat in the gradient), or with ``--old REV`` runs the package
as it was at git revision REV (``git archive`` into a temporary folder, first on the child's
PYTHONPATH); "xla" is the working tree with the compiled CPU kernels switched off
(``compiled_path.FORCE = False``: concrete and traced weights, and gradients, through XLA);
"new" is the working tree as a user gets it. Each child times
U = a warm 2048x2048 float32 jitted matmul right before and after its own warm call and uses the
mean, so time/U is taken under the same load (the machine is shared: read the ratios, not the
seconds). Workloads (sigmoid, inputs on (0, 1), torch's default init, bias 0.1 N(0, 1)):

* S1: ``exact_sensitivity_matrix`` 512 -> 512 at 64 bins. Floor: the banded joint's occupied
  cells, pairs x (in_bins + out_bins + 1) (the dense table: pairs x in_bins x (out_bins + 1)).
* P1: ``exact_ei_parts_matrix`` 1024 -> 1024 at 8 bins. Floor: the series sum, 2 x pairs x
  in_bins x (out_bins + 1) x terms FLOPs (terms as chosen for the weights).
* G1 / G2: ``jax.grad`` of ``exact_ei_parts_matrix(...).sum()`` at 784 -> 100 / 100 -> 100,
  8 bins, against the forward of the same function (both warm, float32 weights, as a training
  step calls it). Floor: the forward's, x 3.
* F1: first call of ``exact_ei_parts_matrix`` and ``exact_sensitivity_matrix`` at 100 -> 100,
  8 bins, in a fresh process (compile + host work; the goal is 1 s each).
* G3: first call of ``jax.jit(jax.grad(total))`` in a fresh process, ``total`` the sum of
  ``exact_ei_parts_matrix`` over the layers of a 64-32-16-10 sigmoid MLP at 8 bins (float32
  weights uniform +-1/sqrt(fan-in)); then its warm call, and the same two for ``jax.jit(total)``
  in the same process (first, so the gradient's first call shares its trace caches with
  nothing but what a training script would also have). Goal: first call <= 3 s.
* P2 (``--big``): 2048 -> 2048 EI_parts at 8 bins, first call (compile + host term choice);
  P3 (``--big``): 4096 -> 4096, first call (time and peak RSS).

Columns: ``rate/U-rate`` is the achieved floor rate over U's own rate (2 * 2048^3 / U FLOP/s):
1 would be the work done as fast as a dense float32 matrix product.
"""

import argparse
import math
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

WORK = {"S1": ("sens", 512, 512, 64), "P1": ("parts", 1024, 1024, 8),
        "G1": ("grad", 784, 100, 8), "G2": ("grad", 100, 100, 8), "F1": ("first2", 100, 100, 8),
        "G3": ("mlp", 64, 10, 8),
        "P2": ("first", 2048, 2048, 8), "P3": ("first", 4096, 4096, 8)}


def _u(jax, jnp):
    a = jnp.ones((2048, 2048), jnp.float32)
    mm = jax.jit(lambda x: x @ x)
    mm(a).block_until_ready()
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        mm(a).block_until_ready()
        best = min(best, time.perf_counter() - t0)
    return best


def child_mlp(jax, jnp, K, res, bins):
    """G3: the first call of a jitted gradient over a small MLP's layers (compile dominated)."""
    widths = [64, 32, 16, 10]
    ks = jax.random.split(jax.random.key(0), 3)
    ws = [jax.random.uniform(k, (a, b), minval=-1 / a ** .5, maxval=1 / a ** .5)
          for k, a, b in zip(ks, widths[:-1], widths[1:])]

    def total(ws):
        return sum(K.exact_ei_parts_matrix(w, None, activation="sigmoid", in_range=(0., 1.),
                                           in_bins=bins, out_range=(0., 1.), out_bins=bins).sum()
                   for w in ws)

    times = {}
    for name, fn in (("grad", jax.jit(jax.grad(total))), ("fwd", jax.jit(total))):
        t0, c0 = time.perf_counter(), time.process_time()
        jax.block_until_ready(fn(ws))
        t1, c1 = time.perf_counter(), time.process_time()
        jax.block_until_ready(fn(ws))
        times[name] = (t1 - t0, time.perf_counter() - t1, c1 - c0)
    res.update(size="64-32-16-10", time_s=times["grad"][0], U=_u(jax, jnp), floor=float("nan"))
    # CPU seconds (all threads) of the first call: less moved by a busy machine than wall time
    res["floor_what"] = (f"first call of jit(grad) {times['grad'][0]:.2f} s, CPU "
                         f"{times['grad'][2]:.2f} s (warm "
                         f"{times['grad'][1] * 1e3:.0f} ms); then jit(forward) first "
                         f"{times['fwd'][0]:.2f} s, CPU {times['fwd'][2]:.2f} s (warm {times['fwd'][1] * 1e3:.0f} ms)")
    res["rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(res))


def child(name, path):
    import jax
    import jax.numpy as jnp
    import numpy as np

    from ei_jax._src.exact import kernel as K, terms

    K._LEGACY = path == "old"
    try:                                      # trees before session 13 have no compiled path
        from ei_jax._src.exact import compiled_path
        compiled_path.FORCE = False if path in ("old", "xla") else None
    except ImportError:
        pass
    kind, n, m, bins = WORK[name]
    rng = np.random.default_rng(n)
    w = (rng.uniform(-1, 1, (n, m)) / np.sqrt(n)).astype(np.float32)
    b = (0.1 * rng.normal(size=m)).astype(np.float32)
    kw = dict(activation="sigmoid", in_range=(0, 1), in_bins=bins, out_range=(0, 1), out_bins=bins)
    res = {"work": name, "path": path, "size": f"{n}->{m}", "bins": bins}

    def timed(fn, *args):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        return time.perf_counter() - t0

    if kind == "mlp":
        return child_mlp(jax, jnp, K, res, bins)
    if kind == "first2":
        t0 = time.perf_counter()
        jax.block_until_ready(K.exact_ei_parts_matrix(w, b, **kw))
        res["parts_first_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        jax.block_until_ready(K.exact_sensitivity_matrix(w, b, **kw))
        res["time_s"] = res["parts_first_s"] + time.perf_counter() - t0
        res["U"] = _u(jax, jnp)
        res["floor"] = float("nan")
        res["floor_what"] = (f"first calls, fresh process: EI_parts {res['parts_first_s']:.2f} s, "
                             f"sensitivity {res['time_s'] - res['parts_first_s']:.2f} s")
    elif kind == "first":
        u0 = _u(jax, jnp)
        res["time_s"] = timed(lambda: K.exact_ei_parts_matrix(w, b, **kw))
        res["U"] = u0
        terms = terms.choose_terms(w, (0, 1))
        res["floor"] = 2.0 * n * m * bins * (bins + 1) * terms
        res["floor_what"] = f"2 pairs k_in (k_out+1) terms, terms={terms}"
    else:
        if kind == "sens":
            f = lambda w, b: K.exact_sensitivity_matrix(w, b, **kw)             # noqa: E731
            res["floor"] = float(n * m * (2 * bins + 1))
            res["floor_what"] = "pairs (k_in + k_out + 1) cells"
        elif kind == "parts":
            f = lambda w, b: K.exact_ei_parts_matrix(w, b, **kw)                # noqa: E731
            terms = terms.choose_terms(w, (0, 1))
            res["floor"] = 2.0 * n * m * bins * (bins + 1) * terms
            res["floor_what"] = f"2 pairs k_in (k_out+1) terms, terms={terms}"
        else:
            fwd = jax.jit(lambda w, b: K.exact_ei_parts_matrix(w, b, **kw).sum())
            f = jax.jit(jax.grad(lambda w, b: K.exact_ei_parts_matrix(w, b, **kw).sum()))
            fwd(w, b).block_until_ready()
            u0 = _u(jax, jnp)
            res["fwd_s"] = timed(fwd, w * 0.99, b)
            res["fwd_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            terms = terms.default_terms(n)
            res["floor"] = 3 * 2.0 * n * m * bins * (bins + 1) * terms
            res["floor_what"] = f"3 x forward, terms={terms} (traced)"
        jax.block_until_ready(f(w, b))                                          # compile
        u0 = _u(jax, jnp)
        res["time_s"] = timed(f, w * 0.99, b)
        res["U"] = 0.5 * (u0 + _u(jax, jnp))
    res["rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(res))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--child", nargs=2)
    ap.add_argument("--only", default="S1,P1,G1,G2,F1,G3")
    ap.add_argument("--old", default=None, help="git revision whose tree the old path runs")
    ap.add_argument("--big", action="store_true")
    ap.add_argument("--paths", default="old,xla,new")
    args = ap.parse_args()
    if args.child:
        return child(*args.child)
    names = args.only.split(",") + (["P2", "P3"] if args.big else [])
    env_new = dict(os.environ)
    env_old = dict(os.environ)
    if args.old:
        tree = tempfile.mkdtemp(prefix="exact_floor_old_")
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        archive = subprocess.run(["git", "-C", root, "archive", args.old], capture_output=True,
                                 check=True).stdout
        subprocess.run(["tar", "-x", "-C", tree], input=archive, check=True)
        env_old["PYTHONPATH"] = os.pathsep.join([tree] + env_new.get("PYTHONPATH", "").split(
            os.pathsep))
    print("| kernel | size | bins | path | time (s) | U (s) | time/U | floor | floor rate (G/s) "
          "| rate/U-rate | peak RSS (MB) | notes |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name in names:
        for path in args.paths.split(","):
            if path == "old" and name in ("P1", "P2", "P3", "F1", "G3") and not args.old:
                continue                           # the legacy switch does not change these
            child_path = "new" if (path == "old" and args.old) else path
            out = subprocess.run([sys.executable, __file__, "--child", name, child_path],
                                 capture_output=True, text=True,
                                 env=env_old if path == "old" else env_new)
            if out.returncode:
                print(f"| {name} | {path} | failed: {out.stderr.strip().splitlines()[-1]} |")
                continue
            r = json.loads(out.stdout.strip().splitlines()[-1])
            note = r["floor_what"]
            if "fwd_s" in r:
                note += (f"; forward {r['fwd_s']:.3f} s ({r['fwd_s'] / r['U']:.2f} U) in "
                         f"{r['fwd_rss_mb']:.0f} MB; grad/forward {r['time_s'] / r['fwd_s']:.1f}x")
            rate = r["floor"] / r["time_s"]
            # G3 (a first call: compile time) has no FLOP floor: its rate columns are "–"
            floor, rate_g, rate_u = ((f"{r['floor']:.3g}", f"{rate / 1e9:.3g}",
                                      f"{rate / (2 * 2048 ** 3 / r['U']):.3g}")
                                     if math.isfinite(r["floor"]) else ("–", "–", "–"))
            print(f"| {name} | {r['size']} | {r['bins']} | {path} | {r['time_s']:.3f} | {r['U']:.3f} "
                  f"| {r['time_s'] / r['U']:.2f} | {floor} | {rate_g} | {rate_u} "
                  f"| {r['rss_mb']:.0f} | {note} |", flush=True)


if __name__ == "__main__":
    main()
