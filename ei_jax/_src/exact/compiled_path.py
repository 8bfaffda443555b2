"""When the exact pairwise measures take their compiled CPU kernels, and the finishing step.

Concrete weights on a CPU backend go to the numba kernels (:mod:`parts_compiled` for the
series of ``exact_ei_parts_matrix``): the same numbers as the XLA path to float64 rounding,
several times faster. Traced weights (under ``jax.jit``, ``jax.grad``, ``jax.vmap``), joint
tables, a cut series, columns with a dominant input and accelerator backends keep the XLA
path, which also gives the gradient.

The first call in a process imports numba and loads the kernels from numba's disk cache
(~0.3-0.5 s); the very first call after an install compiles them (a few seconds).
"""

import jax
import numpy as np

from ei_jax._src.exact.columns import finish_column

#: Private switch for tests and benchmarks: None (by the rules above), True, False (never).
FORCE = None


def wanted(kernel, bias, *, which, tables, terms) -> bool:
    """The compiled kernel serves this call (after :func:`kernel._prepare`)."""
    if FORCE is False or tables or which != "parts":
        return False
    if not isinstance(terms, int) or isinstance(terms, bool) or terms <= 0:
        return False                          # a fan-in <= 3 (closed forms) or a dominant plan
    if isinstance(kernel, jax.core.Tracer) or isinstance(bias, jax.core.Tracer):
        return False
    if FORCE is None and jax.default_backend() != "cpu":
        return False
    return bool(np.isfinite(np.asarray(kernel)).all() and np.isfinite(np.asarray(bias)).all())


def parts_matrix(kernel, bias, *, in_range, in_bins, ob, terms):
    """``exact_ei_parts_matrix``'s float64 NumPy result by the compiled series."""
    from ei_jax._src.exact import parts_compiled          # numba: only when used
    from ei_jax._src.exact.preimages import input_bins

    lo, hi = in_range
    kernel = np.asarray(kernel, np.float64)
    bias = np.asarray(bias, np.float64)
    mi, kept = parts_compiled.series_mi(kernel, bias, in_bins=(lo, hi) + input_bins(in_range, in_bins),
                                        ob=ob, terms=terms)
    return finish(mi, kept, kernel, bias, which="parts", lo=lo, hi=hi, ob=ob)


def finish(mi, kept, kernel, bias, *, which, lo, hi, ob):
    """:func:`~ei_jax._src.exact.columns.finish_column` for the whole layer, on the host."""
    return finish_column(mi, kept, kernel, bias, which=which, lo=lo, hi=hi, ob=ob, xp=np)
