"""The paper's experiments: datasets, training with optax, measuring layers over training.

Mattsson, Michaud & Hoel (Entropy 2020) trained small sigmoid networks without bias
(Iris 4-5-5-3, MNIST 25-6-6-6-5 on 5x5 images of digits 0-4), initialised with
``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``, with SGD (lr 0.01) on the summed squared error, and
every few epochs measured each layer's EI_parts, vector EI and sensitivity with 8 bins
(``vector_and_pairwise_ei`` on 1e7 samples, sensitivity on 5,000 samples per input).
:func:`reproduce` does the same and saves, per measured epoch, the Flax checkpoint (msgpack)
and a table row per layer, whose numbers are exactly what the ``ei_jax`` functions return
for that checkpoint with the stored key.

Datasets ship with the package or a dependency (no downloads): Iris from ``ei_jax/data``,
scikit-learn's 8x8 digits (the ``digits`` extra) standing in for MNIST, or a local MNIST
file in the standard idx format.
"""

import contextlib
import csv
import dataclasses
import functools
import gzip
import importlib.resources
import io
import json
import math
import os
import re
import shutil
import struct
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import flax.linen as nn
import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np
import optax

import ei_jax
from ei_jax._src.errors import EIJaxError


class LoadDatasetError(EIJaxError, ValueError):
    """A dataset file is missing or not in the expected format."""


class LoadCheckpointError(EIJaxError, ValueError):
    """A checkpoint is missing, corrupt, or holds a network ei_jax cannot rebuild."""


class MissingExtraError(EIJaxError, ImportError):
    """An optional dependency (an ``ei-jax[...]`` extra) is not installed."""


# --- datasets ------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Dataset:
    """A classification dataset with inputs in [0, 1] and one-hot float32 targets."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str

    def describe(self) -> dict[str, Any]:
        return dict(name=self.name, source=self.source, n_train=len(self.x_train),
                    n_test=len(self.x_test), n_features=self.x_train.shape[1],
                    n_classes=self.y_train.shape[1])


def _one_hot(labels, k) -> np.ndarray:
    return np.eye(k, dtype=np.float32)[np.asarray(labels)]


def _split(key, x, labels, k, n_train, name, source) -> Dataset:
    perm = np.asarray(jax.random.permutation(key, len(x)))
    x, labels = np.asarray(x, np.float32)[perm], np.asarray(labels)[perm]
    return Dataset(name, x[:n_train], _one_hot(labels[:n_train], k), x[n_train:],
                   _one_hot(labels[n_train:], k), source)


def iris_table() -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The 150-row Iris table bundled with ei_jax: features (cm), integer labels, class names."""
    text = importlib.resources.files("ei_jax").joinpath("data/iris.csv").read_text()
    rows = list(csv.reader(io.StringIO(text)))[1:]
    names = sorted({r[4] for r in rows}, key=[r[4] for r in rows].index)
    x = np.array([[float(v) for v in r[:4]] for r in rows])
    return x, np.array([names.index(r[4]) for r in rows]), names


#: The paper divides the Iris features (all below 8 cm) by 8, so they lie in [0, 1].
IRIS_SCALE = 8.0


def load_iris(key) -> Dataset:
    """Iris, features / 8, shuffled with ``key``: 100 training and 50 test rows (as the paper)."""
    x, labels, names = iris_table()
    return _split(key, x / IRIS_SCALE, labels, len(names), 100, "iris",
                  "Iris (Fisher 1936), bundled as ei_jax/data/iris.csv; features / 8")


def area_resize_matrix(n_in: int, n_out: int) -> np.ndarray:
    """``(n_out, n_in)`` matrix averaging the overlap of each output pixel with the input pixels."""
    m = np.zeros((n_out, n_in))
    for o in range(n_out):
        lo, hi = o * n_in / n_out, (o + 1) * n_in / n_out
        for i in range(int(math.floor(lo)), int(math.ceil(hi))):
            m[o, i] = max(0.0, min(hi, i + 1) - max(lo, i))
    return m / m.sum(axis=1, keepdims=True)


def downsample(images, size: int) -> np.ndarray:
    """Area-averaging resize of square images ``(N, h, h)`` to ``(N, size * size)``."""
    images = np.asarray(images, np.float64)
    r = area_resize_matrix(images.shape[1], size)
    return np.einsum("oh,nhw,pw->nop", r, images, r).reshape(len(images), size * size)


def load_digits(key, *, classes: int = 5, size: int = 5) -> Dataset:
    """scikit-learn's bundled 8x8 digits 0-4, resized to 5x5, / 16; 2/3 train, 1/3 test."""
    try:
        from sklearn.datasets import load_digits as sk_digits
    except ImportError:
        raise MissingExtraError(
            "`ei-jax reproduce digits` needs scikit-learn for its bundled 8x8 digits: "
            "pip install 'ei-jax[digits]' (or pass --mnist PATH to a local MNIST file)."
        ) from None
    d = sk_digits()
    keep = d.target < classes
    x = downsample(d.images[keep] / 16.0, size)
    n_train = (2 * int(keep.sum())) // 3
    return _split(key, x, d.target[keep], classes, n_train, "digits",
                  f"scikit-learn 8x8 digits 0-{classes - 1}, area-resized to {size}x{size}, / 16 "
                  "(standing in for MNIST)")


