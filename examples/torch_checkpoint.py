"""Measure every layer of a PyTorch checkpoint: EI_parts, vector EI, sensitivity, degeneracy.

Builds a small torch conv net, ``Conv2d(1, 4, 3) -> Tanh -> MaxPool2d(2) -> Flatten ->
Linear(36, 5) -> Sigmoid`` for 8x8 one-channel images, saves its
``state_dict`` in a temporary directory (``torch.save``, or safetensors with ``--format``),
loads the file back with ``bridges.load_checkpoint(path, architecture=...)`` and measures each
weight layer of the converted Flax network:

* EI_parts and vector EI from the same samples (``ei_jax.vector_and_pairwise_ei``),
* sensitivity (``--sensitivity-samples`` per input neuron),
* degeneracy = sensitivity - EI_parts.

The convolution is measured over one receptive field: the map from one 3x3x1 input patch
to the 4 channels at one position. The first layer's inputs are taken uniform on (0, 1)
(pixel values); every later layer's range comes from the activation before it (here tanh:
(-1, 1), carried through the max pooling and the Flatten).

    python examples/torch_checkpoint.py                  # about 20 s on 2 CPU cores
    python examples/torch_checkpoint.py --fast           # small sample counts (CI)
    python examples/torch_checkpoint.py --samples 1000000 --bins 32 --format safetensors
"""

import argparse
import math
import os
import tempfile
import time

import jax
import jax.numpy as jnp
import torch
from torch import nn

import bridges
import ei_jax


def make_net() -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.Tanh(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(4 * 3 * 3, 5), nn.Sigmoid())


def save_checkpoint(directory: str, fmt: str, seed: int) -> str:
    """Saves a freshly initialised network's state_dict; returns the file's path."""
    torch.manual_seed(seed)
    state = make_net().state_dict()
    if fmt == "torch":
        path = os.path.join(directory, "convnet.pt")
        torch.save(state, path)
    else:
        from safetensors.torch import save_file

        path = os.path.join(directory, "convnet.safetensors")
        save_file(state, path)
    return path


def measure_layer(top, layer, key, *, first, samples, sensitivity_samples, bins):
    """``(name, kind, n_in, n_out, in_range, ei_parts, vector_ei, sensitivity, degeneracy)``."""
    node = top.nodes[layer]
    in_range = (0.0, 1.0) if first else None  # None: from the previous activation
    kw = dict(in_range=in_range, in_bins=bins, out_bins=bins)
    k_ei, k_sens = jax.random.split(key)
    vector, parts = ei_jax.vector_and_pairwise_ei(k_ei, top, layer, samples=samples, **kw)
    sens = ei_jax.sensitivity(k_sens, top, layer, samples=sensitivity_samples, **kw)
    used = in_range or {"relu": (0, 10), "sigmoid": (0, 1), "tanh": (-1, 1)}.get(
        node["input"]["activation"], (-10, 10))
    return (layer, node["kind"], math.prod(node["input"]["shape"][1:]), node["output"]["shape"][1],
            used, parts, vector, sens, sens - parts)


def measure(top, key, *, samples, sensitivity_samples, bins):
    """One row per layer; every layer has its own key (``fold_in(key, i)``).

    The layers are measured one after another: measuring from several Python threads at once
    can deadlock on CPU (vector EI's entropies are host callbacks inside the compiled
    programs; two such programs running at once were seen to wait on each other forever).
    """
    return [measure_layer(top, layer, jax.random.fold_in(key, i), first=i == 0, samples=samples,
                          sensitivity_samples=sensitivity_samples, bins=bins)
            for i, layer in enumerate(top)]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--fast", action="store_true", default=os.environ.get("EI_JAX_EXAMPLES_FAST") == "1",
                   help="small sample counts: 4,000 and 200 per input (also: EI_JAX_EXAMPLES_FAST=1)")
    p.add_argument("--samples", type=int, default=None,
                   help="samples for EI_parts and vector EI (default 20,000; --fast: 4,000)")
    p.add_argument("--sensitivity-samples", type=int, default=None,
                   help="samples per input neuron for sensitivity (default and deep-ei's: 500; --fast: 200)")
    p.add_argument("--bins", type=int, default=16, help="bins per neuron (deep-ei's default: 64)")
    p.add_argument("--format", choices=("torch", "safetensors"), default="torch")
    p.add_argument("--api", choices=("linen", "nnx"), default="linen")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.samples is None:
        args.samples = 4_000 if args.fast else 20_000
    if args.sensitivity_samples is None:
        args.sensitivity_samples = 200 if args.fast else 500

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        path = save_checkpoint(tmp, args.format, args.seed)
        converted = bridges.load_checkpoint(path, architecture=make_net(), api=args.api)
        print(f"loaded {os.path.basename(path)} ({args.format}) as a Flax {args.api} network")
    x0 = jnp.zeros((1, 8, 8, 1))  # NHWC: torch's (1, 1, 8, 8) image, channels last
    if args.api == "linen":
        top = ei_jax.topology_of(*converted, x0)
    else:
        top = ei_jax.topology_of(converted, x0)

    rows = measure(top, jax.random.key(args.seed), samples=args.samples,
                   sensitivity_samples=args.sensitivity_samples, bins=args.bins)
    header = (f"{'layer':<10} {'kind':<5} {'n_in':>5} {'n_out':>5} {'in_range':>10} "
              f"{'EI_parts':>9} {'vector EI':>9} {'sensitivity':>11} {'degeneracy':>10}")
    print(header)
    print("-" * len(header))
    for name, kind, n_in, n_out, rng, parts, vector, sens, deg in rows:
        print(f"{name:<10} {kind:<5} {n_in:>5} {n_out:>5} {str(tuple(rng)):>10} "
              f"{parts:>9.4f} {vector:>9.4f} {sens:>11.4f} {deg:>10.4f}")
    print(f"(bits; {args.samples} samples, {args.sensitivity_samples} per input for sensitivity, "
          f"{args.bins} bins; conv layers over one receptive field; {time.perf_counter() - t0:.1f} s)")
    return rows


if __name__ == "__main__":
    main()
