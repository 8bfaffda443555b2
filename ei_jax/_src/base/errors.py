"""Typed exceptions raised by ei_jax.

Every error names what was expected, what was given, and what to do. All of them
derive from :class:`EIJaxError`, and from the builtin exception a Python user would
expect (``ValueError``, ``TypeError``, ``LookupError``), so ``except ValueError``
keeps working.
"""

__all__ = [
    "EIJaxError",
    "InvalidRangeError",
    "InvalidBinsError",
    "InvalidSamplesError",
    "InvalidOptionError",
    "NotDifferentiableError",
    "LayerNotFoundError",
    "LayerOrderError",
    "ShapeMismatchError",
    "NonFiniteParamsError",
    "UnsupportedModuleError",
    "UnknownActivationError",
    "EmptyHistogramError",
    "MemoryBudgetError",
    "ExactUnavailableError",
    "InvalidWindowError",
    "InvalidCallError",
    "LoadDatasetError",
    "CheckpointError",
    "CheckpointNotFoundError",
    "CheckpointShapeError",
    "MissingDependencyError",
    "ProcessFailedError",
    "DefaultRangeWarning",
    "OutOfRangeWarning",
    "SampleLimitedWarning",
]


class EIJaxError(Exception):
    """Base class of every ei_jax error."""


class InvalidRangeError(EIJaxError, ValueError):
    """A range ``(lo, hi)`` is not two finite numbers with ``lo < hi``."""


class InvalidBinsError(EIJaxError, ValueError):
    """A bin count is not a positive integer, or needs more memory than allowed."""


class InvalidSamplesError(EIJaxError, ValueError):
    """A sample count, batch size or threshold is out of its valid domain."""


class InvalidOptionError(EIJaxError, ValueError):
    """An option (``batch_size``, ``group_size``, ``devices``, ``method``, ``versus``, ...) is
    out of its valid domain."""


class NotDifferentiableError(EIJaxError, TypeError):
    """A sampled measure was differentiated: hard binning has zero gradient almost everywhere."""


class LayerNotFoundError(EIJaxError, LookupError):
    """A layer name is not a node of the topology."""


class LayerOrderError(EIJaxError, ValueError):
    """``in_layer`` does not come before (or equal) ``layer`` in the network."""


class ShapeMismatchError(EIJaxError, ValueError):
    """Arrays, parameters or shapes do not fit together."""


class NonFiniteParamsError(EIJaxError, ValueError):
    """Parameters contain NaN or infinity."""


class UnsupportedModuleError(EIJaxError, TypeError):
    """The network contains structure ei_jax cannot measure layer by layer."""


class UnknownActivationError(EIJaxError, ValueError):
    """An activation is neither a known name nor a callable with an explicit range."""


class EmptyHistogramError(EIJaxError, ValueError):
    """Every sample of some input/output pair fell outside the binning range."""


class MemoryBudgetError(EIJaxError, MemoryError):
    """The requested histograms would not fit the memory budget."""


class ExactUnavailableError(EIJaxError, TypeError):
    """A measure has no exact (infinite-sample) form for this layer: use the sampled one."""


class InvalidWindowError(EIJaxError, TypeError, ValueError):
    """A pooling window, stride or padding is not a positive int, a pair of them, or valid padding."""


class InvalidCallError(EIJaxError, TypeError):
    """A function got the wrong arguments for what it was given (e.g. linen vs NNX models)."""


class LoadDatasetError(EIJaxError, ValueError):
    """A dataset file is missing or not in the expected format."""


class CheckpointError(EIJaxError, ValueError):
    """A checkpoint is corrupt, of an unknown format, or holds a network that cannot be rebuilt
    (or does not fit the architecture given)."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """A checkpoint path does not exist (or is not the kind of path expected)."""


class CheckpointShapeError(CheckpointError, ShapeMismatchError):
    """A tensor in a checkpoint has a different shape from the architecture's parameter."""


class MissingDependencyError(EIJaxError, ImportError):
    """An optional dependency (torch, safetensors, scikit-learn, orbax) is needed for this
    input but not installed; the message says what to install."""


class ProcessFailedError(EIJaxError, RuntimeError):
    """Another process of a ``jax.distributed`` run stopped while a measurement needed it (its
    collective failed): the measurement cannot finish; restart every process."""


class DefaultRangeWarning(UserWarning):
    """A range was filled in from a default the user probably did not mean."""


class SampleLimitedWarning(UserWarning):
    """An estimate is limited by its samples: its bias correction or ceiling dominates it."""


class OutOfRangeWarning(UserWarning):
    """Some samples fell outside the binning range and were dropped (or clipped)."""


class ExactTruncatedWarning(UserWarning):
    """An exact measure under ``jax.jit`` / ``grad`` / ``vmap`` could not guarantee its accuracy
    for some outputs (too few series terms for traced weights): those entries are NaN."""
