"""The torch-free description of a network that :mod:`bridges` converts to Flax.

A network is a tuple of layer specs, in forward order, holding NumPy ``float32`` arrays in
**PyTorch's layouts** (Linear ``[out, in]``, Conv2d ``OIHW``); :mod:`bridges._src.flax_build`
does the layout changes. Specs come from a live torch module (:mod:`bridges._src.torch_modules`)
or from a checkpoint's tensors (:mod:`bridges._src.checkpoints`), so everything here works
without torch installed.
"""

import dataclasses
import re

import numpy as np

import ei_jax
from bridges._src.errors import CheckpointError, CheckpointShapeError


def activation_entry(name: str):
    """The entry of ei_jax's activation registry (:func:`ei_jax.activations`) that a name or
    alias (any case) stands for, or None."""
    key = name.lower()
    return next((a for a in ei_jax.activations() if key in a.names), None)


def activation_names() -> tuple[str, ...]:
    """Activations a layer spec may hold: the registry's with a Flax function (identity, which
    has none, is the absence of an :class:`Activation`)."""
    return tuple(a.name for a in ei_jax.activations() if a.flax_name is not None)


@dataclasses.dataclass(frozen=True, eq=False)
class Linear:
    """``torch.nn.Linear``: ``y = x @ weight.T + bias``; ``weight`` is ``(out, in)``."""

    name: str
    weight: np.ndarray
    bias: np.ndarray | None

    def describe(self) -> str:
        return f"Linear({self.weight.shape[1]}, {self.weight.shape[0]}, bias={self.bias is not None})"


@dataclasses.dataclass(frozen=True, eq=False)
class Conv2d:
    """``torch.nn.Conv2d`` with ``groups=1``; ``weight`` is ``(out, in, kh, kw)`` (OIHW)."""

    name: str
    weight: np.ndarray
    bias: np.ndarray | None
    stride: tuple[int, int]
    padding: tuple[tuple[int, int], tuple[int, int]]
    dilation: tuple[int, int]

    def describe(self) -> str:
        o, i, kh, kw = self.weight.shape
        return f"Conv2d({i}, {o}, kernel_size=({kh}, {kw}), bias={self.bias is not None})"


@dataclasses.dataclass(frozen=True)
class Activation:
    """An elementwise activation: one of :func:`activation_names`."""

    name: str


@dataclasses.dataclass(frozen=True)
class Flatten:
    """``torch.nn.Flatten(start_dim=1, end_dim=-1)`` (PyTorch's NCHW element order)."""


@dataclasses.dataclass(frozen=True)
class Pool:
    """``torch.nn.AvgPool2d`` (``kind="avg"``) or ``MaxPool2d`` (``kind="max"``)."""

    kind: str
    window: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[tuple[int, int], tuple[int, int]]
    count_include_pad: bool = True


WEIGHTED = (Linear, Conv2d)


def as_float32(name: str, array, source: str) -> np.ndarray:
    """A checkpoint tensor as a float32 NumPy array (float16/bfloat16/float64 are converted)."""
    a = np.asarray(array)
    if not (np.issubdtype(a.dtype, np.floating) or a.dtype.name == "bfloat16"):
        raise CheckpointError(
            f"{source}: tensor {name!r} has dtype {a.dtype}; expected floating-point weights. "
            "Quantised or integer checkpoints are not supported: dequantise them first."
        )
    return np.array(a, dtype=np.float32, copy=True)


def _key(prefix: str, leaf: str) -> str:
    return f"{prefix}.{leaf}" if prefix else leaf


def natural_key(name: str):
    """Sort key that orders ``"layers.2"`` before ``"layers.10"`` (digit runs compare as numbers).

    The one natural sort of the project: :func:`linear_stack` orders safetensors layers with it
    and ``ei-jax measure`` orders a Flax checkpoint's layers and a directory's files with it.

    Args:
      name: any string.

    Returns:
      a list alternating text and ``int`` pieces, usable as ``sorted(..., key=natural_key)``.

    Example:
      >>> sorted(["layers.10", "layers.2", "epoch_9", "epoch_10"], key=natural_key)
      ['epoch_9', 'epoch_10', 'layers.2', 'layers.10']
    """
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", str(name))]


def _activation_list(activation, n: int, source: str, remedy: str) -> list[str | None]:
    hint = ("pass activation='sigmoid' (used after every layer) or one name per layer, e.g. "
            "activation=('sigmoid', 'tanh'); use 'identity' for none. For anything but a plain "
            f"Linear stack {remedy}.")
    if activation is None:
        raise CheckpointError(
            f"{source} holds weights only, without the activations between the layers: {hint}"
        )
    names = [activation] * n if isinstance(activation, str) else list(activation)
    if len(names) != n:
        raise CheckpointError(
            f"{source} holds {n} Linear layers but activation= names {len(names)}: {hint}"
        )
    out, known = [], activation_names()
    for a in names:
        entry = None if a is None else activation_entry(str(a))
        if a is None or (entry is not None and entry.name == "identity"):
            out.append(None)
        elif entry is not None and entry.name in known:
            out.append(entry.name)
        else:
            raise CheckpointError(
                f"Unknown activation {a!r}. Expected one of {list(known) + ['identity']}."
            )
    return out


