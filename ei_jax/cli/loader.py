"""Any checkpoint -> a Flax network to measure: the one module that imports ei_jax and bridges.

``ei-jax measure`` reads Flax msgpack files and orbax directories (with
:mod:`ei_jax.experiments.checkpoints`) and torch/safetensors files (with :mod:`bridges`), and
rebuilds every one of them as a chain of dense layers with one rebuild,
:func:`bridges.linear_chain`: a Flax kernel ``[in, out]`` is the
transpose of a torch Linear weight ``[out, in]``. With ``--arch`` a checkpoint is loaded into
the architecture it was saved from instead (``load_with_architecture`` in
:mod:`ei_jax.cli.architecture`). The library (``ei_jax._src``) never imports bridges; only the
command line needs "load any checkpoint".

Several checkpoints (files, folders of them, globs) of one architecture are loaded and
stacked layer by layer for ``ei_jax.experiments.measure_rows.measure_stack``. A Flax checkpoint
written by ``ei-jax reproduce`` takes its activation from the run's ``measurements.json``;
any other checkpoint of weights needs ``--activation``: nothing is guessed.
"""

import dataclasses
import functools
import glob
import json
from pathlib import Path

import numpy as np

import bridges
from ei_jax.experiments.checkpoints import read_flax_checkpoint
from ei_jax._src.base.errors import (
    CheckpointError,
    CheckpointNotFoundError,
    CheckpointShapeError,
    EIJaxError,
)

#: File names read with bridges (anything else is tried as Flax msgpack first).
TORCH_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt", ".safetensors")
#: Files a folder of checkpoints is made of.
CHECKPOINT_SUFFIXES = (".msgpack", *TORCH_SUFFIXES)
#: What a user of a Flax checkpoint does when it is not a plain Dense chain.
FLAX_REMEDY = ("pass --arch FILE.py:NAME (NAME returns the flax.linen module it was saved from) "
               "and --input-shape (one example's shape)")
#: The same for torch weights: give the architecture.
TORCH_REMEDY = ("without --arch the ei-jax command reads plain stacks of Linear layers only: "
                "pass --arch FILE.py:NAME (NAME returns the torch.nn.Module it was saved from) "
                "and --input-shape C,H,W (one example)")
#: The library's advice about activations, as the command's option says it.
_CLI_WORDING = (
    ("pass activation='sigmoid' (used after every layer) or one name per layer, e.g. "
     "activation=('sigmoid', 'tanh')", "pass --activation sigmoid (used after every layer) or "
     "one name per layer, e.g. --activation sigmoid,tanh"),
    ("activation=", "--activation "),
)


def _cli_error(error: EIJaxError) -> EIJaxError:
    """``error`` with the library's keyword arguments in its message said as the command's
    options (the same type, so callers catch it as before)."""
    text = str(error)
    for library, command in _CLI_WORDING:
        text = text.replace(library, command)
    if text == str(error):
        return error
    return type(error)(text)


@dataclasses.dataclass(frozen=True)
class Loaded:
    """A checkpoint rebuilt as a dense chain (or loaded into its ``--arch`` architecture).

    Attributes:
      model: a ``flax.linen.Sequential`` of ``Dense`` layers and activations.
      variables: ``{"params": {"layers_<i>": {"kernel": (n_in, n_out), "bias"?: (n_out,)}}}``.
      names: each dense layer's name in the checkpoint (a Flax path or a torch prefix).
      n_in: the network's input width (the first kernel's rows).
      x_shape, topology: with ``--arch``, one example's Flax shape and the network's
        topology (``names`` are then its layers); None for a dense chain.
    """

    model: object
    variables: dict
    names: list[str]
    n_in: int
    x_shape: tuple | None = None
    topology: object = None


def _dense_layers(tree, prefix=()):
    """``(path, {"kernel", "bias"?})`` of every dict holding a ``kernel``, in natural order."""
    if isinstance(tree, dict):
        if "kernel" in tree and hasattr(tree["kernel"], "shape"):
            yield "/".join(prefix), tree
            return
        for k in sorted(tree, key=bridges.natural_key):
            yield from _dense_layers(tree[k], (*prefix, str(k)))




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
    model, variables, _, n_in = bridges.linear_chain(state, activation, ordered=True, source=source,
                                                     remedy=FLAX_REMEDY)
    return Loaded(model, variables, [path for path, _ in found], n_in)


def _with_bridges(path: Path, activation) -> Loaded:
    state, ordered = bridges.read_state_dict(path)
    try:
        return Loaded(*bridges.linear_chain(state, activation, ordered=ordered, source=str(path),
                                            remedy=TORCH_REMEDY))
    except EIJaxError as e:
        raise _cli_error(e) from None


