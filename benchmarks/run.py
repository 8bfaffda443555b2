"""Benchmarks of issue 4: ei_jax against deep-ei 0.7.0 on the same workloads, in one run.

Every measurement runs in its own fresh subprocess (so the peak RSS it reports belongs to
that workload alone); deep-ei and ei_jax repetitions alternate; the table shows medians.

    .venv/bin/python benchmarks/run.py                     # everything, 3 repetitions
    .venv/bin/python benchmarks/run.py --quick             # small sample counts (smoke run)
    .venv/bin/python benchmarks/run.py --only W1,W3 --reps 5
    .venv/bin/python benchmarks/run.py --skip-deep-ei --devices 2
    .venv/bin/python benchmarks/run.py --scale             # ei_jax alone at 1e9 / 1e7 rows
    .venv/bin/python benchmarks/run.py --only W3,W4,W5 --cache --w3-via map_params

Workloads (deep-ei: ``torch.set_num_threads(1)``, ``batch_size=1000``; same weights both sides):

* W1 ``ei_parts``, Linear(25, 6) no bias, sigmoid, ranges (0, 1), 8 bins, 1e7 samples.
* W2 ``vector_and_pairwise_ei``, the same layer, 1e7 samples (deep-ei may run fewer samples,
  ``--deep-ei-w2-samples``; its time and RSS growth are then extrapolated linearly).
* W3 ``ei_parts`` of Linear(1, 1) sigmoid for 100 weights 0, 0.27, ..., 64 bins, 30,000
  samples each (ei_jax: one ``jax.vmap`` of ``ei_jax.core.ei_parts``; deep-ei: a loop).
* W4 ``sensitivity``, Linear(25, 6), 8 bins, 5,000 samples.
* W5 ``ei_parts`` in automatic mode (threshold 0.05), Linear(10, 10) sigmoid, 64 bins.
* B1 (ei_jax only) EI_parts of the 4 layers of a 25-6-6-6-5 sigmoid net for 200 stacked
  checkpoints, 1e5 samples each: a Python loop over checkpoints against one compiled call per
  layer (``jax.jit`` of ``jax.vmap``, and the library's ``ei_jax.core.map_params``, with one
  ``fn`` and with a new ``fn`` per key).
* ``--scale``: S1 = W1's layer at 1e9 samples, S2 = vector EI (``ei_jax.ei``) at 1e7 rows.

ei_jax's first call (including compilation) and its steady state (a second call in the same
process with another key) are reported separately; compilations are counted with
``jax.monitoring``. ``--cache``: every ei_jax child runs with ``EI_JAX_CACHE_DIR`` set to one
fresh directory per workload that an untimed child fills first, so each timed first call is a
later process's, loading its programs from JAX's persistent cache. The deep-ei virtualenv is
``.venv-ref`` (``$EI_JAX_REFERENCE_PYTHON`` overrides); it is created with pinned versions if
missing.
"""

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
EI_JAX_CHILD = HERE / "_child_ei_jax.py"
DEEP_EI_CHILD = HERE / "_child_deep_ei.py"
REFERENCE_ENV = "EI_JAX_REFERENCE_PYTHON"
REFERENCE_PINS = ["torch==2.13.0", "deep-ei==0.7.0", "networkx==2.5.1", "numpy==1.26.4",
                  "fast-histogram", "scikit-learn"]

