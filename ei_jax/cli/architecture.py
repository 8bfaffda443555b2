"""``ei-jax measure --arch``: checkpoints measured with the architecture they were saved from.

A checkpoint stores weights, not the network's structure. A plain chain of dense layers is
rebuilt from the weights alone (:mod:`ei_jax.cli.loader`); anything else -- BatchNorm,
LayerNorm, GELU, residual blocks, convolutions -- needs its architecture. ``--arch SPEC``
names a Python callable that returns it, ``SPEC`` being ``path/to/file.py:NAME`` or
``package.module:NAME`` (``NAME`` a function or class called without arguments, or a module
object itself):

* a ``torch.nn.Module``: the checkpoint is a ``state_dict`` (``.pt``/``.pth``/``.bin``/
  ``.ckpt``/``.safetensors``), loaded with :func:`bridges.load_checkpoint` (the module is
  copied and put in eval mode; one with its own ``forward`` is traced on an example input);
* a ``flax.linen`` module: the checkpoint is a Flax msgpack file or orbax directory holding
  its variables (``{"params": ..., "batch_stats": ...}``).

``--input-shape D,D,...`` is one example's shape as the architecture takes it (torch: ``C,H,W``
for images, Flax: ``H,W,C``). The network is then read by :func:`ei_jax.topology_of`, on the
traced path where it is not a plain Sequential, and every layer measured.
"""

import importlib
import importlib.util
import sys
from pathlib import Path

import numpy as np

from ei_jax._src.base.errors import CheckpointError, CheckpointNotFoundError, InvalidOptionError
from ei_jax.cli.loader import TORCH_SUFFIXES, Loaded

__all__ = ["load_architecture", "load_with_architecture"]

_FORM = ("--arch takes FILE.py:NAME or package.module:NAME, NAME a function or class that "
         "returns your torch.nn.Module or flax.linen module (called without arguments)")


def load_architecture(spec: str):
    """The module ``spec`` names (``file.py:NAME`` or ``package.module:NAME``).

    Returns:
      a ``torch.nn.Module`` or ``flax.linen.Module`` (``NAME`` itself, or what calling it
      without arguments returns).

    Raises:
      InvalidOptionError: the file or module cannot be imported, has no ``NAME``, or ``NAME``
        gives something else than a torch or linen module.

    Example:
      >>> import os, tempfile
      >>> path = os.path.join(tempfile.mkdtemp(), "arch.py")
      >>> _ = open(path, "w").write("import flax.linen as nn\\ndef make():\\n    return nn.Dense(3)\\n")
      >>> type(load_architecture(f"{path}:make")).__name__
      'Dense'
    """
    where, sep, name = spec.rpartition(":")
    if not sep or not where or not name.isidentifier():
        raise InvalidOptionError(f"{_FORM}. Got {spec!r}.")
    try:
        if where.endswith(".py") or Path(where).is_file():
            path = Path(where)
            if not path.is_file():
                raise InvalidOptionError(f"--arch {spec}: {path} does not exist. {_FORM}.")
            loaded = importlib.util.spec_from_file_location(f"_ei_jax_arch_{path.stem}", path)
            module = importlib.util.module_from_spec(loaded)
            sys.modules[loaded.name] = module          # dataclasses and pickling look it up
            loaded.loader.exec_module(module)
        else:
            module = importlib.import_module(where)
    except InvalidOptionError:
        raise
    except Exception as e:  # noqa: BLE001 - the user's code: say what failed, in one line
        raise InvalidOptionError(f"--arch {spec}: importing {where} failed: "
                                 f"{type(e).__name__}: {e}") from None
    if not hasattr(module, name):
        raise InvalidOptionError(f"--arch {spec}: {where} has no {name!r}. {_FORM}.")
    obj = getattr(module, name)
    if not _is_module(obj) and callable(obj):
        try:
            obj = obj()
        except Exception as e:  # noqa: BLE001 - the user's code
            raise InvalidOptionError(f"--arch {spec}: calling {name}() failed: "
                                     f"{type(e).__name__}: {e}") from None
    if not _is_module(obj):
        raise InvalidOptionError(f"--arch {spec}: {name} gave a {type(obj).__name__}, not a "
                                 f"torch.nn.Module or flax.linen module. {_FORM}.")
    return obj