_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path) -> np.ndarray:
    """Reads an idx (ubyte) file, optionally gzipped, as used by MNIST."""
    path = Path(path)
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise LoadDatasetError(f"Cannot read {path}: {e}") from None
    if len(raw) < 4 or raw[:2] != b"\0\0" or raw[2] not in _IDX_TYPES:
        raise LoadDatasetError(f"{path} is not an idx file (MNIST's ubyte format).")
    ndim = raw[3]
    dims = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
    dtype = np.dtype(_IDX_TYPES[raw[2]])
    body = raw[4 + 4 * ndim:]
    if len(body) != math.prod(dims) * dtype.itemsize:
        raise LoadDatasetError(f"{path} is truncated: header says {dims}, got {len(body)} bytes.")
    return np.frombuffer(body, dtype).reshape(dims)


def _mnist_files(path: Path) -> tuple[Path, Path]:
    if path.is_dir():
        for stem in ("train-images-idx3-ubyte", "train-images.idx3-ubyte"):
            for suffix in ("", ".gz"):
                if (path / (stem + suffix)).is_file():
                    return _mnist_files(path / (stem + suffix))
        raise LoadDatasetError(f"No train-images-idx3-ubyte[.gz] in {path}.")
    if not path.is_file():
        raise LoadDatasetError(f"MNIST file {path} does not exist.")
    labels = path.with_name(path.name.replace("images", "labels").replace("idx3", "idx1"))
    if labels == path or not labels.is_file():
        raise LoadDatasetError(f"Found {path} but not its labels file {labels.name} beside it.")
    return path, labels


def load_mnist(path, *, classes: int = 5, size: int = 5, n_train: int = 25_000) -> Dataset:
    """MNIST digits 0-4 from local idx files, resized to 5x5, / 255; first 25,000 for training.

    ``path``: a directory holding ``train-images-idx3-ubyte[.gz]`` and its labels file, or
    the images file itself (its labels file is looked up beside it).
    """
    images, labels = (read_idx(p) for p in _mnist_files(Path(path)))
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise LoadDatasetError(
            f"Expected images (N, 28, 28) and labels (N,); got {images.shape} and {labels.shape}.")
    keep = labels < classes
    x = downsample(images[keep] / 255.0, size).astype(np.float32)
    y = _one_hot(labels[keep].astype(np.int64), classes)
    n_train = min(n_train, (4 * len(x)) // 5)
    return Dataset("mnist", x[:n_train], y[:n_train], x[n_train:], y[n_train:],
                   f"MNIST ({Path(path).name}) digits 0-{classes - 1}, area-resized to {size}x{size}")


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


# --- checkpoints ----------------------------------------------------------------------------

def atomic_write(path, data: bytes | str) -> None:
    """Writes ``data`` to ``path`` through a temporary file and ``os.replace``."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
        # mkstemp creates 0600 files; give outputs the usual permissions (0666 & ~umask).
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def check_writable(path) -> None:
    """Raises ``OSError`` now, before any work, if ``path`` cannot be written later."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a directory; expected a file path.")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"Directory {path.parent} does not exist (for {path}).")
    if not os.access(path.parent, os.W_OK):
        raise PermissionError(f"Cannot write into {path.parent}.")


def save_checkpoint(path, variables) -> None:
    """Saves Flax variables as msgpack (``flax.serialization``), atomically."""
    atomic_write(path, flax.serialization.msgpack_serialize(flax.serialization.to_state_dict(variables)))


def read_flax_checkpoint(path) -> dict:
    """Reads a Flax msgpack file or an orbax checkpoint directory as a nested dict."""
    path = Path(path)
    if not path.exists():
        raise LoadCheckpointError(f"Checkpoint {path} does not exist.")
    if path.is_dir():
        try:
            import orbax.checkpoint as ocp
        except ImportError:
            raise MissingExtraError(
                f"{path} is a directory (an orbax checkpoint?); reading it needs orbax-checkpoint: "
                "pip install orbax-checkpoint.") from None
        try:
            with ocp.StandardCheckpointer() as ckptr:
                tree = ckptr.restore(path.resolve())
        except Exception as e:  # noqa: BLE001 - any orbax failure is a bad checkpoint
            raise LoadCheckpointError(f"Cannot read orbax checkpoint {path}: {type(e).__name__}: "
                                      f"{str(e).splitlines()[0] if str(e) else ''}") from None
        return jax.tree.map(np.asarray, tree)
    try:
        tree = flax.serialization.msgpack_restore(path.read_bytes())
    except Exception as e:  # noqa: BLE001 - msgpack raises many types on corrupt input
        raise LoadCheckpointError(
            f"{path} is not a Flax msgpack checkpoint ({type(e).__name__}). Expected a file written "
            "by flax.serialization.to_bytes/msgpack_serialize, an orbax directory, or a "
            ".pt/.pth/.bin/.safetensors file.") from None
    if not isinstance(tree, dict):
        raise LoadCheckpointError(f"{path} holds a {type(tree).__name__}, not a dict of parameters.")
    return tree


