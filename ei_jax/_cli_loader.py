"""Any checkpoint -> a Flax network to measure: the one module that imports ei_jax and bridges.

``ei-jax measure`` reads Flax msgpack files and orbax directories (with
:mod:`ei_jax._src.checkpoints`) and torch/safetensors files (with :mod:`bridges`), and
rebuilds every one of them as a chain of dense layers with one rebuild,
``bridges._src.ir.linear_stack`` + ``flax_build``: a Flax kernel ``[in, out]`` is the
transpose of a torch Linear weight ``[out, in]``. The library (``ei_jax._src``) never imports
bridges; only the command line needs "load any checkpoint".
"""

import dataclasses
from pathlib import Path

import numpy as np

from bridges._src import flax_build, ir
from bridges._src.checkpoints import read_state_dict
from ei_jax._src.checkpoints import read_flax_checkpoint
from ei_jax._src.errors import CheckpointError, CheckpointNotFoundError, EIJaxError

#: File names read with bridges (anything else is tried as Flax msgpack first).
TORCH_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt", ".safetensors")
#: What a user of a Flax checkpoint does when it is not a plain Dense chain.
FLAX_REMEDY = "measure it from Python with ei_jax.topology_of(model, variables, x)"


@dataclasses.dataclass(frozen=True)
class Loaded:
    """A checkpoint rebuilt as a dense chain.

    Attributes:
      model: a ``flax.linen.Sequential`` of ``Dense`` layers and activations.
      variables: ``{"params": {"layers_<i>": {"kernel": (n_in, n_out), "bias"?: (n_out,)}}}``.
      names: each dense layer's name in the checkpoint (a Flax path or a torch prefix).
      n_in: the network's input width (the first kernel's rows).
    """

    model: object
    variables: dict
    names: list[str]
    n_in: int


def _dense_layers(tree, prefix=()):
    """``(path, {"kernel", "bias"?})`` of every dict holding a ``kernel``, in natural order."""
    if isinstance(tree, dict):
        if "kernel" in tree and hasattr(tree["kernel"], "shape"):
            yield "/".join(prefix), tree
            return
        for k in sorted(tree, key=ir.natural_key):
            yield from _dense_layers(tree[k], (*prefix, str(k)))


def _build(layers, names) -> Loaded:
    model, variables = flax_build.to_linen(layers)
    first = next(layer for layer in layers if isinstance(layer, ir.Linear))
    return Loaded(model, variables, names, int(first.weight.shape[1]))


def dense_chain(tree, activation, *, source: str = "the checkpoint") -> Loaded:
    """Rebuilds the chain of Dense layers of a Flax parameter tree.

    Layers are the dicts holding a ``kernel`` (2-D, ``(n_in, n_out)``) and an optional
    ``bias``, in the natural order of their paths (``layers_2`` before ``layers_10``); anything
    else in the tree is ignored. ``activation`` (one name, or one per layer) follows each layer.

    Args:
      tree: ``{"params": {...}}`` or the params dict itself, as read from a checkpoint.
      activation: ``"sigmoid"``, ``"tanh"``, ``"relu"``, ``"identity"``, or a sequence of them.
      source: the file, for messages.

    Returns:
      :class:`Loaded`; ``names`` are the layers' paths in ``tree``.

    Raises:
      CheckpointError: no kernel, a convolution kernel, or layers that do not chain.

    Example:
      >>> import numpy as np
      >>> tree = {"params": {"Dense_10": {"kernel": np.ones((4, 2))}, "Dense_2": {"kernel": np.ones((3, 4))}}}
      >>> net = dense_chain(tree, "tanh")
      >>> net.names, net.n_in, sorted(net.variables["params"])
      (['Dense_2', 'Dense_10'], 3, ['layers_0', 'layers_2'])
    """
    params = tree.get("params", tree) if isinstance(tree, dict) else tree
    found = list(_dense_layers(params))
    if not found:
        raise CheckpointError(f"{source} holds no layer with a 'kernel'; nothing to measure.")
    state = {}
    for path, p in found:
        state[f"{path}.weight"] = np.asarray(p["kernel"]).T  # [in, out] -> torch's [out, in]
        if "bias" in p:
            state[f"{path}.bias"] = np.asarray(p["bias"])
    layers = ir.linear_stack(state, activation, ordered=True, source=source, remedy=FLAX_REMEDY)
    return _build(layers, [path for path, _ in found])


def _with_bridges(path: Path, activation) -> Loaded:
    state, ordered = read_state_dict(path)
    layers = ir.linear_stack(state, activation, ordered=ordered, source=str(path))
    return _build(layers, [layer.name for layer in layers if isinstance(layer, ir.Linear)])


def load_any_checkpoint(path, *, activation) -> Loaded:
    """Reads a checkpoint of a dense chain, whatever its format.

    A directory is read with orbax, a ``.pt/.pth/.bin/.ckpt/.safetensors`` file with bridges
    (a plain stack of Linear layers), anything else as Flax msgpack and, failing that, with
    bridges (formats are recognised by content there).

    Args:
      path: the checkpoint file or orbax directory.
      activation: the activation after each layer (checkpoints of weights do not store it).

    Returns:
      :class:`Loaded`.

    Raises:
      CheckpointNotFoundError, CheckpointError, MissingDependencyError.

    Example:
      >>> import os, tempfile, numpy as np
      >>> from ei_jax._src.checkpoints import save_checkpoint
      >>> path = os.path.join(tempfile.mkdtemp(), "net.msgpack")
      >>> save_checkpoint(path, {"params": {"layers_0": {"kernel": np.ones((5, 3), np.float32)}}})
      >>> load_any_checkpoint(path, activation="sigmoid").n_in
      5
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointNotFoundError(f"Checkpoint {path} does not exist.")
    if path.is_file() and path.suffix in TORCH_SUFFIXES:
        return _with_bridges(path, activation)
    try:
        tree = read_flax_checkpoint(path)
    except CheckpointError as flax_error:
        if path.is_dir():
            raise
        try:
            return _with_bridges(path, activation)
        except (EIJaxError, OSError):
            raise flax_error from None
    return dense_chain(tree, activation, source=str(path))
