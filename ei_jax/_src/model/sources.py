"""The traced path of ``topology_of``: any model kind as a pure ``fn(params, x)``, traced and cut.

* a plain function ``fn(params, x)`` with its params pytree;
* a Flax linen module with its variables (other collections than ``"params"`` -- batch
  statistics -- and the ``"dropout"`` rng are handed in as needed; updated collections are
  state updates, and refuse the layers that compute them);
* a Flax NNX module (``nnx.split`` / ``nnx.merge``; the topology reads the module's *current*
  state whenever a layer is measured);
* an equinox module, called on one sample and ``jax.vmap``-ed over the batch as equinox
  expects (its inexact arrays are the params).

Each is traced on a batch of one (:func:`ei_jax._src.model.traced.trace`) and cut into
layers (:mod:`ei_jax._src.model.slicing`, :mod:`ei_jax._src.model.traced_topology`).
"""

import dataclasses
import sys

import jax
import jax.numpy as jnp

from ei_jax._src.base.errors import InvalidCallError, ShapeMismatchError, UnsupportedModuleError
from ei_jax._src.model.traced import trace
from ei_jax._src.model.traced_topology import build

__all__ = ["equinox_topology", "function_topology", "is_equinox", "linen_topology", "nnx_topology"]

_WAY_OUT = ("Write the layer you mean as apply_fn(params, x) and measure it with the pure core "
            "ei_jax.core.")


def is_equinox(model) -> bool:
    """True for an equinox module (equinox is only looked at if it is already imported)."""
    eqx = sys.modules.get("equinox")
    return eqx is not None and isinstance(model, eqx.Module)


def _one(x):
    x = jnp.asarray(x)
    if x.ndim < 2:
        raise ShapeMismatchError(
            f"x must be a batch of inputs with a leading batch axis, e.g. jnp.zeros((1, n_in)). "
            f"Got shape {x.shape}.")
    return jnp.zeros((1, *x.shape[1:]), jnp.float32)


def _topology(fn, params, x, *, with_state=False, live=None):
    x1 = _one(x)
    n_y = None
    if with_state:
        y_shape = jax.eval_shape(fn, params, x1)[0]
        n_y = len(jax.tree_util.tree_leaves(y_shape))
    prog = trace(fn, params, x1)
    state = ()
    if n_y is not None:
        state = prog.out_ids[n_y:]
        prog = dataclasses.replace(prog, out_ids=prog.out_ids[:n_y])
    top = build(prog, jax.tree_util.tree_leaves(params), state_outputs=state, live=live)
    if not top.graph["order"]:
        raise UnsupportedModuleError(
            "No dense product or convolution with a parameter operand was found in the traced "
            f"program; nothing to measure. {_WAY_OUT}")
    return top


def function_topology(fn, *args):
    """``topology_of(fn, params, x)`` for a pure ``fn(params, x)``."""
    if len(args) != 2:
        raise InvalidCallError(
            f"For a function call topology_of(fn, params, x) with fn(params, x). Got {len(args)} "
            "argument(s) after the function.")
    params, x = args
    return _topology(fn, params, x)


def linen_topology(model, variables, x):
    """The traced topology of a linen module (BatchNorm, LayerNorm, residual blocks...)."""
    def plain(v, xb):
        return model.apply(v, xb)

    try:
        jax.eval_shape(plain, variables, _one(x))
    except Exception:  # noqa: BLE001 - mutable collections or a dropout rng: retry with them
        mutable = [c for c in variables if c != "params"]
        key = jax.random.key(0)

        def stateful(v, xb):
            return model.apply(v, xb, mutable=mutable, rngs={"dropout": key})

        return _topology(stateful, variables, x, with_state=True)
    return _topology(plain, variables, x)


def nnx_topology(model, x):
    """The traced topology of an NNX module; measuring reads its current state."""
    from flax import nnx

    graphdef, state = nnx.split(model)

    def fn(s, xb):
        m = nnx.merge(graphdef, s)
        return m(xb), nnx.state(m)

    def live():
        return jax.tree_util.tree_leaves(nnx.split(model)[1])

    return _topology(fn, state, x, with_state=True, live=live)


def equinox_topology(model, *args):
    """The traced topology of an equinox module called per sample (``jax.vmap`` over ``x``)."""
    import equinox as eqx

    if len(args) != 1:
        raise InvalidCallError(
            f"For an equinox module call topology_of(model, x). Got {len(args)} arguments after "
            "the model; the module holds its own parameters.")
    params, static = eqx.partition(model, eqx.is_inexact_array)

    def fn(p, xb):
        return jax.vmap(eqx.combine(p, static))(xb)

    return _topology(fn, params, args[0])


def attach_live(top, model):
    """Makes the Sequential path's NNX nodes read ``model``'s current kernel and bias."""
    for name in top:
        path = top.nodes[name]["path"]

        def live(_path=path):
            mod = model
            for part in _path:
                mod = mod[part] if isinstance(part, int) else getattr(mod, part)
            params = {"kernel": jnp.asarray(mod.kernel[...])}
            if getattr(mod, "bias", None) is not None:
                params["bias"] = jnp.asarray(mod.bias[...])
            return params

        top.nodes[name]["live"] = live