# id: description, sizes (full / --quick), the issue's deep-ei numbers and targets.
WORKLOADS = {
    "W1": dict(what="`ei_parts`, Linear(25,6) no bias, sigmoid, 8 bins", bins=8,
               samples=10_000_000, quick=100_000, issue="≈ 15.7 s, 1.16 GB",
               target="≥ 8× faster, ≤ 400 MB", speedup=8, rss_mb=400),
    "W2": dict(what="`vector_and_pairwise_ei`, same layer", bins=8, samples=10_000_000,
               quick=100_000, issue="≈ 448 s, 14.7 GB", target="≥ 50× faster, ≤ 2 GB",
               speedup=50, rss_mb=2048),
    "W3": dict(what="`ei_parts` of Linear(1,1) sigmoid, 100 weights 0, 0.27, …, 64 bins", bins=64,
               samples=30_000, quick=3_000, n_weights=100, quick_weights=10, issue="≈ 0.19 s",
               target="≥ 5× (one vmapped call)", speedup=5),
    "W4": dict(what="`sensitivity`, Linear(25,6), 8 bins", bins=8, samples=5_000, quick=500,
               issue="≈ 0.31 s", target="≥ 2× (after compile)", speedup=2),
    "W5": dict(what="`ei_parts` automatic (threshold 0.05), Linear(10,10) sigmoid, 64 bins",
               bins=64, threshold=0.05, issue="≈ 0.79 s", target="≥ 2× (after compile)", speedup=2),
    "B1": dict(what="EI_parts of 4 layers of a 25-6-6-6-5 sigmoid net, stacked checkpoints",
               bins=8, samples=100_000, quick=10_000, checkpoints=200, quick_checkpoints=10,
               target="one compiled call faster than a Python loop"),
    "S1": dict(what="`ei_parts` of W1's layer (scale)", bins=8, samples=1_000_000_000,
               quick=10_000_000, target="peak RSS ≤ 500 MB", rss_mb=500),
    "S2": dict(what="vector EI (`ei_jax.ei`) of W1's layer (scale)", bins=8, samples=10_000_000,
               quick=1_000_000, target="peak RSS ≤ 2 GB", rss_mb=2048),
}
DEFAULT = ["W1", "W2", "W3", "W4", "W5", "B1"]
SCALE = ["S1", "S2"]
B1_VARIANTS = ["loop", "vmap", "map_params", "map_params_new_fn"]


def count(text: str) -> int:
    """Parses a sample count such as ``1e7`` or ``30000``."""
    value = float(text)
    if value < 1 or value != int(value):
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}")
    return int(value)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reps", type=int, default=3, help="fresh-process repetitions per side (default 3)")
    p.add_argument("--only", default=None, help="comma-separated workloads, e.g. W1,W3")
    p.add_argument("--quick", action="store_true", help="small sample counts (smoke run)")
    p.add_argument("--skip-deep-ei", action="store_true", help="run the ei_jax side only")
    p.add_argument("--devices", type=int, default=None,
                   help="ei_jax child sees N CPU devices (XLA_FLAGS=--xla_force_host_platform_device_count=N)")
    p.add_argument("--deep-ei-w2-samples", type=count, default=1_000_000,
                   help="deep-ei's sample count for W2 (default 1e6; time and RSS growth are then "
                        "extrapolated linearly to ei_jax's count; 1e7 needs ~450 s and ~15 GB)")
    p.add_argument("--scale", action="store_true",
                   help="ei_jax alone: S1 = W1's layer at 1e9 samples, S2 = vector EI at 1e7 rows")
    p.add_argument("--samples", action="append", default=[], metavar="ID=N",
                   help="override a workload's (ei_jax) sample count, e.g. --samples W1=1e8")
    p.add_argument("--checkpoints", type=count, default=None, help="B1: number of stacked checkpoints")
    p.add_argument("--variants", default=",".join(B1_VARIANTS), help="B1 variants: loop, vmap, map_params, map_params_new_fn, lax.map "
                        "(default: all but lax.map)")
    p.add_argument("--batch-size", type=count, default=None,
                   help="ei_jax batch_size for W1, W2, W4, W5, S1, S2 (default: the library's)")
    p.add_argument("--vmap-batch-size", type=count, default=4096,
                   help="ei_jax batch_size inside jax.vmap / lax.map (W3, B1); default 4096, see README")
    p.add_argument("--rev", default=None,
                   help="measure ei_jax as committed at this git revision (e.g. HEAD): its ei_jax/ is "
                        "exported to a temporary directory put first on the children's PYTHONPATH; "
                        "default: the working tree")
    p.add_argument("--no-steady", action="store_true", help="ei_jax: first call only")
    p.add_argument("--cache", action="store_true",
                   help="ei_jax children load their programs from a persistent compilation cache "
                        "that an untimed child of each workload fills first")
    p.add_argument("--w3-via", choices=("vmap", "map_params"), default="vmap",
                   help="W3's one compiled call: jax.jit of jax.vmap (default), or core.map_params "
                        "(its checks are outputs, so its program can be cached)")
    p.add_argument("--timeout", type=float, default=None, help="seconds per child process")
    p.add_argument("--json", default=None, help="also write every raw measurement to this file")
    p.add_argument("--table-from", default=None, metavar="JSON",
                   help="only print the table of a file written by --json")
    return p.parse_args(argv)


