"""Normalisation layer specs, and a checkpoint's tensors put into an architecture's specs.

The specs of :mod:`bridges._src.ir` that hold state besides weights: ``BatchNorm1d/2d`` (in
eval mode, its running statistics) and ``LayerNorm``. :func:`with_state` fills every
parameter of an architecture -- weights, biases, scales, running statistics -- from a state
dict, strictly, as ``torch.nn.Module.load_state_dict(strict=True)`` does. Works without torch.
"""

import dataclasses

import numpy as np

from bridges._src import ir
from bridges._src.errors import CheckpointError, CheckpointShapeError


@dataclasses.dataclass(frozen=True, eq=False)
class BatchNorm:
    """``torch.nn.BatchNorm1d/2d`` in eval mode, over the channel axis (the last one in Flax):
    ``(x - running_mean) / sqrt(running_var + eps) * weight + bias``; ``weight``/``bias`` are
    None when ``affine=False``."""

    name: str
    weight: np.ndarray | None
    bias: np.ndarray | None
    running_mean: np.ndarray
    running_var: np.ndarray
    eps: float

    @property
    def features(self) -> int:
        return int(self.running_mean.shape[0])

    def describe(self) -> str:
        return f"BatchNorm({self.features}, affine={self.weight is not None})"


@dataclasses.dataclass(frozen=True, eq=False)
class LayerNorm:
    """``torch.nn.LayerNorm`` over the last axis (``normalized_shape`` of one int); ``weight`` /
    ``bias`` None without ``elementwise_affine`` / ``bias``."""

    name: str
    weight: np.ndarray | None
    bias: np.ndarray | None
    features: int
    eps: float

    def describe(self) -> str:
        return f"LayerNorm({self.features}, affine={self.weight is not None})"


#: Specs whose arrays come from a state dict.
STATEFUL = (*ir.WEIGHTED, BatchNorm, LayerNorm)
_FIELDS = {BatchNorm: ("weight", "bias", "running_mean", "running_var"),
           LayerNorm: ("weight", "bias")}


def param_shapes(layer) -> dict[str, tuple[int, ...]]:
    """``{state dict leaf: shape}`` of a spec's arrays (those it has)."""
    fields = _FIELDS.get(type(layer), ("weight", "bias"))
    return {f: tuple(getattr(layer, f).shape) for f in fields if getattr(layer, f) is not None}


def _key(prefix: str, leaf: str) -> str:
    return f"{prefix}.{leaf}" if prefix else leaf


def with_state(layers, state: dict[str, np.ndarray], *, source: str):
    """The architecture ``layers`` with every array taken from ``state``.

    ``state`` maps PyTorch ``state_dict`` names (``"0.weight"``, ``"bn1.running_var"``) to
    arrays. Like ``torch.nn.Module.load_state_dict(strict=True)``, every parameter must be
    present with the architecture's shape and no key may be left over (a BatchNorm's
    ``num_batches_tracked`` is read and ignored).

    Raises:
      CheckpointShapeError: a tensor's shape differs from the architecture's parameter.
      CheckpointError: keys missing from, or unexpected in, the checkpoint.
    """
    out, used, missing = [], set(), []
    for layer in layers:
        if not isinstance(layer, STATEFUL):
            out.append(layer)
            continue
        new = {}
        for leaf, shape in param_shapes(layer).items():
            k = _key(layer.name, leaf)
            if k not in state:
                missing.append(k)
                continue
            got = tuple(np.shape(state[k]))
            if got != shape:
                raise CheckpointShapeError(
                    f"{source}: tensor {k!r} has shape {got}, but the architecture's "
                    f"{layer.describe()} at {layer.name or '<root>'!r} expects {shape}. "
                    "Pass the architecture the checkpoint was saved from."
                )
            new[leaf] = ir.as_float32(k, state[k], source)
            used.add(k)
        if isinstance(layer, BatchNorm):
            used.add(_key(layer.name, "num_batches_tracked"))
        out.append(dataclasses.replace(layer, **new))
    unexpected = [k for k in state if k not in used]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing {missing}")
        if unexpected:
            parts.append(f"unexpected {unexpected}")
        names = [_key(l.name, p) for l in layers if isinstance(l, STATEFUL) for p in param_shapes(l)]
        raise CheckpointError(
            f"{source} does not fit the architecture: {'; '.join(parts)}. The architecture's "
            f"parameters are {names}. Pass the architecture the checkpoint was saved from "
            "(same module names)."
        )
    return tuple(out)
