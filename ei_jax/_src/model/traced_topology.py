"""The topology of a traced program: one node per layer (:mod:`ei_jax._src.model.slicing`).

A traced node keeps deep-ei's layout and adds what the measures need::

    top.nodes[name] == {
        "input":  {"activation": ..., "shape": (1, n_in), "range": (lo, hi), "range_guessed": bool},
        "output": {"activation": "relu" | None | "gelu" ..., "shape": (1, n_out), "range": ..., ...},
        "kind": "traced",
        "module": "Conv_0",               # from the module path / parameter names
        "params": {"params/Conv_0/kernel": ..., ...},   # the parameter leaves it reads
        "apply": apply(params, x),        # the whole slice, activation included: (C, n_in) -> (C, n_out)
        "ops": ("conv_general_dilated", "add", "custom_jvp_call[relu]"),
        "scope": "receptive field" | "whole map" | None,   # see below
        "whole_map": None | "why a conv layer is not measured over one receptive field",
        "exact": None | "why the exact measures do not apply",
        "fold": fold(params) -> (W, b),   # the folded kernel and bias of an exact layer
        "refused": None | "why the layer cannot be measured",
    }

The input is the concatenation of every value the layer reads, each flattened row-major; the
output likewise. A convolution layer whose slice keeps positions apart (the convolution, then
a bias, BatchNorm in inference mode, an activation...) is measured over one receptive field,
as on the Sequential path: input one patch ``(1, kh, kw, c_in)``, output the ``(1, c_out)``
channels at one position, ``"scope": "receptive field"``. One whose slice mixes positions
(pooling before its activation, a skip connection, a parameter per position) keeps the whole
feature map: ``"scope": "whole map"``, and ``"whole_map"`` says why
(:mod:`ei_jax._src.model.receptive`). Layers without a convolution have ``"scope": None``.
"""

import jax
import networkx as nx
import numpy as np

from ei_jax._src.model import activations as _act
from ei_jax._src.model import folding as _fold
from ei_jax._src.model import receptive as _receptive
from ei_jax._src.model.slicing import _taint, cut
from ei_jax._src.model.traced import Const, module_path

__all__ = ["build"]

_GUESS = (-10.0, 10.0)      # deep-ei's range for values without a known activation
_SUFFIXES = ("value", "kernel", "weight", "w", "raw_value")


def build(prog, leaves, *, state_outputs=(), live=None) -> nx.DiGraph:
    """The ``networkx.DiGraph`` of a traced program (node layout in the module docstring).

    Args:
      prog: the traced program; leaves: its parameter leaf values (in ``prog.leaf_names`` order).
      state_outputs: ids of updated state values (their layers are refused).
      live: None, or ``live() -> leaves``: the current leaves, read whenever a layer is measured.

    Returns:
      the graph; ``top.graph["order"]`` lists the layers in order, edges link a layer to the
      layers that read its values.
    """
    data, _, _ = _taint(prog)
    top, order, names, owner = nx.DiGraph(), [], set(), {}
    ranges = {i: (_GUESS, True) for i in prog.x_ids}
    acts = {i: None for i in prog.x_ids}
    for layer in cut(prog, state_outputs):
        act, act_eqn, reason = _fold.analyse(prog, layer, data)
        name = _unique(_name(prog, layer, data), names)
        # the activation's range when the output is that activation's (act_eqn), also where the
        # layer is not exact (LayerNorm -> GELU); no activation: deep-ei's (-10, 10)
        entry = _act.lookup(act) if isinstance(act, str) else None
        known = ((act is None and reason is None)
                 or (act_eqn is not None and entry is not None and entry.default_range is not None))
        out_range = (_act.default_range(act), False) if known else (_GUESS, True)
        in_rngs = [ranges.get(i, (_GUESS, True)) for i in layer.inputs]
        in_range = ((min(r[0][0] for r in in_rngs), max(r[0][1] for r in in_rngs)),
                    any(r[1] for r in in_rngs))
        in_acts = {acts.get(i) for i in layer.inputs}
        ids = layer.params
        leaf_names = tuple(prog.leaf_names[i] for i in ids)
        field, whole = _receptive.field(prog, layer, data)
        if field is None:
            one = _fold.slice_fn(prog, layer, layer.eqns, layer.outputs)
            shapes = (1, _size(prog, layer.inputs)), (1, _size(prog, layer.outputs))
        else:
            one = _receptive.field_fn(prog, layer, field, layer.eqns, layer.outputs)
            shapes = (1, *field.taps), (1, field.n_out)

        def apply(params, x, _one=one, _ids=ids, _names=leaf_names):
            leaves_ = {i: params[n] for i, n in zip(_ids, _names)}
            return jax.vmap(_one, (None, 0))(leaves_, x.reshape(x.shape[0], -1))

        folded = (None if reason is not None or layer.refused
                  else _fold.fold(prog, layer, act_eqn, field))
        top.add_node(name, **{
            "input": {"activation": in_acts.pop() if len(in_acts) == 1 else tuple(in_acts),
                      "shape": shapes[0], "range": in_range[0], "range_guessed": in_range[1]},
            "output": {"activation": act, "shape": shapes[1],
                       "range": out_range[0], "range_guessed": out_range[1]},
            "kind": "traced",
            "module": name,
            "path": tuple(name.split("/")),
            "params": {n: leaves[i] for i, n in zip(ids, leaf_names)},
            "apply": apply,
            "measure_apply": lambda params, x, _apply=apply: _apply(params[0], x),
            "ops": tuple(prog.eqns[k].name for k in layer.eqns),
            "scope": "receptive field" if field is not None else ("whole map" if whole else None),
            "whole_map": whole,
            "exact": reason if layer.refused is None else layer.refused,
            "fold": None if folded is None else (
                lambda params, _f=folded, _ids=ids, _names=leaf_names:
                _f({i: params[n] for i, n in zip(_ids, _names)})),
            "refused": layer.refused,
            "live": None if live is None else (
                lambda _live=live, _ids=ids, _names=leaf_names:
                dict(zip(_names, (_live()[i] for i in _ids)))),
        })
        for i in layer.inputs:
            if i in owner and owner[i] != name:
                top.add_edge(owner[i], name)
        for k in layer.eqns:
            owner.update({o: name for o in prog.eqns[k].outs})
        for o in layer.outputs:
            ranges[o], acts[o] = out_range, act
        order.append(name)
    top.graph["order"] = order
    return top


def _size(prog, ids) -> int:
    return int(sum(np.prod(prog.avals[i].shape) for i in ids))


def _name(prog, layer, data) -> str:
    """The layer's name: its first linear operation's module path or parameter name."""
    eqn = prog.eqns[layer.linear[0]] if layer.linear else prog.eqns[layer.eqns[0]]
    path = module_path(eqn).split("/")
    producer = {o: e for e in prog.eqns for o in e.outs}
    stack = [r for r in eqn.ins if not isinstance(r, Const) and r not in data]
    while stack:
        i = stack.pop()
        if i < prog.n_params:
            parts = prog.leaf_names[i].split("/")
            while len(parts) > 1 and parts[-1] in _SUFFIXES:
                parts.pop()
            if len(parts) > 1 and parts[0] == "params":
                parts.pop(0)
            return "/".join(parts)
        if i in producer:
            stack.extend(r for r in producer[i].ins if not isinstance(r, Const))
    return "/".join(path[1:]) or path[0] or "layer"


def _unique(name, taken) -> str:
    out, k = name, 2
    while out in taken:
        out, k = f"{name}_{k}", k + 1
    taken.add(out)
    return out
