"""A drop-in for deep-ei 0.7.0: run existing deep-ei scripts on JAX by changing one line.

    from deep_ei import topology_of, ei, ei_parts, sensitivity          # before
    from bridges.deep_ei import topology_of, ei, ei_parts, sensitivity  # after

Everything else stays: torch modules (``nn.Sequential``, single layers, custom modules whose
``forward`` calls layers and functional activations), deep-ei's signatures, argument order
and defaults, ``torch.manual_seed``, ``device=``, and the return types (``float``, NumPy
arrays, a list for groups). The numbers are ei_jax's (:func:`ei_jax.ei_parts` etc.), on the
network's current weights: each call converts the live torch modules with
:func:`bridges.from_torch`, so weights changed after ``topology_of`` count.

* Randomness: each call draws its ``jax.random`` key from torch's default generator, so
  ``torch.manual_seed(s)`` before a call makes it reproducible (the noise itself is
  ``jax.random``'s, so single values differ from deep-ei's; their distributions agree).
* ``device`` is checked (anything ``torch.device`` accepts, and present on this machine: a
  missing ``"cuda"`` or ``"mps"`` raises :class:`DeviceUnavailableError`, a ``RuntimeError``
  and ``AssertionError``, where deep-ei fails with torch's error) but JAX places the work, on
  its default device. ``batch_size`` is checked (a positive int) but ei_jax chooses its own
  chunks; neither ever changes the result.
* Vector measures (``ei``, ``eis_between_groups``, the vector half of
  ``vector_and_pairwise_ei``) bin as deep-ei does, values below ``out_range`` included: they
  get extra bins (deep-ei's negative indices), rows with a value above it are dropped.
* ``activation=`` takes torch modules, torch functions, names and any callable of a tensor;
  the standard ones (sigmoid, tanh, ReLU, identity) run as JAX code, any other callable runs
  through torch on the host, exactly. Its default ``out_range`` is the activation's
  (deep-ei: the topology's).
* Bad input raises ei_jax's typed errors, which also derive from the builtin deep-ei raised
  (``KeyError`` for a module not in the topology, ``AssertionError`` for ``in_layer`` after
  ``layer``, ``TypeError`` for a missing ``samples``).

``docs/migrating.md`` ("Migrating from deep-ei") lists every difference.

Example:
  >>> import torch, torch.nn as nn
  >>> from bridges.deep_ei import topology_of, ei_parts
  >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
  <torch._C.Generator object at ...>
  >>> network = nn.Sequential(nn.Linear(3, 3, bias=False), nn.Sigmoid())
  >>> top = topology_of(network, input=torch.zeros((1, 3)))
  >>> layer, _ = network
  >>> type(top.nodes[layer]["output"]["activation"]).__name__
  'Sigmoid'
  >>> torch.manual_seed(1)  # doctest: +ELLIPSIS
  <torch._C.Generator object at ...>
  >>> a = ei_parts(layer, top, samples=20_000, in_range=(-1, 1), in_bins=8, out_bins=8)
  >>> torch.manual_seed(1)  # doctest: +ELLIPSIS
  <torch._C.Generator object at ...>
  >>> a == ei_parts(layer, top, samples=20_000, in_range=(-1, 1), in_bins=8, out_bins=8)
  True
"""

from bridges._src.errors import require_torch

require_torch("bridges.deep_ei (it runs deep-ei scripts on torch modules)")

from bridges._src.deep_ei_errors import (  # noqa: E402
    ActivationTypeError,
    DeviceUnavailableError,
    DeviceValueError,
    DynamicBinningError,
    LayerKeyError,
    SamplesRequiredError,
    SpanOrderError,
    TopologyTypeError,
    UnrecognisedOperationWarning,
)
from bridges._src.deep_ei_measures import (  # noqa: E402
    ei,
    ei_parts,
    ei_parts_matrix,
    eis_between_groups,
    sensitivity,
    sensitivity_matrix,
    vector_and_pairwise_ei,
)
from bridges._src.deep_ei_topology import topology_of  # noqa: E402

__all__ = [
    "ActivationTypeError",
    "DeviceUnavailableError",
    "DeviceValueError",
    "DynamicBinningError",
    "LayerKeyError",
    "SamplesRequiredError",
    "SpanOrderError",
    "TopologyTypeError",
    "UnrecognisedOperationWarning",
    "ei",
    "ei_parts",
    "ei_parts_matrix",
    "eis_between_groups",
    "sensitivity",
    "sensitivity_matrix",
    "topology_of",
    "vector_and_pairwise_ei",
]
