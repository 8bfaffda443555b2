"""bridges: PyTorch modules and checkpoints -> Flax (linen or NNX), to measure with ei_jax.

Not to be confused with ``flax.nnx.bridge``, which converts between Flax's own Linen and NNX
APIs; this top-level ``bridges`` package converts *PyTorch* networks to Flax.

* :func:`from_torch` converts a live ``torch.nn.Module`` (``nn.Linear``, ``nn.Conv2d``,
  ``nn.AvgPool2d``/``MaxPool2d``, ``nn.Flatten``, ``nn.BatchNorm1d/2d`` and ``nn.Dropout`` in
  eval mode, ``nn.LayerNorm``, the registry's activations -- ``nn.Sigmoid``/``Tanh``/``ReLU``/
  ``GELU`` (``approximate="tanh"`` too)/``SiLU``/``Mish``/``Identity`` -- in (nested)
  ``nn.Sequential``); a module with its own ``forward`` (a residual block) with ``x=`` an
  example input, by tracing it once (linen).
* :func:`read_state_dict`, :func:`linear_chain` and :func:`natural_key` are the pieces
  ``ei-jax measure`` uses to rebuild a plain chain of dense layers from any checkpoint.
* :func:`load_checkpoint` reads a checkpoint file: a ``state_dict`` saved with ``torch.save``
  (loaded with ``weights_only=True``) or a safetensors file (read with NumPy; **torch is not
  needed**), with the architecture given as a torch module or, for a plain stack of Linear
  layers, inferred from the weights plus a named activation.

Both return what :func:`ei_jax.topology_of` takes: ``(model, variables)`` for ``api="linen"``
(``topology_of(model, variables, x)``), an ``nnx.Sequential`` for ``api="nnx"``
(``topology_of(model, x)``). The Flax networks give torch's outputs (to float32 rounding) and
take images as NHWC; convolutions are then measured over one receptive field (see
:func:`ei_jax.topology_of`).

torch is optional (``pip install torch==2.13.0``; from an ei-jax checkout
``pip install '.[torch]'``), imported only when a torch module or ``torch.save`` file is given
-- never by ``import bridges``. The errors are ei_jax's own checkpoint family
(``bridges.CheckpointError`` is ``ei_jax.errors.CheckpointError``), so one ``except``
catches a bad checkpoint whichever package read it.

Example:
  >>> import jax, jax.numpy as jnp, torch, bridges, ei_jax
  >>> net = torch.nn.Sequential(torch.nn.Linear(5, 5, bias=False), torch.nn.Sigmoid())
  >>> model, variables = bridges.from_torch(net)
  >>> top = ei_jax.topology_of(model, variables, jnp.zeros((1, 5)))
  >>> ei = ei_jax.ei_parts(jax.random.key(0), top, "layers_0", samples=10_000, in_range=(0, 1))
"""

from bridges._src.checkpoints import load_checkpoint
from bridges._src.errors import (
    CheckpointError,
    CheckpointNotFoundError,
    CheckpointShapeError,
    MissingDependencyError,
    UnsupportedModuleError,
)
from bridges._src.checkpoints import read_state_dict
from bridges._src.flax_build import linear_chain
from bridges._src.ir import natural_key
from bridges._src.torch_modules import from_torch

__all__ = [
    "CheckpointError",
    "CheckpointNotFoundError",
    "CheckpointShapeError",
    "MissingDependencyError",
    "UnsupportedModuleError",
    "from_torch",
    "linear_chain",
    "load_checkpoint",
    "natural_key",
    "read_state_dict",
]
