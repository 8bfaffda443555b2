"""Parameter-free structure layers that :func:`ei_jax.topology_of` can see through.

``Flatten``, ``AvgPool`` and ``MaxPool`` are frozen dataclasses with a pure ``__call__(x)``:
the same object works in a ``flax.linen.Sequential``, a ``flax.nnx.Sequential`` and inside a
custom module of either API. They carry no parameters, so linen and NNX treat them as static
callables (like ``nn.relu``).

They exist so that a convolutional network (``Conv -> act -> pool -> ... -> Flatten -> Dense``)
has a topology: ``topology_of`` records every call of these layers and keeps them as the
``"after"`` attribute of the weight layer they follow (see :mod:`ei_jax._src.topology`).
``bridges.from_torch`` builds converted PyTorch networks from them.

Layout: images are ``(batch, height, width, channels)`` (NHWC, Flax's convention).
``Flatten(channels_first=True)`` transposes NHWC to NCHW before flattening, so that the
flattened order is PyTorch's and a Dense converted from a ``torch.nn.Linear`` that followed a
``torch.nn.Flatten`` keeps its weight order.

Pooling follows ``torch.nn.AvgPool2d`` / ``MaxPool2d``: ``strides`` defaults to the window,
``padding`` is symmetric zero padding (average) or ``-inf`` padding (max), and
``count_include_pad`` chooses whether padded zeros count in the average.
"""

import contextlib
import contextvars
import dataclasses

import jax
import jax.numpy as jnp

__all__ = ["AvgPool", "Flatten", "MaxPool"]

# Where calls are recorded while topology_of probes a model (None otherwise).
_RECORDER: contextvars.ContextVar = contextvars.ContextVar("ei_jax_structure_recorder", default=None)


@contextlib.contextmanager
def recording(events: list):
    """Within the block, every structure-layer call appends ``(layer, x, y)`` to ``events``."""
    token = _RECORDER.set(events)
    try:
        yield events
    finally:
        _RECORDER.reset(token)


def _record(layer, x, y):
    events = _RECORDER.get()
    if events is not None:
        events.append((layer, x, y))
    return y


def _pair(v, name) -> tuple[int, int]:
    if isinstance(v, int) and not isinstance(v, bool):
        v = (v, v)
    try:
        a, b = (int(e) for e in v)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be an int or a pair of ints. Got {v!r}.") from None
    return a, b


def _padding(v) -> tuple[tuple[int, int], tuple[int, int]]:
    if isinstance(v, int) and not isinstance(v, bool):
        return ((v, v), (v, v))
    v = tuple(v)
    if len(v) == 2 and all(isinstance(e, int) for e in v):
        return ((v[0], v[0]), (v[1], v[1]))
    (a, b), (c, d) = v
    return ((int(a), int(b)), (int(c), int(d)))


def _check_image(x, name):
    if x.ndim != 4:
        raise ValueError(f"{name} expects images (batch, height, width, channels). Got shape {x.shape}.")


@dataclasses.dataclass(frozen=True)
class Flatten:
    """Flattens every axis but the batch axis: ``(B, ...) -> (B, prod(...))``.

    Attributes:
      channels_first: for an image ``(B, H, W, C)``, flatten in PyTorch's ``(C, H, W)`` order
        (transpose NHWC -> NCHW first). Lower-rank inputs are reshaped as they are.

    Example:
      >>> import jax.numpy as jnp
      >>> from ei_jax import Flatten
      >>> x = jnp.arange(8.0).reshape(1, 2, 2, 2)          # (B, H, W, C)
      >>> Flatten(channels_first=True)(x)                   # channel 0 first, as torch
      Array([[0., 2., 4., 6., 1., 3., 5., 7.]], dtype=float32)
    """

    channels_first: bool = False

    def __call__(self, x: jax.Array) -> jax.Array:
        y = x
        if self.channels_first and x.ndim == 4:
            y = jnp.transpose(x, (0, 3, 1, 2))
        return _record(self, x, y.reshape(x.shape[0], -1))


