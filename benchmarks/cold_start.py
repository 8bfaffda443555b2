"""Whole-process benchmark: a one-measure research script, ei_jax against deep-ei 0.7.0.

The script is deep-ei's README automatic-mode example: ``ei_parts`` of a 10 -> 10 dense
sigmoid layer, 64 bins, threshold 0.05. Each run is a fresh ``python -c SCRIPT`` process
(imports, network, compilation, measurement, exit), timed from outside; the sides
alternate. ei_jax runs twice per round: without a compilation cache, and with
``EI_JAX_CACHE_DIR`` pointing at a cache directory that starts empty (its first run fills
it; "later" runs read it). deep-ei runs at its best settings (``torch.set_num_threads(1)``,
``batch_size=1000``) in ``.venv-ref``.

    .venv/bin/python benchmarks/cold_start.py               # 5 rounds
    .venv/bin/python benchmarks/cold_start.py --rounds 3 --json cold.json

Each child prints one JSON line: its own import / measure times and the compilations
``jax.monitoring`` saw (count and time).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

EI_JAX = '''
import time
t0 = time.perf_counter()
import json
import jax, jax.numpy as jnp, flax.linen as nn, ei_jax
events = []
jax.monitoring.register_event_duration_secs_listener(lambda e, d, **_: events.append((e, d)))
t1 = time.perf_counter()
net = nn.Dense(10, use_bias=False)
x0 = jnp.zeros((1, 10))
top = ei_jax.topology_of(net, net.init(jax.random.key(4), x0), x0)
EI = ei_jax.ei_parts(jax.random.key(0), top, "Dense", threshold=0.05, in_range=(0, 1), in_bins=64,
                     out_range=(0, 1), out_bins=64, activation="sigmoid")
t2 = time.perf_counter()
print(json.dumps(dict(value=EI, import_s=t1 - t0, measure_s=t2 - t1,
                      compiles=sum(e == "/jax/core/compile/backend_compile_duration" for e, _ in events),
                      compile_s=sum(d for e, d in events if e == "/jax/core/compile/backend_compile_duration"),
                      trace_lower_s=sum(d for e, d in events if e in (
                          "/jax/core/compile/tracing_duration",
                          "/jax/core/compile/jaxpr_to_mlir_module_duration")))))
'''

DEEP_EI = '''
import time
t0 = time.perf_counter()
import json
import torch, torch.nn as nn
from deep_ei import topology_of, ei_parts
torch.set_num_threads(1)
t1 = time.perf_counter()
torch.manual_seed(4)
network = nn.Linear(10, 10, bias=False)
top = topology_of(network, input=torch.zeros((1, 10)))
EI = ei_parts(network, top, threshold=0.05, batch_size=1000, in_range=(0, 1), in_bins=64,
              out_range=(0, 1), out_bins=64, activation=nn.Sigmoid())
t2 = time.perf_counter()
print(json.dumps(dict(value=float(EI), import_s=t1 - t0, measure_s=t2 - t1)))
'''


def run(python, script, env) -> dict:
    t0 = time.perf_counter()
    proc = subprocess.run([str(python), "-c", script], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=600)
    wall = time.perf_counter() - t0
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"child failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return dict(json.loads(lines[-1]), process_s=wall)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=5, help="alternating rounds (default 5)")
    p.add_argument("--json", default=None, help="also write every run to this file")
    p.add_argument("--reference-python", default=os.environ.get(
        "EI_JAX_REFERENCE_PYTHON", str(ROOT / ".venv-ref" / "bin" / "python")))
    args = p.parse_args(argv)

    base = {k: v for k, v in os.environ.items() if k not in ("EI_JAX_CACHE_DIR", "XLA_FLAGS")}
    base["PYTHONPATH"] = os.pathsep.join(x for x in (str(ROOT), base.get("PYTHONPATH")) if x)
    cache = tempfile.mkdtemp(prefix="ei_jax_cold_cache_")
    sides = {
        "deep-ei": (args.reference_python, DEEP_EI, base),
        "ei_jax (no cache)": (sys.executable, EI_JAX, base),
        "ei_jax (EI_JAX_CACHE_DIR)": (sys.executable, EI_JAX, dict(base, EI_JAX_CACHE_DIR=cache)),
    }
    runs = {name: [] for name in sides}
    for r in range(args.rounds):
        order = list(sides) if r % 2 == 0 else list(reversed(sides))
        for name in order:
            python, script, env = sides[name]
            runs[name].append(run(python, script, env))
            print(f"round {r}: {name}: {json.dumps(runs[name][-1])}", flush=True)

    def med(name, key, rs=slice(None)):
        xs = [x[key] for x in runs[name][rs] if key in x]
        return statistics.median(xs) if xs else None

    ref_first, ref_later = runs["deep-ei"][0]["process_s"], med("deep-ei", "process_s", slice(1, None))
    print("\n| side | first run (process) | later runs, median (process) | import | measure, later median "
          "| compiles (time) | deep-ei / side, later runs |")
    print("|---|---|---|---|---|---|---|")
    for name in sides:
        first, later = runs[name][0], med(name, "process_s", slice(1, None))
        comp = (f"{first['compiles']} ({first['compile_s']:.2f} s) first; "
                f"{runs[name][-1]['compiles']} ({runs[name][-1]['compile_s']:.2f} s) last"
                if "compiles" in first else "–")
        print(f"| {name} | {first['process_s']:.2f} s | {later:.2f} s | {med(name, 'import_s'):.2f} s "
              f"| {med(name, 'measure_s', slice(1, None)):.2f} s | {comp} | {ref_later / later:.2f}× |")
    print(f"\ndeep-ei first run {ref_first:.2f} s; values: " + ", ".join(
        f"{n} {runs[n][0]['value']:.4f}" for n in sides))
    if args.json:
        Path(args.json).write_text(json.dumps(runs, indent=1))
    return runs


if __name__ == "__main__":
    main()
