"""One receptive field of a traced convolution layer: the Sequential path's measure of a conv.

On the Sequential path (and in deep-ei) a convolution is measured over one receptive field:
the layer's input is one patch ``(kh, kw, c_in)`` and its output the ``c_out`` channels at one
position -- weight sharing makes every interior position the same map. A traced layer
(:mod:`ei_jax._src.model.slicing`) is measured the same way when that is still true of its
whole slice: it reads one value, its only linear operation is that convolution, and every
other operation keeps positions apart and treats them alike -- elementwise operations whose
parameter operands are constant across positions (a bias, BatchNorm's per-channel scale and
shift, an activation) and reshapes that only add or drop size-1 axes. :func:`field` checks
this and says why not otherwise (pooling or a skip connection mixes positions, a parameter
per position, a transposed convolution...): such a layer keeps the whole feature map as its
input and output.

:func:`field_fn` evaluates the slice on one patch: the patch is placed, at its kernel taps,
into the window of an output position whose window lies inside the input (no padding); the
convolution is computed on that window alone and its one output broadcast over the map, the
operations after it run as traced, and the output is read at one position.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from ei_jax._src.model.traced import ELEMENTWISE, Const, call_body, run, where

__all__ = ["Field", "field", "field_fn"]

#: Call primitives kept whole (an activation the registry knows): pointwise if their body is.
_CALLS = ("custom_jvp_call", "custom_vjp_call", "pjit", "jit", "closed_call")
_SHAPES = ("reshape", "squeeze", "expand_dims", "broadcast_in_dim")


@dataclasses.dataclass(frozen=True)
class Field:
    """Where a traced conv layer's receptive field is.

    Attributes:
      conv: index of the convolution equation; pre / post: the layer's equations before and
        after it. taps: the patch shape ``(k_1, k_2, c_in)`` (spatial axes in the input
        layout's order). start: the lhs index where the window of the chosen position begins.
      n_out: output channels.
    """

    conv: int
    pre: tuple
    post: tuple
    taps: tuple
    start: tuple
    n_out: int


def _ids(refs):
    return [r for r in refs if not isinstance(r, Const)]


def _nonunit(shape):
    return tuple(d for d in shape if d != 1)


def _pointwise_body(jaxpr) -> bool:
    """Every equation of ``jaxpr`` is elementwise (recursively through calls)."""
    for e in jaxpr.eqns:
        if e.primitive.name in _CALLS:
            inner = call_body(e.params)
            if inner is None or not _pointwise_body(inner):
                return False
            continue
        out = tuple(e.outvars[0].aval.shape)
        if e.primitive.name not in ELEMENTWISE or any(
                tuple(v.aval.shape) not in ((), out) for v in e.invars):
            return False
    return True


def field(prog, layer, data):
    """Whether a traced layer is measured over one receptive field (see the module docstring).

    Args:
      prog: the traced program; layer: one of its layers (:func:`~ei_jax._src.model.slicing.cut`);
      data: the ids of the values computed from the input.

    Returns:
      ``(Field, None)`` when ``layer`` is measured over one receptive field, else
      ``(None, reason)`` -- ``reason`` None when the layer has no convolution at all.

    Example: a convolution, its bias and an activation -- one receptive field, as a conv
    node of the Sequential path; a convolution with a skip connection -- the whole map.

      >>> import jax, jax.numpy as jnp
      >>> from ei_jax import topology_of
      >>> def conv(p, x):
      ...     return jax.lax.conv_general_dilated(x, p["k"], (1, 1), "SAME",
      ...                                         dimension_numbers=("NHWC", "HWIO", "NHWC"))
      >>> p, x = {"k": jnp.ones((3, 3, 1, 2)), "b": jnp.ones((1, 1, 1, 2))}, jnp.zeros((1, 5, 5, 1))
      >>> top = topology_of(lambda p, x: jnp.tanh(conv(p, x) + p["b"]), p, x)
      >>> top.nodes["k"]["scope"], top.nodes["k"]["input"]["shape"], top.nodes["k"]["output"]["shape"]
      ('receptive field', (1, 3, 3, 1), (1, 2))
      >>> top = topology_of(lambda p, x: jnp.tanh(conv(p, x) + x), p, x)
      >>> top.nodes["k"]["scope"], top.nodes["k"]["input"]["shape"]
      ('whole map', (1, 25))
    """
    eqns, avals = prog.eqns, prog.avals
    convs = [k for k in layer.linear if eqns[k].prim.name == "conv_general_dilated"]
    if not convs:
        return None, None
    if len(layer.linear) != 1:
        return None, "it has more than one linear operation"
    k = convs[0]
    conv = eqns[k]
    p = conv.params
    lhs, rhs = conv.ins
    if lhs not in data or rhs in data:
        return None, "its convolution's kernel is computed from the data"
    if any(d != 1 for d in p["lhs_dilation"]) or p["batch_group_count"] != 1:
        return None, "its convolution is transposed (input dilation) or batch-grouped"
    if len(layer.inputs) != 1 or len(layer.outputs) != 1:
        return None, ("it reads or hands on more than one value (e.g. a skip connection), which "
                      "mixes positions")
    producer = {o: j for j in layer.eqns for o in eqns[j].outs if o >= 0}
    pre, stack = set(), [lhs]
    while stack:
        j = producer.get(stack.pop())
        if j is not None and j not in pre:
            pre.add(j)
            stack.extend(r for r in _ids(eqns[j].ins) if r in data)
    post = set(layer.eqns) - pre - {k}
    dn = p["dimension_numbers"]
    lhs_shape, out_shape = avals[lhs].shape, avals[conv.outs[0]].shape
    for group, shape, spec in ((pre, lhs_shape, dn.lhs_spec), (post, out_shape, dn.out_spec)):
        for j in sorted(group):
            why = _position_wise(prog, eqns[j], data, shape, spec, layer.inputs[0])
            if why:
                return None, why
    reads = {r for j in post for r in _ids(eqns[j].ins) if r in data}
    if (not pre and layer.inputs[0] != lhs) or reads & ({layer.inputs[0]} | {
            o for j in pre for o in eqns[j].outs}):
        return None, "a value from before its convolution is used after it (a skip connection)"
    if _nonunit(avals[layer.outputs[0]].shape) != _nonunit(out_shape):
        return None, "its output is reshaped after the convolution"
    kern = avals[rhs].shape
    taps = tuple(int(kern[a]) for a in dn.rhs_spec[2:])
    start = []
    for i, (t, stride, dil, (lo, _)) in enumerate(zip(taps, p["window_strides"],
                                                      p["rhs_dilation"], p["padding"])):
        extent, n = (t - 1) * dil + 1, lhs_shape[dn.lhs_spec[2 + i]]
        first = next((o for o in range(out_shape[dn.out_spec[2 + i]])
                      if o * stride - lo >= 0 and o * stride - lo + extent <= n), None)
        if first is None:
            return None, (f"no output position has its whole window inside the input "
                          f"({n} values, window {extent}, padding {lo})")
        start.append(first * stride - lo)
    c_in = int(lhs_shape[dn.lhs_spec[1]])
    return Field(k, tuple(sorted(pre)), tuple(sorted(post)), (*taps, c_in), tuple(start),
                 int(out_shape[dn.out_spec[1]])), None


def _position_wise(prog, e, data, shape, spec, x_id) -> str | None:
    """Why ``e`` (before or after the convolution, whose lhs or output has ``shape`` with
    spatial axes ``spec[2:]``; ``x_id`` the layer's input) mixes positions or tells them
    apart, or None."""
    name = e.prim.name
    what = f"the operation {e.name!r} ({where(e)})"
    out = prog.avals[e.outs[0]].shape
    if name in _SHAPES:
        src = tuple(np.shape(e.ins[0].value) if isinstance(e.ins[0], Const)
                    else prog.avals[e.ins[0]].shape)
        # only size-1 axes change, or the layer's input itself is reshaped row-major into the
        # convolution's layout (then the patch is placed through the same reshape)
        into_image = (name == "reshape" and e.ins[0] == x_id
                      and e.params.get("dimensions") is None)
        if _nonunit(out) != _nonunit(shape) or (_nonunit(src) != _nonunit(out) and not into_image):
            return f"{what} reshapes the feature map"
        if name == "broadcast_in_dim":
            src = prog.avals[e.ins[0]].shape
            if any(src[i] != out[d] for i, d in enumerate(e.params["broadcast_dimensions"])):
                return f"{what} copies values across positions"
        return None
    if name in _CALLS:
        body = call_body(e.params)
        if body is None or not _pointwise_body(body):
            return f"{what} is not elementwise"
    elif name not in ELEMENTWISE:
        return f"{what} mixes positions (it is not elementwise)"
    if _nonunit(out) != _nonunit(shape):
        return f"{what} acts on the input before it is reshaped into the convolution's layout"
    spatial = _spatial_of(out, shape, spec)
    for r in e.ins:
        sh = tuple(np.shape(r.value) if isinstance(r, Const) else prog.avals[r].shape)
        if not isinstance(r, Const) and r in data:
            if sh != tuple(out):
                return f"{what} broadcasts a feature map"
            continue
        if len(sh) == 0:
            continue
        axes = [a for a in spatial if len(sh) == len(out) and sh[a] != 1]
        if len(sh) != len(out) or (axes and not _const_along(prog, r, axes)):
            return f"{what} has an operand that differs between positions (a parameter per position)"
    return None


def _spatial_of(out, shape, spec):
    """The spatial axes of a value of shape ``out`` whose non-unit axes are those of ``shape``
    (the lhs or the output of the convolution, spatial axes ``spec[2:]``)."""
    src = [a for a, d in enumerate(shape) if d != 1]
    dst = [a for a, d in enumerate(out) if d != 1]
    return [b for a, b in zip(src, dst) if a in set(spec[2:])]


def _const_along(prog, r, axes) -> bool:
    if isinstance(r, Const):
        v = np.asarray(r.value)
        return all(np.all(v == np.take(v, [0], axis=a)) for a in axes)
    if r < prog.n_params or r in prog.x_ids:
        return False
    e = next((e for e in prog.eqns if r in e.outs), None)
    if e is None:
        return False
    if e.prim.name == "broadcast_in_dim":
        src = e.ins[0]
        sh = np.shape(src.value) if isinstance(src, Const) else prog.avals[src].shape
        dims = list(e.params["broadcast_dimensions"])
        inner = [dims.index(a) for a in axes if a in dims and sh[dims.index(a)] != 1]
        return not inner or _const_along(prog, src, inner)
    if e.prim.name in ELEMENTWISE:
        out = prog.avals[r].shape
        for x in e.ins:
            sh = np.shape(x.value) if isinstance(x, Const) else prog.avals[x].shape
            if len(sh) == 0:
                continue
            if tuple(sh) != tuple(out) and len(sh) != len(out):
                return False
            sub = [a for a in axes if sh[a] != 1]
            if sub and not _const_along(prog, x, sub):
                return False
        return True
    return False


def field_fn(prog, layer, f: Field, eqns, outputs):
    """``one(leaves, patch_row) -> (n_out,)``: the equations ``eqns`` of ``layer`` on one patch.

    ``patch_row`` is the flattened patch ``(k_1 * k_2 * c_in,)`` (row-major ``(k_1, k_2, c_in)``);
    ``outputs`` (one id, the layer's output or its activation's input) is read at one position.
    """
    avals, conv = prog.avals, prog.eqns[f.conv]
    p = conv.params
    dn = p["dimension_numbers"]
    lhs_id = conv.ins[0]
    lhs_shape, out_shape = avals[lhs_id].shape, avals[conv.outs[0]].shape
    dil = p["rhs_dilation"]
    extent = tuple((t - 1) * d + 1 for t, d in zip(f.taps[:-1], dil))
    prelude = tuple(prog.eqns[k] for k in layer.prelude)
    pre_eqns = tuple(prog.eqns[k] for k in f.pre if k in eqns)
    post_eqns = tuple(prog.eqns[k] for k in f.post if k in eqns)
    perm = tuple(int(i) for i in np.argsort(dn.lhs_spec))
    (out_id,) = outputs
    x_id = layer.inputs[0]
    x_aval = avals[x_id]

    def window(patch):
        """The patch as the lhs window ``(1, c_in, *extent)`` -> the lhs layout."""
        taps = patch.reshape(f.taps)
        taps = jnp.moveaxis(taps, -1, 0)[None]                 # (1, c_in, k_1, k_2)
        win = jnp.zeros((1, f.taps[-1], *extent), taps.dtype)
        win = win.at[(slice(None), slice(None), *(slice(None, None, d) for d in dil))].set(taps)
        return jnp.transpose(win, perm)

    def one(leaves, xrow):
        env = dict(leaves)
        run(prelude, env)
        win = window(xrow.astype(x_aval.dtype))
        if pre_eqns:
            full = jnp.zeros(lhs_shape, win.dtype)
            idx = [0] * len(lhs_shape)
            for a, s in zip(dn.lhs_spec[2:], f.start):
                idx[a] = s
            full = jax.lax.dynamic_update_slice(full, win, idx)
            env[x_id] = full.reshape(x_aval.shape)
            run(pre_eqns, env)
            sizes = list(lhs_shape)
            for a, e in zip(dn.lhs_spec[2:], extent):
                sizes[a] = e
            win = jax.lax.dynamic_slice(env[lhs_id], idx, sizes)
        y = jax.lax.conv_general_dilated(
            win, env[conv.ins[1]], (1,) * len(extent), [(0, 0)] * len(extent),
            rhs_dilation=dil, dimension_numbers=dn, feature_group_count=p["feature_group_count"],
            precision=p["precision"], preferred_element_type=p["preferred_element_type"])
        env[conv.outs[0]] = jnp.broadcast_to(y, out_shape)
        run(post_eqns, env)
        z = env[out_id].reshape(out_shape)
        z = jnp.moveaxis(z, dn.out_spec[1], 0).reshape(f.n_out, -1)[:, 0]
        return z.astype(jnp.float32)

    return one
