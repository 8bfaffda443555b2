"""Exact EI_parts and sensitivity of every layer of N checkpoints, one vmapped call per layer.

The pure exact core (:func:`ei_jax._src.exact.kernel.exact_ei_parts_matrix` and
:func:`~ei_jax._src.exact.kernel.exact_sensitivity_matrix`) is ``jax.vmap``-able over the
kernel and bias, so a stack of checkpoints of one architecture is measured in one compiled
call per layer and measure (EI_parts of ``n_in >= 4`` inputs: the series compiled at the
stack's longest length, each checkpoint's cut at the length it gets alone), so each value is
what :mod:`ei_jax.exact` gives for that checkpoint alone, to float64 rounding (a layer with a
column whose spread is almost all in one input is measured a checkpoint at a time: the path
for such columns is planned from concrete weights). The stack runs
``CHUNK`` checkpoints at a time (``lax.map``), so memory does not grow with N. The sampled
columns (vector EI, and layers where exact does not apply) are measured elsewhere
(``measure_stack``).
"""

import functools

import jax
import numpy as np

from ei_jax._src.exact import kernel as exact_core
from ei_jax._src.exact import terms as series_terms
from ei_jax._src.base.errors import (
    ExactUnavailableError,
    NonFiniteParamsError,
    ShapeMismatchError,
)
from ei_jax._src.exact.measures import exact_layer
from ei_jax._src.info import reporting

#: Checkpoints vmapped at once (each holds at most ``exact_core.GROUP_BUDGET`` of series arrays).
CHUNK = 8


def _stacked_kernel_bias(params, layer, n: int):
    kernel = np.asarray(params["kernel"], np.float64)
    if kernel.ndim < 3 or kernel.shape[0] != n:
        raise ShapeMismatchError(f"Layer {layer!r}: the stacked kernel needs shape (N={n}, ..., n_out). "
                                 f"Got {kernel.shape}.")
    kernel = kernel.reshape(n, -1, kernel.shape[-1])       # conv: the receptive field's Dense kernel
    bias = params.get("bias")
    bias = np.zeros((n, kernel.shape[2])) if bias is None else np.asarray(bias, np.float64)
    if bias.shape != (n, kernel.shape[2]):
        raise ShapeMismatchError(f"Layer {layer!r}: the stacked bias needs shape {(n, kernel.shape[2])}. "
                                 f"Got {bias.shape}.")
    finite = np.isfinite(kernel).reshape(n, -1).all(1) & np.isfinite(bias).all(1)
    if not finite.all():
        raise NonFiniteParamsError(f"Layer {layer!r} of checkpoint {int(np.argmin(finite))} has NaN or "
                                   "infinite parameters; measure checkpoints with finite weights.")
    return kernel, bias


@functools.partial(jax.jit, static_argnames=("fn", "chunk", "options"))
def _mapped(args, *, fn, chunk, options):
    return jax.lax.map(lambda a: fn(*a, **dict(options)), args, batch_size=chunk)


def _sums(fn, kernel, bias, problem, bins, labels, what, cut=None, **extra):
    """Per-checkpoint sums of ``fn``'s ``(n_in, n_out)`` matrix; ``cut``: per-checkpoint
    series lengths (the traced third argument of ``fn``)."""
    n = len(kernel)
    chunk = min(CHUNK, n)
    pad = -n % chunk                       # repeat the last checkpoint: no remainder program
    args = (kernel, bias) if cut is None else (kernel, bias, np.asarray(cut, np.int32))
    args = tuple(np.concatenate([a, np.repeat(a[-1:], pad, axis=0)]) for a in args)
    options = tuple(sorted(dict(activation=problem.activation, in_range=problem.in_range,
                                in_bins=bins, out_range=problem.out_range, out_bins=bins,
                                **extra).items()))
    with jax.enable_x64(True):
        mats = np.array(_mapped(args, fn=fn, chunk=chunk, options=options), np.float64)[:n]
    for i in np.flatnonzero(np.isnan(mats).reshape(len(mats), -1).any(1)):
        # the layer measures' one rule: an empty pair is 0 bits (warned), all empty an error
        mats[i] = reporting.zero_empty_pairs(mats[i], f"Layer {problem.name!r} of {labels[i]}",
                                             f"out_range={problem.out_range} ({what})", clip=False)
    return mats.sum(axis=(1, 2))


def _parts(kernel, bias, problem, bins, labels):
    """EI_parts of every checkpoint, in one call: the series at the stack's longest length,
    each checkpoint's cut at its own."""
    if kernel.shape[1] <= 3:                                          # closed forms, no series
        return _sums(exact_core.exact_ei_parts_matrix, kernel, bias, problem, bins, labels, "EI_parts")
    terms = np.array([series_terms.choose_terms(k, problem.in_range) for k in kernel])
    if terms.max() > series_terms.MAX_TERMS:
        return _one_by_one(kernel, bias, problem, bins, labels)
    return _sums(exact_core.ei_parts_matrix_cut, kernel, bias, problem, bins, labels, "EI_parts",
                 cut=terms, terms=int(terms.max()))


