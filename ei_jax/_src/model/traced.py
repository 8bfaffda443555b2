"""One forward pass of a JAX program as a flat list of equations ei_jax can cut into layers.

:func:`trace` runs ``jax.make_jaxpr`` on ``fn(params, x)`` (``x`` a batch of one) and inlines
every nested ``jit`` call (and writes a generic summing ``reduce_window`` as the
``reduce_window_sum`` it is), so the whole program is one list of :class:`Eqn` over integer value
ids: ``0 .. n_params - 1`` are the parameter leaves, then the input leaves, then the values the
equations compute. Literals and closed-over constants are :class:`Const` operands.
:func:`run` evaluates any sub-list of equations on an environment of values (an interpreter in
the style of ``jax.core.eval_jaxpr``), which is how a layer -- a slice of the program -- is
evaluated alone (:mod:`ei_jax._src.model.slicing`). Nothing here depends on Flax.
"""

import dataclasses
import os
from typing import Any

import jax
import numpy as np

from ei_jax._src.model import activations as _act

__all__ = ["Const", "Eqn", "Program", "run", "trace"]

#: Call primitives whose body is inlined (a nested ``jax.jit`` of the user's code or a library),
#: except a ``jax.nn`` activation the registry knows (``jit[name=softplus]``): kept as one equation.
_INLINED = ("pjit", "jit", "closed_call", "core_call")


#: Primitives that act on each element alone (operands of the output's shape, or scalars):
#: the one list the layer analyses (receptive fields, activation tails) share.
ELEMENTWISE = frozenset((
    "abs acosh add add_any and asinh atan atan2 atanh cbrt ceil clamp convert_element_type "
    "copy copy_p cos cosh div eq erf erf_inv erfc exp exp2 expm1 floor ge gt integer_pow "
    "is_finite le log log1p logistic lt max min mul ne neg nextafter not or pow "
    "reduce_precision round rsqrt select_n sign sin sinh sqrt square stop_gradient sub tan "
    "tanh"
).split())


def call_body(params):
    """The jaxpr inside a call primitive (``jit``, ``custom_jvp_call``...) from its params, or None."""
    body = next((params[k] for k in ("call_jaxpr", "jaxpr", "fun_jaxpr") if params.get(k) is not None),
                None)
    return getattr(body, "jaxpr", body)


@dataclasses.dataclass(frozen=True)
class Const:
    """A literal or closed-over constant operand."""

    value: Any


@dataclasses.dataclass(frozen=True, eq=False)
class Eqn:
    """One primitive application: ``outs = prim.bind(*ins, **params)`` over value ids."""

    prim: Any
    params: dict
    ins: tuple            # int ids or Const
    outs: tuple           # int ids (-1: a dropped output)
    source: Any           # jax SourceInfo
    ctx: Any = None       # jax JaxprEqnContext

    @property
    def name(self) -> str:
        """The primitive's name, with a custom call's own name (``custom_jvp_call[relu]``)."""
        return f"{self.prim.name}[{self.call_name}]" if self.call_name else self.prim.name

    @property
    def call_name(self) -> str | None:
        """The name of the function a call primitive wraps (``"relu"``), or None."""
        inner = self.params.get("name")
        if isinstance(inner, str):
            return inner
        body = self.params.get("call_jaxpr")
        info = getattr(getattr(body, "jaxpr", body), "debug_info", None)
        return getattr(info, "func_name", None)


@dataclasses.dataclass(frozen=True, eq=False)
class Program:
    """A traced forward pass: equations over ids, with the shapes of every value.

    Attributes:
      eqns: the equations in program order.
      n_params: number of parameter leaves (ids ``0 .. n_params - 1``), named ``leaf_names``.
      x_ids: ids of the input leaves; out_ids: ids (or :class:`Const`) of the outputs.
      avals: id -> ``jax.ShapeDtypeStruct``.
    """

    eqns: tuple
    n_params: int
    leaf_names: tuple
    x_ids: tuple
    out_ids: tuple
    avals: dict


def trace(fn, params, x) -> Program:
    """Traces ``fn(params, x)`` once and flattens it (every nested ``jit`` inlined).

    Returns:
      :class:`Program`; the outputs are the flattened leaves of ``fn``'s result.

    Example:
      >>> import jax.numpy as jnp
      >>> from ei_jax._src.model.traced import trace
      >>> prog = trace(lambda p, x: jnp.tanh(x @ p["w"]), {"w": jnp.ones((2, 3))}, jnp.ones((1, 2)))
      >>> [e.name for e in prog.eqns], prog.leaf_names
      (['dot_general', 'tanh'], ('w',))
    """
    closed = jax.make_jaxpr(fn)(params, x)
    leaves = jax.tree_util.tree_flatten_with_path(params)[0]
    names = tuple(jax.tree_util.keystr(p, simple=True, separator="/") for p, _ in leaves)
    b = _Builder()
    jaxpr = closed.jaxpr
    ids = [b.fresh(v.aval) for v in jaxpr.invars]
    env = dict(zip(jaxpr.invars, ids))
    env.update({v: Const(c) for v, c in zip(jaxpr.constvars, closed.consts)})
    outs = b.inline(jaxpr, env)
    n = len(leaves)
    return Program(tuple(b.eqns), n, names, tuple(ids[n:]), tuple(outs), b.avals)


