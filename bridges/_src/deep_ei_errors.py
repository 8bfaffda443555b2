"""Errors of :mod:`bridges.deep_ei`: ei_jax's error family, catchable as deep-ei's were.

deep-ei 0.7.0 signalled bad input with whatever Python raised on the way: ``KeyError`` for a
module that is not in the topology, ``AssertionError`` for an ``in_layer`` after ``layer``,
``TypeError`` for a missing ``samples``. A script may catch those, so each error here derives
from the ei_jax error that names the problem *and* from the builtin deep-ei raised, with
ei_jax's message (expected vs got, and what to do).
"""

from ei_jax import EIJaxError
from ei_jax.errors import (
    InvalidSamplesError,
    LayerNotFoundError,
    LayerOrderError,
    UnknownActivationError,
)

class LayerKeyError(LayerNotFoundError, KeyError):
    """``layer`` or ``in_layer`` is not a node of the topology (deep-ei: ``KeyError``)."""

    def __str__(self):  # KeyError would print the message as a quoted repr
        return str(self.args[0]) if self.args else ""


class SpanOrderError(LayerOrderError, AssertionError):
    """``in_layer`` does not come before ``layer`` (deep-ei: ``AssertionError``)."""


class TopologyTypeError(EIJaxError, TypeError):
    """``topology`` is not a graph made by :func:`bridges.deep_ei.topology_of`."""


class SamplesRequiredError(InvalidSamplesError, TypeError):
    """A measure without an automatic mode got ``samples=None`` (deep-ei: ``TypeError``)."""


class DynamicBinningError(EIJaxError, ValueError):
    """``'dynamic'`` ranges or bins, which the drop-in does not support (deep-ei: ``ValueError``
    for a dynamic ``in_range``)."""


class DeviceValueError(EIJaxError, ValueError, RuntimeError):
    """``device=`` is not a device torch can name (torch: ``RuntimeError``)."""


class DeviceUnavailableError(EIJaxError, RuntimeError, AssertionError):
    """``device=`` names a device this machine's torch does not have, e.g. ``"cuda"`` without a
    GPU (deep-ei: torch's ``AssertionError`` "Torch not compiled with CUDA enabled", or its
    ``RuntimeError`` when the driver or device is missing, when it allocates its buffers)."""


class ActivationTypeError(UnknownActivationError, TypeError):
    """``activation=`` is neither None, a known name, nor a callable that maps a tensor to a
    tensor of the same shape (deep-ei: ``TypeError`` when it called it)."""


class UnrecognisedOperationWarning(UserWarning):
    """A layer's output goes through an operation ``topology_of`` does not recognise as an
    activation (e.g. ``F.leaky_relu``): its measures use no activation unless one is passed."""
