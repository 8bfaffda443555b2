"""Is a traced layer one ``f(x @ W + b)``? Its activation, and its folded ``W`` and ``b``.

A layer of a traced program (:mod:`ei_jax._src.model.slicing`) is exact -- the exact measures
apply -- when its equations are affine operations (every linear operation, bias add,
per-feature scale and shift such as BatchNorm in inference mode, ``2x - 1``, reshape,
average pooling, residual add) followed by at most one elementwise activation of the
registry (:mod:`ei_jax._src.model.activations`) whose preimage is known -- one equation
(``logistic``, ``max(z, 0)``) or an elementwise tail recognised by its values
(:mod:`ei_jax._src.model.activation_tails`: GELU, SiLU, mish). Then the affine part
*is* ``x -> x @ W + b`` for the layer's flattened input ``x`` (the concatenation of every
value it reads: ``[h, x]`` for a residual add, kernel ``[[W], [I]]``), and :func:`fold`
computes ``b`` as its value at 0 and ``W`` as its Jacobian -- exact for an affine map, so
no pattern of folds needs to be matched. Anything else (LayerNorm, softmax, max pooling, an
elementwise function not in the registry such as softsign) makes the layer sampled-only, with
the reason naming the operation and the user's source line.
"""

import os

import jax
import jax.numpy as jnp
import numpy as np

from ei_jax._src.model import activations as _act
from ei_jax._src.model import receptive as _receptive
from ei_jax._src.model.activation_tails import Tail, find_tail
from ei_jax._src.model.slicing import is_affine
from ei_jax._src.model.traced import Const, run, where

__all__ = ["analyse", "fold", "recognise"]


def recognise(eqn) -> str | None:
    """The registry name of an activation equation (``"relu"``, ``"sigmoid"``...), or None.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from ei_jax._src.model.traced import trace
      >>> from ei_jax._src.model.folding import recognise
      >>> prog = trace(lambda p, x: jax.nn.relu(jax.nn.sigmoid(x * p)), jnp.ones((1, 2)), jnp.ones((1, 2)))
      >>> [recognise(e) for e in prog.eqns]
      [None, 'sigmoid', 'relu']

    Returns:
      the canonical name, or None when ``eqn`` is not one activation ei_jax knows.
    """
    name = eqn.prim.name
    if name == "logistic":
        return "sigmoid"
    if name == "tanh":
        return "tanh"
    if name == "max" and any(isinstance(r, Const) and np.all(np.asarray(r.value) == 0) for r in eqn.ins):
        return "relu"
    entry = _act.lookup(eqn.call_name) if eqn.call_name else None
    return entry.name if entry is not None else None


def analyse(prog, layer, data):
    """``(activation, act_eqn, reason)`` of a layer.

    ``activation`` is the registry name (None: identity) or a label of the layer's first
    nonlinear operation; ``act_eqn`` the :class:`~ei_jax._src.model.activation_tails.Tail`
    whose activation computes the layer's output (None: no registry activation does, so the
    output range is not the activation's); ``reason`` why the layer is not one
    ``f(x @ W + b)`` (None: it is).
    """
    eqns = prog.eqns
    nonlinear = [k for k in layer.eqns if not is_affine(eqns[k], data)]
    if not nonlinear:
        return None, None, None
    tail = find_tail(prog, layer, data, recognise)
    if tail is not None:
        before = [k for k in nonlinear if k not in tail.eqns]
        if before:
            bad = eqns[before[0]]
            return tail.name, tail, (f"it contains the operation {bad.name!r} ({where(bad)}) "
                                     f"before its activation {tail.name!r}, which is not an "
                                     "affine map")
        if not _act.REGISTRY[tail.name].exact:
            return tail.name, tail, f"the preimage of its activation {tail.name!r} is not known"
        return (None if tail.name == "identity" else tail.name), tail, None
    first = eqns[nonlinear[0]]
    names = [recognise(eqns[k]) for k in nonlinear]
    if len(nonlinear) == 1 and names[0] is not None:
        k = nonlinear[0]
        e = eqns[k]
        z = [r for r in e.ins if not isinstance(r, Const)]
        entry = _act.REGISTRY[names[0]]
        same = len(z) == 1 and prog.avals[z[0]].shape == prog.avals[e.outs[0]].shape
        if not same or tuple(layer.outputs) != (e.outs[0],):
            return names[0], None, (f"operations follow its activation {names[0]!r} "
                                    f"({where(e)}); the layer is not one f(x @ W + b)")
        if not entry.exact:
            return names[0], Tail(names[0], z[0], (k,)), (
                f"the preimage of its activation {names[0]!r} is not known")
        return (None if names[0] == "identity" else names[0]), Tail(names[0], z[0], (k,)), None
    bad = next((eqns[k] for k, n in zip(nonlinear, names) if n is None), first)
    label = names[0] if names[0] is not None else _label(bad)
    return label, None, (f"it contains the operation {bad.name!r} ({where(bad)}), which is not "
                         "an affine map or one activation with a known preimage")


