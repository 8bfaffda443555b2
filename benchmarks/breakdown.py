"""Where ei_jax's time goes on W1's layer: the stages of one sample chunk, timed alone.

    .venv/bin/python benchmarks/breakdown.py [--samples 2e6] [--batch-size N] [--bins 8]

Times, for Linear(25, 6) + sigmoid with ``--bins`` bins and the same chunk as ei_jax, a
jitted ``fori_loop`` over chunks of: (1) the noise (``uniform_blocks``), (2) noise + forward
pass, (3) + binning, (4) + pairwise counts with the one-hot kernel, (5) with the bits
kernel, (6) with the scatter kernel; and (7) the public ``ei_jax.core.pairwise_stats``
itself. Each stage is reported in ns per sample (steady state, median of 3); differences
between rows show roughly what a stage costs (not exactly: XLA fuses each stage's program
differently). It reads ei_jax's private modules, so it follows whatever the library does now.
"""

import argparse
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from ei_jax import core
from ei_jax._src.info import binning as _b
from ei_jax._src.info import counting
from ei_jax._src.sampled import spec as _spec
from ei_jax._src.sampled.interventions import BLOCK, uniform_blocks


def apply(w, x):
    return jax.nn.sigmoid(x @ w)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--samples", type=float, default=2e6)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--bins", type=int, default=8)
    args = p.parse_args(argv)
    bins = args.bins
    w = jnp.asarray(np.random.default_rng(0).uniform(-0.2, 0.2, (25, 6)), jnp.float32)
    kw = dict(in_shape=(25,), in_range=(0.0, 1.0), in_bins=bins, out_range=(0.0, 1.0), out_bins=bins)
    spec = _spec.make_spec(apply, w, batch_size=args.batch_size, **kw)
    m = spec.blocks_per_step
    n_steps = max(1, int(args.samples) // (m * BLOCK))
    samples = n_steps * m * BLOCK
    bx = _b.make_binning("in_bins", (0.0, 1.0), bins, mode=_b.PAIR, clip=False)
    by = _b.make_binning("out_bins", (0.0, 1.0), bins, mode=_b.PAIR, clip=False)

    def stage(level, method=None):
        @jax.jit
        def run(key, w):
            def body(t, acc):
                ids = t * m + jnp.arange(m, dtype=jnp.int32)
                x = uniform_blocks(key, ids, (25,), 0.0, 1.0)
                if level == 1:
                    return acc + jnp.sum(x)  # all of it: XLA would skip unused noise
                y = apply(w, x)
                if level == 2:
                    return acc + jnp.sum(y)
                ix, vx, _ = _b.bin_values(x, bx)
                iy, vy, _ = _b.bin_values(y, by)
                if level == 3:
                    return acc + (jnp.sum(ix) + jnp.sum(iy) + jnp.sum(vx) + jnp.sum(vy)).astype(jnp.float32)
                c = counting.pair_counts(ix, vx, iy, vy, in_bins=bins, out_bins=bins, method=method)
                return acc + c[0, 0, 0, 0].astype(jnp.float32)

            return jax.lax.fori_loop(0, n_steps, body, jnp.float32(0))

        return lambda key: run(key, w)

    stages = [
        ("noise (threefry uniform, 25 per sample)", stage(1)),
        ("+ forward (x @ w, sigmoid)", stage(2)),
        ("+ binning (inputs and outputs)", stage(3)),
        ("+ counts, onehot kernel", stage(4, counting.ONEHOT)),
        ("+ counts, bits kernel", stage(4, counting.BITS)),
        ("+ counts, scatter kernel", stage(4, counting.SCATTER)),
        (f"core.pairwise_stats (method {spec.method!r})",
         lambda key: core.pairwise_stats(key, apply, w, samples=samples, batch_size=args.batch_size,
                                         **kw).counts),
    ]
    print(f"jax {jax.__version__} on {jax.default_backend()} ({jax.device_count()} device(s)); chunk "
          f"{m * BLOCK} samples, {n_steps} chunks = {samples:.3g} samples, {bins} bins")
    for name, f in stages:
        jax.block_until_ready(f(jax.random.key(0)))  # compile
        times = []
        for r in range(3):
            t0 = time.perf_counter()
            jax.block_until_ready(f(jax.random.key(r + 1)))
            times.append(time.perf_counter() - t0)
        t = statistics.median(times)
        print(f"  {name:45s} {1e9 * t / samples:8.1f} ns/sample  ({samples / t / 1e6:.2f} M samples/s)")


if __name__ == "__main__":
    main()
