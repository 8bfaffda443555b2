"""``ei-jax measure`` on N checkpoints: one batch command vs a loop of single-checkpoint calls.

Writes N checkpoints of the paper's Iris network (4-5-5-3, sigmoid; random initialisations)
as Flax msgpack files, then times, each side in a fresh process (imports excluded):

* batch: ``ei-jax measure DIR --activation sigmoid`` -- every layer of all N checkpoints:
  exact EI_parts / sensitivity in one vmapped call per layer (the series at the stack's
  longest length, each checkpoint's cut at its own), vector EI pipelined (one checkpoint's host estimate in a thread while the next is sampled);
* loop: ``ei-jax measure FILE --activation sigmoid`` for each file, N calls in ONE process
  (so the loop compiles once and then reuses its programs: the loop's best case);
* and single-checkpoint calls each as its own process (``cli.main`` on one file), the
  cost a shell loop over ``ei-jax measure`` pays per checkpoint: its whole process, and its
  measurement time (inside ``cli.main``, imports excluded) -- the issue's "loop over
  single-checkpoint ``ei-jax measure`` calls' measurement time". With ``--cache`` (the
  CLI's default: a persistent cache, here warmed first) ``--singles`` such processes are
  timed and the median is multiplied by N.

The two tables are compared row by row (same key): every sampled number, method and key
equal, the exact columns equal to float64 rounding (one vmapped call vs unbatched ones; the
test, tests/test_cli.py, uses the same rule). Prints seconds and the ratios loop / batch.
Compilation caches are off on both sides (``EI_JAX_NO_CACHE=1``); ``--cache`` turns the
persistent cache on for both (a second run of the same command: no compiling).

    .venv/bin/python benchmarks/measure_batch.py                     # 200 checkpoints
    .venv/bin/python benchmarks/measure_batch.py --cache             # second runs (cache warm)
    .venv/bin/python benchmarks/measure_batch.py --checkpoints 20 --samples 20000   # quick
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

CHILD = r'''
import json, sys, time, contextlib, io
from pathlib import Path
from ei_jax import cli
mode, folder, out, *settings = sys.argv[1:]
files = sorted(str(p) for p in Path(folder).glob("*.msgpack"))
if mode == "one":                       # the first checkpoint alone
    folder, mode = files[0], "batch"
common = ["--activation", "sigmoid", "--no-progress", *settings]
t0 = time.perf_counter()
with contextlib.redirect_stdout(io.StringIO()):
    if mode == "batch":
        assert cli.main(["measure", folder, *common, "--json", out]) == 0
    else:
        rows = []
        for f in files:
            assert cli.main(["measure", f, *common, "--json", out]) == 0
            rows += json.loads(Path(out).read_text())["rows"]
        Path(out).write_text(json.dumps({"rows": rows}))
print(json.dumps({"seconds": time.perf_counter() - t0}))
'''


def _env(cache):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    if cache:
        env.pop("EI_JAX_NO_CACHE", None)
        env["EI_JAX_CACHE_DIR"] = cache
    else:
        env["EI_JAX_NO_CACHE"] = "1"
    return env


def _child(mode, folder, out, settings, cache=None):
    env = _env(cache)
    p = subprocess.run([sys.executable, "-c", CHILD, mode, str(folder), str(out), *settings],
                       capture_output=True, text=True, env=env, timeout=7200)
    if p.returncode:
        raise SystemExit(p.stderr[-3000:])
    return json.loads(p.stdout.splitlines()[-1])["seconds"]


def _write_checkpoints(folder: Path, n: int):
    import jax
    import jax.numpy as jnp

    from ei_jax.experiments.checkpoints import save_checkpoint
    from ei_jax.experiments.paper_nets import mlp

    model, x0 = mlp((4, 5, 5, 3)), jnp.zeros((1, 4))
    init = jax.jit(model.init)
    for i in range(n):
        save_checkpoint(folder / f"epoch_{i:06d}.msgpack", init(jax.random.key(i), x0))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoints", type=int, default=200)
    p.add_argument("--samples", default="100000", help="--samples of ei-jax measure (default its own)")
    p.add_argument("--sensitivity-samples", default="5000")
    p.add_argument("--cache", action="store_true",
                   help="persistent compilation cache on for both sides, warmed by a first run of each")
    p.add_argument("--singles", type=int, default=3,
                   help="single-checkpoint processes timed (median x N; default 3)")
    args = p.parse_args(argv)
    settings = ["--samples", args.samples, "--sensitivity-samples", args.sensitivity_samples]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "checkpoints"
        folder.mkdir()
        _write_checkpoints(folder, args.checkpoints)
        cache = str(Path(tmp) / "cache") if args.cache else None
        if cache:                      # warm the cache: the timed runs below compile nothing
            _child("batch", folder, Path(tmp) / "batch.json", settings, cache)
            _child("loop", folder, Path(tmp) / "loop.json", settings, cache)
        batch = _child("batch", folder, Path(tmp) / "batch.json", settings, cache)
        loop = _child("loop", folder, Path(tmp) / "loop.json", settings, cache)
        rows_b = json.loads((Path(tmp) / "batch.json").read_text())["rows"]
        rows_l = json.loads((Path(tmp) / "loop.json").read_text())["rows"]
        differ = []
        for a, b in zip(rows_b, rows_l, strict=True):
            for k in a:
                same = a[k] == b[k] or (isinstance(a[k], float) and isinstance(b[k], float)
                                        and abs(a[k] - b[k]) <= 1e-12 * max(1.0, abs(b[k])))
                if not same:
                    differ.append((a["checkpoint"], a["layer"], k, a[k], b[k]))
        equal = not differ
        singles = []                   # (whole process, measurement inside cli.main)
        for _ in range(max(1, args.singles)):
            t0 = time.perf_counter()
            inside = _child("one", folder, Path(tmp) / "one.json", settings, cache)
            singles.append((time.perf_counter() - t0, inside))
        process, single = (sorted(x[i] for x in singles)[len(singles) // 2] for i in (0, 1))
    n = args.checkpoints
    print(f"ei-jax measure on {n} checkpoints of a 4-5-5-3 sigmoid net ({args.samples} samples, "
          f"{args.sensitivity_samples} per input for sensitivity, 8 bins), {os.cpu_count()} CPU cores, "
          f"compilation cache {'warm' if args.cache else 'off'}")
    print(f"  batch (one command for all checkpoints):     {batch:8.1f} s")
    print(f"  loop of {n} single calls in one process:     {loop:8.1f} s   loop / batch = {loop / batch:.1f}x")
    print(f"  one single call as a process, median of {len(singles)}: measurement {single:8.1f} s   "
          f"(x {n} = {single * n:.0f} s; / batch = {single * n / batch:.1f}x)")
    print(f"      whole process {process:.1f} s (x {n} / batch = {process * n / batch:.0f}x)")
    print(f"  tables equal row for row: {equal}" + "".join(f"\n    differs: {d}" for d in differ[:10]))
    return dict(batch=batch, loop=loop, single=single, process=process, equal=equal)


if __name__ == "__main__":
    main()
