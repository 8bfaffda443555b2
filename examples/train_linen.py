"""Train a Flax linen network with optax and measure its layers during training.

The Iris network of the paper (4-5-5-3, sigmoid, no bias, init U(+-1/sqrt(fan_in)), SGD
lr 0.01 on the summed squared error), written out in a few lines so you can adapt it to
your own model: the data is the Iris table that ships with ei_jax. Every ``--every``
epochs each layer's EI_parts and sensitivity are printed. ``ei-jax reproduce iris`` does
the same with checkpoints, tables and plots; see train_nnx.py for the NNX version.

    python examples/train_linen.py
    python examples/train_linen.py --fast       # (CI)
"""

import argparse
import csv
import importlib.resources
import io
import math
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

import ei_jax


def iris(key):
    """(x_train, y_train, x_test, y_test): features / 8 in [0, 1], one-hot targets."""
    rows = list(csv.reader(io.StringIO(
        importlib.resources.files("ei_jax").joinpath("data/iris.csv").read_text())))[1:]
    names = sorted({r[4] for r in rows})
    x = np.array([[float(v) for v in r[:4]] for r in rows], np.float32) / 8
    y = np.eye(3, dtype=np.float32)[[names.index(r[4]) for r in rows]]
    perm = np.asarray(jax.random.permutation(key, len(x)))
    x, y = x[perm], y[perm]
    return x[:100], y[:100], x[100:], y[100:]


def paper_init(key, shape, dtype=jnp.float32):
    bound = 1 / math.sqrt(shape[0])
    return jax.random.uniform(key, shape, dtype, -bound, bound)


def settings(argv, description):
    """``(epochs, every, samples)`` from the command line (``--fast``: a short run)."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--fast", action="store_true", default=os.environ.get("EI_JAX_EXAMPLES_FAST") == "1",
                   help="few epochs and samples (also: EI_JAX_EXAMPLES_FAST=1)")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--every", type=int, default=None)
    p.add_argument("--out", default=None, help="unused; accepted like the other examples")
    args = p.parse_args(argv)
    return (args.epochs or (100 if args.fast else 1000), args.every or (50 if args.fast else 100),
            10_000 if args.fast else 100_000)


def measure_layers(top, key, samples):
    """``[(EI_parts, sensitivity)]`` of every layer, in bits; layer ``i`` uses ``fold_in(key, i)``."""
    row = []
    for i, layer in enumerate(top):
        k = jax.random.fold_in(key, i)
        # The first layer's inputs are the data, in [0, 1]; later ones default to (0, 1),
        # the range of the sigmoid before them.
        kw = dict(in_range=(0, 1) if i == 0 else None, in_bins=8, out_bins=8)
        row.append((ei_jax.ei_parts(k, top, layer, samples=samples, **kw),
                    ei_jax.sensitivity(k, top, layer, samples=5000, **kw)))
    return row


def main(argv=None):
    epochs, every, samples = settings(argv, __doc__.splitlines()[0])

    k_init, k_data, k_shuffle, k_measure = jax.random.split(jax.random.key(0), 4)
    x_train, y_train, x_test, y_test = (jnp.asarray(a) for a in iris(k_data))
    model = nn.Sequential([nn.Dense(5, use_bias=False, kernel_init=paper_init), nn.sigmoid,
                           nn.Dense(5, use_bias=False, kernel_init=paper_init), nn.sigmoid,
                           nn.Dense(3, use_bias=False, kernel_init=paper_init), nn.sigmoid])
    x0 = jnp.zeros((1, 4))
    params = model.init(k_init, x0)["params"]
    opt = optax.sgd(0.01)
    opt_state = opt.init(params)

    def loss_fn(params, x, y):
        return jnp.sum((model.apply({"params": params}, x) - y) ** 2)

    @jax.jit
    def train_epoch(params, opt_state, key):
        batches = jax.random.permutation(key, len(x_train)).reshape(-1, 10)

        def step(state, idx):
            params, opt_state = state
            grads = jax.grad(loss_fn)(params, x_train[idx], y_train[idx])
            updates, opt_state = opt.update(grads, opt_state)
            return (optax.apply_updates(params, updates), opt_state), None

        return jax.lax.scan(step, (params, opt_state), batches)[0]

    history = []
    print(f"{'epoch':>5}  {'test acc':>8}  " + "  ".join(f"{n:>22}" for n in ("X→T1", "T1→T2", "T2→Y")))
    for epoch in range(epochs + 1):
        if epoch % every == 0:
            variables = {"params": params}
            top = ei_jax.topology_of(model, variables, x0)  # nodes "layers_0", "layers_2", "layers_4"
            row = measure_layers(top, k_measure, samples)
            acc = float(np.mean(np.argmax(model.apply(variables, x_test), 1) == y_test.argmax(1)))
            history.append((epoch, acc, row))
            print(f"{epoch:5d}  {acc:8.2f}  " + "  ".join(f"EI {e:5.2f} S {s:6.2f} bits" for e, s in row))
        if epoch < epochs:
            params, opt_state = train_epoch(params, opt_state, jax.random.fold_in(k_shuffle, epoch))
    return history


if __name__ == "__main__":
    main()
