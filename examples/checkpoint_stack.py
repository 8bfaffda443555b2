"""EI_parts of a whole stack of training checkpoints, one call per layer.

Loads the Flax msgpack checkpoints that ``ei-jax reproduce iris`` saved (one per measured
epoch), stacks each layer's kernels into one array ``(checkpoints, n_in, n_out)`` and
measures all of them with ONE call: ``jax.vmap`` of the pure core ``ei_jax.core.ei_parts``
over the stack (``ei_jax.core.sensitivity`` and ``vector_ei`` vmap the same way). With the
key stored in the run's table the numbers are the table's (the core sums the matrix in
float32, the table in float64).

    ei-jax reproduce iris --out runs/iris --sampled && python examples/checkpoint_stack.py --run runs/iris
    python examples/checkpoint_stack.py --fast --out /tmp/stack   # makes a small run first (CI)
"""

import argparse
import json
import os
from pathlib import Path

import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np

from ei_jax import cli, core


def dense_sigmoid(kernel, x):  # one layer of the paper's networks; defined once: compiled once
    return jax.nn.sigmoid(x @ kernel)


def load_stack(run: Path):
    """The run's settings, its epochs and ``{layer: kernels (T, n_in, n_out)}``."""
    results = json.loads((run / "measurements.json").read_text())
    paths = sorted({r["checkpoint"] for r in results["rows"]})
    trees = [flax.serialization.msgpack_restore((run / p).read_bytes())["params"] for p in paths]
    layers = [layer["name"] for layer in results["layers"]]
    stack = {name: jnp.stack([t[name]["kernel"] for t in trees]) for name in layers}
    epochs = sorted({r["epoch"] for r in results["rows"]})
    return results, epochs, stack


def measure_stack(results, stack, layers=None):
    """``{layer: EI_parts (T,)}``, one vmapped call per layer (default: every layer)."""
    m = results["measure"]
    out = {}
    for i, (name, kernels) in enumerate(stack.items()):
        if layers and name not in layers:
            continue
        row = next(r for r in results["rows"] if r["layer"] == name)
        key = jax.random.wrap_key_data(np.asarray(row["key"], np.uint32))  # the table's key
        kw = dict(in_shape=(kernels.shape[1],), in_range=tuple(m["in_range"]) if i == 0 else (0.0, 1.0),
                  in_bins=m["bins"], out_range=(0.0, 1.0), out_bins=m["bins"], samples=m["samples"])
        out[name] = np.asarray(jax.vmap(lambda k: core.ei_parts(key, dense_sigmoid, k, **kw))(kernels))
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--fast", action="store_true", default=os.environ.get("EI_JAX_EXAMPLES_FAST") == "1",
                   help="make a small run (also: EI_JAX_EXAMPLES_FAST=1)")
    p.add_argument("--run", default=None, help="output directory of `ei-jax reproduce iris`")
    p.add_argument("--out", default=".", help="directory for checkpoint_stack.png (and the run)")
    p.add_argument("--layers", nargs="+", default=None, help="layer names (default: all)")
    args = p.parse_args(argv)
    out = Path(args.out)
    run = Path(args.run) if args.run else out / "iris-run"
    if args.run is None:
        small = ["--epochs", "20", "--every", "10", "--samples", "20000", "--sensitivity-samples", "500"]
        # --sampled: the run's table holds deep-ei's plug-in EI_parts, which is what this
        # example measures on the stack (the default table has the exact values)
        rc = cli.main(["reproduce", "iris", "--out", str(run), "--no-progress", "--force", "--sampled",
                       *(small if args.fast else ["--epochs", "1000", "--every", "50"])])
        if rc:
            raise SystemExit(rc)
    results, epochs, stack = load_stack(run)
    measured = measure_stack(results, stack, args.layers)
    worst = 0.0
    for name, ei in measured.items():
        table = [r for r in results["rows"] if r["layer"] == name]
        worst = max(worst, float(np.max(np.abs(ei - [r["ei_parts_plugin"] for r in table]))))
        print(f"{name}: EI_parts over {len(epochs)} checkpoints in one call: "
              + " ".join(f"{v:.2f}" for v in ei))
    print(f"largest difference from the run's table: {worst:.2e} bits")
    assert worst < 1e-3, worst

    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4), layout="constrained")
    ax = fig.subplots()
    labels = {layer["name"]: layer["label"] for layer in results["layers"]}
    for name, ei in measured.items():
        ax.plot(epochs, ei, marker=".", label=f"{labels[name]} ({name})")
    ax.set_xlabel("epoch")
    ax.set_ylabel("$EI_{parts}$ (bits)")
    ax.set_title(f"{len(epochs)} checkpoints, one vmapped call per layer")
    ax.legend()
    ax.grid(alpha=0.3)
    out.mkdir(parents=True, exist_ok=True)
    fig.savefig(out / "checkpoint_stack.png", dpi=120)
    print(f"wrote {out / 'checkpoint_stack.png'}")
    return dict(epochs=epochs, measured=measured, worst=worst)


if __name__ == "__main__":
    main()
