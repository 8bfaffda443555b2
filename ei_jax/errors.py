"""Every exception and warning ei_jax raises, in one public module.

Each error derives from :class:`EIJaxError` and from the builtin a Python user would catch
(``ValueError``, ``TypeError``, ``LookupError``, ``FileNotFoundError``, ``ImportError``,
``MemoryError``), so ``except ValueError`` keeps working. The base error and the three warnings
users filter are also available from the top level (``ei_jax.EIJaxError``,
``ei_jax.SampleLimitedWarning``, ...).

Example:
  >>> import ei_jax
  >>> from ei_jax.errors import InvalidBinsError
  >>> issubclass(InvalidBinsError, ei_jax.EIJaxError) and issubclass(InvalidBinsError, ValueError)
  True
"""

from ei_jax._src.base.errors import (
    CheckpointError,
    CheckpointNotFoundError,
    CheckpointShapeError,
    DefaultRangeWarning,
    ExactTruncatedWarning,
    EIJaxError,
    EmptyHistogramError,
    ExactUnavailableError,
    InvalidBinsError,
    InvalidCallError,
    InvalidOptionError,
    InvalidRangeError,
    InvalidSamplesError,
    InvalidWindowError,
    LayerNotFoundError,
    LayerOrderError,
    LoadDatasetError,
    MemoryBudgetError,
    MissingDependencyError,
    NonFiniteParamsError,
    NotDifferentiableError,
    OutOfRangeWarning,
    ProcessFailedError,
    SampleLimitedWarning,
    ShapeMismatchError,
    UnknownActivationError,
    UnsupportedModuleError,
)

__all__ = [
    "CheckpointError",
    "CheckpointNotFoundError",
    "CheckpointShapeError",
    "DefaultRangeWarning",
    "ExactTruncatedWarning",
    "EIJaxError",
    "EmptyHistogramError",
    "ExactUnavailableError",
    "InvalidBinsError",
    "InvalidCallError",
    "InvalidOptionError",
    "InvalidRangeError",
    "InvalidSamplesError",
    "InvalidWindowError",
    "LayerNotFoundError",
    "LayerOrderError",
    "LoadDatasetError",
    "MemoryBudgetError",
    "MissingDependencyError",
    "NonFiniteParamsError",
    "NotDifferentiableError",
    "OutOfRangeWarning",
    "ProcessFailedError",
    "SampleLimitedWarning",
    "ShapeMismatchError",
    "UnknownActivationError",
    "UnsupportedModuleError",
]
