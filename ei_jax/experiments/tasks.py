"""Synthetic tasks generated deterministically from a key (no files, no downloads).

:func:`nested_xor` is a task that needs depth: the label is the XOR of ``dims`` thresholded
coordinates, ``[x_1 > 1/2] xor [x_2 > 1/2] xor ...`` -- the parity of a ``dims``-dimensional
checkerboard, a composition of pairwise XORs. A deep narrow network composes the XORs layer by
layer; a one-hidden-layer network with the same number of parameters must carve all
``2 ** dims`` cells at once (the depth study measures the gap: ``ei-jax study depth``).
"""

import jax
import numpy as np

from ei_jax.experiments.datasets import Dataset, _one_hot


def nested_xor(key, *, dims: int = 4, n_train: int = 3_000, n_test: int = 1_000) -> Dataset:
    """Inputs uniform in ``[0, 1] ** dims``; label ``sum_i [x_i > 1/2] mod 2`` (two classes).

    Args:
      key: ``jax.random.key``: the same key gives the same data.
      dims: input dimension (the number of XORed coordinates).
      n_train, n_test: sizes of the two independent samples.

    Returns:
      :class:`~ei_jax.experiments.datasets.Dataset` with ``x`` ``(N, dims)`` float32 in [0, 1]
      and one-hot ``y`` ``(N, 2)``; about half of each class.

    Example:
      >>> import jax
      >>> d = nested_xor(jax.random.key(0), dims=3, n_train=100, n_test=50)
      >>> d.x_train.shape, d.y_test.shape
      ((100, 3), (50, 2))
      >>> int(((d.x_train > 0.5).sum(1) % 2 == d.y_train.argmax(1)).all())
      1
    """
    x = np.asarray(jax.random.uniform(key, (n_train + n_test, dims)), np.float32)
    labels = ((x > 0.5).sum(1) % 2).astype(np.int64)
    y = _one_hot(labels, 2)
    return Dataset(f"nested-xor-{dims}", x[:n_train], y[:n_train], x[n_train:], y[n_train:],
                   f"nested XOR of {dims} thresholded uniform coordinates (ei_jax.experiments.tasks)")
