"""The paper's experiments: the networks, training with optax, measuring layers over training.

Mattsson, Michaud & Hoel (Entropy 2020) trained small sigmoid networks without bias
(Iris 4-5-5-3, MNIST 25-6-6-6-5 on 5x5 images of digits 0-4), initialised with
``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``, with SGD (lr 0.01) on the summed squared error, and
every few epochs measured each layer's EI_parts, vector EI and sensitivity with 8 bins
(``vector_and_pairwise_ei`` on 1e7 samples, sensitivity on 5,000 samples per input).
:func:`reproduce` does the same and saves, per measured epoch, the Flax checkpoint (msgpack)
and a table row per layer, whose numbers are exactly what the ``ei_jax`` functions return
for that checkpoint with the stored key.

The datasets are in :mod:`ei_jax._src.datasets` and checkpoint reading and writing in
:mod:`ei_jax._src.checkpoints`; the names callers use are re-exported here.
"""

import contextlib
import csv
import dataclasses
import functools
import io
import json
import math
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

import ei_jax
from ei_jax._src.checkpoints import (  # noqa: F401 - re-exported
    atomic_write,
    check_writable,
    first_input_shape,
    load_any_checkpoint,
    mlp_from_params,
    save_checkpoint,
)
from ei_jax._src.datasets import (  # noqa: F401 - re-exported
    Dataset,
    area_resize_matrix,
    downsample,
    iris_table,
    load_digits,
    load_iris,
    load_mnist,
)
from ei_jax._src.errors import (  # noqa: F401 - re-exported
    LoadCheckpointError,
    LoadDatasetError,
    MissingExtraError,
)

# --- the networks and their training ---------------------------------------------------------

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


# --- measuring ------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class MeasureSettings:
    """How each layer is measured (the paper: 1e7 samples, 5,000 for sensitivity, 8 bins).

    ``in_range`` is the first layer's input range (the data's); later layers use their
    preceding activation's range, as in deep-ei.
    """

    samples: int = 100_000
    sensitivity_samples: int = 5_000
    bins: int = 8
    in_range: tuple[float, float] = (0.0, 1.0)


def key_data(key) -> list[int]:
    """The two uint32 words of a ``jax.random.key`` (what the table stores)."""
    return [int(v) for v in np.asarray(jax.random.key_data(key))]


def key_from_data(data) -> jax.Array:
    """Inverse of :func:`key_data`."""
    return jax.random.wrap_key_data(np.asarray(data, np.uint32))


def measure_layer(key, top, layer, settings: MeasureSettings, *, first: bool) -> dict[str, float]:
    """EI_parts and vector EI (same samples), sensitivity and degeneracy of one layer, in bits."""
    in_range = settings.in_range if first else None
    common = dict(in_range=in_range, in_bins=settings.bins, out_bins=settings.bins)
    vec, parts = ei_jax.vector_and_pairwise_ei(key, top, layer, samples=settings.samples, **common)
    sens = ei_jax.sensitivity(key, top, layer, samples=settings.sensitivity_samples, **common)
    x, y = ei_jax.rotate_causal_plane(sens, sens - parts)
    return dict(ei_parts=parts, vector_ei=vec, sensitivity=sens, degeneracy=sens - parts,
                degeneracy_vector=sens - vec, plane_x=x, plane_y=y)


def measure_network(key, top, settings: MeasureSettings) -> list[dict[str, Any]]:
    """Measures every layer of ``top``; layer ``i`` uses ``fold_in(key, i)`` (stored in ``key``)."""
    rows = []
    for i, layer in enumerate(top):
        k = jax.random.fold_in(key, i)
        rows.append(dict(layer=layer, n_in=math.prod(top.nodes[layer]["input"]["shape"][1:]),
                         n_out=math.prod(top.nodes[layer]["output"]["shape"][1:]),
                         **measure_layer(k, top, layer, settings, first=i == 0), key=key_data(k)))
    return rows


# --- the experiment -------------------------------------------------------------------------

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
PAPER_MEASURE = MeasureSettings(samples=10_000_000, sensitivity_samples=5_000, bins=8)

TABLE_COLUMNS = ("epoch", "batches", "train_loss", "train_accuracy", "test_loss", "test_accuracy",
                 "layer", "label", "n_in", "n_out", "ei_parts", "vector_ei", "sensitivity",
                 "degeneracy", "degeneracy_vector", "plane_x", "plane_y", "key", "checkpoint")


