"""Which registry activation ends a traced layer: its elementwise tail, recognised by its values.

``jax.nn.gelu`` is traced into several primitives (``integer_pow``, ``tanh``, ``mul``... or
``erfc``), ``jax.nn.mish`` into ``softplus``, ``tanh`` and a product with its input, and a
user may write ``x * jax.nn.sigmoid(x)``: no single equation names the activation. The *tail*
of a layer (:mod:`ei_jax._src.model.slicing`) is the part of its equations that computes its
one output from one value ``z`` of the same shape by elementwise operations only (with
constant operands, and calls whose bodies are elementwise); :func:`find_tail` finds the
latest such ``z`` and evaluates the tail on a grid of ``z`` values, every element at once, to
tell which registry activation (:mod:`ei_jax._src.model.activations`) it computes -- compared
in float32 as the recorder compares activations (:func:`matches`). Then the layer's output is
``f(z)`` elementwise with ``f`` that activation, which is what the exact measures and the
default ranges need.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from ei_jax._src.model import activations as _act
from ei_jax._src.model.slicing import is_affine
from ei_jax._src.model.traced import ELEMENTWISE, Const, call_body, run

__all__ = ["Tail", "find_tail"]

#: Where the tail is evaluated: the activations differ here (GELU's two forms by up to 5e-4).
_PROBE = np.concatenate([np.linspace(-6.0, 6.0, 193), [-20.0, -10.0, -8.0, 8.0, 10.0, 20.0]])


@dataclasses.dataclass(frozen=True)
class Tail:
    """The activation that ends a layer: ``output = name(z)`` elementwise.

    Attributes:
      name: the registry's canonical name.
      z: the value id of the pre-activation.
      eqns: indices (into the program) of the equations that compute the output from ``z``.
    """

    name: str
    z: int
    eqns: tuple


def _body_is_elementwise(jaxpr) -> bool:
    jaxpr = getattr(jaxpr, "jaxpr", jaxpr)
    for e in jaxpr.eqns:
        if e.primitive.name == "broadcast_in_dim" and all(
                getattr(v.aval, "shape", None) == () for v in e.invars):
            continue
        if not _prim_is_elementwise(e.primitive.name, e.params):
            return False
    return True


def _prim_is_elementwise(name, params) -> bool:
    if name in ELEMENTWISE:
        return True
    body = call_body(params)               # jit[silu], custom_jvp_call[relu]: the body decides
    return body is not None and _body_is_elementwise(body)


def _constant(prog, i, producer, data, memo) -> bool:
    """True if value ``i`` depends on neither the data nor the parameters."""
    if i in memo:
        return memo[i]
    if i in data or i < prog.n_params or i not in producer:
        memo[i] = False
        return False
    e = prog.eqns[producer[i]]
    memo[i] = all(isinstance(r, Const) or _constant(prog, r, producer, data, memo) for r in e.ins)
    return memo[i]


def _closure(prog, z, candidates, data, side_ok):
    """The equations of ``candidates`` (in order) computable from ``z`` alone, elementwise."""
    shape = prog.avals[z].shape
    reach, eqns = {z}, []
    for k in candidates:
        e = prog.eqns[k]
        ins = [r for r in e.ins if not isinstance(r, Const)]
        dat = [r for r in ins if r in data]
        if not dat or not all(r in reach for r in dat):
            continue
        if not all(r in data or side_ok(r) for r in ins):
            continue
        if not _prim_is_elementwise(e.prim.name, e.params):
            continue
        outs = [o for o in e.outs if o >= 0]
        if any(prog.avals[r].shape != shape for r in dat + outs):
            continue
        reach.update(outs)
        eqns.append(k)
    return reach, eqns


def _needed(prog, eqns, out):
    """The equations among ``eqns`` that ``out`` depends on."""
    return tuple(sorted(_producers(prog, [out], {o: k for k in eqns for o in prog.eqns[k].outs})))


def _evaluate(prog, z, eqns, out, consts):
    """The tail on the probe grid: ``(len(_PROBE), *shape)``, every element the same input."""
    aval = prog.avals[z]
    todo = [prog.eqns[k] for k in sorted(consts)] + [prog.eqns[k] for k in eqns]

    def one(c):
        env = run(todo, {z: jnp.full(aval.shape, c, aval.dtype)})
        return env[out]

    return np.asarray(jax.vmap(one)(jnp.asarray(_PROBE, aval.dtype)), np.float32)


def _name_of(values, dtype) -> str | None:
    """The one registry activation (identity excluded) whose values on the probe are ``values``."""
    x = jnp.asarray(_PROBE, dtype)
    shape = (len(_PROBE),) + (1,) * (values.ndim - 1)
    found = []
    for entry in _act.REGISTRY.values():
        if entry.name == "identity":
            continue
        with jax.numpy_dtype_promotion("standard"):      # as a model's own code would run
            ref = np.asarray(entry.fn(x), np.float32)
        want = np.broadcast_to(ref.reshape(shape), values.shape)
        if np.allclose(values, want, rtol=1e-5, atol=1e-6, equal_nan=True):
            found.append(entry.name)
    return found[0] if len(found) == 1 else None


def find_tail(prog, layer, data, recognise) -> Tail | None:
    """The registry activation that computes ``layer``'s one output elementwise, or None.

    Args:
      prog: the traced program; layer: a :class:`~ei_jax._src.model.slicing.Layer` of it;
      data: the ids computed from the input; recognise: ``eqn -> name or None`` for a tail of
      one equation named by its primitive (``logistic``, ``max(z, 0)``), used before probing.

    Returns:
      :class:`Tail`, the latest ``z`` whose elementwise tail contains a nonlinear operation and
      computes a registry activation; None if the layer has several outputs or no such tail.
    """
    if len(layer.outputs) != 1:
        return None
    out = layer.outputs[0]
    eqns = prog.eqns
    producer = {o: k for k, e in enumerate(eqns) for o in e.outs if o >= 0}
    own = set(layer.eqns)
    if producer.get(out) not in own:
        return None
    memo: dict = {}

    def side_ok(r):
        return _constant(prog, r, producer, data, memo)

    # the values the output depends on through elementwise operations, latest first
    back, stack, seen = [], [out], set()
    while stack:
        i = stack.pop()
        k = producer.get(i)
        if i in seen or k not in own:
            continue
        seen.add(i)
        e = eqns[k]
        if not _prim_is_elementwise(e.prim.name, e.params):
            continue
        for r in e.ins:
            if not isinstance(r, Const) and r in data:
                back.append(r)
                stack.append(r)
    shape = prog.avals[out].shape
    between = sorted(k for k in own if any(o in seen for o in eqns[k].outs))
    for z in sorted({r for r in back if prog.avals[r].shape == shape}, reverse=True):
        reach, closed = _closure(prog, z, [k for k in between if k > producer.get(z, -1)], data,
                                 side_ok)
        if out not in reach:
            continue
        tail = _needed(prog, closed, out)
        if all(is_affine(eqns[k], data) for k in tail):
            continue                       # scalings, copies: not an activation
        name = recognise(eqns[tail[0]]) if len(tail) == 1 else None
        if name is None:
            consts = _producers(prog, [r for k in tail for r in eqns[k].ins
                                       if not isinstance(r, Const) and r not in data], producer)
            name = _name_of(_evaluate(prog, z, tail, out, consts), prog.avals[z].dtype)
        if name is not None:
            return Tail(name, z, tail)
    return None


def _producers(prog, ids, producer) -> set:
    """The equations that compute the (constant) values ``ids``, with everything they need."""
    found, stack = set(), list(ids)
    while stack:
        k = producer.get(stack.pop())
        if k is None or k in found:
            continue
        found.add(k)
        stack.extend(r for r in prog.eqns[k].ins if not isinstance(r, Const))
    return found
