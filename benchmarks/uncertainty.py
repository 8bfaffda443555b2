"""How much to trust a number: plug-in vs bias-corrected vs exact EI_parts, and what the
correction saves in samples.

Part 1 (the README's table): EI_parts of three sigmoid layers at 8, 64 and 256 bins, the
plug-in (deep-ei's estimator) and ei_jax's corrected value with its standard error, as mean
and spread over keys, against the exact value (``ei_jax.exact``).

Part 2 (the issue's goal): for a 10 -> 10 sigmoid layer at 64 bins, the fewest samples (on a
doubling grid) at which the mean corrected estimate is within 0.01 bits of the exact value,
and the same for the plug-in.

    .venv/bin/python benchmarks/uncertainty.py [--keys 10] [--quick]
"""

import argparse
import time

import jax
import numpy as np

from ei_jax import core
from ei_jax._src.exact.kernel import exact_ei_parts_matrix


def sigmoid_apply(w, x):
    return jax.nn.sigmoid(x @ w)


def layer(n_in, n_out, seed=0, scale=2.0):
    return jax.random.normal(jax.random.key(100 + seed), (n_in, n_out)) * scale / np.sqrt(n_in)


def exact(w, bins):
    return float(np.sum(exact_ei_parts_matrix(w, None, activation="sigmoid", in_range=(0, 1),
                                              in_bins=bins, out_range=(0, 1), out_bins=bins)))


def over_keys(w, bins, samples, keys):
    kw = dict(in_shape=(w.shape[0],), in_range=(0, 1), in_bins=bins, out_range=(0, 1), out_bins=bins)
    ks = jax.random.split(jax.random.key(1), keys)
    est = jax.lax.map(lambda k: core.ei_parts_estimate(k, sigmoid_apply, w, samples=samples, **kw), ks,
                      batch_size=min(keys, 10))
    return np.asarray(est.value), np.asarray(est.corrected), np.asarray(est.stderr)


def table(keys):
    print("| layer | bins | samples | exact | plug-in | corrected ± stderr | coverage of 95% interval |")
    print("|---|---|---|---|---|---|---|")
    for (n_in, n_out), bins, samples in (((25, 6), 8, 20_000), ((5, 5), 64, 20_000),
                                         ((5, 5), 64, 200_000), ((4, 5), 256, 100_000)):
        w = layer(n_in, n_out)
        e = exact(w, bins)
        v, c, s = over_keys(w, bins, samples, keys)
        cover = np.mean(np.abs(c - e) < 1.96 * s)
        print(f"| {n_in}->{n_out} | {bins} | {samples:,} | {e:.3f} | {v.mean():.3f} (sd {v.std(ddof=1):.3f}) "
              f"| {c.mean():.3f} ± {s.mean():.3f} (sd {c.std(ddof=1):.3f}) | {cover:.0%} of {keys} |", flush=True)


def samples_needed(keys, top):
    w = layer(10, 10)
    e = exact(w, 64)
    print(f"\n10->10 sigmoid, 64 bins: exact EI_parts {e:.4f} bits")
    found = {}
    n = 25_000
    while n <= top and len(found) < 2:
        v, c, s = over_keys(w, 64, n, keys if n <= 1_600_000 else 2)
        for name, x in (("corrected", c), ("plug-in", v)):
            if name not in found and abs(x.mean() - e) <= 0.01:
                found[name] = n
        print(f"  {n:>10,} samples: plug-in {v.mean() - e:+.4f}, corrected {c.mean() - e:+.4f} "
              f"(stderr {s.mean():.4f})", flush=True)
        n *= 2
    for name in ("corrected", "plug-in"):
        print(f"  {name}: within 0.01 bits at {found.get(name, f'> {top:,}')} samples")
    if "corrected" in found and "plug-in" in found:
        print(f"  factor: {found['plug-in'] / found['corrected']:.0f}x fewer samples")
    elif "corrected" in found:
        print(f"  factor: > {top / found['corrected']:.0f}x fewer samples (plug-in not within 0.01 by {top:,})")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--keys", type=int, default=10)
    p.add_argument("--top", type=int, default=1 << 25, help="largest sample count tried in part 2")
    p.add_argument("--quick", action="store_true", help="part 1 only")
    a = p.parse_args()
    t = time.time()
    table(a.keys)
    if not a.quick:
        samples_needed(a.keys, a.top)
    print(f"\n({time.time() - t:.0f} s; {jax.devices()[0].device_kind}, jax {jax.__version__})")


if __name__ == "__main__":
    main()
