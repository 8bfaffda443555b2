"""deep-ei's ``topology_of``: a ``networkx.DiGraph`` whose nodes are the torch layers.

The graph has deep-ei 0.7.0's layout: one node per ``nn.Linear``, ``nn.Conv2d``,
``nn.AvgPool2d``, ``nn.MaxPool2d`` and ``nn.Flatten`` the forward pass runs, an edge from each
to the next, and on each node::

    top.nodes[layer] == {"input":  {"activation": <module or None>, "shape": (1, ...)},
                         "output": {"activation": <module or None>, "shape": (1, ...)}}

shapes with the batch dimension, a Conv2d's as deep-ei records them (from its weight:
``(1, c_in, kh, kw)`` in, ``(1,)`` out). An activation is the ``nn.Sigmoid``/``nn.Tanh``/``nn.ReLU``
instance that ran right after the layer (``output``) or last before it (``input``), as in deep-ei,
and also:

* a functional activation in a custom ``forward`` (``torch.sigmoid(self.fc1(x))``, ``F.relu``,
  ``x.tanh()``) is recorded as a fresh instance of its module (deep-ei records nothing there,
  and then measures the layer without its activation);
* any other ``torch.nn`` activation module (``nn.LeakyReLU``, ``nn.Softplus``, ...) is recorded as
  itself (deep-ei skips it), and measured through torch.

Differences from deep-ei's graph: no ``None`` node before the first layer (networkx >= 2.6
forbids it; deep-ei needs networkx < 2.6 for that reason), and ``top.graph["bridges.deep_ei"]``
holds what the measures need beyond deep-ei's layout (:class:`TraceInfo`).
"""

import dataclasses
import warnings
from typing import Any

import networkx as nx

from bridges._src import deep_ei_activations as acts
from bridges._src.deep_ei_errors import UnrecognisedOperationWarning
from bridges._src.torch_trace import layer_types, trace
from ei_jax.errors import UnsupportedModuleError

__all__ = ["INFO_KEY", "TraceInfo", "topology_of"]

INFO_KEY = "bridges.deep_ei"

# Functions that only reshape or copy the data: the chain of layers runs through them.
_TRANSPARENT = ("view", "reshape", "flatten", "contiguous", "squeeze", "unsqueeze", "clone",
                "detach", "to", "float")


@dataclasses.dataclass
class TraceInfo:
    """What the forward pass showed, beyond deep-ei's node attributes.

    Attributes:
      order: the layer modules in call order (the graph's nodes).
      shapes: per module, its real ``(input shape, output shape)`` (a Conv2d's image shapes).
      breaks: per module, why data did not flow straight from the previous layer to it
        (``None`` when it did): an unrecognised operation in between, or a branch.
    """

    order: list
    shapes: dict
    breaks: dict


def _label(call) -> str:
    t = call.target
    if call.kind == "module":
        return type(t).__name__
    owner = getattr(t, "__module__", None) or getattr(getattr(t, "__objclass__", None), "__name__", "")
    return f"{owner}.{getattr(t, '__name__', repr(t))}".lstrip(".")


def _activation_of(call) -> Any:
    """The activation module a call stands for, or ``...`` if it is not an activation."""
    t = call.target
    if call.kind == "module":
        if acts.name_of(t) not in (None, acts.UNKNOWN):  # a standard one (the registry's)
            return t
        if type(t).__module__ == "torch.nn.modules.activation" and not list(t.parameters()):
            return t
        return ...
    name = acts.name_of(t) if call.kind == "function" else acts.UNKNOWN
    if name is acts.UNKNOWN or name is None:
        return ...
    return acts.module_for(name)


def _is_transparent(call) -> bool:
    import torch.nn as nn

    if call.kind == "module":
        return type(call.target) in (nn.Identity, nn.Dropout) and not call.target.training
    return getattr(call.target, "__name__", "") in _TRANSPARENT


def _structure(module, inp, out) -> dict:
    import torch.nn as nn

    in_shape, out_shape = tuple(inp.shape), tuple(out.shape)
    if type(module) is nn.Conv2d:  # deep-ei reads a convolution's shapes from its weight
        in_shape = (1,) + tuple(module.weight.shape[1:])
        out_shape = (1,)
    return {"input": {"activation": None, "shape": in_shape},
            "output": {"activation": None, "shape": out_shape}}