@dataclasses.dataclass(frozen=True)
class AvgPool:
    """2-d average pooling of images ``(B, H, W, C)``, as ``torch.nn.AvgPool2d``.

    Attributes:
      window: ``(kh, kw)`` (an int means square).
      strides: ``(sh, sw)``; ``None`` means the window (PyTorch's default).
      padding: zero padding, an int, ``(ph, pw)`` or ``((top, bottom), (left, right))``.
      count_include_pad: count the padded zeros in the divisor (PyTorch's default).

    Output: ``(B, H', W', C)`` with ``H' = (H + top + bottom - kh) // sh + 1``.

    Example:
      >>> import jax.numpy as jnp
      >>> from ei_jax import AvgPool
      >>> AvgPool(2)(jnp.ones((1, 4, 4, 3))).shape
      (1, 2, 2, 3)
    """

    window: tuple[int, int] | int
    strides: tuple[int, int] | int | None = None
    padding: tuple | int = 0
    count_include_pad: bool = True

    def __post_init__(self):
        object.__setattr__(self, "window", _pair(self.window, "window"))
        object.__setattr__(self, "strides", self.window if self.strides is None
                           else _pair(self.strides, "strides"))
        object.__setattr__(self, "padding", _padding(self.padding))

    def __call__(self, x: jax.Array) -> jax.Array:
        _check_image(x, "AvgPool")
        dims = (1, *self.window, 1)
        strides = (1, *self.strides, 1)
        pad = ((0, 0), *self.padding, (0, 0))
        total = jax.lax.reduce_window(x, jnp.zeros((), x.dtype), jax.lax.add, dims, strides, pad)
        if self.count_include_pad:
            y = total / jnp.asarray(self.window[0] * self.window[1], x.dtype)
        else:
            ones = jnp.ones((1, *x.shape[1:3], 1), x.dtype)
            count = jax.lax.reduce_window(ones, jnp.zeros((), x.dtype), jax.lax.add, dims, strides, pad)
            y = total / count
        return _record(self, x, y)


@dataclasses.dataclass(frozen=True)
class MaxPool:
    """2-d max pooling of images ``(B, H, W, C)``, as ``torch.nn.MaxPool2d``.

    Attributes:
      window: ``(kh, kw)`` (an int means square).
      strides: ``(sh, sw)``; ``None`` means the window (PyTorch's default).
      padding: ``-inf`` padding, an int, ``(ph, pw)`` or ``((top, bottom), (left, right))``.

    Example:
      >>> import jax.numpy as jnp
      >>> from ei_jax import MaxPool
      >>> MaxPool(2)(jnp.arange(16.0).reshape(1, 4, 4, 1))[0, :, :, 0]
      Array([[ 5.,  7.],
             [13., 15.]], dtype=float32)
    """

    window: tuple[int, int] | int
    strides: tuple[int, int] | int | None = None
    padding: tuple | int = 0

    def __post_init__(self):
        object.__setattr__(self, "window", _pair(self.window, "window"))
        object.__setattr__(self, "strides", self.window if self.strides is None
                           else _pair(self.strides, "strides"))
        object.__setattr__(self, "padding", _padding(self.padding))

    def __call__(self, x: jax.Array) -> jax.Array:
        _check_image(x, "MaxPool")
        y = jax.lax.reduce_window(x, jnp.asarray(-jnp.inf, x.dtype), jax.lax.max, (1, *self.window, 1),
                                  (1, *self.strides, 1), ((0, 0), *self.padding, (0, 0)))
        return _record(self, x, y)


#: Structure layers whose output range is inside the input range (an activation's range is kept).
STRUCTURE_TYPES = (Flatten, AvgPool, MaxPool)
#: Structure layers that commute with every monotone elementwise activation.
COMMUTES_WITH_ACTIVATION = (Flatten, MaxPool)
