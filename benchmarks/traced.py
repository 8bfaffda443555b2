"""A traced-topology network timed layer by layer: the exact path where a layer folds to
``f(x @ W + b)``, the sampled path elsewhere (issue 27, item 5: GPU-ready).

The network is the ResNet-style CNN of ``examples/resnet_digits.py`` at a chosen size: a stem
convolution, one basic residual block (conv-BN-relu-conv-BN + identity, relu), 2x2 average
pooling and a dense read-out, BatchNorm in eval mode with random statistics (untrained: the
timing does not depend on training). ``ei_jax.topology_of`` traces it; every layer is measured
with ``exact.ei_parts`` if it applies, else with the sampled ``ei_parts`` at ``--samples``.
Prints, per layer, the first call (compile included) and a warm call, and for sampled layers
samples per second (warm).

    .venv/bin/python benchmarks/traced.py --size 16 --channels 8 --samples 1e7   # gpu_check.sh
    .venv/bin/python benchmarks/traced.py --size 8 --channels 2 --samples 2e4   # smoke (CI)
"""

import argparse
import time
import warnings

import flax.linen as nn
import jax
import jax.numpy as jnp

import ei_jax
from ei_jax import exact
from ei_jax.errors import DefaultRangeWarning, ExactUnavailableError, OutOfRangeWarning


class ResNet(nn.Module):
    channels: int

    @nn.compact
    def __call__(self, x):
        def conv_bn(h):
            h = nn.Conv(self.channels, (3, 3), use_bias=False)(h)
            return nn.BatchNorm(use_running_average=True)(h)

        h = nn.relu(conv_bn(x))
        r = nn.relu(conv_bn(h))
        h = nn.relu(h + conv_bn(r))
        b, hh, ww, c = h.shape
        h = h.reshape(b, hh // 2, 2, ww // 2, 2, c).mean(axis=(2, 4))
        return nn.Dense(10)(h.reshape(b, -1))


def _random_stats(key, variables):
    """BatchNorm running statistics drawn at random (mean ~ N(0, 0.1), var ~ U(0.5, 1.5))."""
    stats = variables["batch_stats"]
    leaves, tree = jax.tree_util.tree_flatten_with_path(stats)
    keys = jax.random.split(key, len(leaves))
    new = [0.1 * jax.random.normal(k, v.shape) if path[-1].key == "mean"
           else jax.random.uniform(k, v.shape, minval=0.5, maxval=1.5)
           for k, (path, v) in zip(keys, leaves)]
    return {**variables, "batch_stats": jax.tree_util.tree_unflatten(tree, new)}


def _timed(fn):
    t0 = time.perf_counter()
    v = fn()
    return v, time.perf_counter() - t0


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=28, help="image height and width (even)")
    p.add_argument("--channels", type=int, default=16)
    p.add_argument("--bins", type=int, default=8)
    p.add_argument("--samples", type=float, default=1e6)
    a = p.parse_args(argv)
    samples = int(a.samples)
    print(f"jax {jax.__version__} | backend {jax.default_backend()} | {jax.devices()}")
    k_init, k_stats, k_measure = jax.random.split(jax.random.key(0), 3)
    net = ResNet(a.channels)
    x0 = jnp.zeros((1, a.size, a.size, 1))
    variables = _random_stats(k_stats, net.init(k_init, x0))
    top, secs = _timed(lambda: ei_jax.topology_of(net, variables, x0))
    print(f"T1 traced {a.size}x{a.size}x1, {a.channels} channels: {len(top)} layers {list(top)} "
          f"traced in {secs:.2f} s")
    for i, name in enumerate(top):
        rng = dict(in_range=(0.0, 1.0)) if i == 0 else {}
        opts = dict(in_bins=a.bins, out_bins=a.bins, **rng)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DefaultRangeWarning)
            warnings.simplefilter("ignore", OutOfRangeWarning)
            try:
                first_v, first = _timed(lambda: exact.ei_parts(top, name, **opts))
                warm_v, warm = _timed(lambda: exact.ei_parts(top, name, **opts))
                how, rate = "exact", ""
            except ExactUnavailableError:
                def call():
                    return ei_jax.ei_parts(jax.random.fold_in(k_measure, i), top, name,
                                           samples=samples, clip=True, **opts)
                first_v, first = _timed(call)
                warm_v, warm = _timed(call)
                how, rate = "sampled", f", {samples / warm:.3g} samples/s"
        assert first_v == warm_v, (name, first_v, warm_v)      # same key, same number
        print(f"T1 {name} {how}: EI_parts {float(warm_v):.4f} bits, first call {first:.2f} s, "
              f"warm {warm:.3f} s{rate}")


if __name__ == "__main__":
    main()
