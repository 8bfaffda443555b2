"""Calibration of ``Estimate``: do the 95% intervals of the corrected EI_parts cover the exact
value, is the standard error the spread of the corrected values, and where the correction is
unreliable does ``Estimate.limited`` (the convenient API's ``SampleLimitedWarning``) say so?

Each row: one layer and sample size, ``--keys`` keys of ``ei_jax.core.ei_parts_estimate``
under ``jax.vmap`` (in chunks of ``--chunk`` keys, one compiled program per row), against
``ei_jax.exact``. Columns: samples per occupied cell (mean over pairs, first key); the mean
error of the corrected value over all keys (bits and standard errors); stderr / sd over all
keys (is the stderr the spread?); the fraction of keys flagged ``limited``; coverage and
stderr / sd over the keys not flagged; the mean error of the flagged keys in their own
standard errors.

    nice -n 10 .venv/bin/python benchmarks/calibration.py --keys 100 --out calibration.md
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
#: (n_in, n_out, activation, bins, samples, weight scale, seed), from few to many samples per
#: occupied cell; 20->10 sigmoid at 64 bins is the README's quick-start layer.
LAYERS = (
    (5, 5, "sigmoid", 64, 5_000, 2.0, 0), (3, 3, "sigmoid", 256, 50_000, 2.0, 0),
    (4, 5, "sigmoid", 256, 100_000, 2.0, 0), (5, 5, "sigmoid", 64, 20_000, 2.0, 0),
    (2, 2, "tanh", 64, 20_000, 4.0, 3), (2, 2, "sigmoid", 256, 200_000, 2.0, 0),
    (3, 2, "tanh", 64, 20_000, 10.0, 1), (2, 2, "tanh", 64, 80_000, 4.0, 3),
    (4, 3, "relu", 16, 5_000, 10.0, 0), (6, 4, "relu", 32, 20_000, 10.0, 0),
    (3, 2, "tanh", 64, 50_000, 10.0, 1), (20, 10, "sigmoid", 64, 200_000, 2.0, 0),
    (4, 3, "relu", 16, 15_000, 10.0, 0), (2, 2, "sigmoid", 8, 2_000, 2.0, 0),
    (3, 3, "sigmoid", 256, 25_000, 2.0, 0), (10, 10, "sigmoid", 64, 100_000, 2.0, 0),
    (20, 10, "sigmoid", 64, 200_000, 1.0, "readme"),
)


def layer(n_in, n_out, act, scale, seed):
    """Gaussian weights ``scale / sqrt(n_in)``; ``seed="readme"``: the README quick start's
    first layer (``nn.Dense(10)`` on 20 inputs, initialised with ``jax.random.key(0)``)."""
    if seed == "readme":
        import flax.linen as nn
        net = nn.Sequential([nn.Dense(10, use_bias=False), nn.sigmoid, nn.Dense(5, use_bias=False),
                             nn.tanh])
        return net.init(jax.random.key(0), jnp.zeros((1, 20)))["params"]["layers_0"]["kernel"]
    return jax.random.normal(jax.random.key(100 + seed), (n_in, n_out)) * scale / np.sqrt(n_in)


def exact_value(n_in, n_out, act, bins, scale, seed):
    _, out_range = ACTIVATIONS[act]
    return float(np.sum(np.asarray(exact_ei_parts_matrix(
        layer(n_in, n_out, act, scale, seed), None, activation=act, in_range=(0, 1),
        in_bins=bins, out_range=out_range, out_bins=bins), np.float64)))


def estimates(n_in, n_out, act, bins, samples, scale, seed, keys, chunk=25, key=7):
    """``(corrected, stderr, limited)`` of ``keys`` keys, float64 / bool ``(keys,)``."""
    fn, out_range = ACTIVATIONS[act]
    w = layer(n_in, n_out, act, scale, seed)
    kw = dict(in_shape=(n_in,), in_range=(0.0, 1.0), in_bins=bins, out_range=out_range,
              out_bins=bins, samples=samples)
    run = jax.jit(jax.vmap(lambda k: core.ei_parts_estimate(k, lambda p, x: fn(x @ p), w, **kw)))
    all_keys = jax.random.split(jax.random.key(key), -(-keys // chunk) * chunk)
    parts = [run(all_keys[i:i + chunk]) for i in range(0, len(all_keys), chunk)]
    c, s, lim = (np.concatenate([np.asarray(getattr(p, f)) for p in parts])[:keys]
                 for f in ("corrected", "stderr", "limited"))
    return c.astype(np.float64), s.astype(np.float64), lim.astype(bool)


def occupied(n_in, n_out, act, bins, samples, scale, seed):
    """Mean occupied cells per pair of one run (key 7)."""
    fn, out_range = ACTIVATIONS[act]
    counts = core.pairwise_stats(jax.random.key(7), lambda p, x: fn(x @ p),
                                 layer(n_in, n_out, act, scale, seed), in_shape=(n_in,),
                                 in_range=(0.0, 1.0), in_bins=bins, out_range=out_range,
                                 out_bins=bins, samples=samples).counts
    return float(np.mean(np.sum(np.asarray(counts) > 0, axis=(-2, -1))))


def summary(exact, c, s, lim):
    """One row's statistics (see the module docstring)."""
    err = (c - exact) / s
    ok = ~lim
    nan = float("nan")
    return dict(
        bias=c.mean() - exact, bias_se=(c.mean() - exact) / s.mean(), stderr=s.mean(),
        ratio_all=s.mean() / c.std(ddof=1), warned=lim.mean(), ok=int(ok.sum()),
        cover=np.mean(np.abs(err[ok]) <= 1.96) if ok.any() else nan,
        ratio=s[ok].mean() / c[ok].std(ddof=1) if ok.sum() > 2 else nan,
        flagged_err=err[lim].mean() if lim.any() else nan)


