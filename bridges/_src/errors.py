"""Typed exceptions of :mod:`bridges`.

Each derives from :class:`ei_jax.EIJaxError` and from the builtin a Python user would catch
(``ValueError``, ``FileNotFoundError``, ``ImportError``). Unsupported torch modules raise
:class:`ei_jax.UnsupportedModuleError` (a ``TypeError``), re-exported here.
"""

from ei_jax import EIJaxError, ShapeMismatchError, UnsupportedModuleError

__all__ = [
    "CheckpointError",
    "CheckpointNotFoundError",
    "CheckpointShapeError",
    "MissingDependencyError",
    "UnsupportedModuleError",
]

#: What to run to get the optional dependencies.
TORCH_INSTALL = "pip install 'ei-jax[torch]'"
SAFETENSORS_INSTALL = "pip install 'ei-jax[safetensors]'"


class CheckpointError(EIJaxError, ValueError):
    """A checkpoint file is corrupt, of an unknown format, or does not fit the architecture."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """A checkpoint path does not exist (or is not a file)."""


class CheckpointShapeError(CheckpointError, ShapeMismatchError):
    """A tensor in the checkpoint has a different shape from the architecture's parameter."""


class MissingDependencyError(EIJaxError, ImportError):
    """An optional dependency (torch, safetensors) is needed for this input but not installed."""


def require_torch(why: str):
    """Imports torch, or raises :class:`MissingDependencyError` saying how to install it."""
    try:
        import torch
    except ImportError as e:
        raise MissingDependencyError(
            f"{why} needs PyTorch, which is not installed. Install the extra with "
            f"`{TORCH_INSTALL}` (torch==2.13.0). Checkpoints saved as safetensors load without torch."
        ) from e
    return torch