# --- environment -------------------------------------------------------------------------

def machine_info() -> dict:
    info = dict(nproc=os.cpu_count(), python=platform.python_version(), platform=platform.platform())
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        info["cpu"] = next((ln.split(":", 1)[1].strip() for ln in lscpu.splitlines()
                            if ln.startswith("Model name")), "?")
    except OSError:
        info["cpu"] = platform.processor() or "?"
    try:
        with open("/proc/meminfo") as f:
            kb = int(next(ln for ln in f if ln.startswith("MemTotal")).split()[1])
        info["ram_gib"] = round(kb / 2**20, 1)
    except (OSError, StopIteration):
        pass
    info["loadavg_start"] = os.getloadavg()
    git = ["git", "-C", str(ROOT)]
    head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    if head.returncode == 0:
        info["git_head"] = head.stdout.strip()
        dirty = subprocess.run([*git, "status", "--porcelain", "--", "ei_jax"], capture_output=True,
                               text=True).stdout.split("\n")
        info["ei_jax_uncommitted"] = [ln[3:] for ln in dirty if ln.strip()]
    probe = ("import jax, jaxlib, flax; print(jax.__version__, jaxlib.__version__, flax.__version__, "
             "jax.default_backend())")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True).stdout.split()
    if len(out) == 4:
        info.update(jax=out[0], jaxlib=out[1], flax=out[2], backend=out[3])
    return info


