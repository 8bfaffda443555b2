"""Checkpoint files -> Flax networks: :func:`load_checkpoint`.

Formats are recognised by their first bytes, not their names:

* ``torch.save`` files -- a zip archive (``PK\\x03\\x04``, the default since torch 1.6) or a
  legacy pickle (``\\x80`` and a protocol number 2-5). Read with ``torch.load(path, map_location="cpu",
  weights_only=True)``, which only unpickles tensors and plain containers, never code. Needs
  torch (``pip install torch==2.13.0``, or ``pip install '.[torch]'`` in an ei-jax checkout).
* safetensors files -- an 8-byte little-endian header length, then a JSON header (``{``).
  Read with the ``safetensors`` package's NumPy API: **no torch needed**.

A file holds a ``state_dict`` (names -> tensors), or a training checkpoint dict with the
state dict under ``"state_dict"``, ``"model_state_dict"``, ``"model"``, ``"net"`` or
``"module"``; a ``"module."`` prefix on every key (``nn.DataParallel``) is removed.
"""

import copy
import os
import pickle
from pathlib import Path

import numpy as np

from bridges._src import flax_build, ir, ir_state
from bridges._src.errors import (
    SAFETENSORS_INSTALL,
    CheckpointError,
    CheckpointNotFoundError,
    InvalidCallError,
    MissingDependencyError,
    UnsupportedModuleError,
    require_torch,
)

TORCH, SAFETENSORS = "torch", "safetensors"
_NESTED_KEYS = ("state_dict", "model_state_dict", "model", "net", "module")