class _Builder:
    def __init__(self):
        self.eqns, self.avals = [], {}

    def fresh(self, aval):
        i = len(self.avals)
        self.avals[i] = jax.ShapeDtypeStruct(aval.shape, aval.dtype)
        return i

    def inline(self, jaxpr, env):
        def read(v):
            return Const(v.val) if type(v).__name__ == "Literal" else env[v]

        for e in jaxpr.eqns:
            ins = [read(v) for v in e.invars]
            if e.primitive.name in _INLINED and _act.lookup(str(e.params.get("name"))) is None:
                inner = e.params["jaxpr"]
                sub = dict(zip(inner.jaxpr.invars, ins))
                sub.update({v: Const(c) for v, c in zip(inner.jaxpr.constvars, inner.consts)})
                for v, r in zip(e.outvars, self.inline(inner.jaxpr, sub)):
                    env[v] = r
                continue
            prim, params = e.primitive, dict(e.params)
            if _is_window_sum(e, ins):
                prim, params = _window_sum(params)
            outs = []
            for v in e.outvars:
                if type(v).__name__ == "DropVar":
                    outs.append(-1)
                else:
                    env[v] = self.fresh(v.aval)
                    outs.append(env[v])
            self.eqns.append(Eqn(prim, params, tuple(ins[:1]) if prim is not e.primitive
                                 else tuple(ins), tuple(outs), e.source_info, e.ctx))
        return [read(v) for v in jaxpr.outvars]


def _is_window_sum(e, ins) -> bool:
    """A generic ``reduce_window`` that sums (``lax.reduce_window(x, 0.0, lax.add, ...)``, as
    ``ei_jax.AvgPool`` calls it): one operand, a literal zero ``init`` and a body that adds its
    two arguments."""
    if e.primitive.name != "reduce_window" or len(ins) != 2 or not isinstance(ins[1], Const):
        return False
    body = e.params.get("jaxpr")
    body = getattr(body, "jaxpr", body)
    if body is None or len(body.eqns) != 1 or e.params.get("consts"):
        return False
    (b,) = body.eqns
    return (b.primitive.name in ("add", "add_any") and list(b.invars) == list(body.invars)
            and list(b.outvars) == list(body.outvars) and bool(np.all(np.asarray(ins[1].value) == 0)))


def _window_sum(params):
    """``reduce_window_sum`` with the window of a generic sum ``reduce_window``: the same values,
    and the primitive the rest of ei_jax knows as affine (and differentiates under ``vmap``)."""
    from jax._src.lax.windowed_reductions import reduce_window_sum_p

    keys = ("window_dimensions", "window_strides", "padding", "base_dilation", "window_dilation")
    return reduce_window_sum_p, {k: params[k] for k in keys}


def run(eqns, env: dict) -> dict:
    """Evaluates ``eqns`` in order on ``env`` (id -> value), adding their outputs; returns env."""
    def read(r):
        return r.value if isinstance(r, Const) else env[r]

    for e in eqns:
        params = e.prim.get_bind_params(e.params)
        with e.ctx.manager:
            out = e.prim.bind(*(read(r) for r in e.ins), **params)
        out = out if e.prim.multiple_results else (out,)
        for i, v in zip(e.outs, out):
            if i >= 0:
                env[i] = v
    return env


_LIBRARY = (os.sep + "site-packages" + os.sep, os.sep + "ei_jax" + os.sep + "_src" + os.sep)


def where(eqn: Eqn) -> str:
    """``"file:line (function)"`` of the user's code that emitted ``eqn`` (library frames skipped).

    Example:
      >>> import jax.numpy as jnp
      >>> from ei_jax._src.model.traced import trace, where
      >>> prog = trace(lambda p, x: jnp.tanh(x @ p), jnp.ones((2, 3)), jnp.ones((1, 2)))
      >>> "(<lambda>)" in where(prog.eqns[1])
      True

    Returns:
      the location as a string; the library's own line where no user frame is known.
    """
    from jax._src import source_info_util as siu

    frames = list(siu.user_frames(eqn.source.traceback)) if eqn.source.traceback else []
    for f in frames:
        if not any(part in f.file_name for part in _LIBRARY):
            return f"{f.file_name}:{f.start_line} ({f.function_name})"
    return siu.summarize(eqn.source)


def module_path(eqn: Eqn) -> str:
    """The module path JAX recorded for ``eqn`` (Flax and equinox name scopes), or ``""``."""
    return str(eqn.source.name_stack)


def is_float(aval) -> bool:
    """True for a floating-point value (the only kind a layer's input or output can be)."""
    return bool(jax.numpy.issubdtype(aval.dtype, jax.numpy.floating))