TORCH_REMEDY = "pass architecture=<the torch module>"


def linear_stack(state: dict[str, np.ndarray], activation, *, ordered: bool, source: str,
                 remedy: str = TORCH_REMEDY):
    """Infers ``Linear -> act -> Linear -> act ...`` from a state dict of Linear layers.

    The one rebuild of a chain of dense layers from weights: :func:`bridges.load_checkpoint`
    uses it for torch/safetensors files, and ``ei-jax measure`` for Flax checkpoints (their
    ``[in, out]`` kernels transposed to torch's ``[out, in]``).

    Args:
      state: ``{"0.weight": (out, in), "0.bias": (out,), "2.weight": ...}``.
      activation: a name used after every layer, or a sequence of one name per layer
        (``"identity"``/``None`` for none).
      ordered: ``state`` is in forward order (a ``torch.save``d state dict is); otherwise the
        layers are ordered by their names in natural order (``"2"`` before ``"10"``).
      source: the file, for messages.
      remedy: what the messages tell the user to do when the weights are not a plain stack.

    Returns:
      a tuple of :class:`Linear` (float32 weights ``(out, in)``) and :class:`Activation` specs.

    Raises:
      CheckpointError: a tensor that is not a Linear weight/bias, a convolution, no
        ``activation``. CheckpointShapeError: shapes that do not chain.

    Example:
      >>> import numpy as np
      >>> state = {"0.weight": np.ones((3, 4)), "2.weight": np.ones((2, 3)), "2.bias": np.zeros(2)}
      >>> [l.describe() if isinstance(l, Linear) else l.name
      ...  for l in linear_stack(state, "tanh", ordered=True, source="net.pt")]
      ['Linear(4, 3, bias=False)', 'tanh', 'Linear(3, 2, bias=True)', 'tanh']
    """
    groups: dict[str, dict[str, np.ndarray]] = {}
    for k, v in state.items():
        prefix, _, leaf = k.rpartition(".")
        if leaf not in ("weight", "bias"):
            raise CheckpointError(
                f"{source}: tensor {k!r} is not a Linear weight or bias, so the architecture cannot "
                f"be inferred; {remedy}."
            )
        groups.setdefault(prefix, {})[leaf] = v
    if not groups:
        raise CheckpointError(f"{source} holds no tensors.")
    names = list(groups) if ordered else sorted(groups, key=natural_key)
    layers = []
    for name in names:
        g = groups[name]
        if "weight" not in g:
            raise CheckpointError(f"{source}: {_key(name, 'bias')!r} has no matching weight.")
        w = as_float32(_key(name, "weight"), g["weight"], source)
        if w.ndim == 4:
            raise CheckpointError(
                f"{source}: {_key(name, 'weight')!r} has shape {w.shape}, a convolution (4-D kernel); "
                f"the layout of a convolutional network cannot be inferred from weights: {remedy}."
            )
        if w.ndim != 2:
            raise CheckpointShapeError(
                f"{source}: {_key(name, 'weight')!r} has shape {w.shape}; a Linear weight is "
                "(out_features, in_features)."
            )
        b = None
        if "bias" in g:
            b = as_float32(_key(name, "bias"), g["bias"], source)
            if b.shape != (w.shape[0],):
                raise CheckpointShapeError(
                    f"{source}: {_key(name, 'bias')!r} has shape {b.shape}; expected ({w.shape[0]},) "
                    f"for a weight of shape {w.shape}."
                )
        if layers and layers[-1].weight.shape[0] != w.shape[1]:
            prev = layers[-1]
            raise CheckpointShapeError(
                f"{source}: the layers do not form a chain: layer {prev.name!r} has "
                f"{prev.weight.shape[0]} outputs but the next layer {name!r} expects {w.shape[1]} "
                f"inputs (weights {prev.weight.shape} then {w.shape}, taken in "
                f"{'file' if ordered else 'natural name'} order). If the layers are not a plain "
                f"stack in that order, {remedy}."
            )
        layers.append(Linear(name, w, b))
    acts = _activation_list(activation, len(layers), source, remedy)
    out = []
    for layer, a in zip(layers, acts):
        out.append(layer)
        if a is not None:
            out.append(Activation(a))
    return tuple(out)


def check_network(layers, what: str, error=CheckpointError):
    """At least one weight layer; returns ``layers`` as a tuple."""
    layers = tuple(layers)
    if not any(isinstance(l, WEIGHTED) for l in layers):
        raise error(f"{what} has no Linear or Conv2d layer; nothing to measure.")
    return layers
