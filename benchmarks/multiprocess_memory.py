"""Memory per process of multi-process vector EI: rows counted where they are vs gathered.

Starts JAX's distributed runtime on 127.0.0.1 (gloo, one CPU device per process) with 1 and
2 processes, and measures vector EI (``ei_jax.core.vector_ei``) of W1's layer (Linear(25, 6)
sigmoid, 8 bins) in each process. ``bucketed`` is the library's path (each process keeps its
own row codes; (code, count) pairs go round in hash buckets). ``gathered`` is what the
library did before: ``core.vector_rows`` (every process's codes on every process) and the
host MI of all of them. Reported per process: peak RSS (``ru_maxrss``), its growth over a
warm-up call at 1/64 of the samples (imports and compilation excluded), wall time of the
measure, and the value (identical in every column).

With ``--stderr`` the measure is ``ei_jax.ei(..., stderr=True)`` (value, bias correction and
standard error): ``bucketed`` counts each process's cells where they are
(``ei_jax/_src/sampled/distributed_uncertainty.py``), ``gathered`` gathers the four quarters' rows first.

    .venv/bin/python benchmarks/multiprocess_memory.py                 # 4e6 samples
    .venv/bin/python benchmarks/multiprocess_memory.py --samples 1e7 --processes 2,4
    .venv/bin/python benchmarks/multiprocess_memory.py --stderr --processes 2,4
"""

import argparse
import json
import os
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.children import free_port, run_at_once  # noqa: E402  (starts, bounds and kills them)

CHILD = textwrap.dedent('''
    import json, resource, sys, time
    import jax
    port, pid, nproc, samples, mode = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
    stderr = sys.argv[6] == "stderr"
    if nproc > 1:
        jax.distributed.initialize(coordinator_address=f"127.0.0.1:{port}", num_processes=nproc,
                                   process_id=pid, initialization_timeout=120)
    import numpy as np
    from ei_jax import core
    from ei_jax._src.core import measures as core_measures
    from ei_jax._src.info import row_codes
    w = jax.random.normal(jax.random.key(0), (25, 6))
    kw = dict(in_shape=(25,), in_range=(0, 1), in_bins=8, out_range=(0, 1), out_bins=8)
    f = lambda q, x: jax.nn.sigmoid(x @ q)

    def measure(key, n):
        if mode == "bucketed":
            return float(core.vector_ei(key, f, w, samples=n, **kw))
        codes, valid, *_ = core_measures.vector_rows(key, f, w, samples=n, **kw)
        return float(row_codes.vector_mi(codes, valid)[0])

    if stderr:   # the Estimate of ei(..., stderr=True): its value, correction and stderr
        import flax.linen as nn, jax.numpy as jnp, ei_jax
        from ei_jax._src.measures import vector as vector_measures
        from ei_jax._src.model.problems import resolve
        top = ei_jax.topology_of(nn.Dense(6, use_bias=False), {"params": {"kernel": w}}, jnp.zeros((1, 25)))
        problem = resolve(top, "Dense", in_range=(0, 1), out_range=(0, 1), activation="sigmoid")

        def measure(key, n):
            if mode == "bucketed":
                e = ei_jax.ei(key, top, "Dense", samples=n, stderr=True, in_range=(0, 1), in_bins=8,
                              out_range=(0, 1), out_bins=8, activation="sigmoid")
            else:   # every process's rows of the four quarters gathered, then the estimate
                quarters = vector_measures._quarter_runs(key, problem, problem.kwargs(8, 8), 0, n, 4)
                e = vector_measures._quarter_estimates(problem, quarters, n)[0]
            return repr((e.value, e.corrected, e.stderr))

    def peak_mb():
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    measure(jax.random.key(2), max(1024, samples // 64))
    base = peak_mb()
    t0 = time.perf_counter()
    value = measure(jax.random.key(1), samples)
    wall = time.perf_counter() - t0
    print(json.dumps(dict(process=pid, value=value, wall_s=wall, base_mb=base, peak_mb=peak_mb())))
''')


def run(processes: int, samples: int, mode: str, timeout: float, what: str) -> list[dict]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), JAX_PLATFORMS="cpu",
               XLA_FLAGS="--xla_force_host_platform_device_count=1")
    port = free_port()
    outs = run_at_once([(["-c", CHILD, str(port), str(i), str(processes), str(samples), mode, what], env)
                        for i in range(processes)], timeout=timeout)
    return [json.loads(out.splitlines()[-1]) for out in outs]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--samples", type=float, default=4e6, help="vector EI samples (default 4e6)")
    p.add_argument("--processes", default="2", help="process counts to compare with 1 (default 2; e.g. 2,4)")
    p.add_argument("--timeout", type=float, default=900, help="seconds per run")
    p.add_argument("--stderr", action="store_true",
                   help="measure ei(..., stderr=True) (value, correction, standard error) instead")
    args = p.parse_args(argv)
    samples = int(args.samples)
    rows = []
    counts = [int(c) for c in args.processes.split(",")]
    for processes, mode in [(1, "bucketed")] + [(c, m) for c in counts for m in ("bucketed", "gathered")]:
        res = run(processes, samples, mode, args.timeout, "stderr" if args.stderr else "value")
        for r in res:
            print(f"{processes} process(es), {mode}: {json.dumps(r)}", flush=True)
        rows.append((processes, mode, res))
    values = {r["value"] for _, _, res in rows for r in res}
    if len(values) != 1:
        sys.exit(f"values differ: {values}")
    value = values.pop()
    print(f"\nvector EI{' (stderr=True)' if args.stderr else ''} of Linear(25, 6) sigmoid, 8 bins, "
          f"{samples:,} samples, 1 CPU device per process (value {value} bits everywhere)\n")
    print("| processes | rows | peak RSS per process | growth over warm-up | measure wall |")
    print("|---|---|---|---|---|")
    growth = {}
    for processes, mode, res in rows:
        g = max(r["peak_mb"] - r["base_mb"] for r in res)
        growth[(processes, mode)] = g
        print(f"| {processes} | {mode} | {max(r['peak_mb'] for r in res):.0f} MB | {g:.0f} MB "
              f"| {max(r['wall_s'] for r in res):.2f} s |")
    for c in counts:
        print(f"\ngrowth per process, {c} processes: bucketed / gathered = "
              f"{growth[(c, 'bucketed')] / max(growth[(c, 'gathered')], 1e-9):.2f}; "
              f"bucketed / 1 process = {growth[(c, 'bucketed')] / max(growth[(1, 'bucketed')], 1e-9):.2f}")

if __name__ == "__main__":
    main()
