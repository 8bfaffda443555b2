"""Plug-in EI_parts against the sample count, converging to the exact value (docs/bias.png).

A 5 -> 3 sigmoid layer (weights N(0, 2^2), bias N(0, 1), inputs uniform on (0, 1)) measured
by ei_jax's sampled EI_parts -- deep-ei's plug-in estimator -- at 1e3 ... 1e7 samples, at 8,
64 and 256 bins, against the exact (infinite-sample) value from ``ei_jax.exact``. The plug-in
value is biased upward by about (cells - rows - columns + 1) / (2 N ln 2) bits per pair: small
at 8 bins, dominant at 256 bins until N is in the millions.

    python examples/bias.py                  # writes docs/bias.png (~1 min)
    python examples/bias.py --fast           # fewer, smaller sample counts (CI)
"""

import argparse
import math
import os
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

import ei_jax
from ei_jax import exact

BINS = (8, 64, 256)


def layer():
    rng = np.random.default_rng(0)
    kernel = jnp.asarray(rng.normal(size=(5, 3)) * 2.0, jnp.float32)
    bias = jnp.asarray(rng.normal(size=3), jnp.float32)
    net = nn.Sequential([nn.Dense(3), nn.sigmoid])
    x0 = jnp.zeros((1, 5))
    return ei_jax.topology_of(net, {"params": {"layers_0": {"kernel": kernel, "bias": bias}}}, x0)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--fast", action="store_true", default=os.environ.get("EI_JAX_EXAMPLES_FAST") == "1",
                   help="fewer, smaller sample counts (also: EI_JAX_EXAMPLES_FAST=1)")
    p.add_argument("--out", default="docs", help="directory for bias.png")
    args = p.parse_args(argv)
    top = layer()
    counts = [1_000, 10_000] if args.fast else [10 ** k for k in range(3, 8)]
    kw = dict(in_range=(0, 1), out_range=(0, 1))
    exact_values, plug_in = {}, {}
    for bins in BINS:
        exact_values[bins] = exact.ei_parts(top, "layers_0", in_bins=bins, out_bins=bins, **kw)
        plug_in[bins] = [ei_jax.ei_parts(jax.random.key(n), top, "layers_0", samples=n, in_bins=bins,
                                         out_bins=bins, **kw) for n in counts]
        print(f"{bins:3d} bins: exact {exact_values[bins]:.4f} bits; plug-in "
              + ", ".join(f"{n:.0e}: {v:.4f}" for n, v in zip(counts, plug_in[bins])))

    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.2), layout="constrained")
    ax = fig.subplots()
    for i, bins in enumerate(BINS):
        color = f"C{i}"
        ax.plot(counts, plug_in[bins], "o-", color=color, label=f"plug-in, {bins} bins")
        ax.axhline(exact_values[bins], color=color, ls="--", lw=1, label=f"exact, {bins} bins")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("samples N")
    ax.set_ylabel("$EI_{parts}$ (bits)")
    ax.set_title("5 → 3 sigmoid layer: plug-in EI_parts → exact", fontsize=11)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, ncol=2)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    fig.savefig(out / "bias.png", dpi=120)
    print(f"wrote {out / 'bias.png'}")
    gap = {b: plug_in[b][-1] - exact_values[b] for b in BINS}
    print("plug-in minus exact at the largest N: " + ", ".join(f"{b} bins {g:+.4f}" for b, g in gap.items())
          + f" (bias formula scale: cells / (2 N ln 2) = {256 * 256 / (2 * counts[-1] * math.log(2)):.3g}"
          " bits per pair at 256 bins)")
    return dict(counts=counts, exact=exact_values, plug_in=plug_in)


if __name__ == "__main__":
    main()