HEADER = ("| layer | bins | samples | samples / occupied cell | exact | corrected − exact (s.e.) "
          "| stderr | stderr / sd (all keys) | warned | 95% coverage (unwarned) "
          "| stderr / sd (unwarned) | error of warned keys (s.e.) |\n"
          "|---|---|---|---|---|---|---|---|---|---|---|---|")


def row_line(name, bins, samples, cells, exact, r) -> str:
    """One table row from :func:`summary`'s statistics ``r``."""
    return (f"| {name} | {bins} | {samples:,} | {samples / cells:.1f} "
            f"| {exact:.3f} | {r['bias']:+.4f} ({r['bias_se']:+.1f}) | {r['stderr']:.4f} "
            f"| {r['ratio_all']:.2f} | {r['warned']:.0%} | {r['cover']:.2f} of {r['ok']} "
            f"| {r['ratio']:.2f} | {r['flagged_err']:+.1f} |")


def emit(lines, line, started):
    lines.append(line)
    print(line, f"<!-- {time.time() - started:.0f} s -->", flush=True)


def write(out, lines):
    if out:
        with open(out, "w") as f:
            f.write("\n".join(lines) + "\n")


def begin(doc, layers, **extra):
    """The command line of a calibration table (``--keys``, ``--rows``, ``--out`` and
    ``extra``: option name -> ``add_argument`` keywords): ``(args, rows, lines)`` with the
    table's first lines printed."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--keys", type=int, default=100)
    ap.add_argument("--rows", type=str, default=None, help="comma-separated row numbers (0-based)")
    ap.add_argument("--out", type=str, default=None, help="also write the table to this file")
    for name, kw in extra.items():
        ap.add_argument(name, **kw)
    args = ap.parse_args()
    rows = layers if args.rows is None else [layers[int(i)] for i in args.rows.split(",")]
    lines = [f"{args.keys} keys per row; coverage and stderr / sd (unwarned) over the keys not "
             "flagged `Estimate.limited`\n", HEADER]
    print("\n".join(lines), flush=True)
    return args, rows, lines


def main():
    args, rows, lines = begin(__doc__, LAYERS, **{"--chunk": dict(
        type=int, default=25, help="keys per compiled vmap call")})
    for n_in, n_out, act, bins, samples, scale, seed in rows:
        t = time.time()
        exact = exact_value(n_in, n_out, act, bins, scale, seed)
        r = summary(exact, *estimates(n_in, n_out, act, bins, samples, scale, seed, args.keys,
                                      args.chunk))
        cells = occupied(n_in, n_out, act, bins, samples, scale, seed)
        name = f"{n_in}→{n_out} {act}" + (f" ({seed})" if isinstance(seed, str) else "")
        emit(lines, row_line(name, bins, samples, cells, exact, r), t)
    write(args.out, lines)


if __name__ == "__main__":
    main()
