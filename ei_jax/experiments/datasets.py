"""The paper's datasets, as :class:`Dataset`: Iris, 5x5 digits and MNIST.

Datasets ship with the package or a dependency (no downloads): Iris from ``ei_jax/data``,
scikit-learn's 8x8 digits (the ``digits`` extra) standing in for MNIST, or a local MNIST
file in the standard idx format.
"""

import csv
import dataclasses
import gzip
import importlib.resources
import io
import math
import struct
from pathlib import Path
from typing import Any

import jax
import numpy as np

from ei_jax._src.base.errors import LoadDatasetError, MissingDependencyError


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
        raise MissingDependencyError(
            "`ei-jax reproduce digits` needs scikit-learn for its bundled 8x8 digits: "
            "pip install scikit-learn (from an ei-jax checkout: pip install '.[digits]'), or pass "
            "--mnist PATH to a local MNIST file."
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
