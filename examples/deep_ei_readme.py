"""The examples of deep-ei's README, in ei_jax.

deep-ei (PyTorch) measured a ``torch.nn`` module with ``ei(network, top, samples=..., ...,
device=device)``. ei_jax takes a ``jax.random`` key first, a Flax network (linen here) and
the layer's name in the topology; there is no ``device`` (JAX places the work) and
``batch_size`` only changes memory and speed, never the result.

    python examples/deep_ei_readme.py            # deep-ei's sample counts
    python examples/deep_ei_readme.py --fast     # small sample counts (CI)
"""

import argparse
import os

import flax.linen as nn
import jax
import jax.numpy as jnp

from ei_jax import ei, ei_parts, ei_parts_matrix, sensitivity, topology_of


def dense_topology(key, n_in: int, n_out: int):
    """The topology of one ``n_in -> n_out`` Dense layer without bias (deep-ei's ``nn.Linear``)."""
    network = nn.Dense(n_out, use_bias=False)
    x0 = jnp.zeros((1, n_in))
    return topology_of(network, network.init(key, x0), x0)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--fast", action="store_true", default=os.environ.get("EI_JAX_EXAMPLES_FAST") == "1",
                   help="small sample counts (also: EI_JAX_EXAMPLES_FAST=1)")
    p.add_argument("--out", default=None, help="unused; accepted like the other examples")
    args = p.parse_args(argv)
    n = 10_000 if args.fast else 100_000
    key = jax.random.key(0)
    k_init, k1, k2, k3, k4, k5, k6 = jax.random.split(key, 7)

    # EI of a 5 -> 5 dense layer with a sigmoid activation, 1e5 samples.
    # deep-ei: ei(network, top, samples=int(1e5), batch_size=100, in_range=(0, 1), in_bins=8,
    #             out_range=(0, 1), out_bins=8, activation=nn.Sigmoid(), device=device)
    top = dense_topology(k_init, 5, 5)
    value = ei(k1, top, "Dense", samples=n, in_range=(0, 1), in_bins=8, out_range=(0, 1),
               out_bins=8, activation="sigmoid")
    print(f"EI of a 5 -> 5 sigmoid layer: {value:.4f} bits")

    # ei infers ranges and activations from the topology: layer1 gets sigmoid and (0, 1),
    # layer2 tanh and (-1, 1). Only the first layer's in_range must be given.
    network = nn.Sequential([nn.Dense(10, use_bias=False), nn.sigmoid,
                             nn.Dense(5, use_bias=False), nn.tanh])
    x0 = jnp.zeros((1, 20))
    top = topology_of(network, network.init(k_init, x0), x0)
    layer1, layer2 = list(top)  # "layers_0", "layers_2"
    ei_layer1 = ei(k2, top, layer1, samples=n, in_range=(0, 1), in_bins=8, out_bins=8)
    ei_layer2 = ei(k2, top, layer2, samples=n, in_bins=8, out_bins=8)
    print(f"EI of {layer1} (20 -> 10, sigmoid): {ei_layer1:.4f} bits; "
          f"of {layer2} (10 -> 5, tanh): {ei_layer2:.4f} bits")

    # EI_parts with a fixed sample count ...
    top = dense_topology(k_init, 5, 5)
    value = ei_parts(k3, top, "Dense", samples=n, in_range=(0, 1), in_bins=8, out_range=(0, 1),
                     out_bins=8, activation="sigmoid")
    print(f"EI_parts of a 5 -> 5 sigmoid layer: {value:.4f} bits")

    # ... or, by default, doubling the samples until EI_parts changes by less than 5 %.
    top = dense_topology(k_init, 10, 10)
    bins = 8 if args.fast else 64
    value = ei_parts(k4, top, "Dense", threshold=0.05, in_range=(0, 1), in_bins=bins,
                     out_range=(0, 1), out_bins=bins, activation="sigmoid")
    print(f"EI_parts of a 10 -> 10 sigmoid layer ({bins} bins, automatic sample count): {value:.4f} bits")

    # Sensitivity: each input alone set to noise, the others held at 0.
    value = sensitivity(k5, top, "Dense", samples=1000, in_range=(0, 1), in_bins=64,
                        out_range=(0, 1), out_bins=64, activation="sigmoid")
    print(f"sensitivity of the 10 -> 10 layer: {value:.4f} bits")

    # The EI of every edge A -> B: a 20 x 10 matrix, rows are input neurons.
    top = dense_topology(k_init, 20, 10)
    matrix = ei_parts_matrix(k6, top, "Dense", samples=n // 2, in_range=(0, 1), in_bins=64,
                             out_range=(0, 1), out_bins=64, activation="sigmoid")
    print(f"EI_parts matrix of a 20 -> 10 layer: shape {matrix.shape}, sum {matrix.sum():.4f} bits")
    return dict(ei_layer1=ei_layer1, ei_layer2=ei_layer2, matrix=matrix)


if __name__ == "__main__":
    main()
