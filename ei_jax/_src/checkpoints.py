"""Checkpoints: atomic writes, Flax msgpack files, and rebuilding a network to measure.

:func:`save_checkpoint` writes Flax variables as msgpack; :func:`load_any_checkpoint` reads
a Flax msgpack file, an orbax directory, or (through ``bridges``) a torch/safetensors file,
and :func:`mlp_from_params` rebuilds the chain of Dense layers that ``ei-jax measure`` measures.
"""

import contextlib
import os
import re
import tempfile
from pathlib import Path

import flax.linen as nn
import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np

from ei_jax._src.errors import EIJaxError, LoadCheckpointError, MissingExtraError


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
        raise LoadCheckpointError(f"Checkpoint {path} does not exist.")
    if path.is_dir():
        try:
            import orbax.checkpoint as ocp
        except ImportError:
            raise MissingExtraError(
                f"{path} is a directory (an orbax checkpoint?); reading it needs orbax-checkpoint: "
                "pip install orbax-checkpoint.") from None
        try:
            with ocp.StandardCheckpointer() as ckptr:
                tree = ckptr.restore(path.resolve())
        except Exception as e:  # noqa: BLE001 - any orbax failure is a bad checkpoint
            raise LoadCheckpointError(f"Cannot read orbax checkpoint {path}: {type(e).__name__}: "
                                      f"{str(e).splitlines()[0] if str(e) else ''}") from None
        return jax.tree.map(np.asarray, tree)
    try:
        tree = flax.serialization.msgpack_restore(path.read_bytes())
    except Exception as e:  # noqa: BLE001 - msgpack raises many types on corrupt input
        raise LoadCheckpointError(
            f"{path} is not a Flax msgpack checkpoint ({type(e).__name__}). Expected a file written "
            "by flax.serialization.to_bytes/msgpack_serialize, an orbax directory, or a "
            ".pt/.pth/.bin/.safetensors file.") from None
    if not isinstance(tree, dict):
        raise LoadCheckpointError(f"{path} holds a {type(tree).__name__}, not a dict of parameters.")
    return tree


def _natural(s: str):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", s)]


def _kernels(tree, prefix=()):
    if isinstance(tree, dict):
        if "kernel" in tree and hasattr(tree["kernel"], "shape"):
            yield prefix, tree
            return
        for k in sorted(tree, key=lambda k: _natural(str(k))):
            yield from _kernels(tree[k], (*prefix, str(k)))


def mlp_from_params(tree, activation: str | None = "sigmoid"):
    """Rebuilds a chain of Dense layers from a checkpoint's parameter tree.

    Layers are the dicts holding a 2-D ``kernel``, in natural order of their paths
    (``layers_0 < layers_2 < layers_10``); ``activation`` follows every layer.

    Returns:
      ``(model, variables, names)``: a linen ``Sequential``, its variables and the layers'
      paths in the checkpoint.
    """
    params = tree.get("params", tree) if isinstance(tree, dict) else tree
    found = list(_kernels(params))
    if not found:
        raise LoadCheckpointError("The checkpoint holds no layer with a 'kernel'; nothing to measure.")
    for path, p in found:
        if np.ndim(p["kernel"]) != 2:
            raise LoadCheckpointError(
                f"Layer {'/'.join(path)!r} has a {np.ndim(p['kernel'])}-D kernel: ei-jax measure rebuilds "
                "chains of Dense layers only. Measure convolutional networks from Python with "
                "ei_jax.topology_of(model, variables, x).")
    for (p0, a), (p1, b) in zip(found, found[1:]):
        if a["kernel"].shape[1] != b["kernel"].shape[0]:
            raise LoadCheckpointError(
                f"Layers {'/'.join(p0)!r} {a['kernel'].shape} and {'/'.join(p1)!r} {b['kernel'].shape} "
                "do not form a chain; ei-jax measure only rebuilds plain MLPs.")
    from ei_jax._src import activations as _act

    act = _act.function_of(_act.canonical_name(activation) if activation else None)
    layers, new = [], {}
    for path, p in found:
        new[f"layers_{len(layers)}"] = {k: jnp.asarray(v, jnp.float32) for k, v in p.items()
                                        if k in ("kernel", "bias")}
        layers.append(nn.Dense(int(p["kernel"].shape[1]), use_bias="bias" in p))
        if act is not _act.function_of(None):
            layers.append(act)  # Sequential names its modules by list index: layers_0, layers_2
    return nn.Sequential(layers), {"params": new}, ["/".join(p) for p, _ in found]


TORCH_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt", ".safetensors")


def _load_with_bridges(path: Path, activation):
    try:
        import bridges
    except ImportError:
        raise MissingExtraError(
            f"{path.name} looks like a PyTorch/safetensors checkpoint; reading it needs the `bridges` "
            "package of ei-jax, which is not available in this installation.") from None
    return bridges.load_checkpoint(path, architecture=None, activation=activation, api="linen")


def load_any_checkpoint(path, *, activation: str | None = "sigmoid"):
    """``(model, variables, names)`` from a Flax/orbax or a torch/safetensors checkpoint.

    A directory is read with orbax, a ``.pt/.pth/.bin/.ckpt/.safetensors`` file with
    ``bridges.load_checkpoint`` (a plain stack of Linear layers, ``activation`` after each),
    anything else as Flax msgpack (and, failing that, with ``bridges``). ``names`` are the
    layers' paths in a Flax checkpoint, or None (then the topology's names are used).
    """
    path = Path(path)
    if not path.exists():
        raise LoadCheckpointError(f"Checkpoint {path} does not exist.")
    if path.is_file() and path.suffix in TORCH_SUFFIXES:
        return (*_load_with_bridges(path, activation), None)
    try:
        tree = read_flax_checkpoint(path)
    except LoadCheckpointError as flax_error:
        if path.is_dir():
            raise
        try:
            return (*_load_with_bridges(path, activation), None)
        except (EIJaxError, OSError):
            raise flax_error from None
    return mlp_from_params(tree, activation)


def first_input_shape(variables) -> tuple[int, ...]:
    """``(1, n_in)`` of the first Dense kernel (natural path order) of ``variables``."""
    found = list(_kernels(variables.get("params", variables)))
    if not found or np.ndim(found[0][1]["kernel"]) != 2:
        raise LoadCheckpointError(
            "The network's first layer is not Dense, so ei-jax measure cannot tell its input "
            "shape; measure it from Python with ei_jax.topology_of(model, variables, x).")
    return (1, int(found[0][1]["kernel"].shape[0]))