def checkpoint_format(path: Path) -> str:
    """``"torch"`` or ``"safetensors"``, from the file's first bytes."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(9)
    if not head:
        raise CheckpointError(f"{path} is empty (0 bytes); it was not written completely.")
    # safetensors first: its header length's low byte may be 0x80, like a pickle's first byte.
    if len(head) == 9 and head[8:9] == b"{" and 0 < int.from_bytes(head[:8], "little") <= size - 8:
        return SAFETENSORS
    if head[:4] == b"PK\x03\x04" or (head[0] == 0x80 and len(head) > 1 and 2 <= head[1] <= 5):
        return TORCH
    raise CheckpointError(
        f"{path} is neither a torch.save file (zip archive or pickle) nor a safetensors file "
        f"(8-byte header length then a JSON header); its first bytes are {head[:8]!r}. "
        "bridges reads state_dict checkpoints in those two formats."
    )


def _strip_data_parallel(state: dict) -> dict:
    if state and all(k.startswith("module.") for k in state):
        return {k[len("module."):]: v for k, v in state.items()}
    return state


def _read_torch(path: Path) -> dict:
    torch = require_torch(f"{path} is a torch.save file; reading it")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(
            f"{path} could not be loaded with torch.load(weights_only=True): it is corrupt, or it "
            "holds objects other than tensors (e.g. a whole module saved with torch.save(model)). "
            "bridges never unpickles code. Re-save it with torch.save(model.state_dict(), path); or, "
            "if you trust the file, load the module yourself with torch.load(path, "
            f"weights_only=False) and pass it to bridges.from_torch. (torch said: {first})"
        ) from e
    except (RuntimeError, EOFError, OSError, ValueError, KeyError) as e:
        raise CheckpointError(
            f"{path} is corrupt or truncated; torch.load failed: {str(e).splitlines()[0] if str(e) else e!r}"
        ) from e

    def is_state(d):
        return isinstance(d, dict) and bool(d) and all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in d.items())

    state = obj if is_state(obj) else None
    if state is None and isinstance(obj, dict):
        state = next((obj[k] for k in _NESTED_KEYS if is_state(obj.get(k))), None)
    if state is None:
        what = f"a dict with keys {list(obj)[:10]}" if isinstance(obj, dict) else f"a {type(obj).__name__}"
        raise CheckpointError(
            f"{path} holds {what}, not a state_dict (a dict of parameter names to tensors, "
            f"possibly under one of the keys {list(_NESTED_KEYS)})."
        )
    out = {}
    for k, t in state.items():
        t = t.detach().to("cpu")
        if t.is_floating_point():
            t = t.to(torch.float32)  # bfloat16 has no NumPy dtype in torch
        out[k] = t.numpy()  # converted to float32 when used (ir.as_float32)
    return _strip_data_parallel(out)


def _read_safetensors(path: Path) -> dict:
    try:
        from safetensors.numpy import load_file
    except ImportError as e:
        raise MissingDependencyError(
            f"{path} is a safetensors file; reading it needs the safetensors package: "
            f"`{SAFETENSORS_INSTALL}` (or, from an ei-jax checkout, `pip install '.[safetensors]'`)."
        ) from e
    try:
        state = load_file(str(path))
    except Exception as e:  # noqa: BLE001 - safetensors raises its own SafetensorError
        raise CheckpointError(f"{path} is a corrupt or truncated safetensors file: {e}") from e
    return _strip_data_parallel(state)


def read_state_dict(path) -> tuple[dict, bool]:
    """Reads a checkpoint file's tensors as NumPy arrays, without building a network.

    Args:
      path: a ``torch.save`` file of a ``state_dict`` (read with ``weights_only=True``; needs
        torch) or a safetensors file (no torch needed), recognised by content.

    Returns:
      ``(state, ordered)``: NumPy arrays by ``state_dict`` name (floating tensors as float32
      or their own NumPy dtype), and whether the file keeps the forward order (torch files do;
      safetensors files do not).

    Example:
      >>> import os, tempfile, torch
      >>> from bridges import read_state_dict
      >>> path = os.path.join(tempfile.mkdtemp(), "net.pt")
      >>> torch.save(torch.nn.Linear(3, 2).state_dict(), path)
      >>> state, ordered = read_state_dict(path)
      >>> {k: v.shape for k, v in state.items()}, ordered
      ({'weight': (2, 3), 'bias': (2,)}, True)
    """
    try:
        path = Path(os.fspath(path))
    except TypeError:
        raise InvalidCallError(
            f"path must be a str or os.PathLike naming the checkpoint file. Got {type(path).__name__}."
        ) from None
    if not path.exists():
        raise CheckpointNotFoundError(f"No checkpoint file at {str(path)!r}.")
    if not path.is_file():
        raise CheckpointNotFoundError(f"{str(path)!r} is not a file (a directory?); give the checkpoint file.")
    fmt = checkpoint_format(path)
    if fmt == TORCH:
        return _read_torch(path), True
    return _read_safetensors(path), False


def _traced(architecture, state, source, x, api):
    """A custom-``forward`` architecture: the state loaded into a copy by torch, then traced."""
    torch = require_torch("Loading a checkpoint into a module with its own forward()")
    tensors = {k: torch.as_tensor(np.asarray(v) if np.asarray(v).dtype.kind in "iub"
                                  else ir.as_float32(k, v, source)) for k, v in state.items()}
    try:
        architecture.load_state_dict(tensors, strict=True)
    except RuntimeError as e:
        raise CheckpointError(f"{source} does not fit the architecture: {e}") from None
    from bridges._src.torch_modules import from_torch

    return from_torch(architecture, api=api, x=x)


def load_checkpoint(path, *, architecture=None, activation=None, api: str = "linen", x=None):
    """Loads a PyTorch checkpoint file as a Flax network, ready for :func:`ei_jax.topology_of`.

    Reads ``torch.save`` files (with ``weights_only=True``; needs torch) and safetensors files
    (with the ``safetensors`` NumPy API; no torch needed), recognised by content.

    Args:
      path: the checkpoint file: a ``state_dict`` (or a dict holding one under
        ``"state_dict"``/``"model_state_dict"``/``"model"``).
      architecture: a ``torch.nn.Module`` of the network the state dict was saved from (its own
        weights are ignored; names and shapes must match exactly, as with
        ``load_state_dict(strict=True)``). ``None``: the file must hold a plain stack of Linear
        layers (``"<name>.weight"`` ``(out, in)`` and optional ``"<name>.bias"``), in the file's
        order for torch files and in natural name order (``"2"`` before ``"10"``) for
        safetensors files.
      activation: only without ``architecture``: the activation after every Linear layer
        (``"sigmoid"``, ``"tanh"``, ``"relu"``, ``"identity"``), or a sequence of one per layer,
        e.g. ``("sigmoid", "tanh")``. Required there: a checkpoint stores no activations.
      api: ``"linen"`` or ``"nnx"``.
      x: with an ``architecture`` that has its own ``forward`` (a residual block): an example
        input (as torch takes it) to trace it with, as in :func:`bridges.from_torch`. The
        architecture is copied and put in eval mode (BatchNorm, Dropout) before it is read.

    Returns:
      linen: ``(model, variables)``; NNX: the module (as :func:`bridges.from_torch`).

    Raises:
      CheckpointNotFoundError: no such file. CheckpointError: corrupt, truncated or of an
        unknown format; not a state dict; keys that do not fit ``architecture``; no
        ``activation`` for an inferred stack. CheckpointShapeError: a tensor's shape differs
        from the architecture's. MissingDependencyError: a torch file without torch installed.
      UnsupportedModuleError: ``architecture`` contains a module bridges cannot convert.

    Example (no torch needed):
      >>> import os, tempfile, numpy as np, jax, jax.numpy as jnp, bridges, ei_jax
      >>> from safetensors.numpy import save_file
      >>> path = os.path.join(tempfile.mkdtemp(), "net.safetensors")
      >>> rng = np.random.default_rng(0)
      >>> save_file({"0.weight": rng.normal(size=(6, 25)).astype(np.float32),
      ...            "2.weight": rng.normal(size=(5, 6)).astype(np.float32)}, path)
      >>> model, variables = bridges.load_checkpoint(path, activation="sigmoid")
      >>> top = ei_jax.topology_of(model, variables, jnp.zeros((1, 25)))
      >>> list(top), top.nodes["layers_2"]["input"]
      (['layers_0', 'layers_2'], {'activation': 'sigmoid', 'shape': (1, 6)})
      >>> v = ei_jax.ei_parts(jax.random.key(0), top, "layers_2", samples=10_000, in_bins=8, out_bins=8)
    """
    flax_build.check_api(api)
    state, ordered = read_state_dict(path)
    source = str(path)
    if architecture is not None:
        if activation is not None:
            raise InvalidCallError(
                "activation= is for checkpoints loaded without an architecture; the architecture's "
                "own activation modules are used. Pass one or the other."
            )
        from bridges._src.torch_modules import describe

        if hasattr(architecture, "eval"):   # measured as at evaluation time
            architecture = copy.deepcopy(architecture).eval()
        try:
            layers = ir_state.with_state(describe(architecture), state, source=source)
        except UnsupportedModuleError:
            if x is None:
                raise
            return _traced(architecture, state, source, x, api)
    else:
        layers = ir.linear_stack(state, activation, ordered=ordered, source=source)
    return flax_build.build(layers, api)
