"""What several CPU devices buy: ei_jax on 1 and 2 host devices, W1 / W2 / W5 of ``run.py``.

Each run is a fresh ``_child_ei_jax.py`` process (the workloads, weights and timing of
``run.py``) started with ``XLA_FLAGS=--xla_force_host_platform_device_count=N``; 1- and
2-device runs alternate and swap who goes first every repetition. Each child makes a first
call (compilation included) and a steady call (another key); the values of the two device
counts must be identical, as the sharding promises.

    .venv/bin/python benchmarks/devices.py                    # W1, W2, W5; 3 repetitions
    .venv/bin/python benchmarks/devices.py --only W1 --reps 5 --devices 1,2,4
"""

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as bench  # noqa: E402  (benchmarks/run.py: workloads, weights, child runner)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", default="W1,W2,W5", help="workloads (default W1,W2,W5)")
    p.add_argument("--devices", default="1,2", help="device counts to compare (default 1,2)")
    p.add_argument("--reps", type=int, default=3, help="fresh-process repetitions per count")
    p.add_argument("--quick", action="store_true", help="run.py's small sample counts")
    args = p.parse_args(argv)
    counts = [int(n) for n in args.devices.split(",")]
    ids = [w.strip().upper() for w in args.only.split(",") if w.strip()]
    tmp = Path(tempfile.mkdtemp(prefix="ei_jax_devices_"))
    weights = tmp / "weights.npz"
    bench.make_weights(weights, 1)
    print("machine:", bench.machine_info(), flush=True)
    rows = []
    for wid in ids:
        wl = bench.WORKLOADS[wid]
        spec = dict(workload=wid, weights=str(weights), bins=wl["bins"],
                    samples=wl.get("quick" if args.quick else "samples"), threshold=wl.get("threshold"),
                    batch_size=None)
        runs = {n: [] for n in counts}
        for rep in range(args.reps):
            for n in (counts if rep % 2 == 0 else counts[::-1]):
                res = bench.run_child(sys.executable, bench.EI_JAX_CHILD,
                                      dict(spec, seeds=[1000 * rep + 1, 1000 * rep + 2]), tmp,
                                      bench.ei_jax_env(n))
                if "error" in res:
                    sys.exit(f"{wid} on {n} devices failed: {res['error']}")
                assert res["devices"] == n, res["devices"]
                runs[n].append(res)
                first, steady = res["calls"]
                print(f"{wid} devices={n} rep {rep}: first {first['wall_s']:.3f} s, steady "
                      f"{steady['wall_s']:.3f} s, value {steady['value']}", flush=True)
        for rep in range(args.reps):  # same seeds, so the values must agree exactly
            values = {n: [c["value"] for c in runs[n][rep]["calls"]] for n in counts}
            if len({repr(v) for v in values.values()}) != 1:
                sys.exit(f"{wid}: values differ between device counts: {values}")
        med = {n: (statistics.median(r["calls"][0]["wall_s"] for r in runs[n]),
                   statistics.median(r["calls"][1]["wall_s"] for r in runs[n])) for n in counts}
        one = med[counts[0]]
        for n in counts:
            rows.append(f"| {wid} | {wl['what']} | {n} | {med[n][0]:.3f} s | {med[n][1]:.3f} s | "
                        f"{one[1] / med[n][1]:.2f}× | identical |")
    print("\n| id | workload | CPU devices | first call (median) | steady (median) | "
          "speed-up (steady) vs 1 device | values |")
    print("|---|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
