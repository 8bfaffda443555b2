"""No silently truncated series under tracing: columns whose default term count is too few.

Concrete weights get their term count from a bound on the series' truncation error
(:func:`~ei_jax._src.exact.terms.choose_terms`). Traced weights (a user's ``jax.jit`` /
``jax.grad`` / ``jax.vmap``) cannot be inspected on the host, so they get
:func:`~ei_jax._src.exact.terms.default_terms` from the fan-in alone -- enough for every
ordinary column, too few for a column with almost all its spread in one or two inputs (a
residual copy, a nearly one-hot column), where the series would be truncated silently.

Here the same bound is evaluated inside the traced computation (the 9-point tail bound,
:func:`~ei_jax._src.exact.terms.tail_bound`, per column, in ``jax.numpy``). A column whose
truncation error of ``F`` may exceed :data:`TRACED_TOL` is NaN -- loud in any sum or loss --
and a host callback warns with what to do. Columns within the bound are returned untouched.
"""

import warnings

import jax
import jax.numpy as jnp
import numpy as np

from ei_jax._src.base.errors import ExactTruncatedWarning
from ei_jax._src.exact import terms as series_terms

#: Bound on the truncation error of ``F`` that traced columns must meet (100x the host's
#: ``TERMS_TOL``: the default count leaves ordinary columns far below it).
TRACED_TOL = 1e-6


def tail_bound(kernel, in_range, terms: int):
    """A bound ``(m,)`` on each column's truncation error of ``F`` with ``terms`` terms: the
    host's bound (:func:`ei_jax._src.exact.terms.tail_bound`) on the traced ``kernel (n, m)``,
    in float64 (0 for a column without spread)."""
    with jax.enable_x64(True):
        d = jax.lax.stop_gradient(jnp.abs(kernel)).astype(jnp.float64) * float(in_range[1] - in_range[0])
        return series_terms.tail_bound(d, terms, xp=jnp)


def _warn(ok, terms):
    ok = np.asarray(ok)
    if ok.all():
        return
    bad = np.flatnonzero(~ok.reshape(-1, ok.shape[-1]).all(0))
    warnings.warn(ExactTruncatedWarning(
        f"Exact EI_parts under jax.jit / grad / vmap: output column(s) {bad[:10].tolist()}"
        f"{' ...' if bad.size > 10 else ''} have almost all their spread in one or two inputs, "
        f"so the {terms} series terms chosen from the fan-in could be off by more than "
        f"{TRACED_TOL:g} in a CDF; those columns are NaN instead of a truncated value. Call the "
        "measure on concrete weights (outside the transformation: a residual copy is then "
        "integrated exactly), or pass terms=... large enough to accept the cost."), stacklevel=2)


def guard(matrix, kernel, in_range, terms: int):
    """``matrix (n, m)`` with the columns whose series bound exceeds :data:`TRACED_TOL` set to
    NaN, and a host warning where any is."""
    with jax.enable_x64(True):          # compared in float64: no float64 outside the scope
        ok = tail_bound(kernel, in_range, terms) <= TRACED_TOL
    jax.debug.callback(_warn, ok, terms)
    return jnp.where(ok[None, :], matrix, jnp.nan)
