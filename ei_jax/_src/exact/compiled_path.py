"""When the exact pairwise measures take their compiled CPU kernels, and the finishing step.

Concrete weights on a CPU backend, for layers past :data:`SMALL`, go to the numba kernels:
:mod:`parts_compiled` for the series of ``exact_ei_parts_matrix`` (four or more inputs),
:mod:`banded_compiled` for ``exact_sensitivity_matrix`` and one-input EI_parts with a
monotone activation. The same numbers as the XLA path to float64 rounding (a few 1e-15
bits), several times faster (``benchmarks/README.md``). Traced weights (under ``jax.jit``, ``jax.grad``, ``jax.vmap``),
joint tables, a cut series, columns with a dominant input, two or three inputs (closed forms),
sensitivity of a non-monotone activation and accelerator backends keep the XLA path, which
also gives the gradient.

The first call in a process imports numba and loads the kernels from numba's disk cache
(~0.3-0.5 s); the very first call after an install compiles them (a few seconds each).
"""

import jax
import numpy as np

from ei_jax._src.exact.columns import finish_column
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
    """``"series"``, ``"banded"`` or None (XLA) for a call, after :func:`kernel._prepare`."""
    if FORCE is False or tables:
        return None
    if isinstance(kernel, jax.core.Tracer) or isinstance(bias, jax.core.Tracer):
        return None
    if FORCE is None and jax.default_backend() != "cpu":
        return None
    if not (np.isfinite(np.asarray(kernel)).all() and np.isfinite(np.asarray(bias)).all()):
        return None
    pairs = kernel.shape[0] * kernel.shape[1]
    small = SMALL if FORCE is None else 0
    if (which == "sensitivity" or kernel.shape[0] == 1) and ob.monotone:
        return "banded" if pairs * (in_bins + ob.t.shape[0]) >= small else None
    if which == "parts" and isinstance(terms, int) and terms > 0:
        # not a dominant plan (a Plan), not 2-3 inputs (0); each thread holds four
        # (terms, n_in) float64 tables: past SERIES_TABLE XLA's blocked series bounds memory
        if terms * kernel.shape[0] <= SERIES_TABLE and pairs * in_bins * terms >= small:
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