@dataclasses.dataclass(frozen=True)
class ReproduceConfig:
    """One training run: the dataset, the network, SGD and the measurement settings."""

    dataset: str
    widths: tuple[int, ...]
    epochs: int
    every: int
    batch_size: int
    lr: float
    seed: int = 0
    measure: MeasureSettings = MeasureSettings()
    mnist: str | None = None

    def measured_epochs(self) -> list[int]:
        return sorted(set(range(0, self.epochs + 1, self.every)) | {self.epochs})


def run_keys(seed: int):
    """``(init, data split, shuffling, measuring)`` keys of a run: ``split(key(seed), 4)``."""
    return tuple(jax.random.split(jax.random.key(seed), 4))


def load_dataset(config: ReproduceConfig, key) -> Dataset:
    if config.dataset == "iris":
        return load_iris(key)
    if config.dataset == "digits":
        return load_mnist(config.mnist) if config.mnist else load_digits(key)
    raise LoadDatasetError(f"Unknown dataset {config.dataset!r}; expected 'iris' or 'digits'.")


@dataclasses.dataclass
class Run:
    """What :func:`reproduce` produced (paths are inside ``out``)."""

    out: Path
    rows: list[dict[str, Any]]
    meta: dict[str, Any]
    files: list[str]
    seconds: float


def _csv_text(rows) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, TABLE_COLUMNS, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({**r, "key": " ".join(str(k) for k in r["key"])})
    return buf.getvalue()


def read_table_csv(path) -> list[dict[str, Any]]:
    """Reads ``measurements.csv`` back (numbers as float/int, ``key`` as two ints)."""
    ints = {"epoch", "batches", "n_in", "n_out"}
    text = {"layer", "label", "checkpoint"}
    out = []
    with open(path, newline="") as f:
        for r in csv.DictReader(f):
            out.append({k: (v if k in text else [int(t) for t in v.split()] if k == "key"
                            else int(v) if k in ints else float(v)) for k, v in r.items()})
    return out


def _train_and_measure(config, data, staging: Path, progress, on_measure):
    k_init, _, k_shuffle, k_measure = run_keys(config.seed)
    model, train, opt = paper_network(tuple(config.widths), config.lr, config.batch_size)
    x0 = jnp.zeros((1, config.widths[0]), jnp.float32)
    params = model.init(k_init, x0)["params"]
    opt_state = opt.init(params)
    x_train, y_train = jnp.asarray(data.x_train), jnp.asarray(data.y_train)
    n_batches = -(-len(x_train) // config.batch_size)
    labels = layer_labels(len(config.widths) - 1)
    (staging / "checkpoints").mkdir()
    rows, done = [], 0
    bar = _bar(config.epochs, progress, f"{config.dataset} {'-'.join(map(str, config.widths))}")
    try:
        for epoch in config.measured_epochs():
            if epoch > done:
                params, opt_state = train(params, opt_state, x_train, y_train, k_shuffle, done,
                                          epoch - done)
                bar.update(epoch - done)
                done = epoch
            bar.set_postfix_str(f"measuring epoch {epoch}", refresh=True)
            v = {"params": params}
            ckpt = f"checkpoints/epoch_{epoch:06d}.msgpack"
            save_checkpoint(staging / ckpt, v)
            top = ei_jax.topology_of(model, v, x0)
            tr, tr_acc = evaluate(model, params, data.x_train, data.y_train)
            te, te_acc = evaluate(model, params, data.x_test, data.y_test)
            layer_rows = measure_network(k_measure, top, config.measure)
            for r, label in zip(layer_rows, labels):
                rows.append(dict(epoch=epoch, batches=epoch * n_batches, train_loss=tr,
                                 train_accuracy=tr_acc, test_loss=te, test_accuracy=te_acc,
                                 label=label, checkpoint=ckpt, **r))
            bar.set_postfix_str(f"loss {tr:.3g} acc {te_acc:.2f} EI_parts "
                                + " ".join(f"{r['ei_parts']:.2f}" for r in layer_rows), refresh=True)
            if on_measure is not None:
                on_measure(epoch, layer_rows)
    finally:
        bar.close()
    return rows, list(top), labels


def _bar(total, enabled, desc):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="epoch", disable=not enabled, dynamic_ncols=True)


