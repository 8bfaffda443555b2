"""The pure, jittable core: ``f(key, apply_fn, params, *, ...)`` returning ``jax.Array`` values.

Use these to ``jax.vmap`` a measure over a stack of parameters (checkpoints, weight
sweeps) or over keys, or :func:`map_params` to measure a long stack in bounded memory.
``apply_fn(params, x)`` maps a batch of inputs ``(C, *in_shape)`` to the layer's activated
outputs; define it once, so that new weights reuse the compiled program.

Example:
  >>> import jax, jax.numpy as jnp
  >>> from ei_jax import core
  >>> def apply(w, x):                      # define once: compiled once per structure
  ...     return jax.nn.sigmoid(x @ w)
  >>> ws = jax.random.normal(jax.random.key(0), (8, 1, 1)) * 4   # 8 weight "checkpoints"
  >>> f = jax.vmap(lambda w: core.ei_parts(jax.random.key(1), apply, w, in_shape=(1,),
  ...              in_range=(0, 1), in_bins=16, out_range=(0, 1), out_bins=16, samples=20_000))
  >>> f(ws).shape
  (8,)
"""

from ei_jax._src.core.batching import map_params
from ei_jax._src.core.estimates import (
    ei_parts_estimate,
    ei_parts_matrix_estimate,
    sensitivity_estimate,
    sensitivity_matrix_estimate,
)
from ei_jax._src.core.measures import (
    ei_parts,
    ei_parts_matrix,
    pairwise_stats,
    sensitivity,
    sensitivity_matrix,
    sensitivity_stats,
    vector_ei,
    vector_stats,
)
from ei_jax._src.exact.kernel import exact_ei_parts_matrix, exact_sensitivity_matrix
from ei_jax._src.base.interface import BLOCK, MAX_SAMPLES, PairStats, VectorStats
from ei_jax._src.sampled.interventions import uniform_blocks

__all__ = [
    "BLOCK",
    "MAX_SAMPLES",
    "PairStats",
    "VectorStats",
    "ei_parts",
    "ei_parts_estimate",
    "ei_parts_matrix",
    "ei_parts_matrix_estimate",
    "exact_ei_parts_matrix",
    "exact_sensitivity_matrix",
    "map_params",
    "pairwise_stats",
    "sensitivity",
    "sensitivity_estimate",
    "sensitivity_matrix",
    "sensitivity_matrix_estimate",
    "sensitivity_stats",
    "uniform_blocks",
    "vector_ei",
    "vector_stats",
]