def _check_folder(path: Path) -> None:
    """A folder given as a checkpoint must hold something: an empty one (or one without any
    file, at any depth) is a :class:`CheckpointNotFoundError` saying so."""
    if not any(p.is_file() for p in path.rglob("*")):
        raise CheckpointNotFoundError(
            f"{path} is an empty folder: it holds no checkpoint. Expected checkpoint files "
            f"({', '.join(CHECKPOINT_SUFFIXES)}) in it, or an orbax checkpoint directory.")


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
      >>> from ei_jax.experiments.checkpoints import save_checkpoint
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
    if path.is_dir():
        _check_folder(path)
    try:
        tree = read_flax_checkpoint(path)
    except CheckpointError as flax_error:
        if path.is_dir():
            raise
        try:
            return _with_bridges(path, activation)
        except (EIJaxError, OSError):
            raise flax_error from None
    try:
        return dense_chain(tree, activation, source=str(path))
    except EIJaxError as e:
        raise _cli_error(e) from None


# --- many checkpoints ---------------------------------------------------------------------------

def _is_folder_of_checkpoints(directory: Path) -> bool:
    return any(p.is_file() and p.suffix in CHECKPOINT_SUFFIXES for p in directory.iterdir())


def expand(arguments) -> list[Path]:
    """The checkpoint paths named by command-line arguments, in order.

    An argument is a checkpoint (file or orbax directory), a folder of checkpoint files
    (every ``.msgpack/.pt/.pth/.bin/.ckpt/.safetensors`` in it, in natural order), or a glob
    pattern (``'runs/iris/checkpoints/epoch_*.msgpack'``, matches in natural order).

    Example:
      >>> import os, tempfile
      >>> d = tempfile.mkdtemp()
      >>> for n in ("epoch_10.msgpack", "epoch_9.msgpack", "notes.txt"):
      ...     open(os.path.join(d, n), "w").close()
      >>> [p.name for p in expand([d])] == [p.name for p in expand([os.path.join(d, "epoch_*")])]
      True
      >>> [p.name for p in expand([d])]
      ['epoch_9.msgpack', 'epoch_10.msgpack']
    """
    out = []
    for arg in arguments:
        path = Path(arg)
        if not path.exists() and glob.has_magic(str(arg)):
            found = sorted(glob.glob(str(arg)), key=bridges.natural_key)
            if not found:
                raise CheckpointNotFoundError(f"No checkpoint matches {str(arg)!r}.")
            out += [Path(f) for f in found]
        elif path.is_dir() and _is_folder_of_checkpoints(path):
            out += sorted((p for p in path.iterdir() if p.is_file() and p.suffix in CHECKPOINT_SUFFIXES),
                          key=lambda p: bridges.natural_key(p.name))
        elif not path.exists():
            raise CheckpointNotFoundError(f"Checkpoint {path} does not exist.")
        else:
            out.append(path)
    return out


@functools.lru_cache(maxsize=8)
def _run_document(path: str):
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    model = doc.get("model") if isinstance(doc, dict) else None
    return doc if isinstance(model, dict) and isinstance(model.get("activation"), str) else None


def run_settings(checkpoint) -> dict | None:
    """The ``measurements.json`` of the ``ei-jax reproduce`` run that wrote ``checkpoint``
    (``RUN/checkpoints/epoch_N.msgpack`` -> ``RUN/measurements.json``), or None."""
    path = Path(checkpoint).absolute()
    if path.parent.name != "checkpoints" or path.suffix != ".msgpack":
        return None
    return _run_document(str(path.parent.parent / "measurements.json"))


def activation_of(checkpoint, given):
    """``given`` if not None, else the activation its ``reproduce`` run stored, else None."""
    if given is not None:
        return given
    doc = run_settings(checkpoint)
    return None if doc is None else doc["model"]["activation"]


def _signature(net: Loaded):
    return [(k, _shapes(v)) for k, v in net.variables["params"].items()]


def _shapes(tree) -> dict:
    """``{leaf name: shape}`` of one layer's parameters."""
    return {k: tuple(np.shape(v)) for k, v in tree.items()}


def stack(nets, paths) -> dict:
    """``{layer: params with a leading axis of len(nets)}``; all nets must have one architecture.

    Raises:
      CheckpointShapeError: a checkpoint whose layers or shapes differ from the first's.
    """
    first = _signature(nets[0])
    for net, path in zip(nets[1:], paths[1:]):
        if _signature(net) != first:
            raise CheckpointShapeError(
                f"{path} has layers {_signature(net)}, but {paths[0]} has {first}: measure "
                "checkpoints of one architecture together (one command per architecture).")
    return {layer: {leaf: np.stack([np.asarray(n.variables["params"][layer][leaf]) for n in nets])
                    for leaf in shapes} for layer, shapes in first}
