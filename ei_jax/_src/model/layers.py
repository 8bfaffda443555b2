"""Parameter-free structure layers that :func:`ei_jax.topology_of` can see through.

``Flatten``, ``AvgPool`` and ``MaxPool`` are frozen dataclasses with a pure ``__call__(x)``:
the same object works in a ``flax.linen.Sequential``, a ``flax.nnx.Sequential`` and inside a
custom module of either API. They carry no parameters, so linen and NNX treat them as static
callables (like ``nn.relu``).

They exist so that a convolutional network (``Conv -> act -> pool -> ... -> Flatten -> Dense``)
has a topology: ``topology_of`` records every call of these layers and keeps them as the
``"after"`` attribute of the weight layer they follow (see :mod:`ei_jax._src.model.topology`);
each call reports itself to :mod:`ei_jax._src.model.recording`, which keeps it only while a
recording is active.
``bridges.from_torch`` builds converted PyTorch networks from them.

Layout: images are ``(batch, height, width, channels)`` (NHWC, Flax's convention).
``Flatten(channels_first=True)`` transposes NHWC to NCHW before flattening, so that the
flattened order is PyTorch's and a Dense converted from a ``torch.nn.Linear`` that followed a
``torch.nn.Flatten`` keeps its weight order.

Pooling follows ``torch.nn.AvgPool2d`` / ``MaxPool2d``: ``strides`` defaults to the window,
``padding`` is symmetric zero padding (average) or ``-inf`` padding (max), and
``count_include_pad`` chooses whether padded zeros count in the average.
"""

import dataclasses
import operator

import jax
import jax.numpy as jnp

from ei_jax._src.base.errors import InvalidWindowError, ShapeMismatchError
from ei_jax._src.model.recording import note_structure_call as _record

__all__ = ["AvgPool", "Flatten", "MaxPool"]


def _ints(v, n, low) -> tuple[int, ...] | None:
    """``v`` as ``n`` ints ``>= low`` (an int means ``n`` copies), or ``None`` if it is not."""
    try:
        vals = (operator.index(v),) * n if not isinstance(v, (tuple, list)) else tuple(map(operator.index, v))
    except TypeError:
        return None
    return vals if len(vals) == n and not any(isinstance(e, bool) or e < low for e in vals) else None


def _pair(v, name) -> tuple[int, int]:
    pair = None if isinstance(v, bool) else _ints(v, 2, 1)
    if pair is None:
        raise InvalidWindowError(f"{name} must be a positive int or a pair of positive ints. Got {v!r}.")
    return pair


def _padding(v) -> tuple[tuple[int, int], tuple[int, int]]:
    flat = None if isinstance(v, bool) else _ints(v, 2, 0)
    if flat is not None:
        return ((flat[0], flat[0]), (flat[1], flat[1]))
    pads = tuple(_ints(p, 2, 0) for p in v) if isinstance(v, (tuple, list)) and len(v) == 2 else (None,)
    if None in pads:
        raise InvalidWindowError(
            "padding must be a non-negative int, (ph, pw) or ((top, bottom), (left, right)) of "
            f"non-negative ints. Got {v!r}."
        )
    return pads


def _check_image(x, name):
    if x.ndim != 4:
        raise ShapeMismatchError(
            f"{name} expects images (batch, height, width, channels), rank 4. Got shape {x.shape}; "
            "add the missing axes (e.g. x[..., None] for one channel)."
        )


class _Pool:
    """What both poolings share: normalising ``window``/``strides``/``padding``, the reduction."""

    def __post_init__(self):
        object.__setattr__(self, "window", _pair(self.window, "window"))
        object.__setattr__(self, "strides", self.window if self.strides is None
                           else _pair(self.strides, "strides"))
        object.__setattr__(self, "padding", _padding(self.padding))

    def _reduce(self, x, init, op):
        """``op``-reduction of every window of ``x`` ``(B, H, W, C)``, padded with ``init``."""
        return jax.lax.reduce_window(x, jnp.asarray(init, x.dtype), op, (1, *self.window, 1),
                                     (1, *self.strides, 1), ((0, 0), *self.padding, (0, 0)))


@dataclasses.dataclass(frozen=True)
class Flatten:
    """Flattens every axis but the batch axis: ``(B, ...) -> (B, prod(...))``.

    Attributes:
      channels_first: for an image ``(B, H, W, C)``, flatten in PyTorch's ``(C, H, W)`` order
        (transpose NHWC -> NCHW first). Lower-rank inputs are reshaped as they are.

    Calling it on ``x`` ``(B, d1, ..., dk)`` returns ``(B, d1 * ... * dk)``, the same values
    in row-major order (of ``(B, C, H, W)`` when ``channels_first`` and ``x`` is an image).

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
class AvgPool(_Pool):
    """2-d average pooling of images ``(B, H, W, C)``, as ``torch.nn.AvgPool2d``.

    Attributes:
      window: ``(kh, kw)`` (an int means square).
      strides: ``(sh, sw)``; ``None`` means the window (PyTorch's default).
      padding: zero padding, an int, ``(ph, pw)`` or ``((top, bottom), (left, right))``.
      count_include_pad: count the padded zeros in the divisor (PyTorch's default); if
        false, each window is divided by the number of real (unpadded) values in it.

    Calling it on images ``x`` ``(B, H, W, C)`` returns ``(B, H', W', C)`` with
    ``H' = (H + top + bottom - kh) // sh + 1`` (``W'`` likewise), each value the mean of one
    ``kh x kw`` window of the zero-padded image. Invalid arguments raise
    :class:`~ei_jax._src.base.errors.InvalidWindowError`; a non-image ``x`` raises
    :class:`ei_jax.errors.ShapeMismatchError`.

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

    def __call__(self, x: jax.Array) -> jax.Array:
        _check_image(x, "AvgPool")
        total = self._reduce(x, 0.0, jax.lax.add)
        if self.count_include_pad:
            y = total / jnp.asarray(self.window[0] * self.window[1], x.dtype)
        else:
            y = total / self._reduce(jnp.ones((1, *x.shape[1:3], 1), x.dtype), 0.0, jax.lax.add)
        return _record(self, x, y)


@dataclasses.dataclass(frozen=True)
class MaxPool(_Pool):
    """2-d max pooling of images ``(B, H, W, C)``, as ``torch.nn.MaxPool2d``.

    Attributes:
      window: ``(kh, kw)`` (an int means square).
      strides: ``(sh, sw)``; ``None`` means the window (PyTorch's default).
      padding: ``-inf`` padding, an int, ``(ph, pw)`` or ``((top, bottom), (left, right))``.

    Calling it on images ``x`` ``(B, H, W, C)`` returns ``(B, H', W', C)`` with
    ``H' = (H + top + bottom - kh) // sh + 1`` (``W'`` likewise), each value the maximum of
    one ``kh x kw`` window (padding never wins). Errors as :class:`AvgPool`.

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

    def __call__(self, x: jax.Array) -> jax.Array:
        _check_image(x, "MaxPool")
        return _record(self, x, self._reduce(x, -jnp.inf, jax.lax.max))


#: Structure layers whose output range is inside the input range (an activation's range is kept).
STRUCTURE_TYPES = (Flatten, AvgPool, MaxPool)
#: Structure layers that commute with every monotone elementwise activation.
COMMUTES_WITH_ACTIVATION = (Flatten, MaxPool)
