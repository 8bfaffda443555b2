"""The paper's 2 -> 1 toy surfaces: EI_parts, sensitivity and degeneracy over a weight grid.

``y = sigmoid(w_A x_A + w_B x_B)`` with both weights on a grid over [-10, 10), noise over
(0, 1), 64 bins, as in Mattsson, Michaud & Hoel (2020), Fig. 4. Each surface is ONE call:
``jax.vmap`` of the pure core (``ei_jax.core.ei_parts`` / ``ei_jax.core.sensitivity``) over
the flattened grid of weights, with one key.

    python examples/toy_weight_grid.py --out figures/    # 50 x 50 grid, 10,000 samples
    python examples/toy_weight_grid.py --fast            # 8 x 8 grid, few samples (CI)
"""

import argparse
import os
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from ei_jax import core


def apply(w, x):  # w: (2, 1); x: (C, 2)
    return jax.nn.sigmoid(x @ w)


def surfaces(key, grid, *, bins=64, samples=10_000, sensitivity_samples=None):
    """EI_parts, sensitivity and degeneracy (bits) for every ``(w_A, w_B)`` row of ``grid``."""
    ws = jnp.asarray(grid, jnp.float32).reshape(-1, 2, 1)
    kw = dict(in_shape=(2,), in_range=(0.0, 1.0), in_bins=bins, out_range=(0.0, 1.0), out_bins=bins,
              batch_size=2048)
    ei = jax.vmap(lambda w: core.ei_parts(key, apply, w, samples=samples, **kw))(ws)
    s = jax.vmap(lambda w: core.sensitivity(key, apply, w, samples=sensitivity_samples or samples,
                                            **kw))(ws)
    return np.asarray(ei), np.asarray(s), np.asarray(s - ei)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--fast", action="store_true", default=os.environ.get("EI_JAX_EXAMPLES_FAST") == "1",
                   help="small grid and sample counts (also: EI_JAX_EXAMPLES_FAST=1)")
    p.add_argument("--points", type=int, default=None, help="grid points per axis (default 50)")
    p.add_argument("--out", default=".", help="directory for toy_weight_grid.png")
    args = p.parse_args(argv)
    n = args.points or (8 if args.fast else 50)
    samples = 2_000 if args.fast else 10_000
    axis = np.linspace(-10.0, 10.0, n, endpoint=False)
    wa, wb = np.meshgrid(axis, axis)
    grid = np.stack([wa.ravel(), wb.ravel()], axis=1)
    ei, s, d = (v.reshape(wa.shape) for v in surfaces(jax.random.key(0), grid, samples=samples))
    print(f"{n} x {n} weights: EI_parts {ei.min():.2f} .. {ei.max():.2f} bits, sensitivity "
          f"{s.min():.2f} .. {s.max():.2f}, degeneracy {d.min():.2f} .. {d.max():.2f}")

    from matplotlib.figure import Figure

    fig = Figure(figsize=(14, 4.8), layout="constrained")
    for i, (z, name, cmap) in enumerate(((ei, "$EI_{parts}$", "Blues"), (s, "sensitivity", "Purples"),
                                         (d, "degeneracy", "Reds"))):
        ax = fig.add_subplot(1, 3, i + 1, projection="3d")
        ax.plot_surface(wa, wb, z, cmap=cmap, linewidth=0)
        ax.set_xticks([-10, -5, 0, 5, 10])
        ax.set_yticks([-10, -5, 0, 5, 10])
        ax.set_box_aspect(None, zoom=0.8)
        ax.set_xlabel("A → C weight")
        ax.set_ylabel("B → C weight")
        ax.set_zlabel(f"{name} (bits)")
        ax.set_title(name)
    fig.suptitle(f"2 → 1 sigmoid layer, 64 bins, {samples:,} samples")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    fig.savefig(out / "toy_weight_grid.png", dpi=110)
    print(f"wrote {out / 'toy_weight_grid.png'}")
    return dict(grid=grid, ei_parts=ei, sensitivity=s, degeneracy=d)


if __name__ == "__main__":
    main()
