"""Run a torch module once and record, in order, what its forward pass called.

deep-ei's users wrote custom ``nn.Module``s whose ``forward`` calls layers and functional
activations (``torch.sigmoid(self.fc1(x))``). Their structure is only known by running them,
so :func:`trace` runs the module once on an input and records two kinds of calls:

* **module calls**, from forward hooks on every *atomic* module -- one without children, or
  one of the layer types deep-ei measures (``nn.Linear``, ``nn.Conv2d``, pooling, ``nn.Flatten``);
  calls made inside an atomic module are not recorded separately;
* **function calls** made outside atomic modules (``torch.sigmoid``, ``x.view(...)``,
  ``F.relu``, ``x + y``), through a ``torch.overrides.TorchFunctionMode``.

Each record keeps the first tensor argument and the tensor result, so the caller can follow
the data from one call to the next (by tensor identity) and tell a chain of layers from
branches and skip connections.
"""

import dataclasses
from typing import Any

from ei_jax.errors import UnsupportedModuleError

__all__ = ["Call", "trace"]


@dataclasses.dataclass(eq=False)
class Call:
    """One recorded call: ``kind`` is ``"module"`` or ``"function"``; ``target`` the module
    instance or the function object; ``inp`` its first tensor argument (or None); ``out`` its
    result (a tensor, or None when it returned something else)."""

    kind: str
    target: Any
    inp: Any
    out: Any


def layer_types():
    """The torch modules that are deep-ei layers (and that a trace records without entering)."""
    import torch.nn as nn

    return (nn.Linear, nn.Conv2d, nn.AvgPool2d, nn.MaxPool2d, nn.Flatten)


def _is_atomic(module) -> bool:
    return isinstance(module, layer_types()) or next(module.children(), None) is None


def _first_tensor(args, kwargs):
    import torch

    for a in list(args) + list(kwargs.values()):
        if isinstance(a, torch.Tensor):
            return a
        if isinstance(a, (tuple, list)):
            for b in a:
                if isinstance(b, torch.Tensor):
                    return b
    return None


def _make_mode(calls, depth):
    import torch
    from torch.overrides import TorchFunctionMode

    class _Recorder(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            out = func(*args, **kwargs)
            if depth[0] == 0 and isinstance(out, torch.Tensor):
                calls.append(Call("function", func, _first_tensor(args, kwargs), out))
            return out

    return _Recorder()


def trace(model, x) -> tuple[list[Call], Any]:
    """Runs ``model(x)`` once (without gradients) and returns ``(calls, output)``.

    Args:
      model: a ``torch.nn.Module``.
      x: its input, a tensor with the batch dimension first (or what ``model`` takes).

    Returns:
      ``(calls, y)``: the :class:`Call` records in call order, and ``model(x)``.

    Raises:
      bridges.UnsupportedModuleError: ``model`` is not a ``torch.nn.Module``.

    Example:
      >>> import torch
      >>> class Net(torch.nn.Module):
      ...     def __init__(self):
      ...         super().__init__()
      ...         self.fc = torch.nn.Linear(3, 2)
      ...     def forward(self, x):
      ...         return torch.sigmoid(self.fc(x))
      >>> calls, y = trace(Net(), torch.zeros(1, 3))
      >>> [(c.kind, getattr(c.target, "__name__", type(c.target).__name__)) for c in calls]
      [('module', 'Linear'), ('function', 'sigmoid')]
      >>> calls[1].inp is calls[0].out
      True
    """
    import torch

    if not isinstance(model, torch.nn.Module):
        raise UnsupportedModuleError(
            f"topology_of(model, input) needs a torch.nn.Module as model. Got "
            f"{type(model).__name__}."
        )
    calls: list[Call] = []
    depth = [0]
    handles = []

    def pre_hook(module, args):
        depth[0] += 1

    def post_hook(module, args, output):
        depth[0] -= 1
        if depth[0] == 0:
            out = output if isinstance(output, torch.Tensor) else None
            calls.append(Call("module", module, _first_tensor(args, {}), out))

    try:
        for module in model.modules():
            if _is_atomic(module):
                handles.append(module.register_forward_pre_hook(pre_hook))
                handles.append(module.register_forward_hook(post_hook))
        with torch.no_grad(), _make_mode(calls, depth):
            y = model(x)
    finally:
        for h in handles:
            h.remove()
    return calls, y
