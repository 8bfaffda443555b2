"""Exact vector EI (``ei_jax.exact.ei``) on the paper's trained Iris network: time and simplices.

    .venv/bin/ei-jax reproduce iris --out runs/iris             # the checkpoints (~1 min)
    .venv/bin/python benchmarks/exact_vector.py --run runs/iris
    .venv/bin/python benchmarks/exact_vector.py --run runs/iris --old ecb4920 --old-work 8e6

Per epoch (``--epochs``) and layer (4->5, 5->5, 5->3; sigmoid, no bias, inputs (0, 1), 8 bins):
the estimated simplices (``work``, what ``max_work`` is compared with), the simplices the kernel
made, the seconds and the value. ``--old REV`` also runs the package as it was at git revision
REV (``git archive`` into a temporary folder, in a subprocess) where its estimate is at most
``--old-work``, and prints the largest difference. The first new call includes numba's
compile unless the on-disk cache is warm (see ``--cold``); it is timed apart.
"""

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time

LAYERS = ("layers_0", "layers_2", "layers_4")
KW = dict(activation="sigmoid", in_range=(0, 1), in_bins=8, out_range=(0, 1), out_bins=8)


def _kernels(run, epoch):
    import numpy as np

    from ei_jax.experiments.checkpoints import read_flax_checkpoint

    p = read_flax_checkpoint(os.path.join(run, "checkpoints", f"epoch_{epoch:06d}.msgpack"))["params"]
    return {name: np.asarray(p[name]["kernel"], np.float64) for name in LAYERS}


def child(run, epochs, work_limit, new):
    """One JSON line per (epoch, layer): work, simplices (new only), seconds, bits."""
    import numpy as np

    from ei_jax._src.base.errors import ExactUnavailableError
    from ei_jax._src.exact import vector

    if new:
        t0 = time.perf_counter()
        vector.exact_vector_ei(np.eye(2), None, **KW)              # numba: load or compile
        print(json.dumps({"first_call_s": time.perf_counter() - t0}), flush=True)
    for epoch in epochs:
        for name, w in _kernels(run, epoch).items():
            row = {"epoch": epoch, "layer": f"{w.shape[0]}->{w.shape[1]}"}
            try:
                t0 = time.perf_counter()
                if new:
                    bits, _, made, work = vector._sums(w, None, max_cells=1 << 20,
                                                       max_work=work_limit, **KW)
                    row.update(simplices=int(made), work=work)
                else:
                    bits = vector.exact_vector_ei(w, None, max_work=work_limit, **KW)
                row.update(seconds=time.perf_counter() - t0, bits=bits)
            except ExactUnavailableError as e:
                row["over"] = str(e).split("about ")[1].split(" simplices")[0]
            print(json.dumps(row), flush=True)


def _rows(cmd, env):
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", default="runs/iris")
    ap.add_argument("--epochs", default="0,500,4000")
    ap.add_argument("--work", type=float, default=1e9, help="max_work of the new path")
    ap.add_argument("--old", metavar="REV", help="also time the package at git revision REV")
    ap.add_argument("--old-work", type=float, default=8e6, help="max_work of the old path")
    ap.add_argument("--cold", action="store_true", help="new path with an empty numba cache")
    ap.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        run, epochs, limit, which = args.child
        return child(run, [int(e) for e in epochs.split(",")], float(limit), which == "new")
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    base = [sys.executable, os.path.abspath(__file__), "--child", args.run, args.epochs]
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, PYTHONPATH=here)
        if args.cold:
            env["NUMBA_CACHE_DIR"] = os.path.join(tmp, "numba")
        new = _rows(base + [str(args.work), "new"], env)
        old = {}
        if args.old:
            src = os.path.join(tmp, "old")
            os.makedirs(src)
            archive = subprocess.run(["git", "-C", here, "archive", args.old, "ei_jax"],
                                     capture_output=True, check=True).stdout
            subprocess.run(["tar", "-x", "-C", src], input=archive, check=True)
            for r in _rows(base + [str(args.old_work), "old"], dict(os.environ, PYTHONPATH=src)):
                old[r["epoch"], r["layer"]] = r
    print(f"first call (numba {'compile' if args.cold else 'cache'} + a tiny layer): "
          f"{new[0]['first_call_s']:.2f} s")
    print("| epoch | layer | est. simplices | simplices | new s | old s | bits |")
    print("|---|---|---|---|---|---|---|")
    worst = 0.0
    for r in new[1:]:
        o = old.get((r["epoch"], r["layer"]), {})
        old_s = f"{o['seconds']:.1f}" if "seconds" in o else (f"over (est. {o['over']})" if o else "")
        if "seconds" in o and "bits" in r:
            worst = max(worst, abs(o["bits"] - r["bits"]))
        if "over" in r:
            print(f"| {r['epoch']} | {r['layer']} | {r['over']} | | over --work | {old_s} | |")
            continue
        print(f"| {r['epoch']} | {r['layer']} | {r['work']:.3g} | {r['simplices']:.3g} | {r['seconds']:.2f} | "
              f"{old_s} | {r['bits']:.6f} |")
    if old:
        print(f"largest |old - new| where both ran: {worst:.3g} bits")


if __name__ == "__main__":
    main()
