"""Training the studies' networks over several seeds at once, and measuring them over training.

A study compares *arms* (:class:`Arm`: dropout rates, true vs random labels, depths) of small
dense networks trained with optax Adam on a sigmoid binary cross-entropy. All seeds of an arm
train in one compiled program (``jax.vmap`` over the stacked parameters). At every measured
step the stacked parameters are saved (``checkpoints/ARM/step_NNNNNN.msgpack``, one leading
seed axis) and every layer is measured exactly (:mod:`ei_jax.experiments.studies.measure`), so the
table rows are exactly what :func:`measure_checkpoint` returns for that checkpoint.
"""

import dataclasses
import functools
import re
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from ei_jax.experiments.studies import measure as sm
from ei_jax._src.model.activations import default_range, function_of
from ei_jax.experiments.checkpoints import read_flax_checkpoint, save_checkpoint
from ei_jax.experiments.paper_nets import layer_labels, paper_init


@dataclasses.dataclass(frozen=True)
class Arm:
    """One condition of a study: a network, its training data and its dropout rate.

    ``x_*`` are ``(N, n_in)`` inputs in [0, 1]; ``y_*`` integer class labels ``(N,)``.
    """

    name: str
    widths: tuple[int, ...]
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    dropout: float = 0.0


@dataclasses.dataclass(frozen=True)
class TrainSettings:
    """Optax Adam on minibatches drawn with replacement; measured every ``every`` steps."""

    steps: int
    every: int
    lr: float = 1e-2
    batch_size: int = 64
    activation: str = "sigmoid"
    bins: int = 8
    vector_samples: int = 0
    vector_max_out: int = 6

    def measured_steps(self) -> list[int]:
        return sorted(set(range(0, self.steps + 1, self.every)) | {self.steps})


def network(widths, activation: str) -> nn.Sequential:
    """``Dense(+bias) -> activation`` per layer (kernels ``U(±1/sqrt(fan_in))``, bias 0)."""
    layers = []
    for w in widths[1:]:
        layers += [nn.Dense(int(w), kernel_init=paper_init), function_of(activation)]
    return nn.Sequential(layers)


