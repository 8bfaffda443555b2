"""ei_jax: effective information and the causal structure of neural-network layers, in JAX.

The JAX/Flax successor of deep-ei 0.7.0 (Mattsson, Michaud & Hoel, Entropy 2020). See the
documentation (``docs/``: getting started, concepts, migrating from deep-ei) for a quick
start and the differences from deep-ei.

Set ``EI_JAX_CACHE_DIR`` (a directory, or empty for ``~/.cache/ei_jax/jax``) to keep JAX's
compiled programs on disk: later runs of a script skip compiling them.
"""

from importlib import metadata as _metadata

from ei_jax._src.base.compilation_cache import enable_from_environment as _enable_cache_from_env

from ei_jax import core, errors, exact
from ei_jax._src.base.compilation_cache import enable_compilation_cache
from ei_jax._src.base.errors import (
    DefaultRangeWarning,
    EIJaxError,
    OutOfRangeWarning,
    SampleLimitedWarning,
)
from ei_jax._src.info.estimators import (
    entropy,
    joint_histograms,
    mutual_information,
    mutual_information_from_counts,
    pairwise_mutual_information,
)
from ei_jax._src.model.activations import Activation, activations
from ei_jax._src.model.layers import AvgPool, Flatten, MaxPool
from ei_jax._src.info.uncertainty import Estimate
from ei_jax._src.measures.causal_plane import causal_plane, degeneracy
from ei_jax._src.info.causal_plane_point import CausalPlanePoint, rotate_causal_plane
from ei_jax._src.measures.pairwise import ei_parts, ei_parts_matrix, sensitivity, sensitivity_matrix
from ei_jax._src.measures.vector import ei, eis_between_groups, vector_and_pairwise_ei
from ei_jax._src.model.topology import topology_of

try:
    __version__ = _metadata.version("ei-jax")
except _metadata.PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"

_enable_cache_from_env()

__all__ = [
    "Activation",
    "AvgPool",
    "CausalPlanePoint",
    "DefaultRangeWarning",
    "EIJaxError",
    "Estimate",
    "Flatten",
    "MaxPool",
    "OutOfRangeWarning",
    "SampleLimitedWarning",
    "activations",
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
    "errors",
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
