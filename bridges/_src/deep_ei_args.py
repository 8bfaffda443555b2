"""Translate a deep-ei call into an ei_jax call: span, ranges, activation, key and device.

:func:`prepare` checks deep-ei's arguments (with deep-ei-compatible error types), fills in
deep-ei's defaults from the topology, converts the span ``in_layer .. layer`` **from the live
torch modules** (so weights changed after ``topology_of`` count) into an ei_jax topology with
:func:`bridges.from_torch` and :func:`ei_jax.topology_of`, and draws the ``jax.random`` key from
torch's default generator (so ``torch.manual_seed(s)`` makes the call reproducible).
"""

import dataclasses
import math
import warnings
from typing import Any

import jax
import jax.numpy as jnp
import networkx as nx

import ei_jax
from bridges._src import deep_ei_activations as acts
from bridges._src import deep_ei_vector
from bridges._src.torch_modules import from_torch
from bridges._src.deep_ei_errors import (
    DeviceUnavailableError,
    DeviceValueError,
    DynamicBinningError,
    LayerKeyError,
    SpanOrderError,
    TopologyTypeError,
)
from bridges._src.deep_ei_topology import INFO_KEY

__all__ = ["Target", "key_from_torch", "prepare"]


@dataclasses.dataclass(frozen=True)
class Target:
    """An ei_jax measurement: ``fn(key, topology, layer, **kwargs(in_bins, out_bins))``.

    ``out_floor`` (vector measures only) bounds the outputs from below; ``kwargs(...,
    vector=True)`` then widens ``out_range`` downwards so that values below it get deep-ei's
    extra vector bins (:mod:`bridges._src.deep_ei_vector`).
    """

    key: jax.Array
    topology: nx.DiGraph
    layer: str
    in_layer: str
    in_range: tuple
    out_range: tuple
    activation: Any
    out_floor: Any = None

    def kwargs(self, in_bins, out_bins, vector=False) -> dict:
        out_range = self.out_range
        if vector:
            out_range, out_bins, _ = deep_ei_vector.widen(out_range, out_bins, self.out_floor)
        return dict(in_layer=self.in_layer, in_range=self.in_range, in_bins=in_bins,
                    out_range=out_range, out_bins=out_bins, activation=self.activation)


def key_from_torch() -> jax.Array:
    """A ``jax.random`` key drawn from torch's default generator (advancing it, as sampling does)."""
    import torch

    a, b = (int(v) for v in torch.randint(0, 2**31 - 1, (2,), dtype=torch.int64))
    return jax.random.fold_in(jax.random.key(a), b)


def _info(topology):
    if isinstance(topology, nx.DiGraph) and INFO_KEY in topology.graph:
        return topology.graph[INFO_KEY]
    hint = ""
    if isinstance(topology, nx.DiGraph) and "order" in topology.graph:
        hint = (" This is an ei_jax topology (of a Flax network): measure it with ei_jax's functions, "
                "which take a jax.random key first.")
    raise TopologyTypeError(
        "topology must be the graph returned by bridges.deep_ei.topology_of(network, input). "
        f"Got {type(topology).__name__}.{hint}"
    )


def _describe(order) -> str:
    return "[" + ", ".join(f"{i}: {type(m).__name__}" for i, m in enumerate(order)) + "]"


def _index(info, module, label) -> int:
    for i, m in enumerate(info.order):
        if m is module:
            return i
    raise LayerKeyError(
        f"{label} {module!r} is not a layer of the topology. Its layers are {_describe(info.order)}; "
        "pass one of those module objects (e.g. `layer1, _, layer2, _ = network`)."
    )


def _check_dynamic(in_range, out_range, in_bins, out_bins):
    for label, value in (("in_range", in_range), ("out_range", out_range), ("in_bins", in_bins),
                         ("out_bins", out_bins)):
        if isinstance(value, str) and value == "dynamic":
            raise DynamicBinningError(
                f"{label}='dynamic' is not supported by bridges.deep_ei (deep-ei allowed it for "
                "out_range/out_bins only, with per-neuron ranges found from the first samples). Pass "
                f"{'(lo, hi)' if 'range' in label else 'a number of bins'} instead."
            )


def _check_available(device) -> None:
    """deep-ei allocates its buffers on ``device``: torch raises there if it is missing."""
    import torch

    if device.type == "cpu":
        return
    try:
        torch.empty(0, device=device)
    except Exception as e:  # noqa: BLE001 - torch: AssertionError, RuntimeError, ...
        raise DeviceUnavailableError(
            f"device={str(device)!r} is not available on this machine ({type(e).__name__}: "
            f"{str(e).splitlines()[0] if str(e) else ''}). deep-ei fails here too, when it "
            "allocates its buffers on the device. Pass device='cpu' (JAX places the work on its "
            "own default device either way)."
        ) from e


def check_device(device) -> None:
    """Accepts what torch accepts as a device, if torch has that device here (the work itself
    is placed by JAX)."""
    import torch

    if device is None:
        return
    if isinstance(device, torch.device):
        return _check_available(device)
    if isinstance(device, (str, int)) and not isinstance(device, bool):
        try:
            parsed = torch.device(device)
        except (RuntimeError, TypeError, ValueError) as e:
            why = str(e)
        else:
            return _check_available(parsed)
    else:
        why = f"a {type(device).__name__}"
    raise DeviceValueError(
        f"device must be 'cpu', 'cuda', 'cuda:N' or a torch.device. Got {device!r} ({why}). "
        "The device only needs to be valid: JAX places the work on its own default device."
    )


