"""The paper's toy figure computed exactly: EI_parts of a 1 -> 1 layer against its weight.

Sigmoid, tanh and ReLU (noise over (0, 1) for ReLU, as the paper), 8, 16, 32 and 64 bins,
540 weights 0 ... 27: each curve is ONE call, ``jax.vmap`` of the pure exact core over the
stack of weights; no samples, so no noise and no plug-in bias (compare
``examples/toy_ei_vs_weight.py``, the same figure from 30,000 samples per weight).

    python examples/toy_exact.py --out docs/        # writes toy_exact.png
    python examples/toy_exact.py --fast             # fewer weights and bin counts (CI)
"""

import argparse
import os
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from ei_jax import exact

ACTIVATIONS = {"sigmoid": (0.0, 1.0), "tanh": (-1.0, 1.0), "relu": (0.0, 1.0)}
BINS = (8, 16, 32, 64)


def curve(activation, weights, *, bins):
    """Exact EI_parts (bits, ``(W,)``) of ``y = act(w x)`` for every weight, in one vmapped call."""
    rng = ACTIVATIONS[activation]
    f = jax.vmap(lambda w: exact.exact_ei_parts_matrix(
        w, None, activation=activation, in_range=rng, in_bins=bins, out_range=rng,
        out_bins=bins)[0, 0])
    return np.asarray(f(jnp.asarray(weights, jnp.float32).reshape(-1, 1, 1)))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--fast", action="store_true", default=os.environ.get("EI_JAX_EXAMPLES_FAST") == "1",
                   help="fewer weights and bin counts (also: EI_JAX_EXAMPLES_FAST=1)")
    p.add_argument("--out", default=".", help="directory for toy_exact.png")
    args = p.parse_args(argv)
    weights = np.linspace(0.0, 27.0, 28 if args.fast else 540)
    bins = BINS[:2] if args.fast else BINS
    t0 = time.perf_counter()
    curves = {(a, b): curve(a, weights, bins=b) for a in ACTIVATIONS for b in bins}
    seconds = time.perf_counter() - t0
    print(f"{len(weights)} weights x {len(ACTIVATIONS)} activations x {len(bins)} bin counts, "
          f"exact: {seconds:.2f} s (including compilation)")
    for a in ACTIVATIONS:
        print(f"{a:8s} max EI_parts: " + ", ".join(
            f"{b} bins {curves[a, b].max():.3f} at w = {weights[curves[a, b].argmax()]:.2f}" for b in bins))

    from matplotlib import colormaps
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 3.6), layout="constrained")
    axes = fig.subplots(1, 3, sharey=True)
    for ax, a in zip(axes, ACTIVATIONS):
        for i, b in enumerate(bins):
            ax.plot(weights, curves[a, b], color=colormaps["Blues"](0.35 + 0.65 * i / max(1, len(bins) - 1)),
                    label=f"{b} bins")
        ax.set_title(f"{a}, noise over {ACTIVATIONS[a]}")
        ax.set_xlabel("A → B weight")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("exact $EI_{parts}$ (bits)")
    axes[0].legend()
    fig.suptitle("EI of a 1 → 1 layer against its weight, exact (infinite samples)")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    fig.savefig(out / "toy_exact.png", dpi=120)
    print(f"wrote {out / 'toy_exact.png'}")
    return dict(weights=weights, curves=curves, seconds=seconds)


if __name__ == "__main__":
    main()
