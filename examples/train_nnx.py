"""Train a Flax NNX network with optax and measure its layers during training.

The NNX twin of train_linen.py: the paper's Iris network (4-5-5-3, sigmoid, no bias, init
U(+-1/sqrt(fan_in)), SGD lr 0.01 on the summed squared error) as an ``nnx.Sequential``,
trained with ``nnx.Optimizer``; ``ei_jax.topology_of(model, x)`` takes the NNX module
directly. At the end, ``nnx.split`` gives the pure ``(graphdef, state)`` pair: the same
measure through the jittable core, ``ei_jax.core.ei_parts(key, apply, params, ...)``, agrees.

    python examples/train_nnx.py
    python examples/train_nnx.py --fast      # (CI)
"""

import runpy
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

import ei_jax
from ei_jax import core


# The data, the paper's initialiser, the command line and the measuring loop are
# train_linen.py's: this file is its NNX twin.
_LINEN = runpy.run_path(str(Path(__file__).with_name("train_linen.py")))
iris, paper_init, settings, measure_layers = (_LINEN[k] for k in ("iris", "paper_init", "settings",
                                                                   "measure_layers"))


def iris_network(key) -> nnx.Sequential:
    rngs = nnx.Rngs(key)
    return nnx.Sequential(
        nnx.Linear(4, 5, use_bias=False, kernel_init=paper_init, rngs=rngs), nnx.sigmoid,
        nnx.Linear(5, 5, use_bias=False, kernel_init=paper_init, rngs=rngs), nnx.sigmoid,
        nnx.Linear(5, 3, use_bias=False, kernel_init=paper_init, rngs=rngs), nnx.sigmoid)


@nnx.jit
def train_epoch(model, optimizer, x, y, perm):
    def loss_fn(model, xb, yb):
        return jnp.sum((model(xb) - yb) ** 2)

    for idx in perm.reshape(-1, 10):  # 10 batches of 10, unrolled
        grads = nnx.grad(loss_fn)(model, x[idx], y[idx])
        optimizer.update(model, grads)


def main(argv=None):
    epochs, every, samples = settings(argv, __doc__.splitlines()[0])

    k_init, k_data, k_shuffle, k_measure = jax.random.split(jax.random.key(0), 4)
    x_train, y_train, x_test, y_test = iris(k_data)
    model = iris_network(k_init)
    optimizer = nnx.Optimizer(model, optax.sgd(0.01), wrt=nnx.Param)
    x0 = jnp.zeros((1, 4))

    history = []
    for epoch in range(epochs + 1):
        if epoch % every == 0:
            top = ei_jax.topology_of(model, x0)  # NNX: no variables argument
            row = measure_layers(top, k_measure, samples)
            acc = float(np.mean(np.argmax(model(x_test), 1) == y_test.argmax(1)))
            history.append((epoch, acc, row))
            print(f"epoch {epoch:5d}  test acc {acc:.2f}  "
                  + "  ".join(f"{n}: EI {e:5.2f} S {s:6.2f} bits" for n, (e, s) in zip(top, row)))
        if epoch < epochs:
            perm = jax.random.permutation(jax.random.fold_in(k_shuffle, epoch), len(x_train))
            train_epoch(model, optimizer, x_train, y_train, perm)

    # The functional boundary: nnx.split gives pure pytrees for jit/vmap; the first layer
    # measured through the core with the same key gives the convenient API's EI_parts.
    _, state = nnx.split(model)
    kernel = state["layers"][0]["kernel"][...]
    core_value = float(core.ei_parts(jax.random.fold_in(k_measure, 0),
                                     lambda w, x: jax.nn.sigmoid(x @ w), kernel, in_shape=(4,),
                                     in_range=(0.0, 1.0), in_bins=8, out_range=(0.0, 1.0), out_bins=8,
                                     samples=samples))
    top = ei_jax.topology_of(model, x0)
    api_value = ei_jax.ei_parts(jax.random.fold_in(k_measure, 0), top, list(top)[0], samples=samples,
                                in_range=(0, 1), in_bins=8, out_bins=8)
    print(f"first layer EI_parts: core (float32) {core_value:.6f}, convenient API {api_value:.6f} bits")
    assert abs(core_value - api_value) < 1e-4
    return history


if __name__ == "__main__":
    main()
