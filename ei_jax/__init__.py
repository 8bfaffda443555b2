"""ei_jax: effective information and the causal structure of neural-network layers, in JAX.

The JAX/Flax successor of deep-ei 0.7.0 (Mattsson, Michaud & Hoel, Entropy 2020). See the
README for a quick start and the differences from deep-ei.

Set ``EI_JAX_CACHE_DIR`` (a directory, or empty for ``~/.cache/ei_jax/jax``) to keep JAX's
compiled programs on disk: later runs of a script skip compiling them.
"""

from ei_jax._src.compilation_cache import enable_from_environment as _enable_cache_from_env

from ei_jax import core, exact
from ei_jax._src.compilation_cache import enable_compilation_cache
from ei_jax._src.errors import (
    CheckpointError,
    CheckpointNotFoundError,
    CheckpointShapeError,
    DefaultRangeWarning,
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
    MemoryBudgetError,
    MissingDependencyError,
    NonFiniteParamsError,
    NotDifferentiableError,
    OutOfRangeWarning,
    SampleLimitedWarning,
    ShapeMismatchError,
    UnknownActivationError,
    UnsupportedModuleError,
)
from ei_jax._src.estimators import (
    entropy,
    joint_histograms,
    mutual_information,
    mutual_information_from_counts,
    pairwise_mutual_information,
)
from ei_jax._src.layers import AvgPool, Flatten, MaxPool
from ei_jax._src.estimate import Estimate
from ei_jax._src.causal_plane import CausalPlanePoint, causal_plane, degeneracy, rotate_causal_plane
from ei_jax._src.pairwise_measures import ei_parts, ei_parts_matrix, sensitivity, sensitivity_matrix
from ei_jax._src.vector_measures import ei, eis_between_groups, vector_and_pairwise_ei
from ei_jax._src.topology import topology_of

__version__ = "0.1.0"

_enable_cache_from_env()

__all__ = [
    "AvgPool",
    "CausalPlanePoint",
    "CheckpointError",
    "CheckpointNotFoundError",
    "CheckpointShapeError",
    "DefaultRangeWarning",
    "EIJaxError",
    "EmptyHistogramError",
    "Estimate",
    "ExactUnavailableError",
    "Flatten",
    "InvalidBinsError",
    "InvalidCallError",
    "InvalidOptionError",
    "InvalidRangeError",
    "InvalidSamplesError",
    "InvalidWindowError",
    "LayerNotFoundError",
    "LayerOrderError",
    "MaxPool",
    "MemoryBudgetError",
    "MissingDependencyError",
    "NonFiniteParamsError",
    "NotDifferentiableError",
    "OutOfRangeWarning",
    "SampleLimitedWarning",
    "ShapeMismatchError",
    "UnknownActivationError",
    "UnsupportedModuleError",
    "causal_plane",
    "core",
    "degeneracy",
    "ei",
    "ei_parts",
    "ei_parts_matrix",
    "eis_between_groups",
    "exact",
    "enable_compilation_cache",
    "entropy",
    "joint_histograms",
    "mutual_information",
    "mutual_information_from_counts",
    "pairwise_mutual_information",
    "rotate_causal_plane",
    "sensitivity",
    "sensitivity_matrix",
    "topology_of",
    "vector_and_pairwise_ei",
]