def _one_by_one(kernel, bias, problem, bins, labels):
    """EI_parts of each checkpoint alone: a column with almost all its spread in one input (a
    residual copy) is planned on the host from concrete weights, which a vmapped call would
    trace. None (measured sampled) where a checkpoint's columns have two or more such inputs."""
    out = []
    for k, b, label in zip(kernel, bias, labels):
        try:
            with jax.enable_x64(True):
                mat = np.asarray(exact_core.exact_ei_parts_matrix(
                    k, b, activation=problem.activation, in_range=problem.in_range, in_bins=bins,
                    out_range=problem.out_range, out_bins=bins), np.float64)
        except ExactUnavailableError:
            return None
        if np.isnan(mat).any():
            mat = reporting.zero_empty_pairs(mat, f"Layer {problem.name!r} of {label}",
                                             f"out_range={problem.out_range} (EI_parts)", clip=False)
        out.append(mat.sum())
    return np.array(out)


def checkpoint_topology(top, stacked: dict, j: int):
    """``top`` with every layer's parameters replaced by checkpoint ``j`` of ``stacked``.

    Example:
      >>> import jax, jax.numpy as jnp, flax.linen as nn, ei_jax
      >>> net = nn.Dense(1)
      >>> x0 = jnp.zeros((1, 2))
      >>> top = ei_jax.topology_of(net, net.init(jax.random.key(0), x0), x0)
      >>> stacked = {"Dense": {"kernel": jnp.ones((3, 2, 1)), "bias": jnp.arange(3.0)[:, None]}}
      >>> float(checkpoint_topology(top, stacked, 2).nodes["Dense"]["params"]["bias"][0])
      2.0
    """
    out = top.copy()
    for layer, params in stacked.items():
        out.nodes[layer]["params"] = jax.tree.map(lambda a: a[j], params)
    return out


def stack_values(top, stacked: dict, *, bins: int, in_range, labels=None) -> dict:
    """Exact EI_parts and sensitivity of every layer of N checkpoints of one architecture.

    Layer ``i`` is resolved as :func:`ei_jax.experiments.table_columns.layer_values` resolves it for
    the first layer with ``in_range`` and the later ones with their preceding activation's
    range (as ``measure_network``); its ranges and activation come from ``top``, its weights
    from ``stacked``.

    Args:
      top: ``ei_jax.topology_of`` of one of the networks (structure, activations, names).
      stacked: ``{layer: {"kernel": (N, ..., n_out), "bias": (N, n_out) (optional)}}`` for the
        layers of ``top`` (Flax layout, a conv kernel ``(N, kh, kw, c_in, c_out)``).
      bins: bins per neuron, inputs and outputs; in_range: the first layer's input range.
      labels: N names for messages (default ``checkpoint j``).

    Returns:
      ``{layer: {"ei_parts": (N,) or None, "sensitivity": (N,) or None}}``: float64 bits, or
      None where exact does not apply to that measure of that layer (measure it sampled).

    Raises:
      ShapeMismatchError: parameters without the leading axis N. NonFiniteParamsError: NaN or
      infinite weights. EmptyHistogramError: every pair of a checkpoint's layer with every
      output outside ``out_range`` (a single empty pair is 0 bits, with an ``OutOfRangeWarning``).

    Example:
      >>> import jax, jax.numpy as jnp, flax.linen as nn, ei_jax
      >>> net = nn.Sequential([nn.Dense(2), nn.sigmoid])
      >>> x0 = jnp.zeros((1, 3))
      >>> nets = [net.init(jax.random.key(j), x0)["params"]["layers_0"] for j in range(3)]
      >>> top = ei_jax.topology_of(net, {"params": {"layers_0": nets[0]}}, x0)
      >>> stacked = {"layers_0": jax.tree.map(lambda *a: jnp.stack(a), *nets)}
      >>> v = stack_values(top, stacked, bins=8, in_range=(0, 1))["layers_0"]
      >>> v["ei_parts"].shape, v["sensitivity"].shape
      ((3,), (3,))
    """
    out = {}
    for i, layer in enumerate(top):
        params = stacked[layer]
        n = int(np.shape(params["kernel"])[0])
        names = list(labels) if labels is not None else [f"checkpoint {j}" for j in range(n)]
        try:
            problem = exact_layer(top, layer, in_range=in_range if i == 0 else None)
        except ExactUnavailableError:
            out[layer] = {"ei_parts": None, "sensitivity": None}
            continue
        kernel, bias = _stacked_kernel_bias(params, layer, n)
        parts = _parts(kernel, bias, problem, bins, names)
        sens = _sums(exact_core.exact_sensitivity_matrix, kernel, bias, problem, bins, names,
                     "sensitivity")
        out[layer] = {"ei_parts": parts, "sensitivity": sens}
    return out