def reference_python() -> Path:
    """The deep-ei interpreter; creates ``.venv-ref`` with pinned versions if it is missing."""
    if os.environ.get(REFERENCE_ENV):
        python = Path(os.environ[REFERENCE_ENV])
        if not python.exists():
            sys.exit(f"{REFERENCE_ENV}={python} does not exist.")
        return python
    python = ROOT / ".venv-ref" / "bin" / "python"
    if not python.exists():
        print(f"creating the deep-ei virtualenv {python.parent.parent} (pinned; takes a few minutes)",
              file=sys.stderr)
        subprocess.run(["python3", "-m", "venv", str(ROOT / ".venv-ref")], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--disable-pip-version-check",
                        *REFERENCE_PINS], check=True)
    probe = subprocess.run([str(python), "-c", "import deep_ei, torch; print(torch.__version__)"],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        sys.exit(f"{python} cannot import deep_ei: {probe.stderr.strip()[-400:]}\n"
                 f"Install it: {python} -m pip install {' '.join(REFERENCE_PINS)}")
    return python


def make_weights(path: Path, n_ckpt: int) -> None:
    """The weights both sides measure, torch layout ``[out, in]`` (seeded, deterministic)."""
    rng = np.random.default_rng(20200101)

    def torch_init(n_out, n_in):  # torch.nn.Linear's default: U(-1/sqrt(in), 1/sqrt(in))
        b = 1.0 / np.sqrt(n_in)
        return rng.uniform(-b, b, (n_out, n_in)).astype(np.float32)

    arrays = dict(w1=torch_init(6, 25), w3=(0.27 * np.arange(100)).astype(np.float32),
                  w5=torch_init(10, 10))
    # B1: a training-like random walk of a 25-6-6-6-5 net (weights grow and drift).
    for i, (n_in, n_out) in enumerate([(25, 6), (6, 6), (6, 6), (6, 5)]):
        w = torch_init(n_out, n_in)
        steps = rng.normal(0.0, 0.08, (n_ckpt, n_out, n_in)).astype(np.float32)
        arrays[f"b1_{i}"] = w[None] + np.cumsum(steps, axis=0)
    np.savez(path, **arrays)


# --- children ----------------------------------------------------------------------------

def run_child(python, script, spec: dict, tmp: Path, env=None, timeout=None) -> dict:
    spec_path = tmp / f"spec-{time.monotonic_ns()}.json"
    spec_path.write_text(json.dumps(spec))
    t0 = time.perf_counter()
    try:
        proc = subprocess.run([str(python), str(script), str(spec_path)], capture_output=True,
                              text=True, env=env, timeout=timeout, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return dict(error=f"timed out after {timeout} s")
    process_s = time.perf_counter() - t0
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        return dict(error=f"exit {proc.returncode}: {proc.stderr.strip()[-1500:]}")
    result = json.loads(lines[-1])
    result["process_s"] = process_s
    return result


def ei_jax_env(devices):
    env = dict(os.environ)
    if devices:
        flag = f"--xla_force_host_platform_device_count={devices}"
        env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " " + flag).strip()
    return env


def fmt_n(n):
    """1e7, 3e4 for round counts, else 12,345."""
    e = len(str(n)) - 1
    if n >= 10_000 and n % 10**e == 0:
        return f"{n // 10**e}e{e}"
    return f"{n:,}"


def fmt_s(x):
    if x is None:
        return "–"
    return f"{x:.3g} s" if x < 100 else f"{x:.0f} s"


def fmt_mb(x):
    if x is None:
        return "–"
    return f"{x:.0f} MB" if x < 2000 else f"{x / 1024:.1f} GB"


def fmt_rate(work, s):
    if not work or not s:
        return "–"
    r = work / s
    for unit, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if r >= div:
            return f"{r / div:.3g} {unit}/s"
    return f"{r:.3g} /s"


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def summarize_value(v):
    if isinstance(v, list):
        flat = np.asarray(v, dtype=np.float64).ravel()
        if len(flat) <= 2:
            return "/".join(f"{x:.4f}" for x in flat)
        return f"mean {flat.mean():.4f}"
    return f"{v:.4f}" if isinstance(v, float) else str(v)


# --- main --------------------------------------------------------------------------------

def main(argv=None):
    args = parse_args(argv)
    if args.table_from:
        saved = json.loads(Path(args.table_from).read_text())
        args.reps = max(len(runs) for sides in saved["raw"].values() for runs in sides.values())
        print("machine:", json.dumps(saved["machine"]))
        print(make_table(list(saved["raw"]), saved["raw"], {}, args))
        return saved["raw"]
    if args.only:
        ids = [w.strip().upper() for w in args.only.split(",") if w.strip()]
    else:
        ids = SCALE if args.scale else DEFAULT
    unknown = [w for w in ids if w not in WORKLOADS]
    if unknown:
        sys.exit(f"unknown workload(s) {unknown}; choose from {list(WORKLOADS)}")
    overrides = {}
    for item in args.samples:
        wid, _, n = item.partition("=")
        overrides[wid.strip().upper()] = count(n)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    deep_ids = [w for w in ids if w.startswith("W")] if not args.skip_deep_ei else []

    info = machine_info()
    info["command"] = " ".join(["python", "benchmarks/run.py", *(sys.argv[1:] if argv is None else argv)])
    ref = reference_python() if deep_ids else None
    if ref is not None:
        v = subprocess.run([str(ref), "-c", "import torch, deep_ei, numpy; print(torch.__version__, "
                            "numpy.__version__)"], capture_output=True, text=True).stdout.split()
        info["torch"], info["numpy_ref"] = (v + ["?", "?"])[:2]
        info["reference_python"] = str(ref)
    print("machine:", json.dumps(info), flush=True)

    tmp = Path(tempfile.mkdtemp(prefix="ei_jax_bench_"))
    env = ei_jax_env(args.devices)
    raw = {}
    try:
        if args.rev:
            src = tmp / "src"
            src.mkdir()
            archive = subprocess.run(["git", "-C", str(ROOT), "archive", args.rev, "ei_jax"],
                                     capture_output=True, check=True).stdout
            subprocess.run(["tar", "-x", "-C", str(src)], input=archive, check=True)
            env["PYTHONPATH"] = os.pathsep.join(p for p in (str(src), env.get("PYTHONPATH")) if p)
            rev = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", args.rev],
                                 capture_output=True, text=True, check=True).stdout.strip()
            print(f"measuring ei_jax at {args.rev} = {rev} (exported to {src})", flush=True)
        n_ckpt = args.checkpoints or WORKLOADS["B1"]["quick_checkpoints" if args.quick else "checkpoints"]
        weights = tmp / "weights.npz"
        make_weights(weights, n_ckpt)
        for wid in ids:
            wl = WORKLOADS[wid]
            samples = overrides.get(wid, wl.get("quick" if args.quick else "samples"))
            base = dict(workload=wid, weights=str(weights), bins=wl["bins"], samples=samples,
                        threshold=wl.get("threshold"))
            jax_spec = dict(base, batch_size=args.batch_size)
            deep_spec = dict(base)
            if wid in ("W3", "B1"):
                jax_spec["batch_size"] = args.vmap_batch_size
            if wid == "W3":
                jax_spec["via"] = args.w3_via
            if wid == "W3" and args.quick:
                arrays = dict(np.load(weights))
                arrays["w3"] = arrays["w3"][:wl["quick_weights"]]
                w3 = tmp / "weights_w3_quick.npz"
                np.savez(w3, **arrays)
                jax_spec["weights"] = deep_spec["weights"] = str(w3)
            if wid == "W2":
                deep_spec["samples"] = min(args.deep_ei_w2_samples, samples)
            if wid == "B1":
                jax_spec["layers"] = 4
            sides = []
            if wid in deep_ids:
                sides.append(("deep_ei", ref, DEEP_EI_CHILD, deep_spec, None))
            if wid == "B1":
                for v in variants:
                    sides.append((f"ei_jax {v}", sys.executable, EI_JAX_CHILD, dict(jax_spec, variant=v), env))
            else:
                sides.append(("ei_jax", sys.executable, EI_JAX_CHILD, jax_spec, env))
            if args.cache:
                for k, (name, python, script, spec, child_env) in enumerate(sides):
                    if name == "deep_ei":
                        continue
                    cache = tmp / f"cache-{wid}-{k}"
                    child_env = dict(child_env, EI_JAX_CACHE_DIR=str(cache))
                    sides[k] = (name, python, script, spec, child_env)
                    res = run_child(python, script, dict(spec, seeds=[0]), tmp, child_env, args.timeout)
                    print(f"{wid} {name} filling the cache: {brief(res)}", flush=True)
            for rep in range(args.reps):
                order = sides if rep % 2 == 0 else sides[::-1]  # alternate who goes first
                for name, python, script, spec, child_env in order:
                    seeds = [rep] if name == "deep_ei" else [1000 * rep + 1, 1000 * rep + 2]
                    if name != "deep_ei" and (args.no_steady or wid.startswith("S")):
                        seeds = seeds[:1]
                    res = run_child(python, script, dict(spec, seeds=seeds), tmp, child_env, args.timeout)
                    res["samples"] = spec.get("samples")
                    if args.rev and name != "deep_ei" and "error" not in res \
                            and not res["ei_jax_file"].startswith(str(tmp)):
                        sys.exit(f"the ei_jax child imported {res['ei_jax_file']}, not the export of {args.rev}")
                    raw.setdefault(wid, {}).setdefault(name, []).append(res)
                    print(f"{wid} {name} rep {rep + 1}/{args.reps}: {brief(res)}", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    info["loadavg_end"] = os.getloadavg()
    table = make_table(ids, raw, overrides, args)
    print()
    print(table)
    if args.json:
        Path(args.json).write_text(json.dumps(dict(machine=info, raw=raw), indent=1))
    return raw


def brief(res):
    if "error" in res:
        return "ERROR " + res["error"].splitlines()[-1][:300] if res["error"] else "ERROR"
    calls = res["calls"]
    parts = [f"{c['wall_s']:.3f} s" + (f" ({c['compiles']} compiles, {c['compile_s']:.2f} s)"
                                        if "compiles" in c else "") for c in calls]
    return (", ".join(parts) + f"; peak RSS {res['peak_rss_mb']:.0f} MB "
            f"(after imports {res['rss_import_mb']:.0f} MB); value {summarize_value(calls[0]['value'])}")


class Side:
    """Medians over the repetitions of one side of one workload."""

    def __init__(self, runs):
        ok = [r for r in runs if "error" not in r]
        self.errors = [r["error"] for r in runs if "error" in r]
        self.n = len(ok)
        self.first = median([r["calls"][0]["wall_s"] for r in ok])
        self.steady = median([r["calls"][1]["wall_s"] for r in ok if len(r["calls"]) > 1])
        self.compile_s = median([r["calls"][0].get("compile_s") for r in ok])
        self.compiles = max((r["calls"][0].get("compiles", 0) for r in ok), default=None)
        self.steady_compiles = max((r["calls"][1].get("compiles", 0) for r in ok if len(r["calls"]) > 1),
                                   default=None)
        self.steady_compile_s = median([r["calls"][1].get("compile_s") for r in ok if len(r["calls"]) > 1])
        self.rss = max((r["peak_rss_mb"] for r in ok), default=None)
        self.rss_import = median([r["rss_import_mb"] for r in ok])
        self.work = ok[0]["work"] if ok else None
        self.samples = ok[0]["samples"] if ok else None
        self.value = ok[0]["calls"][0]["value"] if ok else None
        self.values = [r["calls"][0]["value"] for r in ok]
        self.devices = ok[0].get("devices") if ok else None
        # Time of the work without compilation: the steady call, else the first call minus compile.
        if self.steady is not None:
            self.best = self.steady
        elif self.first is not None:
            self.best = max(self.first - (self.compile_s or 0.0), 1e-9)
        else:
            self.best = None


def verdict(ok):
    return "**yes**" if ok else "**no**"


def make_table(ids, raw, overrides, args) -> str:
    lines = [
        "| id | workload | deep-ei (median) | deep-ei peak RSS | ei_jax first call (compile) "
        "| ei_jax steady | ei_jax peak RSS | ei_jax throughput | ratio steady / first | value deep-ei / ei_jax "
        "| target | met? |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    notes = []
    for wid in ids:
        wl = WORKLOADS[wid]
        if wid == "B1":
            lines += b1_rows(raw.get(wid, {}), wl, notes)
            continue
        j = Side(raw.get(wid, {}).get("ei_jax", []))
        d = Side(raw[wid]["deep_ei"]) if "deep_ei" in raw.get(wid, {}) else None
        for side, s in (("ei_jax", j), ("deep-ei", d)):
            if s is not None and s.errors:
                notes.append(f"{wid} {side}: {len(s.errors)} failed run(s): {s.errors[0][-300:]}")
        what = f"{wl['what']}, {fmt_n(j.samples)} samples" if j.samples else wl["what"]
        d_time = d_rss = None
        d_cell = d_rss_cell = "–"
        if d is not None and d.first is not None:
            d_time, d_rss = d.first, d.rss
            d_cell, d_rss_cell = fmt_s(d_time), fmt_mb(d_rss)
            if wid == "W2" and d.samples and j.samples and d.samples < j.samples:
                f = j.samples / d.samples
                d_time = d.first * f
                d_rss = d.rss_import + (d.rss - d.rss_import) * f
                d_cell = f"~{fmt_s(d_time)} (extrapolated ×{f:.3g} from {fmt_s(d.first)} at {fmt_n(d.samples)})"
                d_rss_cell = f"~{fmt_mb(d_rss)} (extrap. from {fmt_mb(d.rss)})"
                notes.append(f"W2: deep-ei ran {fmt_n(d.samples)} samples; its time and its RSS above the "
                             f"post-import baseline ({d.rss_import:.0f} MB) are scaled ×{f:.3g} linearly.")
        first = (f"{fmt_s(j.first)} ({j.compiles} compiles, {fmt_s(j.compile_s)})"
                 if j.first is not None else "–")
        first += recompiled(j)
        r_steady = d_time / j.steady if d_time and j.steady else None
        r_first = d_time / j.first if d_time and j.first else None
        ratio = " / ".join(f"{r:.2f}×" if r else "–" for r in (r_steady, r_first))
        dv = summarize_value(d.value) if d is not None and d.value is not None else "–"
        jv = summarize_value(j.value) if j.value is not None else "–"
        met = []
        if "speedup" in wl and r_steady:
            met.append(f"speed (steady) {verdict(r_steady >= wl['speedup'])}")
        if "speedup" in wl and r_first:
            met.append(f"speed (first call) {verdict(r_first >= wl['speedup'])}")
        if "rss_mb" in wl and j.rss:
            met.append(f"RSS {verdict(j.rss <= wl['rss_mb'])}")
        lines.append(
            f"| {wid} | {what} | {d_cell} | {d_rss_cell} | {first} | {fmt_s(j.steady)} | {fmt_mb(j.rss)} "
            f"| {fmt_rate(j.work, j.best)} | {ratio} | {dv} / {jv} | {wl['target']} | {'; '.join(met) or '–'} |")
    lines.append("")
    runs = [r for sides in raw.values() for name, rs in sides.items() if name != "deep_ei"
            for r in rs if "error" not in r]
    if runs:
        lines.append(f"ei_jax {runs[0]['jax_version']} ran on backend {runs[0]['backend']} with "
                     f"{runs[0]['devices']} device(s). ")
    if args.cache:
        lines.append("ei_jax's first calls load their programs from a persistent compilation cache "
                     "filled by an untimed process (--cache). ")
    if args.w3_via == "map_params" and "W3" in ids:
        lines.append("W3 runs as one core.map_params call (--w3-via map_params). ")
    lines.append(f"Medians over {args.reps} fresh-process repetition(s) per side; peak RSS is the largest "
                 "ru_maxrss over the repetitions and includes the interpreter and its imports "
                 "(ei_jax: jax + flax; deep-ei: torch). 'steady' is a second call in the same process with "
                 "another key; 'compile' is the time jax.monitoring attributes to tracing, lowering and "
                 "compiling during the first call. Ratios are deep-ei time / ei_jax time. Throughput = "
                 "samples (W3: × weights, W4: × inputs, B1: × checkpoints × layers) / steady time "
                 "(without a steady call: / (first call − compile)).")
    for note in notes:
        lines.append(f"- {note}")
    return "\n".join(lines)


def recompiled(side):
    if not side.steady_compiles:
        return ""
    return (f"; **the steady call compiled again** ({side.steady_compiles} compiles, "
            f"{fmt_s(side.steady_compile_s)})")


def b1_rows(runs, wl, notes):
    sides = {name: Side(rs) for name, rs in runs.items()}
    loop = sides.get("ei_jax loop")
    rows = []
    for name, s in sides.items():
        if s.errors:
            notes.append(f"B1 {name}: {len(s.errors)} failed run(s): {s.errors[0][-300:]}")
        n_ckpt = len(s.value[0]) if s.value else 0
        what = f"{wl['what']}: {n_ckpt} ckpts × 4 layers × {fmt_n(s.samples)} samples, **{name[7:]}**" \
            if s.samples else wl["what"]
        first = f"{fmt_s(s.first)} ({s.compiles} compiles, {fmt_s(s.compile_s)})" if s.first else "–"
        first += recompiled(s)
        if loop is not None and loop.best and s.best and name != "ei_jax loop":
            ratio = f"{loop.best / s.best:.2f}× / {loop.first / s.first:.2f}× vs loop"
            met = f"{verdict(loop.best > s.best)} (steady)"
            diff = np.max(np.abs(np.asarray(s.value) - np.asarray(loop.value)))
            value = f"max \\|Δ\\| vs loop {diff:.1e} bits"
        else:
            ratio, met, value = "(baseline)", "–", summarize_value(s.value) if s.value else "–"
        rows.append(f"| B1 | {what} | – | – | {first} | {fmt_s(s.steady)} | {fmt_mb(s.rss)} "
                    f"| {fmt_rate(s.work, s.best)} | {ratio} | {value} | {wl['target']} | {met} |")
    return rows


if __name__ == "__main__":
    main()