def check_batch_size(batch_size) -> None:
    """deep-ei's batch_size must be a positive int; ei_jax chooses its own chunks (same result)."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ei_jax.errors.InvalidSamplesError(
            f"batch_size must be a positive int. Got {batch_size!r}. (bridges.deep_ei accepts it for "
            "deep-ei's sake; the result never depends on it.)"
        )


def _default(name, what, where, stacklevel, fallback=None):
    """deep-ei's default range for an activation name; warns where it is only a guess."""
    if name is acts.UNKNOWN or fallback is not None:
        value = (-10, 10) if name is acts.UNKNOWN else acts.range_of(name)
        source = fallback or "deep-ei's range for no activation"
        warnings.warn(
            f"{where} has no known range, so {what} defaults to {value} ({source}). Pass "
            f"{what}=(lo, hi) to match the activation.", ei_jax.DefaultRangeWarning,
            stacklevel=stacklevel + 1)
        return value
    return acts.range_of(name)


def _node_name(module):
    return None if module is None else acts.name_of(module)


def _span_modules(topology, info, span):
    import torch.nn as nn

    mods = []
    for j, m in enumerate(span):
        if j and info.breaks.get(m):
            k = info.order.index(m)
            raise ei_jax.errors.UnsupportedModuleError(
                f"The span from {type(span[0]).__name__} to {type(span[-1]).__name__} cannot be "
                f"measured: between {type(info.order[k - 1]).__name__} (layer {k - 1}) and "
                f"{type(m).__name__} (layer {k}), {info.breaks[m]}. The drop-in applies only the "
                "layers and activations it recorded, so it would measure a different map. Measure "
                "the layers one at a time."
            )
        if type(m) is nn.Linear and len(info.shapes[m][0]) != 2:
            raise ei_jax.errors.UnsupportedModuleError(
                f"Linear {m} gets an input of shape {info.shapes[m][0]}; the drop-in measures Linear "
                "layers on (batch, features) inputs only."
            )
        mods.append(m)
        if j < len(span) - 1:
            act = topology.nodes[m]["output"]["activation"]
            name = _node_name(act)
            if name is acts.UNKNOWN:
                raise ei_jax.errors.UnsupportedModuleError(
                    f"The span's inner activation {act!r} (after {type(m).__name__}) is not sigmoid, "
                    "tanh or ReLU; inside a span only those can be converted. Measure the layers "
                    "one at a time."
                )
            if name is not None:
                mods.append(acts.module_for(name))
    return mods


def _ei_jax_topology(info, mods):
    import torch.nn as nn

    first = mods[0]
    shape = info.shapes[first][0]
    if type(first) is nn.Conv2d:
        x0 = jnp.zeros((1, *shape[2:], shape[1]))  # NCHW -> NHWC, as bridges converts it
    else:
        x0 = jnp.zeros((1, *shape[1:]))
    model, variables = from_torch(nn.Sequential(*mods), api="linen")
    return ei_jax.topology_of(model, variables, x0)


def prepare(layer, topology, *, in_layer, in_range, out_range, in_bins, out_bins, activation,
            batch_size, device, stacklevel=4, vector=False) -> Target:
    """Checks and translates deep-ei's arguments for one call; returns the :class:`Target`
    (with ``out_floor`` for a vector measure: ``vector=True``)."""
    import torch.nn as nn

    info = _info(topology)
    i1 = _index(info, layer, "layer")
    i0 = i1 if in_layer is None else _index(info, in_layer, "in_layer")
    if i0 > i1:
        raise SpanOrderError(
            f"in_layer (layer {i0}, {type(info.order[i0]).__name__}) comes after layer (layer {i1}, "
            f"{type(info.order[i1]).__name__}); deep-ei asserts that layer comes after in_layer. "
            f"The layers are {_describe(info.order)}."
        )
    span = info.order[i0:i1 + 1]
    for end in (span[0], span[-1]):
        if type(end) not in (nn.Linear, nn.Conv2d):
            raise ei_jax.errors.UnsupportedModuleError(
                f"{type(end).__name__} is not a layer with weights; measure a Linear or Conv2d layer "
                "(pooling and Flatten are applied as part of a span, not measured on their own)."
            )
    _check_dynamic(in_range, out_range, in_bins, out_bins)
    check_batch_size(batch_size)
    check_device(device)
    last = span[-1]
    n_out = last.out_channels if type(last) is nn.Conv2d else math.prod(info.shapes[last][1][1:])
    node_act = topology.nodes[last]["output"]["activation"]
    act, act_range = acts.to_ei_jax(node_act if activation is None else activation, n_out)
    if out_range is None:
        if act_range is not acts.UNKNOWN:
            out_range = act_range
        else:
            if activation is None:  # an unusual activation module recorded in the topology
                out_range = _default(acts.UNKNOWN, "out_range", repr(node_act), stacklevel)
            else:                   # deep-ei: the range of the topology's activation
                out_range = _default(_node_name(node_act), "out_range", f"activation={activation!r}",
                                     stacklevel, fallback="deep-ei's default: the topology's activation's")
    if in_range is None:
        in_act = topology.nodes[span[0]]["input"]["activation"]
        in_range = _default(_node_name(in_act), "in_range", repr(in_act), stacklevel)
        if i0 == 0:
            warnings.warn(
                f"in_range not given for the first layer ({type(span[0]).__name__}): using {in_range}, "
                "deep-ei's default for inputs without an activation. Pass in_range=(lo, hi) "
                "matching your data.", ei_jax.DefaultRangeWarning, stacklevel=stacklevel)
    mods = _span_modules(topology, info, span)
    etop = _ei_jax_topology(info, mods)
    names = list(etop)
    floor = None
    if vector and isinstance(in_range, (tuple, list)) and isinstance(out_range, (tuple, list)):
        floor = deep_ei_vector.output_floor(mods, act, in_range, n_out)
    return Target(key_from_torch(), etop, names[-1], names[0], tuple(in_range), tuple(out_range), act,
                  floor)
