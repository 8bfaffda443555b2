"""Exact (infinite-sample) measures: EI_parts, sensitivity, degeneracy; vector EI of small layers.

For a single layer ``y = f(x @ W + b)`` with an activation whose preimage is known
(sigmoid, tanh, ReLU, identity; also softplus, ELU, leaky ReLU; and GELU in its erf and tanh
forms, SiLU/swish and mish, which are not monotone: a bin's preimage is then a union of
intervals), the binned joint
distribution of every input/output pair under deep-ei's interventions is computed exactly, so
these are the values deep-ei's plug-in estimates converge to as the sample count grows --
without their upward bias of about ``(cells - rows - columns + 1) / (2 N ln 2)`` bits per pair.

:func:`ei` is exact vector EI for small layers (every input cell is a box: the layer's
``in_bins ** n_in`` cells must be few; host NumPy, not traceable). Same arguments as the
sampled measures minus ``key``, ``samples``, ``threshold`` and
``batch_size``. The pure, jittable and differentiable matrices are
:func:`exact_ei_parts_matrix` and :func:`exact_sensitivity_matrix` (kernel, bias).

Example:
  >>> import jax, jax.numpy as jnp, flax.linen as nn
  >>> from ei_jax import exact, topology_of
  >>> net = nn.Dense(3, use_bias=False)
  >>> x0 = jnp.zeros((1, 4))
  >>> top = topology_of(net, net.init(jax.random.key(0), x0), x0)
  >>> e = exact.ei_parts(top, "Dense", in_range=(0, 1), in_bins=8, out_range=(0, 1), out_bins=8,
  ...                    activation="sigmoid")
  >>> e > 0
  True
"""

from ei_jax._src.exact.kernel import exact_ei_parts_matrix, exact_sensitivity_matrix
from ei_jax._src.exact.vector import ei, exact_vector_ei
from ei_jax._src.exact.measures import (
    ExactLayer,
    causal_plane,
    degeneracy,
    ei_parts,
    ei_parts_matrix,
    exact_layer,
    layer_values,
    sensitivity,
    sensitivity_matrix,
)

__all__ = [
    "ExactLayer",
    "causal_plane",
    "degeneracy",
    "ei",
    "ei_parts",
    "ei_parts_matrix",
    "exact_ei_parts_matrix",
    "exact_layer",
    "exact_sensitivity_matrix",
    "exact_vector_ei",
    "layer_values",
    "sensitivity",
    "sensitivity_matrix",
]
