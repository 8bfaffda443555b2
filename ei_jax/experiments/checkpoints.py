"""Checkpoint files: atomic writes, Flax msgpack files and orbax directories.

:func:`save_checkpoint` writes Flax variables as msgpack and :func:`read_flax_checkpoint`
reads a msgpack file or an orbax directory back as a nested dict. Rebuilding a network from
any checkpoint (torch and safetensors too, through ``bridges``) is the command line's job:
:mod:`ei_jax.cli.loader`; the library never imports bridges.
"""

import contextlib
import os
import tempfile
from pathlib import Path

import flax.serialization
import jax
import numpy as np

from ei_jax._src.base.errors import CheckpointError, CheckpointNotFoundError, MissingDependencyError


def atomic_write(path, data: bytes | str) -> None:
    """Writes ``data`` to ``path`` through a temporary file and ``os.replace``."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
        # mkstemp creates 0600 files; give outputs the usual permissions (0666 & ~umask).
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def check_writable(path) -> None:
    """Raises ``OSError`` now, before any work, if ``path`` cannot be written later."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a directory; expected a file path.")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"Directory {path.parent} does not exist (for {path}).")
    if not os.access(path.parent, os.W_OK):
        raise PermissionError(f"Cannot write into {path.parent}.")


def save_checkpoint(path, variables) -> None:
    """Saves Flax variables as msgpack (``flax.serialization``), atomically."""
    atomic_write(path, flax.serialization.msgpack_serialize(flax.serialization.to_state_dict(variables)))


def read_flax_checkpoint(path) -> dict:
    """Reads a Flax msgpack file or an orbax checkpoint directory as a nested dict."""
    path = Path(path)
    if not path.exists():
        raise CheckpointNotFoundError(f"Checkpoint {path} does not exist.")
    if path.is_dir():
        try:
            import orbax.checkpoint as ocp
        except ImportError:
            raise MissingDependencyError(
                f"{path} is a directory (an orbax checkpoint?); reading it needs orbax-checkpoint: "
                "pip install orbax-checkpoint.") from None
        try:
            with ocp.StandardCheckpointer() as ckptr:
                tree = ckptr.restore(path.resolve())
        except Exception as e:  # noqa: BLE001 - any orbax failure is a bad checkpoint
            raise CheckpointError(f"Cannot read orbax checkpoint {path}: {type(e).__name__}: "
                                  f"{str(e).splitlines()[0] if str(e) else ''}") from None
        return jax.tree.map(np.asarray, tree)
    try:
        tree = flax.serialization.msgpack_restore(path.read_bytes())
    except Exception as e:  # noqa: BLE001 - msgpack raises many types on corrupt input
        raise CheckpointError(
            f"{path} is not a Flax msgpack checkpoint ({type(e).__name__}). Expected a file written "
            "by flax.serialization.to_bytes/msgpack_serialize, an orbax directory, or a "
            ".pt/.pth/.bin/.safetensors file.") from None
    if not isinstance(tree, dict):
        raise CheckpointError(f"{path} holds a {type(tree).__name__}, not a dict of parameters.")
    return tree
