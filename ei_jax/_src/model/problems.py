"""From ``(key, topology, layer, ...)`` to what the core measures: keys and layer problems.

:func:`resolve` turns a layer (or a span ``in_layer .. layer``) of a topology into a
:class:`LayerProblem` -- the pure ``apply_fn``, its params, the input shape and the ranges,
with deep-ei's defaults (ranges from the activations, ``activation=`` overriding the output
activation, ``(-10, 10)`` with a :class:`DefaultRangeWarning` for a first layer).
"""

import dataclasses
import warnings
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import networkx as nx
import numpy as np

from ei_jax._src.model import activations as _act
from ei_jax._src.base import checks
from ei_jax._src.base.errors import (
    DefaultRangeWarning,
    InvalidCallError,
    LayerNotFoundError,
    LayerOrderError,
    UnknownActivationError,
    UnsupportedModuleError,
)
from ei_jax._src.model.layer_maps import CONV, stack_apply


def canonicalize_key(key) -> jax.Array:
    """A typed ``jax.random.key`` from a key, a legacy ``PRNGKey`` (uint32 ``(2,)``) or an int
    seed; a traced key (the convenient API under ``jax.jit``) is an :class:`InvalidCallError`."""
    checks.not_traced("The convenient API (ei_jax.ei_parts, ei_jax.ei, ...)", key)
    if isinstance(key, (int, np.integer)) and not isinstance(key, (bool, np.bool_)):
        return jax.random.key(int(key))
    if isinstance(key, jax.Array):
        if jnp.issubdtype(key.dtype, jax.dtypes.prng_key) and key.shape == ():
            return key
        if key.dtype == jnp.uint32 and key.shape == (2,):
            return jax.random.wrap_key_data(key)
    raise InvalidCallError(
        f"key must be a jax.random.key(seed) (or an int seed). Got {type(key).__name__}"
        f"{getattr(key, 'shape', '')}."
    )


@dataclasses.dataclass(frozen=True)
class LayerProblem:
    """A resolved measurement target.

    Attributes:
      name, in_layer: the span's last and first node.
      apply_fn: the span's pure activated map ``apply_fn(params, x)``.
      params: one params dict per layer of the span.
      kinds: ``"dense"`` / ``"conv"`` per layer; activations: the activation after each
        layer (a name, None for identity, or an unknown callable).
      in_shape: per-sample input shape; in_range, out_range: ``(lo, hi)``.
    """

    name: str
    in_layer: str
    apply_fn: Callable
    params: tuple
    kinds: tuple[str, ...]
    activations: tuple[Any, ...]
    in_shape: tuple[int, ...]
    in_range: tuple[float, float]
    out_range: tuple[float, float]

    def kwargs(self, in_bins, out_bins, **extra) -> dict[str, Any]:
        """The core's keyword arguments for this problem."""
        return dict(in_shape=self.in_shape, in_range=self.in_range, in_bins=in_bins,
                    out_range=self.out_range, out_bins=out_bins, **extra)


def _order(topology) -> list[str]:
    if not isinstance(topology, nx.DiGraph) or "order" not in topology.graph:
        raise InvalidCallError(
            "topology must be the graph returned by ei_jax.topology_of(model, ...). "
            f"Got {type(topology).__name__}."
        )
    return topology.graph["order"]


def _final_activation(activation, node_activation):
    """``(activation to apply, its name or ... when unknown)``."""
    if activation is None:
        return node_activation, node_activation
    if isinstance(activation, str):
        name = _act.canonical_name(activation)
        return name, name
    if callable(activation):
        name = _act.name_of_function(activation)
        return (name, name) if name is not ... else (activation, ...)
    names = ", ".join(repr(n) for n in _act.REGISTRY)
    raise UnknownActivationError(
        f"activation must be None, a name ({names}) or a callable. Got {activation!r}."
    )


def _in_range(topology, in_layer, stacklevel):
    in_range = _act.default_range(topology.nodes[in_layer]["input"]["activation"])
    if topology.in_degree(in_layer) == 0:
        warnings.warn(
            f"in_range not given for {in_layer!r}, the first layer: using {in_range}, deep-ei's "
            "default for inputs without an activation. Pass in_range=(lo, hi) matching your data.",
            DefaultRangeWarning,
            stacklevel=stacklevel,
        )
    return in_range