def topology_of(model, input) -> nx.DiGraph:  # noqa: A002 - deep-ei's argument names
    """Runs ``model(input)`` once and returns deep-ei's graph of its layers.

    Args:
      model: a ``torch.nn.Module``: an ``nn.Sequential``, a single layer, or a custom module
        whose ``forward`` calls its layers and activations (modules or functions) in turn.
      input: a valid input tensor, batch dimension first (e.g. ``torch.zeros((1, 20))``).

    Returns:
      ``networkx.DiGraph``: nodes are the layer modules in call order, edges join consecutive
      layers, ``top.nodes[layer]["input"/"output"]["activation"/"shape"]`` as in deep-ei.

    Raises:
      bridges.UnsupportedModuleError: ``model`` is not a module, or runs a layer twice.

    Example:
      >>> import torch, torch.nn as nn
      >>> net = nn.Sequential(nn.Linear(42, 20), nn.Sigmoid(), nn.Linear(20, 10))
      >>> top = topology_of(net, input=torch.zeros((1, 42)))
      >>> layer1, _, layer2 = net
      >>> type(top.nodes[layer1]["output"]["activation"]).__name__, top.nodes[layer1]["input"]["shape"]
      ('Sigmoid', (1, 42))
      >>> list(top.successors(layer1)) == [layer2]
      True
    """
    calls, _ = trace(model, input)
    graph = nx.DiGraph()
    info = TraceInfo([], {}, {})
    prv = None          # deep-ei's `prv`: the last layer or activation that ran
    cur = None          # the tensor the chain of layers has reached
    between: list[str] = []
    unread: list = []   # (layer, what): its output went first through an unrecognised operation
    layers = layer_types()
    for call in calls:
        on_chain = cur is None or call.inp is cur
        if call.kind == "module" and type(call.target) in layers:
            module = call.target
            if module in graph:
                raise UnsupportedModuleError(
                    f"{type(module).__name__} {module} runs more than once in the forward pass; "
                    "a layer used twice has no single input and output to measure. Give each use "
                    "its own module."
                )
            node = _structure(module, call.inp, call.out)
            node["input"]["activation"] = prv if prv is not None and prv not in graph else None
            if info.order:
                reason = None if on_chain else ("the second one's input is not the first one's "
                                                "output (a branch or skip connection)")
                if between:
                    reason = f"{', '.join(between)} ran in between"
                    if "Dropout" in between:
                        reason += " (Dropout in training mode: call model.eval() before topology_of)"
                info.breaks[module] = reason
                graph.add_edge(info.order[-1], module)
            graph.add_node(module, **node)
            info.order.append(module)
            info.shapes[module] = (tuple(call.inp.shape), tuple(call.out.shape))
            prv, cur, between = module, call.out, []
            continue
        if not on_chain:
            continue
        act = _activation_of(call)
        if act is not ...:
            if prv is not None and prv in graph:
                graph.nodes[prv]["output"]["activation"] = act
            elif info.order:  # a second activation in a row: deep-ei records only the first
                between.append(_label(call))
            prv = act
        elif not _is_transparent(call) and info.order:
            if prv is info.order[-1] and not between:
                unread.append((prv, f"{type(prv).__name__} {len(info.order) - 1} -> {_label(call)}"))
            between.append(_label(call))
        cur = call.out if call.out is not None else cur
    graph.graph[INFO_KEY] = info
    unread = [what for layer, what in unread if graph.nodes[layer]["output"]["activation"] is None]
    if unread:
        warnings.warn(
            f"These layers' outputs go through operations the drop-in does not recognise as "
            f"activations: {'; '.join(unread)}. Their measures use no activation (as deep-ei's do) "
            "unless you pass activation= (any callable of a tensor works, e.g. "
            "activation=torch.nn.functional.leaky_relu) and out_range=.",
            UnrecognisedOperationWarning, stacklevel=2)
    return graph
