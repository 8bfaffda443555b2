"""Typed exceptions of :mod:`bridges`: the checkpoint and dependency errors of ei_jax itself.

There is one family of checkpoint errors for ei_jax, its ``ei-jax`` command and bridges: the
classes are defined in :mod:`ei_jax.errors` and re-exported here, so
``bridges.CheckpointError`` is the class ei_jax itself raises for a bad checkpoint. Each derives from
:class:`ei_jax.EIJaxError` and from the builtin a Python user would catch (``ValueError``,
``FileNotFoundError``, ``ImportError``, ``TypeError``). An unknown ``api=`` raises
:class:`UnknownApiError` (a ``ValueError``); arguments that do not go together (or a path that
is not a path) raise :class:`ei_jax.errors.InvalidCallError` (a ``TypeError``).
"""

from ei_jax.errors import (  # noqa: F401 - re-exported by bridges
    CheckpointError,
    CheckpointNotFoundError,
    CheckpointShapeError,
    EIJaxError,
    InvalidCallError,
    MissingDependencyError,
    UnsupportedModuleError,
)

#: What to run to get the optional dependencies (works in any environment; from an ei-jax
#: checkout, ``pip install '.[torch]'`` installs the same pins).
TORCH_INSTALL = "pip install torch==2.13.0"
SAFETENSORS_INSTALL = "pip install safetensors"


class UnknownApiError(EIJaxError, ValueError):
    """``api=`` is neither ``"linen"`` nor ``"nnx"``."""


def require_torch(why: str):
    """Imports torch, or raises :class:`MissingDependencyError` saying how to install it."""
    try:
        import torch
    except ImportError as e:
        raise MissingDependencyError(
            f"{why} needs PyTorch, which is not installed: `{TORCH_INSTALL}` (or, from an ei-jax "
            "checkout, `pip install '.[torch]'`). Checkpoints saved as safetensors load without torch."
        ) from e
    return torch