def layer_names(params) -> list[str]:
    """Layer names in network order (``layers_0``, ``layers_2``, ...)."""
    return sorted(params, key=lambda s: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", s)])


def forward(params, x, *, activation: str, dropout: float = 0.0, key=None):
    """Logits of the last layer; ``dropout`` (inverted) on hidden activations when ``key``."""
    act = function_of(activation)
    names = layer_names(params)
    for i, n in enumerate(names):
        x = x @ params[n]["kernel"] + params[n]["bias"][None, :]
        if i == len(names) - 1:
            return x
        x = act(x)
        if key is not None:  # dropout may be traced: a rate of 0 keeps every unit
            keep = jax.random.bernoulli(jax.random.fold_in(key, i), 1.0 - dropout, x.shape)
            x = jnp.where(keep, x / (1.0 - dropout), 0.0)
    return x


def init_params(key, widths, seeds: int):
    """Stacked parameters of ``seeds`` networks: leading axis = seed (``fold_in(key, s)``)."""
    model = network(widths, "sigmoid")
    x0 = jnp.zeros((1, widths[0]), jnp.float32)
    init = lambda k: model.init(k, x0)["params"]  # noqa: E731
    return jax.vmap(init)(jax.vmap(lambda s: jax.random.fold_in(key, s))(jnp.arange(seeds)))


@functools.lru_cache(maxsize=16)
def make_segment(n_classes: int, settings: TrainSettings):
    """Jitted ``segment(params, opt_state, keys, step0, n, x, y, dropout)``: all seeds, ``n`` steps.

    ``x`` ``(N, n_in)``, ``y`` integer labels ``(N,)`` and the dropout rate are arguments, so
    every arm of the same shapes reuses one compiled program. Returns ``(segment, optimizer)``.
    """
    opt = optax.adam(settings.lr)

    def loss_fn(params, xb, yb, key, dropout):
        logits = forward(params, xb, activation=settings.activation, dropout=dropout, key=key)
        target = jax.nn.one_hot(yb, n_classes, dtype=logits.dtype)
        return jnp.mean(jnp.sum(optax.sigmoid_binary_cross_entropy(logits, target), axis=-1))

    def one_seed(params, opt_state, key, step0, n, x, y, dropout):
        def step(t, state):
            p, o = state
            k = jax.random.fold_in(key, t)
            idx = jax.random.randint(jax.random.fold_in(k, 0), (settings.batch_size,), 0, x.shape[0])
            grads = jax.grad(loss_fn)(p, x[idx], y[idx], jax.random.fold_in(k, 1), dropout)
            updates, o = opt.update(grads, o, p)
            return optax.apply_updates(p, updates), o

        return jax.lax.fori_loop(step0, step0 + n, step, (params, opt_state))

    seg = jax.jit(jax.vmap(one_seed, in_axes=(0, 0, 0, None, None, None, None, None)))
    return seg, opt


@functools.lru_cache(maxsize=4)
def _accuracy_fn(activation):
    return jax.jit(jax.vmap(lambda p, x, y: jnp.mean(
        jnp.argmax(forward(p, x, activation=activation), -1) == y), in_axes=(0, None, None)))


def accuracy(params, x, y, *, activation) -> np.ndarray:
    """``(S,)`` accuracy of each seed's network on ``(x, y)`` (NaN if empty)."""
    if len(x) == 0:
        return np.full(jax.tree.leaves(params)[0].shape[0], np.nan)
    return np.asarray(_accuracy_fn(activation)(params, jnp.asarray(x, jnp.float32), jnp.asarray(y)),
                      np.float64)


def layer_ranges(widths, activation) -> list[tuple[float, float]]:
    """Each layer's input range: the data's (0, 1) first, then the activation's range."""
    act = tuple(float(v) for v in default_range(activation))
    return [(0.0, 1.0)] + [act] * (len(widths) - 2)


def exact_stack_measures(params, *, widths, activation, bins) -> list[dict[str, np.ndarray]]:
    """Exact measures of every layer of stacked parameters: one dict of ``(S,)`` per layer."""
    out = []
    for name, rng in zip(layer_names(params), layer_ranges(widths, activation)):
        p = params[name]
        out.append(sm.exact_layer_measures(p["kernel"], p["bias"], activation=activation, in_range=rng,
                                  bins=bins))
    return out


def measure_checkpoint(path, *, widths, activation, bins) -> list[dict[str, np.ndarray]]:
    """Re-measures a saved stacked checkpoint (what the table rows of that step hold)."""
    params = jax.tree.map(jnp.asarray, read_flax_checkpoint(path)["params"])
    return exact_stack_measures(params, widths=widths, activation=activation, bins=bins)


def _vector(key, params, arm, settings, layer_i, seed) -> tuple[float, float, float]:
    """Sampled vector EI of one layer of one seed (NaN for layers too wide to histogram)."""
    n_out = arm.widths[layer_i + 1]
    if settings.vector_samples <= 0 or n_out > settings.vector_max_out:
        return float("nan"), float("nan"), float("nan")
    import ei_jax

    p = jax.tree.map(lambda a: a[seed], params)
    model = network(arm.widths, settings.activation)
    top = ei_jax.topology_of(model, {"params": p}, jnp.zeros((1, arm.widths[0]), jnp.float32))
    layer = list(top)[layer_i]
    return sm.sampled_ei(jax.random.fold_in(key, layer_i), top, layer,
                         in_range=layer_ranges(arm.widths, settings.activation)[layer_i],
                         bins=settings.bins, samples=settings.vector_samples)


def train_and_measure(key, arm: Arm, settings: TrainSettings, seeds: int, out,
                      *, bar=None, state=None) -> list[dict[str, Any]]:
    """Trains ``seeds`` networks of ``arm`` and measures every layer at every measured step.

    Keys: ``k_init, k_train, k_vec = split(key, 3)``; seed ``s`` uses ``fold_in(k, s)`` (the
    same for every arm, so arms differ only in what the arm changes). Checkpoints go to
    ``out/checkpoints/ARM/step_NNNNNN.msgpack``. With ``state``
    (:class:`~ei_jax.experiments.run_state.RunState`) each measured step is recorded (rows and
    the parameters and Adam state) and a resumed run skips the steps done, training on from
    the saved state: step ``t`` always uses ``fold_in(k_train_s, t)``, so the result is the same.

    Returns:
      One row per (seed, step, layer): accuracy, the exact measures, vector EI and its
      stderr, the layer's maximum EI_parts and the checkpoint path (only this call's new
      rows when ``state`` is given: the others are in ``state.rows``).
    """
    k_init, k_train, k_vec = jax.random.split(key, 3)
    params = init_params(k_init, arm.widths, seeds)
    seg, opt = make_segment(arm.widths[-1], settings)
    x, y = jnp.asarray(arm.x_train, jnp.float32), jnp.asarray(arm.y_train, jnp.int32)
    opt_state = jax.vmap(opt.init)(params)
    keys = jax.vmap(lambda s: jax.random.fold_in(k_train, s))(jnp.arange(seeds))
    labels = layer_labels(len(arm.widths) - 1)
    ckdir = out / "checkpoints" / arm.name
    ckdir.mkdir(parents=True, exist_ok=True)
    rows, done = [], 0
    restored = None if state is None else state.restore(arm.name, (params, opt_state))
    if restored is not None:  # the arm's parameters and Adam state at its last recorded step
        done, (params, opt_state) = restored[0], jax.tree.map(jnp.asarray, restored[1])
    for step in settings.measured_steps():
        if state is not None and state.is_done(f"{arm.name} step {step}"):
            if bar is not None:
                bar.update(1)
            continue
        if step > done:
            # optax's Adam raises its int32 step count to a float power: scoped standard
            # promotion lets it run under a user's strict dtype promotion.
            with jax.numpy_dtype_promotion("standard"):
                params, opt_state = seg(params, opt_state, keys, done, step - done, x, y,
                                        jnp.float32(arm.dropout))
            done = step
        ckpt = f"checkpoints/{arm.name}/step_{step:06d}.msgpack"
        tr = accuracy(params, arm.x_train, arm.y_train, activation=settings.activation)
        te = accuracy(params, arm.x_test, arm.y_test, activation=settings.activation)
        measured = exact_stack_measures(params, widths=arm.widths, activation=settings.activation,
                                 bins=settings.bins)
        step_rows = []
        for li, (m, label) in enumerate(zip(measured, labels)):
            n_in, n_out = arm.widths[li], arm.widths[li + 1]
            for s in range(seeds):
                vec, vec_se, vec_plugin = _vector(jax.random.fold_in(k_vec, s), params, arm, settings,
                                                  li, s)
                step_rows.append(dict(arm=arm.name, seed=s, step=step, layer=f"layers_{2 * li}",
                                      label=label, n_in=n_in, n_out=n_out,
                                      train_accuracy=float(tr[s]), test_accuracy=float(te[s]),
                                      **{k: float(v[s]) for k, v in m.items()},
                                      vector_ei=vec, vector_ei_stderr=vec_se,
                                      vector_ei_plugin=vec_plugin,
                                      max_ei_parts=sm.max_ei_parts(n_in, n_out, settings.bins),
                                      checkpoint=ckpt))
        save_checkpoint(out / ckpt, {"params": params})
        if state is not None:
            step_rows = state.record(f"{arm.name} step {step}", step_rows, unit=arm.name, index=step,
                                     train_state=(params, opt_state))
        rows += step_rows
        if bar is not None:
            bar.update(1)
            bar.set_postfix_str(f"{arm.name} step {step} train acc {np.mean(tr):.2f}", refresh=True)
    return rows