def _is_torch(obj) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(obj, torch.nn.Module)


def _is_linen(obj) -> bool:
    import flax.linen as nn

    return isinstance(obj, nn.Module)


def _is_module(obj) -> bool:
    return not isinstance(obj, type) and (_is_torch(obj) or _is_linen(obj))


def flax_shape(arch, input_shape) -> tuple[int, ...]:
    """The Flax input shape of one example: torch's ``(C, H, W)`` is ``(H, W, C)`` after
    :func:`bridges.from_torch`; a Flax module's shape is its own."""
    if _is_torch(arch) and len(input_shape) == 3:
        c, h, w = input_shape
        return (h, w, c)
    return tuple(input_shape)


def load_with_architecture(path, arch, input_shape) -> Loaded:
    """Reads a checkpoint into its architecture (``--arch``), with its traced topology.

    Args:
      path: the checkpoint; arch: the module (:func:`ei_jax.cli.architecture.load_architecture`);
      input_shape: ``--input-shape``, one example's shape as ``arch`` takes it.

    Returns:
      :class:`Loaded` with ``topology`` set and ``names`` its layers.

    Raises:
      CheckpointNotFoundError, CheckpointError, UnsupportedModuleError (a module that cannot be
      converted), as :func:`bridges.load_checkpoint`.
    """
    import ei_jax

    path = Path(path)
    if not path.exists():
        raise CheckpointNotFoundError(f"Checkpoint {path} does not exist.")
    model, variables, x_shape = _read_into(path, arch, input_shape)
    top = ei_jax.topology_of(model, variables, np.zeros((1, *x_shape), np.float32))
    return Loaded(model, variables, list(top), int(np.prod(x_shape)), tuple(x_shape), top)


def _read_into(path, arch, input_shape):
    """``(model, variables, x_shape)``: checkpoint ``path`` loaded into ``arch``.

    Args:
      path: a torch ``state_dict`` file (torch ``arch``) or a Flax checkpoint (linen ``arch``).
      arch: from :func:`load_architecture`; input_shape: one example's shape as ``arch`` takes it.

    Returns:
      the linen ``model`` and ``variables`` to measure, and one example's Flax shape.

    Raises:
      CheckpointError (and its subclasses): an unreadable checkpoint or one that does not fit
        ``arch``. UnsupportedModuleError: a torch module bridges cannot convert.
    """
    path = Path(path)
    if _is_torch(arch):
        import torch

        import bridges

        model, variables = bridges.load_checkpoint(path, architecture=arch,
                                                   x=torch.zeros((1, *input_shape)))
        return model, variables, flax_shape(arch, input_shape)
    if path.is_file() and path.suffix in TORCH_SUFFIXES:
        raise CheckpointError(f"{path} is a PyTorch/safetensors checkpoint, but --arch gave a "
                              "flax.linen module: give the torch.nn.Module it was saved from.")
    from ei_jax.experiments.checkpoints import read_flax_checkpoint

    tree = read_flax_checkpoint(path)
    variables = tree if isinstance(tree, dict) and "params" in tree else {"params": tree}
    x = np.zeros((1, *input_shape), np.float32)
    try:
        import jax

        expected = jax.eval_shape(arch.init, jax.random.key(0), x)
    except Exception as e:  # noqa: BLE001 - the user's module on the given shape
        raise CheckpointError(f"--arch module cannot take inputs of shape {tuple(input_shape)} "
                              f"(--input-shape): {type(e).__name__}: {e}") from None
    got = jax.tree.map(np.shape, variables)
    want = jax.tree.map(lambda a: tuple(a.shape), dict(expected))
    if jax.tree.structure(got) != jax.tree.structure(want) or jax.tree.leaves(got) != jax.tree.leaves(want):
        raise CheckpointError(f"{path} does not fit the --arch module: it holds "
                              f"{_flat(got)}, the module expects {_flat(want)}.")
    return arch, variables, tuple(input_shape)


def _flat(tree) -> str:
    import jax

    leaves = jax.tree_util.tree_flatten_with_path(tree, is_leaf=lambda v: isinstance(v, tuple))[0]
    return ", ".join(f"{jax.tree_util.keystr(p, simple=True, separator='/')} {s}" for p, s in leaves)
