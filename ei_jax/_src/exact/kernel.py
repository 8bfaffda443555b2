"""Exact (infinite-sample) pairwise EI and sensitivity of ``y = f(x @ W + b)``: the pure core.

For the pair (A, B), ``z = W[A, B] x_A + S + b_B`` with ``S = sum_{l != A} W[l, B] x_l`` and
every ``x_l ~ U(lo, hi)`` independent. With deep-ei's widened input bins ``[a_i, a_{i+1}]``
(probability ``p_i``) and the output thresholds ``t_j`` (:mod:`ei_jax._src.exact.preimages`),

.. math::
   P(i, j) = p_i \\left[F_{A,i}(t_{j+1}) - F_{A,i}(t_j)\\right],

where ``F_{A,i}`` is the CDF of ``z`` given ``x_A`` uniform on bin ``i`` (:mod:`ei_jax._src.exact.sums`).
For GELU, SiLU and mish (not monotone) a bin's preimage is a union of intervals: the
difference becomes a signed sum of ``F_{A,i}`` at more thresholds
(:class:`~ei_jax._src.exact.preimages.OutputBins`). Mass outside the output range is dropped
and ``P`` is renormalised over what is kept, as deep-ei drops out-of-range samples per pair; the mutual
information of ``P`` is the value deep-ei's plug-in estimate converges to. Sensitivity holds
the other inputs at 0, so ``S = 0`` and ``F_{A,i}`` is the CDF of a uniform (closed form;
a banded table for a monotone activation, :mod:`ei_jax._src.exact.banded`).

Everything runs in float64 inside a scoped ``jax.enable_x64`` and returns the caller's
default float dtype (float32 unless x64 is on), so ``jax.jit``, ``jax.vmap`` and
``jax.grad`` of these functions work in a float32 program and the gradient is the true one.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from ei_jax._src.exact import compiled_path, dominant
from ei_jax._src.exact import terms as series_terms
from ei_jax._src.exact import traced_guard
from ei_jax._src.exact.columns import column_joint, column_mi
from ei_jax._src.info.binning import check_range
from ei_jax._src.base.errors import ExactUnavailableError, InvalidOptionError, ShapeMismatchError
from ei_jax._src.exact.preimages import canonical_exact_activation, input_bins, output_bins

#: Private switch for benchmarks: True runs the earlier paths (XLA for concrete weights too,
#: sensitivity through the dense ``k_in x k_out`` table, no remat of the column groups in a
#: gradient).
_LEGACY = False
#: Working memory per group of output columns (bytes, float64 arrays of the series).
GROUP_BUDGET = 64 << 20
#: The same for the series of EI_parts, whose arrays are formed a block of inputs at a time
#: (:func:`~ei_jax._src.exact.conditionals.cdf_series`): columns are grouped only while their
#: coefficients would fit in this many bytes (small layers), so a group stays in the cache.
SERIES_GROUP_BUDGET = 4 << 20


@functools.partial(jax.jit, static_argnames=("which", "tables", "activation", "in_range",
                                               "in_bins", "out_range", "out_bins", "terms", "legacy"))
def _matrix(kernel, bias, active=None, *, which, tables, activation, in_range, in_bins, out_range,
            out_bins, terms, legacy=False):
    lo, hi = in_range
    a, h, m, p = input_bins(in_range, in_bins)
    ob = output_bins(activation, out_range, out_bins)
    kernel = kernel.astype(jnp.float64)
    bias = bias.astype(jnp.float64)
    n, k_in = kernel.shape[0], h.shape[0]
    extra = {} if active is None else {"active": active}
    if legacy and not tables:
        extra["dense"] = True
    fn = functools.partial(column_joint if tables else column_mi, which=which, lo=lo, hi=hi,
                           a=a, h=h, m=m, p=p, ob=ob, terms=terms, **extra)
    per_col = 8 * n * k_in * (max(terms, ob.t.shape[0]) * 4 + ob.t.shape[0] * 2)
    if (which == "sensitivity" or n == 1) and ob.monotone and not (legacy or tables):
        per_col = 8 * n * (k_in + ob.t.shape[0]) * 8            # the banded path's arrays
    budget = GROUP_BUDGET
    if which == "parts" and n > 3 and not (legacy or tables):
        # the series a block of inputs at a time: a group's blocks stay in the cache
        per_col, budget = 8 * terms * n * max(k_in, 4), SERIES_GROUP_BUDGET
    most = int(max(1, min(kernel.shape[1], budget // max(per_col, 1))))
    # a divisor of n_out: lax.map then compiles its body once (no remainder copy)
    group = max(g for g in range(1, most + 1) if kernel.shape[1] % g == 0)
    # Remat: the reverse pass recomputes a group's series instead of keeping every group's
    # per-term arrays, so a gradient holds one group's working set like the forward.
    cols = jax.lax.map(fn if legacy else jax.checkpoint(fn), (kernel.T, bias), batch_size=group)
    return jnp.moveaxis(cols, 0, 1)


def _prepare(kernel, bias, activation, in_range, out_range, terms, *, which, in_bins=None):
    """Checks the arguments; ``terms`` becomes the series' count, or a
    :class:`~ei_jax._src.exact.dominant.Plan` where concrete weights need more than
    ``MAX_TERMS`` and ``in_bins`` is given (columns with one dominant input)."""
    kernel = jnp.asarray(kernel)
    if kernel.ndim != 2:
        raise ShapeMismatchError(
            f"kernel must be (n_in, n_out) (Flax layout). Got shape {kernel.shape}; for a conv "
            "kernel (kh, kw, c_in, c_out) pass kernel.reshape(-1, c_out).")
    kernel = kernel.astype(kernel.dtype)       # not weak-typed: one compiled program per dtype
    bias = jnp.zeros(kernel.shape[1], kernel.dtype) if bias is None else jnp.asarray(bias)
    bias = bias.astype(bias.dtype)
    if bias.shape != (kernel.shape[1],):
        raise ShapeMismatchError(
            f"bias must have shape (n_out,)=({kernel.shape[1]},). Got {bias.shape}.")
    in_range = check_range("in_range", in_range)
    out_range = check_range("out_range", out_range)
    activation = canonical_exact_activation(activation)
    if which == "sensitivity" or kernel.shape[0] <= 3:
        terms = 0
    elif terms is None:
        if isinstance(kernel, jax.core.Tracer):
            terms = series_terms.default_terms(kernel.shape[0])
        else:
            terms = series_terms.choose_terms(np.asarray(kernel), in_range)
            if terms > series_terms.MAX_TERMS and in_bins is not None:
                return (kernel, bias, activation, in_range, out_range,
                        dominant.plan(np.asarray(kernel), in_range, int(in_bins)))
            if terms > series_terms.MAX_TERMS:
                raise ExactUnavailableError(
                    f"This kernel's columns have almost all their spread in one or two inputs, so "
                    f"the exact series would need more than {series_terms.MAX_TERMS} terms for 1e-8 "
                    "accuracy. Use the sampled measure (ei_jax.ei_parts(key, ...)), or pass "
                    "terms=... explicitly to accept a larger error.")
    elif isinstance(terms, bool) or not isinstance(terms, (int, np.integer)) or terms < 1:
        raise InvalidOptionError(f"terms must be a positive int or None. Got {terms!r}.")
    return kernel, bias, activation, in_range, out_range, int(terms)


def _split(k, b, *, plan, static):
    """The ordinary columns by :func:`_matrix`, those with a dominant input by
    :func:`~ei_jax._src.exact.dominant.dominant_matrix`, put back in order."""
    parts = [dominant.dominant_matrix(k[:, plan.dominant], b[plan.dominant], plan.dom, plan.rest,
                                      terms=plan.terms, **static)]
    if plan.normal.size:
        parts.insert(0, _matrix(k[:, plan.normal], b[plan.normal], which="parts", legacy=_LEGACY,
                                terms=plan.normal_terms, **static))
    order = np.argsort(np.concatenate([plan.normal, plan.dominant]))
    return jnp.concatenate(parts, axis=1)[:, order]


def _xla_vjp(inner, out_dtype):
    """``inner`` in float64, returning ``out_dtype``, with a VJP that recomputes it. The
    float64 scope must also cover the backward pass, which jax.grad runs after this function
    has returned: the custom VJP re-enters the scope."""
    @jax.custom_vjp
    def fn(k, b):
        with jax.enable_x64(True):
            return inner(k, b).astype(out_dtype)

    def fwd(k, b):
        return fn(k, b), (k, b)

    def bwd(res, g):
        with jax.enable_x64(True):
            _, vjp = jax.vjp(inner, *res)
            return vjp(g.astype(jnp.float64))

    fn.defvjp(fwd, bwd)
    return fn


def _run(kernel, bias, *, which, activation, in_range, in_bins, out_range, out_bins, terms,
         tables=False):
    out_dtype = jnp.zeros((), float).dtype          # the caller's default float
    # traced weights get the fan-in's term count: columns it cannot serve become NaN
    guarded = terms is None and isinstance(kernel, jax.core.Tracer) and not tables
    kernel, bias, activation, in_range, out_range, terms = _prepare(
        kernel, bias, activation, in_range, out_range, terms, which=which, in_bins=in_bins)
    static = dict(tables=tables, activation=activation, in_range=in_range, in_bins=int(in_bins),
                  out_range=out_range, out_bins=int(out_bins))
    ob = output_bins(activation, out_range, int(out_bins))
    path = None if _LEGACY else compiled_path.route(kernel, bias, which=which, tables=tables,
                                                       terms=terms, ob=ob, in_bins=int(in_bins))
    if path in ("series", "banded"):         # concrete weights on the CPU: compiled kernels
        return jnp.asarray(compiled_path.matrix(kernel, bias, path=path, which=which, ob=ob,
                                                in_range=in_range, in_bins=int(in_bins),
                                                terms=terms), out_dtype)
    if isinstance(terms, dominant.Plan):
        inner = functools.partial(_split, plan=terms, static=static)
    else:
        inner = functools.partial(_matrix, which=which, terms=terms, legacy=_LEGACY, **static)
    if path == "traced":
        # traced weights on the CPU: the compiled series on the host and its analytic VJP
        fn = compiled_path.traced_series(in_range=in_range, in_bins=int(in_bins), ob=ob,
                                         terms=terms, out_dtype=out_dtype, second=inner)
    else:
        fn = _xla_vjp(inner, out_dtype)
    if guarded and isinstance(terms, int) and terms > 0:
        return traced_guard.guard(fn(kernel, bias), kernel, in_range, terms)
    return fn(kernel, bias)


def exact_ei_parts_matrix(kernel, bias=None, *, activation, in_range, in_bins, out_range, out_bins,
                          terms=None) -> jax.Array:
    """Exact EI of every connection of ``y = f(x @ kernel + bias)``: ``I(x_A; y_B)`` in bits.

    The infinite-sample limit of deep-ei's pairwise plug-in estimate (``ei_parts_matrix``)
    under do(x = H^max): every input uniform on ``in_range``, deep-ei's widened bins, per-pair
    dropping of outputs outside ``out_range`` with the pair's joint renormalised.

    .. math::
       EI(A \\to B) = \\sum_{i,j} P(i, j) \\log_2 \\frac{P(i, j)}{P(i) P(j)}, \\quad
       P(i, j) = p_i [F_{A,i}(t_{j+1}) - F_{A,i}(t_j)]

    Args:
      kernel: ``(n_in, n_out)`` weights (Flax layout). May be traced: ``jax.jit``, ``jax.vmap``
        and ``jax.grad`` work, and new weights do not recompile.
      bias: ``(n_out,)`` or None.
      activation: ``"sigmoid"``, ``"tanh"``, ``"relu"``, ``"identity"`` (or None),
        ``"softplus"``, ``"elu"``, ``"leaky_relu"`` (slope 0.01); not monotone: ``"gelu"`` (erf
        form), ``"gelu_tanh"`` (``jax.nn.gelu``'s default), ``"silu"`` (``"swish"``), ``"mish"``.
      in_range, out_range: ``(lo, hi)``; in_bins, out_bins: bin counts (static).
      terms: cosine-series terms for ``n_in >= 4`` (static). None: from ``n_in`` alone
        (:func:`ei_jax._src.exact.terms.default_terms`), so new weights of the same shape do not
        recompile and traced weights get the same count; concrete weights that need more for a
        truncation error of F below 1e-8 (:func:`ei_jax._src.exact.terms.choose_terms`) get more.
        Concrete columns that would need more than ``MAX_TERMS`` with almost all their spread
        in one input (a residual copy) integrate that input analytically
        (:mod:`ei_jax._src.exact.dominant`); with two or more such inputs,
        ``ExactUnavailableError``.

    Returns:
      ``(n_in, n_out)`` bits in the default float dtype; NaN for a pair whose outputs all fall
      outside ``out_range`` (the sampled measures raise ``EmptyHistogramError`` there). A zero
      weight gives exactly 0. Traced weights with ``terms=None``: NaN for a column that the
      fan-in's term count cannot serve to 1e-6 (almost all its spread in one or two inputs),
      with an ``ExactTruncatedWarning`` (:mod:`ei_jax._src.exact.traced_guard`).

    Example:
      >>> import jax.numpy as jnp
      >>> from ei_jax._src.exact.kernel import exact_ei_parts_matrix
      >>> m = exact_ei_parts_matrix(jnp.array([[4.0]]), activation="sigmoid", in_range=(0, 1),
      ...                           in_bins=8, out_range=(0, 1), out_bins=8)
      >>> m.shape, bool(0 < m[0, 0] < 3)
      ((1, 1), True)
    """
    return _run(kernel, bias, which="parts", activation=activation, in_range=in_range,
                in_bins=in_bins, out_range=out_range, out_bins=out_bins, terms=terms)


def exact_sensitivity_matrix(kernel, bias=None, *, activation, in_range, in_bins, out_range,
                             out_bins) -> jax.Array:
    """Exact sensitivity of every connection: ``I(x_A; y_B)`` under do(x_A = H^max), others 0.

    Input A alone is uniform on ``in_range`` and every other input is 0 (deep-ei's baseline),
    so ``z = W[A, B] x_A + b_B`` and each conditional CDF is that of a uniform (closed form).

    Args:
      kernel: ``(n_in, n_out)``; bias: ``(n_out,)`` or None; the rest as
        :func:`exact_ei_parts_matrix`.

    Returns:
      ``(n_in, n_out)`` bits in the default float dtype (NaN for an all-dropped pair).

    Example:
      >>> import jax.numpy as jnp
      >>> from ei_jax._src.exact.kernel import exact_sensitivity_matrix
      >>> s = exact_sensitivity_matrix(jnp.array([[100.0]]), activation="identity",
      ...                              in_range=(0, 1), in_bins=4, out_range=(0, 100), out_bins=4)
      >>> round(float(s[0, 0]), 4)           # z = 100 x: each input bin maps into one output bin
      2.0
    """
    return _run(kernel, bias, which="sensitivity", activation=activation, in_range=in_range,
                in_bins=in_bins, out_range=out_range, out_bins=out_bins, terms=None)


def exact_joint_tables(kernel, bias=None, *, activation, in_range, in_bins, out_range, out_bins,
                       sensitivity=False, terms=None) -> jax.Array:
    """The exact binned joint distribution of every pair, renormalised over the kept mass.

    Args: as :func:`exact_ei_parts_matrix`; ``sensitivity=True`` gives the tables of the
      sensitivity intervention (other inputs at 0).

    Returns:
      ``(n_in, n_out, in_bins, out_bins)`` probabilities (each pair's table sums to 1; NaN
      for an all-dropped pair), in the default float dtype.

    Example:
      >>> import jax.numpy as jnp
      >>> from ei_jax._src.exact.kernel import exact_joint_tables
      >>> p = exact_joint_tables(jnp.ones((5, 2)), activation="sigmoid", in_range=(0, 1),
      ...                        in_bins=4, out_range=(0, 1), out_bins=3)
      >>> p.shape, bool(abs(float(p[0, 0].sum()) - 1) < 1e-6)
      ((5, 2, 4, 3), True)
    """
    return _run(kernel, bias, which="sensitivity" if sensitivity else "parts", activation=activation,
                in_range=in_range, in_bins=in_bins, out_range=out_range, out_bins=out_bins,
                terms=terms, tables=True)


def ei_parts_matrix_cut(kernel, bias, active_terms, *, activation, in_range, in_bins, out_range,
                        out_bins, terms) -> jax.Array:
    """:func:`exact_ei_parts_matrix` (``n_in >= 4``) with the series cut at ``active_terms``.

    ``terms`` (static) is the compiled length and ``active_terms`` (traced, ``<= terms``) the
    terms kept, so under ``jax.vmap`` checkpoints that need different lengths share one
    program and each gets its own series: the value with ``terms=active_terms``, to float64
    rounding (the sum over terms adds exact zeros). float64 out (its own ``jax.enable_x64``
    scope, as the other exact functions); no gradient rule (use :func:`exact_ei_parts_matrix`
    for that).
    """
    kernel, bias, activation, in_range, out_range, terms = _prepare(
        kernel, bias, activation, in_range, out_range, terms, which="parts")
    if kernel.shape[0] <= 3:
        raise InvalidOptionError("ei_parts_matrix_cut is for n_in >= 4 (fewer inputs use no series).")
    with jax.enable_x64(True):
        return _matrix(kernel, bias, jnp.asarray(active_terms, jnp.int32), which="parts", tables=False,
                       activation=activation, in_range=in_range, in_bins=int(in_bins),
                       out_range=out_range, out_bins=int(out_bins), terms=terms)
