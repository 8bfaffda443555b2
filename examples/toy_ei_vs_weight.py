"""The paper's toy figure: EI_parts of a 1 -> 1 layer against its weight.

For sigmoid, tanh and ReLU and 8, 16, 32 and 64 bins, as in Mattsson, Michaud & Hoel
(2020), Fig. 3: weights 0 ... 27, noise over the activation's range (ReLU: (0, 1), as the
paper), 30,000 samples. Each curve is ONE call: ``jax.vmap`` of the pure core
``ei_jax.core.ei_parts`` over the stack of weights, with the same key for every weight.

    python examples/toy_ei_vs_weight.py --out figures/      # the paper's settings
    python examples/toy_ei_vs_weight.py --fast              # few weights and samples (CI)
"""

import argparse
import os
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from ei_jax import core

ACTIVATIONS = {"sigmoid": (jax.nn.sigmoid, (0.0, 1.0)),
               "tanh": (jnp.tanh, (-1.0, 1.0)),
               "relu": (jax.nn.relu, (0.0, 1.0))}
BINS = (8, 16, 32, 64)


def make_apply(fn):
    def apply(w, x):  # one weight, shape (1, 1); x: (C, 1)
        return fn(x @ w)

    return apply


APPLY = {name: make_apply(fn) for name, (fn, _) in ACTIVATIONS.items()}  # defined once: compiled once


def ei_parts_vs_weight(key, activation, weights, *, bins, samples):
    """EI_parts (bits, float32 ``(W,)``) of ``y = act(w x)`` for each ``w`` in ``weights``."""
    lo_hi = ACTIVATIONS[activation][1]
    ws = jnp.asarray(weights, jnp.float32).reshape(-1, 1, 1)
    f = jax.vmap(lambda w: core.ei_parts(key, APPLY[activation], w, in_shape=(1,), in_range=lo_hi,
                                         in_bins=bins, out_range=lo_hi, out_bins=bins,
                                         samples=samples, batch_size=4096))
    return f(ws)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--fast", action="store_true", default=os.environ.get("EI_JAX_EXAMPLES_FAST") == "1",
                   help="few weights and samples (also: EI_JAX_EXAMPLES_FAST=1)")
    p.add_argument("--out", default=".", help="directory for toy_ei_vs_weight.png")
    args = p.parse_args(argv)
    weights = np.arange(0, 27, 1.0 if args.fast else 0.05)
    samples = 4_000 if args.fast else 30_000
    bins = BINS[:1] if args.fast else BINS  # each bin count is its own compiled program
    key = jax.random.key(0)
    curves = {(a, b): np.asarray(ei_parts_vs_weight(key, a, weights, bins=b, samples=samples))
              for a in ACTIVATIONS for b in bins}
    for a in ACTIVATIONS:
        peak = {b: float(curves[a, b].max()) for b in bins}
        print(f"{a:8s} max EI_parts over weights: " + ", ".join(f"{b} bins {v:.2f}" for b, v in peak.items()))

    from matplotlib import colormaps
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 3.6), layout="constrained")
    axes = fig.subplots(1, 3, sharey=True)
    for ax, a in zip(axes, ACTIVATIONS):
        for i, b in enumerate(bins):
            ax.plot(weights, curves[a, b], color=colormaps["Blues"](0.35 + 0.65 * i / max(1, len(bins) - 1)),
                    label=f"{b} bins")
        ax.set_title(f"{a}, noise over {ACTIVATIONS[a][1]}")
        ax.set_xlabel("A → B weight")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("$EI_{parts}$ (bits)")
    axes[0].legend()
    fig.suptitle(f"EI of a 1 → 1 layer against its weight ({samples:,} samples)")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    fig.savefig(out / "toy_ei_vs_weight.png", dpi=120)
    print(f"wrote {out / 'toy_ei_vs_weight.png'}")
    return dict(weights=weights, curves=curves)


if __name__ == "__main__":
    main()