def _natural(s: str):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", s)]


def _kernels(tree, prefix=()):
    if isinstance(tree, dict):
        if "kernel" in tree and hasattr(tree["kernel"], "shape"):
            yield prefix, tree
            return
        for k in sorted(tree, key=lambda k: _natural(str(k))):
            yield from _kernels(tree[k], (*prefix, str(k)))


def mlp_from_params(tree, activation: str | None = "sigmoid"):
    """Rebuilds a chain of Dense layers from a checkpoint's parameter tree.

    Layers are the dicts holding a 2-D ``kernel``, in natural order of their paths
    (``layers_0 < layers_2 < layers_10``); ``activation`` follows every layer.

    Returns:
      ``(model, variables, names)``: a linen ``Sequential``, its variables and the layers'
      paths in the checkpoint.
    """
    params = tree.get("params", tree) if isinstance(tree, dict) else tree
    found = list(_kernels(params))
    if not found:
        raise LoadCheckpointError("The checkpoint holds no layer with a 'kernel'; nothing to measure.")
    for path, p in found:
        if np.ndim(p["kernel"]) != 2:
            raise LoadCheckpointError(
                f"Layer {'/'.join(path)!r} has a {np.ndim(p['kernel'])}-D kernel: ei-jax measure rebuilds "
                "chains of Dense layers only. Measure convolutional networks from Python with "
                "ei_jax.topology_of(model, variables, x).")
    for (p0, a), (p1, b) in zip(found, found[1:]):
        if a["kernel"].shape[1] != b["kernel"].shape[0]:
            raise LoadCheckpointError(
                f"Layers {'/'.join(p0)!r} {a['kernel'].shape} and {'/'.join(p1)!r} {b['kernel'].shape} "
                "do not form a chain; ei-jax measure only rebuilds plain MLPs.")
    from ei_jax._src import activations as _act

    act = _act.function_of(_act.canonical_name(activation) if activation else None)
    layers, new = [], {}
    for path, p in found:
        new[f"layers_{len(layers)}"] = {k: jnp.asarray(v, jnp.float32) for k, v in p.items()
                                        if k in ("kernel", "bias")}
        layers.append(nn.Dense(int(p["kernel"].shape[1]), use_bias="bias" in p))
        if act is not _act.function_of(None):
            layers.append(act)  # Sequential names its modules by list index: layers_0, layers_2
    return nn.Sequential(layers), {"params": new}, ["/".join(p) for p, _ in found]


TORCH_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt", ".safetensors")


def _load_with_bridges(path: Path, activation):
    try:
        import bridges
    except ImportError:
        raise MissingExtraError(
            f"{path.name} looks like a PyTorch/safetensors checkpoint; reading it needs the `bridges` "
            "package of ei-jax, which is not available in this installation.") from None
    return bridges.load_checkpoint(path, architecture=None, activation=activation, api="linen")


def load_any_checkpoint(path, *, activation: str | None = "sigmoid"):
    """``(model, variables, names)`` from a Flax/orbax or a torch/safetensors checkpoint.

    A directory is read with orbax, a ``.pt/.pth/.bin/.ckpt/.safetensors`` file with
    ``bridges.load_checkpoint`` (a plain stack of Linear layers, ``activation`` after each),
    anything else as Flax msgpack (and, failing that, with ``bridges``). ``names`` are the
    layers' paths in a Flax checkpoint, or None (then the topology's names are used).
    """
    path = Path(path)
    if not path.exists():
        raise LoadCheckpointError(f"Checkpoint {path} does not exist.")
    if path.is_file() and path.suffix in TORCH_SUFFIXES:
        return (*_load_with_bridges(path, activation), None)
    try:
        tree = read_flax_checkpoint(path)
    except LoadCheckpointError as flax_error:
        if path.is_dir():
            raise
        try:
            return (*_load_with_bridges(path, activation), None)
        except (EIJaxError, OSError):
            raise flax_error from None
    return mlp_from_params(tree, activation)


def first_input_shape(variables) -> tuple[int, ...]:
    """``(1, n_in)`` of the first Dense kernel (natural path order) of ``variables``."""
    found = list(_kernels(variables.get("params", variables)))
    if not found or np.ndim(found[0][1]["kernel"]) != 2:
        raise LoadCheckpointError(
            "The network's first layer is not Dense, so ei-jax measure cannot tell its input "
            "shape; measure it from Python with ei_jax.topology_of(model, variables, x).")
    return (1, int(found[0][1]["kernel"].shape[0]))


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