def resolve(topology, layer, *, in_layer=None, in_range=None, out_range=None, activation=None,
            stacklevel=3) -> LayerProblem:
    """Resolves a layer (or span) of a topology into a :class:`LayerProblem`.

    Raises:
      LayerNotFoundError, LayerOrderError: unknown names, or ``in_layer`` after ``layer``.
      UnsupportedModuleError: a span containing a convolution.
      UnknownActivationError: an unknown callable ``activation`` without ``out_range``.
      NonFiniteParamsError: NaN or infinite parameters in the span.
    """
    order = _order(topology)
    for label, value in (("layer", layer), ("in_layer", in_layer)):
        if (value is not None or label == "layer") and value not in topology:
            raise LayerNotFoundError(f"{label} {value!r} is not in the topology. Its layers are {order}.")
    in_layer = layer if in_layer is None else in_layer
    i0, i1 = order.index(in_layer), order.index(layer)
    if i0 > i1:
        raise LayerOrderError(
            f"in_layer {in_layer!r} comes after layer {layer!r}; the span must run forward "
            f"through the network ({order})."
        )
    span = order[i0:i1 + 1]
    if any(topology.nodes[n].get("kind") == "traced" for n in span):
        return _resolve_traced(topology, span, in_range, out_range, activation, stacklevel + 1)
    kinds = tuple(topology.nodes[n]["kind"] for n in span)
    if len(span) > 1 and CONV in kinds:
        raise UnsupportedModuleError(
            f"The span {in_layer!r} .. {layer!r} contains a convolution; convolutional layers are "
            "measured one at a time (over one receptive field). Measure each layer alone, or a "
            "span of your own with ei_jax.core and your own apply_fn(params, x)."
        )
    for label, value in (("in_range", in_range), ("out_range", out_range)):
        if value is not None:
            checks.check_range(label, value)
    acts = [topology.nodes[n]["output"]["activation"] for n in span]
    acts[-1], final_name = _final_activation(activation, acts[-1])
    if in_range is None:
        in_range = _in_range(topology, in_layer, stacklevel + 1)
    if out_range is None:
        if final_name is ...:
            raise UnknownActivationError(
                f"activation {activation!r} is not one ei_jax knows, so its output range is unknown; "
                "pass out_range=(lo, hi)."
            )
        out_range = _act.default_range(final_name)
    params = tuple(_params(topology.nodes[n]) for n in span)
    checks.not_traced("The convenient API (ei_jax.ei_parts, ei_jax.ei, ...)", params)
    checks.check_finite_params(params, f"Layer {layer!r}")
    in_shape = tuple(topology.nodes[in_layer]["input"]["shape"][1:])
    return LayerProblem(layer, in_layer, stack_apply(kinds, tuple(acts)), params, kinds, tuple(acts),
                        in_shape, tuple(in_range), tuple(out_range))


def _params(node):
    """A node's parameters: read from the live model (NNX) when the node can, else its snapshot."""
    live = node.get("live")
    return node["params"] if live is None else live()


def _resolve_traced(topology, span, in_range, out_range, activation, stacklevel) -> LayerProblem:
    """A layer of a traced topology (:mod:`ei_jax._src.model.traced_topology`): its whole slice."""
    name = span[-1]
    node = topology.nodes[name]
    if len(span) > 1:
        raise UnsupportedModuleError(
            f"The span {span[0]!r} .. {name!r} contains traced layers, which are measured one at a "
            "time. Measure each layer alone, or a span of your own with ei_jax.core.")
    if node["refused"] is not None:
        raise UnsupportedModuleError(f"Layer {name!r} cannot be measured: {node['refused']}.")
    if activation is not None:
        raise InvalidCallError(
            f"Layer {name!r} comes from a traced program, whose layer includes its own activation "
            f"({node['output']['activation']!r}); activation= cannot replace it. Leave it None.")
    ranges = []
    for side, given in (("input", in_range), ("output", out_range)):
        arg = "in_range" if side == "input" else "out_range"
        if given is None:
            given = node[side]["range"]
            if node[side]["range_guessed"]:
                warnings.warn(
                    f"{arg} not given for {name!r}: using "
                    f"{given}, deep-ei's default for values without a known activation (its "
                    f"{side} activation is {node[side]['activation']!r}). Pass "
                    f"{arg}=(lo, hi) matching your data.",
                    DefaultRangeWarning, stacklevel=stacklevel)
        ranges.append(tuple(given))
    params = (_params(node),)
    checks.check_finite_params(params, f"Layer {name!r}")
    return LayerProblem(name, name, node["measure_apply"], params, ("traced",),
                        (node["output"]["activation"],), tuple(node["input"]["shape"][1:]),
                        ranges[0], ranges[1])