def _label(eqn) -> str:
    """A short name for an unknown nonlinearity: the ``jax.nn`` function that emitted it
    (``gelu``), else the primitive's name."""
    tb = eqn.source.traceback
    for f in (tb.frames if tb is not None else ()):
        if "jax" in f.file_name and f"{os.sep}nn{os.sep}" in f.file_name and "flax" not in f.file_name:
            return f.function_name.split(".")[-1]
    return eqn.name


def slice_fn(prog, layer, eqns, outputs):
    """``f(leaves, xrow) -> flat outputs``: the equations ``eqns`` of ``layer`` on one sample.

    ``leaves`` maps the layer's parameter leaf ids to values; ``xrow`` is the flattened input
    ``(n_in,)`` (its values in the order of ``layer.inputs``, each flattened row-major).
    """
    avals = prog.avals
    todo = tuple(prog.eqns[k] for k in sorted(set(layer.prelude) | set(eqns)))

    def one(leaves, xrow):
        env, off = dict(leaves), 0
        for i in layer.inputs:
            n = int(np.prod(avals[i].shape))
            env[i] = xrow[off:off + n].reshape(avals[i].shape).astype(avals[i].dtype)
            off += n
        run(todo, env)
        return jnp.concatenate([jnp.ravel(env[o]).astype(jnp.float32) for o in outputs])

    return one


def fold(prog, layer, act_eqn, field=None):
    """``fold(leaves) -> (W, b)``, the ``(n_in, n_out)`` kernel and ``(n_out,)`` bias of an exact layer.

    The affine part (every equation but the activation's, ``act_eqn``: a
    :class:`~ei_jax._src.model.activation_tails.Tail` or None) evaluated at 0 is ``b``; its
    Jacobian is ``W`` (float32, as the layer computes). With ``field`` (a
    :class:`~ei_jax._src.model.receptive.Field`) the input is one receptive field and the
    output one position, as :func:`~ei_jax._src.model.receptive.field_fn` evaluates them.
    """
    if act_eqn is None:
        z_ids, eqns = layer.outputs, layer.eqns
    else:
        z_ids = (act_eqn.z,)
        eqns = tuple(k for k in layer.eqns if k not in act_eqn.eqns)
    if field is None:
        z = slice_fn(prog, layer, eqns, z_ids)
        n_in = sum(int(np.prod(prog.avals[i].shape)) for i in layer.inputs)
    else:
        z = _receptive.field_fn(prog, layer, field, eqns, z_ids)
        n_in = int(np.prod(field.taps))

    def folded(leaves):
        x0 = jnp.zeros((n_in,), jnp.float32)
        b = z(leaves, x0)
        w = jax.jacfwd(lambda x: z(leaves, x))(x0)
        return np.asarray(w).T, np.asarray(b)

    return folded
