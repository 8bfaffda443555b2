"""When the exact pairwise measures take their compiled CPU kernels, and the finishing step.

Concrete weights on a CPU backend, for layers past :data:`SMALL`, go to the numba kernels:
:mod:`parts_compiled` for the series of ``exact_ei_parts_matrix`` (four or more inputs),
:mod:`banded_compiled` for ``exact_sensitivity_matrix`` and one-input EI_parts with a
monotone activation. The same numbers as the XLA path to float64 rounding (a few 1e-15
bits), several times faster (``benchmarks/README.md``). Traced weights (under ``jax.jit``,
``jax.grad``, ``jax.vmap``) of any size take the series through host callbacks with an
analytic VJP (:func:`traced_series`, :mod:`parts_grad_compiled`). Joint tables, a cut
series, columns with a dominant input, two or three inputs (closed forms), sensitivity
under tracing or of a non-monotone activation, and accelerator backends keep the XLA path.

The first call in a process imports numba and loads the kernels from numba's disk cache
(~0.3-0.5 s); the very first call after an install compiles them (a few seconds each).
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from ei_jax._src.exact.columns import all_dropped, finish_column
from ei_jax._src.exact.preimages import input_bins
from ei_jax._src.exact.terms import column_blocks

#: Private switch for tests and benchmarks: None (by the rules above), True (also on an
#: accelerator backend and for small layers), False (never).
FORCE = None
#: Smallest work (``n_in n_out in_bins x`` terms for the series, ``x (in_bins + out_bins)``
#: for the banded joint) that takes a compiled kernel when ``FORCE`` is None. Below it XLA is
#: about as fast (a few ms a call) and a process never pays numba's import and cache load, or
#: after an install its first compilation (~10 s): the Iris network of ``ei-jax reproduce``
#: stays on XLA, a 100 -> 100 layer (5e6) does not.
SMALL = 1 << 22
#: Most ``terms x n_in`` entries of one of the compiled series' per-thread tables (8 MB each):
#: beyond it (columns that need thousands of terms) the XLA series, a block of inputs at a time.
SERIES_TABLE = 1 << 20


def route(kernel, bias, *, which, tables, terms, ob, in_bins):
    """``"series"``, ``"banded"`` (concrete weights: :func:`matrix`), ``"traced"`` (traced
    weights: :func:`traced_series`) or None (XLA) for a call, after :func:`kernel._prepare`."""
    if FORCE is False or tables:
        return None
    if FORCE is None and jax.default_backend() != "cpu":
        return None
    # not a dominant plan (a Plan), not 2-3 inputs (0); each thread holds four (terms, n_in)
    # float64 tables: past SERIES_TABLE XLA's blocked series bounds memory
    series = (which == "parts" and isinstance(terms, int) and terms > 0
              and terms * kernel.shape[0] <= SERIES_TABLE)
    if isinstance(kernel, jax.core.Tracer) or isinstance(bias, jax.core.Tracer):
        return "traced" if series else None
    if not (np.isfinite(np.asarray(kernel)).all() and np.isfinite(np.asarray(bias)).all()):
        return None
    pairs = kernel.shape[0] * kernel.shape[1]
    small = SMALL if FORCE is None else 0
    if (which == "sensitivity" or kernel.shape[0] == 1) and ob.monotone:
        return "banded" if pairs * (in_bins + ob.t.shape[0]) >= small else None
    if series and pairs * in_bins * terms >= small:
        return "series"
    return None


def matrix(kernel, bias, *, path, which, in_range, in_bins, ob, terms):
    """The measure's float64 NumPy ``(n_in, n_out)`` by the compiled kernel ``path``."""
    lo, hi = (float(x) for x in in_range)
    kernel = np.asarray(kernel, np.float64)
    bias = np.asarray(bias, np.float64)
    a, h, m, p = input_bins(in_range, in_bins)
    if path == "banded":
        from ei_jax._src.exact import banded_compiled            # numba: only when used
        mi, kept = banded_compiled.point_input_mi_layer(kernel, bias, lo, hi, a, ob.t)
    else:
        from ei_jax._src.exact import parts_compiled             # numba: only when used
        mi, kept = parts_compiled.series_mi(kernel, bias, in_bins=(lo, hi, a, h, m, p), ob=ob,
                                            terms=terms)
    for c in column_blocks(kernel.shape, 1 << 17):          # each column is finished on its own
        mi[:, c] = finish_column(mi[:, c], kept[:, c], kernel[:, c], bias[c], which=which, lo=lo,
                                 hi=hi, ob=ob, xp=np)
    return mi


