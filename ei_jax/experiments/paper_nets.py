"""The paper's networks: the MLPs, their initialisation, SGD training with optax, evaluation.

Mattsson, Michaud & Hoel (Entropy 2020) trained small sigmoid networks without bias
(Iris 4-5-5-3, MNIST 25-6-6-6-5 on 5x5 images of digits 0-4), initialised with
``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``, with SGD (lr 0.01) on the summed squared error.
:data:`PRESETS` holds each experiment's widths, epochs, measuring interval and SGD settings.
"""

import functools
import math
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

#: The activation of every layer of the paper's networks (stored with each run).
ACTIVATION = "sigmoid"

PRESETS: dict[str, dict[str, Any]] = {
    # The paper's experiments/runs/iris4-5-5-3/run.py: 4000 epochs, a measurement every 50.
    "iris": dict(widths=(4, 5, 5, 3), epochs=4000, every=50, batch_size=10, lr=0.01),
    # experiments/runs/mnist25-6-6-6-5/run.py: 500 epochs of 25,000 images (250,000 SGD steps
    # of 50), a measurement every 10 epochs.
    "mnist": dict(widths=(25, 6, 6, 6, 5), epochs=500, every=10, batch_size=50, lr=0.01),
    # The same network on ~600 8x8 digits: 12 steps per epoch, so it trains for longer
    # (24,000 steps; it has converged by ~1,000 epochs), with as many measurements.
    "digits": dict(widths=(25, 6, 6, 6, 5), epochs=2000, every=40, batch_size=50, lr=0.01),
}


def paper_init(key, shape, dtype=jnp.float32):
    """The paper's initialisation: ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))`` (fan_in = shape[0])."""
    bound = 1.0 / math.sqrt(shape[0])
    return jax.random.uniform(key, shape, dtype, -bound, bound)


def mlp(widths, activation: Callable = nn.sigmoid) -> nn.Sequential:
    """``widths[0] -> ... -> widths[-1]`` Dense layers without bias, ``activation`` after each."""
    layers = []
    for w in widths[1:]:
        layers += [nn.Dense(int(w), use_bias=False, kernel_init=paper_init), activation]
    return nn.Sequential(layers)


def layer_labels(n_layers: int) -> list[str]:
    """The paper's names: X -> T1, T1 -> T2, ..., Tk -> Y."""
    names = ["X"] + [f"T{i}" for i in range(1, n_layers)] + ["Y"]
    return [f"{a} → {b}" for a, b in zip(names, names[1:])]


def make_trainer(model, *, lr: float, batch_size: int):
    """Returns jitted ``train(params, opt_state, x, y, key, epoch0, n_epochs)`` and the optimizer.

    Each epoch shuffles the training set ``(x, y)`` with ``fold_in(key, epoch)`` and takes
    SGD steps on the summed squared error of each batch (PyTorch's
    ``MSELoss(reduction="sum")``); the last batch may be smaller (padded and masked), as a
    DataLoader without ``drop_last``. Compiled once per training-set shape.
    """
    opt = optax.sgd(lr)

    def loss_fn(params, xb, yb, wb):
        out = model.apply({"params": params}, xb)
        return jnp.sum(wb[:, None] * (out - yb) ** 2)

    def epoch(e, state, x, y, key):
        n = x.shape[0]
        n_batches = -(-n // batch_size)
        pad = n_batches * batch_size - n
        perm = jax.random.permutation(jax.random.fold_in(key, e), n)
        idx = jnp.concatenate([perm, jnp.zeros((pad,), perm.dtype)]).reshape(n_batches, batch_size)
        mask = (jnp.arange(n_batches * batch_size) < n).astype(x.dtype).reshape(n_batches, batch_size)

        def step(state, batch):
            params, opt_state = state
            i, w = batch
            grads = jax.grad(loss_fn)(params, x[i], y[i], w)
            updates, opt_state = opt.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), None

        return jax.lax.scan(step, state, (idx, mask))[0]

    @jax.jit
    def train(params, opt_state, x, y, key, epoch0, n_epochs):
        return jax.lax.fori_loop(epoch0, epoch0 + n_epochs,
                                 lambda e, s: epoch(e, s, x, y, key), (params, opt_state))

    return train, opt


@functools.lru_cache(maxsize=8)
def paper_network(widths: tuple[int, ...], lr: float, batch_size: int):
    """``(model, train, opt)`` for :func:`mlp` and :func:`make_trainer`, built once per setting."""
    model = mlp(widths)
    return (model, *make_trainer(model, lr=lr, batch_size=batch_size))


def evaluate(model, params, x, y) -> tuple[float, float]:
    """(summed squared error per example, accuracy) of the network on ``(x, y)``."""
    if len(x) == 0:
        return math.nan, math.nan
    out = np.asarray(model.apply({"params": params}, jnp.asarray(x)))
    loss = float(np.sum((out - y) ** 2) / len(x))
    return loss, float(np.mean(out.argmax(1) == y.argmax(1)))
