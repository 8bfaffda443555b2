"""Calibration of ``Estimate``: do the 95% intervals of the corrected EI_parts cover the exact
value, is the standard error the spread of the corrected values, and where the correction is
unreliable does ``Estimate.limited`` (the convenient API's ``SampleLimitedWarning``) say so?

Each row: one layer and sample size, ``--keys`` keys in one compiled call of
``ei_jax.core.ei_parts_estimate`` under ``jax.vmap``, against ``ei_jax.exact``. Coverage and
stderr / spread are over the keys not flagged ``limited``; "warned" is the fraction flagged.

    .venv/bin/python benchmarks/calibration.py [--keys 100] [--quick]
"""

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

from ei_jax import core
from ei_jax._src.exact.kernel import exact_ei_parts_matrix

ACTIVATIONS = {"sigmoid": (jax.nn.sigmoid, (0.0, 1.0)), "tanh": (jnp.tanh, (-1.0, 1.0)),
               "relu": (jax.nn.relu, (0.0, 10.0))}
#: (n_in, n_out, activation, bins, samples, weight scale, seed).
LAYERS = (
    (2, 2, "sigmoid", 8, 2_000, 2.0, 0), (2, 2, "tanh", 64, 20_000, 4.0, 3),
    (3, 2, "tanh", 64, 20_000, 10.0, 1), (3, 2, "tanh", 64, 50_000, 10.0, 1),
    (5, 5, "sigmoid", 64, 20_000, 2.0, 0), (5, 5, "sigmoid", 64, 200_000, 2.0, 0),
    (4, 5, "sigmoid", 256, 100_000, 2.0, 0), (4, 3, "relu", 16, 5_000, 10.0, 0),
    (6, 4, "relu", 32, 20_000, 10.0, 0), (10, 10, "sigmoid", 64, 100_000, 2.0, 0),
    (25, 6, "sigmoid", 8, 20_000, 2.0, 0), (2, 2, "sigmoid", 256, 200_000, 2.0, 0),
    (20, 10, "sigmoid", 64, 200_000, 2.0, 0), (3, 3, "sigmoid", 256, 50_000, 2.0, 0),
)


def layer(n_in, n_out, act, scale, seed):
    return jax.random.normal(jax.random.key(100 + seed), (n_in, n_out)) * scale / np.sqrt(n_in)


def calibrate(n_in, n_out, act, bins, samples, scale, seed, keys):
    """``dict`` of one row: exact, means, coverage, stderr / spread and warned fraction."""
    fn, out_range = ACTIVATIONS[act]
    w = layer(n_in, n_out, act, scale, seed)
    exact = float(np.sum(np.asarray(exact_ei_parts_matrix(
        w, None, activation=act, in_range=(0, 1), in_bins=bins, out_range=out_range,
        out_bins=bins), np.float64)))
    kw = dict(in_shape=(n_in,), in_range=(0.0, 1.0), in_bins=bins, out_range=out_range,
              out_bins=bins, samples=samples)
    one = jax.jit(jax.vmap(lambda k: core.ei_parts_estimate(k, lambda p, x: fn(x @ p), w, **kw)))
    est = one(jax.random.split(jax.random.key(7), keys))
    v, c, s = (np.asarray(a, np.float64) for a in (est.value, est.corrected, est.stderr))
    warned = np.asarray(est.limited, bool)
    ok = ~warned
    cover = np.mean(np.abs(c - exact)[ok] <= 1.96 * s[ok]) if ok.any() else np.nan
    ratio = s[ok].mean() / c[ok].std(ddof=1) if ok.sum() > 2 else np.nan
    return dict(exact=exact, plugin=v.mean() - exact, corrected=c.mean() - exact, stderr=s.mean(),
                cover=cover, ratio=ratio, warned=warned.mean(), ok=int(ok.sum()))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keys", type=int, default=100)
    ap.add_argument("--quick", action="store_true", help="the first 6 rows only")
    args = ap.parse_args()
    rows = LAYERS[:6] if args.quick else LAYERS
    print(f"{args.keys} keys per row; bias = mean over keys minus exact; coverage and stderr/sd over "
          "the keys not flagged limited\n")
    print("| layer | bins | samples | samples / occupied cell | exact | plug-in bias | corrected bias "
          "| stderr | warned | 95% coverage (unwarned) | stderr / sd (unwarned) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for n_in, n_out, act, bins, samples, scale, seed in rows:
        t = time.time()
        r = calibrate(n_in, n_out, act, bins, samples, scale, seed, args.keys)
        cells = occupied(n_in, n_out, act, bins, samples, scale, seed)
        print(f"| {n_in}→{n_out} {act} | {bins} | {samples:,} | {samples / cells:.1f} | {r['exact']:.3f} "
              f"| {r['plugin']:+.3f} | {r['corrected']:+.4f} | {r['stderr']:.4f} | {r['warned']:.0%} "
              f"| {r['cover']:.2f} of {r['ok']} | {r['ratio']:.2f} |", flush=True)
        del t


def occupied(n_in, n_out, act, bins, samples, scale, seed):
    """Mean occupied cells per pair of one run (key 7)."""
    fn, out_range = ACTIVATIONS[act]
    w = layer(n_in, n_out, act, scale, seed)
    counts = core.pairwise_stats(jax.random.key(7), lambda p, x: fn(x @ p), w, in_shape=(n_in,),
                                 in_range=(0.0, 1.0), in_bins=bins, out_range=out_range,
                                 out_bins=bins, samples=samples).counts
    return float(np.mean(np.sum(np.asarray(counts) > 0, axis=(-2, -1))))


if __name__ == "__main__":
    main()