# --- traced weights: the series through host callbacks, with an analytic VJP ---------------

def _batched(fn, *arrays):
    """``fn`` over the leading (vmap) axes of ``arrays`` (all broadcast alike), results stacked."""
    lead = arrays[0].shape[:-2]
    outs = [fn(*(x[idx] for x in arrays)) for idx in np.ndindex(*lead)]
    return tuple(np.stack([o[r] for o in outs]).reshape(lead + outs[0][r].shape)
                 for r in range(len(outs[0])))


def _finite_columns(kernel, bias):
    """``(kernel, bias, bad)``: the columns with a non-finite weight or bias (``bad``) zeroed
    for the kernels; the caller makes their results NaN."""
    bad = ~(np.isfinite(kernel).all(axis=0) & np.isfinite(bias))
    return np.where(bad[None], 0.0, kernel), np.where(bad, 0.0, bias), bad


def _host_bits(kernel, bias, *, in_range, in_bins, ob, terms, dtype):
    def one(k, b):
        k, b, bad = _finite_columns(k, b)
        mi = matrix(k, b, path="series", which="parts", in_range=in_range, in_bins=in_bins,
                    ob=ob, terms=terms)
        mi[:, bad] = np.nan
        return (mi,)
    out = _batched(one, np.asarray(kernel, np.float64), np.asarray(bias, np.float64))[0]
    return out.astype(dtype)


def _host_grad(kernel, bias, cot, *, in_range, in_bins, ob, terms):
    from ei_jax._src.exact import parts_grad_compiled          # numba: only when used
    lo, hi = (float(x) for x in in_range)
    bins = (lo, hi) + tuple(input_bins(in_range, in_bins))

    def one(k, b, g):
        k, b, bad = _finite_columns(k, b)
        # where the bits are replaced (a zero weight: 0; every output dropped: NaN), the
        # gradient of the replaced value is 0, as jnp.where's
        keep = (k != 0) & ~all_dropped(k, b, which="parts", lo=lo, hi=hi, ob=ob, xp=np)[None]
        gk, gb = parts_grad_compiled.series_grad(k, b, np.where(keep, g, 0.0), in_bins=bins,
                                                 ob=ob, terms=terms)
        gk[:, bad] = np.nan
        gb[bad] = np.nan
        return gk, gb
    gk, gb = _batched(one, *(np.asarray(x, np.float64) for x in (kernel, bias, cot)))
    return gk.astype(np.asarray(kernel).dtype), gb.astype(np.asarray(bias).dtype)


def traced_series(*, in_range, in_bins, ob, terms, out_dtype, second):
    """``fn(kernel, bias)``: the EI_parts matrix of traced weights by the compiled series on
    the host (``jax.pure_callback``; under ``jax.vmap`` a loop over the batch), with a custom
    VJP by :mod:`~ei_jax._src.exact.parts_grad_compiled`. The host works in float64 and
    returns the program's dtypes (no float64 in the traced program). ``second`` is the XLA
    function ``(kernel, bias) -> bits`` whose derivatives stand in for the VJP's own (second
    derivatives, e.g. a Hessian-vector product, run the XLA series)."""
    static = dict(in_range=in_range, in_bins=in_bins, ob=ob, terms=terms)

    def like(x, dtype=None):
        return jax.ShapeDtypeStruct(x.shape, x.dtype if dtype is None else dtype)

    @jax.custom_jvp
    def grad_call(k, b, g):
        return jax.pure_callback(functools.partial(_host_grad, **static), (like(k), like(b)),
                                 k, b, g, vmap_method="broadcast_all")

    @grad_call.defjvp
    def _grad_jvp(primals, tangents):
        def vjp(k, b, g):
            with jax.enable_x64(True):
                gk, gb = jax.vjp(second, k.astype(jnp.float64), b.astype(jnp.float64))[1](
                    g.astype(jnp.float64))
                return gk.astype(k.dtype), gb.astype(b.dtype)
        return jax.jvp(vjp, primals, tangents)

    @jax.custom_vjp
    def fn(k, b):
        return jax.pure_callback(functools.partial(_host_bits, dtype=out_dtype, **static),
                                 like(k, out_dtype), k, b, vmap_method="broadcast_all")

    def fwd(k, b):
        return fn(k, b), (k, b)

    def bwd(res, g):
        return grad_call(*res, g)

    fn.defvjp(fwd, bwd)
    return fn