def check_out_dir(out) -> Path:
    """Raises ``OSError`` if ``out`` cannot become the output directory."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"--out {out} exists and is not a directory.")
    p = out.absolute().parent
    while not p.exists():
        p = p.parent
    if not p.is_dir() or not os.access(p, os.W_OK):
        raise PermissionError(f"Cannot create {out}: {p} is not a writable directory.")
    return out


def reproduce(config: ReproduceConfig, out, *, progress: bool = True, command: str = "",
              on_measure=None, data: Dataset | None = None, plots: bool = True) -> Run:
    """Trains the paper's network on ``config.dataset`` and measures its layers over training.

    Writes into ``out``: ``measurements.csv`` and ``measurements.json`` (one row per measured
    epoch and layer; the JSON also holds the settings), ``ei_over_training.png``,
    ``causal_plane.png`` (only if ``plots``) and ``checkpoints/epoch_NNNNNN.msgpack``. ``data``
    defaults to :func:`load_dataset` with the run's data key. Everything is first written to
    a temporary directory beside ``out`` and moved into place (``os.replace``) only when the
    run has succeeded, so a failed or interrupted run leaves no partial output.

    Row ``key`` is the key passed to ``ei_jax.vector_and_pairwise_ei`` and
    ``ei_jax.sensitivity`` for that layer (the same for every epoch: common random numbers,
    so the curves show the change of the weights, not of the noise).
    """
    from ei_jax._src import plotting

    t0 = time.perf_counter()
    out = check_out_dir(out)
    if data is None:
        data = load_dataset(config, run_keys(config.seed)[1])
    if data.x_train.shape[1] != config.widths[0]:
        raise LoadDatasetError(f"{data.name} has {data.x_train.shape[1]} features; the network "
                               f"expects {config.widths[0]}.")
    created = _make_parents(out.parent)
    staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.partial-"))
    try:
        rows, layers, labels = _train_and_measure(config, data, staging, progress, on_measure)
        meta = dict(
            command=command, ei_jax_version=ei_jax.__version__, jax_version=jax.__version__,
            dataset=data.describe(),
            model=dict(widths=list(config.widths), activation="sigmoid", bias=False,
                       init="U(-1/sqrt(fan_in), 1/sqrt(fan_in))", api="flax.linen Sequential"),
            training=dict(optimizer="optax.sgd", lr=config.lr, batch_size=config.batch_size,
                          loss="summed squared error per batch", epochs=config.epochs,
                          every=config.every, seed=config.seed),
            measure=dict(**dataclasses.asdict(config.measure),
                         functions="ei_jax.vector_and_pairwise_ei(key, top, layer, samples=samples, "
                                   "in_range=in_range if first layer else None, in_bins=bins, "
                                   "out_bins=bins) and ei_jax.sensitivity(..., samples="
                                   "sensitivity_samples); degeneracy = sensitivity - ei_parts",
                         key="row key = jax.random.key_data(fold_in(k_measure, layer index)), "
                             "k_measure = jax.random.split(jax.random.key(seed), 4)[3]"),
            layers=[dict(name=n, label=lb) for n, lb in zip(layers, labels)],
        )
        title = f"{data.name}: {' → '.join(map(str, config.widths))}, sigmoid, seed {config.seed}"
        atomic_write(staging / "measurements.csv", _csv_text(rows))
        atomic_write(staging / "measurements.json", json.dumps({**meta, "rows": rows}, indent=1))
        if plots:
            atomic_write(staging / "ei_over_training.png", plotting.ei_over_training_png(rows, title))
            atomic_write(staging / "causal_plane.png", plotting.causal_plane_png(rows, title))
        files = _commit(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        for d in reversed(created):
            with contextlib.suppress(OSError):
                d.rmdir()
        raise
    return Run(out, rows, meta, files, time.perf_counter() - t0)


def _make_parents(path: Path) -> list[Path]:
    missing = []
    p = path.absolute()
    while not p.exists():
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        d.mkdir()
    return list(reversed(missing))


_STALE = re.compile(r"epoch_\d{6}\.msgpack")


def _commit(staging: Path, out: Path) -> list[str]:
    out.mkdir(exist_ok=True)
    (out / "checkpoints").mkdir(exist_ok=True)
    files = sorted(str(p.relative_to(staging)) for p in staging.rglob("*") if p.is_file())
    ckpts = [f for f in files if f.startswith("checkpoints/")]
    for f in ckpts + [f for f in files if f not in ckpts]:
        os.replace(staging / f, out / f)
    keep = {Path(f).name for f in ckpts}
    for old in (out / "checkpoints").iterdir():
        if _STALE.fullmatch(old.name) and old.name not in keep:
            old.unlink()
    shutil.rmtree(staging, ignore_errors=True)
    return files
