"""The CDF of a weighted sum of independent uniforms: closed forms and a cosine series.

The exact pairwise measures (:mod:`ei_jax._src.exact.kernel`) need, for an input bin ``i`` of
input ``A`` and an output threshold ``T``, the probability that the pre-activation
``z = w x_A + S + b`` lies below ``T`` while ``x_A`` is uniform over the bin. That is the CDF
of the sum ``S + b + w U_i`` (``U_i`` uniform on the bin) at ``T``: equivalently the mean of
``F_S(T - b - w x)`` over the bin, i.e. ``[G(T - b - w a_i) - G(T - b - w a_{i+1})] / (w h_i)``
with ``G = \\int F_S``. Both routes here do that division analytically, so a small (or zero)
weight loses no precision:

* **Few summands** (``S`` has at most two uniforms): ``F_S`` is piecewise quadratic (a
  trapezoidal density), and its mean over an interval is integrated piece by piece with
  Simpson's rule, which is exact for quadratics (:func:`trapezoid_interval_mean`).
* **Many summands**: the cosine (COS) series of the density of ``S + b + w U_i`` on a bounded
  window ``[L, L + W]``, whose coefficients are the characteristic function
  ``phi(u) = exp(i u mu) prod_l sinc(u d_l / 2)`` at ``u_k = k pi / W``; ``F`` integrates it
  term by term (:func:`series_sum`). The product over the other inputs is a
  leave-one-out product formed from prefix and suffix products (no division by a factor that
  can cross zero). The window is the exact support, or a Hoeffding bound around the mean
  outside of which the mass is below ``1e-17``.

:func:`~ei_jax._src.exact.terms.default_terms` gives the number of series terms from the layer's fan-in alone, so new
weights of the same shape never recompile and traced weights (under a user's ``jax.jit``) get
the same count; :func:`~ei_jax._src.exact.terms.choose_terms` checks concrete weights against a bound on the truncation
error of ``F`` (host NumPy) and raises the count only for weights that need more.
"""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

#: Half-width factor of the Hoeffding window: P(|S - E S| >= c sqrt(sum d_l^2)) <= 2 exp(-2 c^2)
#: with c = 4.5 is 5e-18 (d_l the range widths of the summands).
HOEFFDING = 4.5


def sinc(x):
    """``sin(x) / x`` with the value 1 at 0 (differentiable everywhere)."""
    return jnp.sinc(x / jnp.pi)


def _safe_div(num, den):
    ok = den > 0
    return jnp.where(ok, num / jnp.where(ok, den, 1.0), 0.0)


# --- at most two summands: the trapezoid ----------------------------------------------------

def _trapezoid_pieces(d1, d2):
    """Knots and the five polynomial pieces of the CDF of ``d1 U1 + d2 U2`` (centred, d1>=d2)."""
    k = (-(d1 + d2) / 2, -(d1 - d2) / 2, (d1 - d2) / 2, (d1 + d2) / 2)

    def rise(x):   # s^2 / (2 d1 d2), s = x - k0 in [0, d2]
        s = x - k[0]
        return 0.5 * _safe_div(s, d1) * _safe_div(s, d2)

    def flat(x):   # d2 / (2 d1) + (x - k1) / d1
        return 0.5 * _safe_div(d2, d1) + _safe_div(x - k[1], d1)

    def fall(x):   # 1 - r^2 / (2 d1 d2), r = k3 - x
        r = k[3] - x
        return 1.0 - 0.5 * _safe_div(r, d1) * _safe_div(r, d2)

    return k, (rise, flat, fall)


def trapezoid_cdf(x, d1, d2):
    """CDF at ``x`` of ``d1 (U1 - 1/2) + d2 (U2 - 1/2)``, ``U`` iid uniform(0, 1), d1 >= d2 >= 0.

    Widths of zero are allowed: one width zero is a uniform, both zero a point mass at 0
    (CDF ``1[x > 0]``).
    """
    k, (rise, flat, fall) = _trapezoid_pieces(d1, d2)
    return jnp.where(x <= k[0], 0.0, jnp.where(x <= k[1], rise(x), jnp.where(
        x <= k[2], flat(x), jnp.where(x <= k[3], fall(x), 1.0))))


def trapezoid_interval_mean(p, q, d1, d2):
    """Mean of :func:`trapezoid_cdf` over ``[min(p, q), max(p, q)]`` (its value at p if p == q).

    Integrates each quadratic piece over its overlap with the interval by Simpson's rule
    (exact for quadratics) and weights by the overlap's share of the interval, so no
    difference of antiderivatives is divided by a small length.

    Args:
      p, q: interval ends, arrays broadcastable with ``d1``, ``d2``.
      d1, d2: the two widths, ``d1 >= d2 >= 0``.

    Returns:
      the mean, an array of the broadcast shape, in ``[0, 1]``.
    """
    a, b = jnp.minimum(p, q), jnp.maximum(p, q)
    length = b - a
    k, pieces = _trapezoid_pieces(d1, d2)
    total = jnp.maximum(b, k[3]) - jnp.maximum(a, k[3])          # the piece where F = 1
    for lo_k, hi_k, poly in zip(k[:-1], k[1:], pieces):
        x0 = jnp.clip(a, lo_k, hi_k)
        x1 = jnp.clip(b, lo_k, hi_k)
        total = total + (x1 - x0) * (poly(x0) + 4.0 * poly(0.5 * (x0 + x1)) + poly(x1)) / 6.0
    point = trapezoid_cdf(0.5 * (a + b), d1, d2)
    return jnp.where(length > 0, _safe_div(total, length), point)


# --- many summands: the cosine series -------------------------------------------------------

def loo_products(factors):
    """Leave-one-out products along axis 0: ``out[l] = prod_{l' != l} factors[l']``.

    Exclusive prefix times exclusive suffix products, no division, so factors may be zero
    or change sign. Blocked for speed: the ``n`` factors are ``bs`` rows of ``nb ~ sqrt(n)``
    interleaved blocks (padded with ones); a ``lax.scan`` over the rows gives the in-block
    prefix and suffix products and a second, over the ``nb`` block totals, the other blocks'
    products (``bs + nb`` sequential steps instead of ``log2 n`` passes of an associative
    scan).
    """
    n = factors.shape[0]
    nb = math.isqrt(max(n - 1, 0)) + 1
    bs = -(-n // nb)
    f = jnp.concatenate([factors, jnp.ones((bs * nb - n,) + factors.shape[1:], factors.dtype)])
    f = f.reshape((bs, nb) + factors.shape[1:])

    def exclusive(x):                      # prefix * suffix products, exclusive, along axis 0
        def step(c, xi):
            return (c[0] * xi[0], c[1] * xi[1]), c
        ones = jnp.ones_like(x[0])
        _, (pre, suf) = jax.lax.scan(step, (ones, ones), (x, x[::-1]))
        return pre * suf[::-1], pre[-1] * x[-1]

    inner, total = exclusive(f)            # (bs, nb, ...), (nb, ...)
    others, _ = exclusive(total)           # (nb, ...): product of the other blocks
    return (inner * others[None]).reshape((bs * nb,) + factors.shape[1:])[:n]


def window_half_width(widths):
    """Half-width of a window around the mean that holds all of ``z | bin`` but < 1e-17 of mass.

    Args:
      widths: ``(n, ...)`` range widths ``d_l = |w_l| (hi - lo)`` of the summands of one
        output's pre-activation.

    Returns:
      ``(...)``: ``min(sum d / 2, max d / 2 + HOEFFDING * sqrt(sum d^2))``. Every conditional
      sum ``S_{-A} + w_A U_i`` has its mean within ``d_A / 2`` of the full mean and a sum of
      squared widths at most ``sum d^2``, so its Hoeffding window fits inside.
    """
    s2 = jnp.sum(widths * widths, axis=0)
    root = jnp.where(s2 > 0, jnp.sqrt(jnp.where(s2 > 0, s2, 1.0)), 0.0)
    hoeffding = 0.5 * jnp.max(widths, axis=0) + HOEFFDING * root
    return jnp.minimum(0.5 * jnp.sum(widths, axis=0), hoeffding)


def _sinc_from(sin_kx, kx):
    """``sin(kx) / kx`` from a (recurrence-built) ``sin(kx)``; Taylor series below 1e-3."""
    small = jnp.abs(kx) < 1e-3
    x2 = kx * kx
    taylor = 1.0 - x2 / 6.0 * (1.0 - x2 / 20.0)
    return jnp.where(small, taylor, sin_kx / jnp.where(small, 1.0, kx))


@functools.partial(jax.custom_jvp, nondiff_argnums=(1,))
def harmonics(x, terms):
    """``(cos(k x), sin(k x))`` for ``k = 1 .. terms``, each ``(terms,) + x.shape``.

    ``k - 1 = q B + r`` (``B = ceil(sqrt(terms))``): ``e^{ikx} = e^{iqBx} e^{i(r+1)x}``, the two
    short tables built by complex products from ``e^{ix}`` and ``e^{iBx}`` in one ``lax.scan``
    (rounding grows like ``sqrt(terms) * eps``) and their outer product formed in one
    broadcast: no sequential loop over all the terms, no trigonometric call per term.
    """
    B = math.isqrt(terms - 1) + 1 if terms > 1 else 1
    Q = -(-terms // B)
    # both tables in one stacked array (table, cos/sin, ...): one fused step per term
    step = jnp.stack([jnp.stack([jnp.cos(x), jnp.sin(x)]), jnp.stack([jnp.cos(B * x), jnp.sin(B * x)])])

    def body(z, _):                      # (e^{i(j+1)x}, e^{ijBx}) -> next j
        c = z[:, 0] * step[:, 0] - z[:, 1] * step[:, 1]
        s = z[:, 1] * step[:, 0] + z[:, 0] * step[:, 1]
        return jnp.stack([c, s], axis=1), z

    start = jnp.stack([step[0], jnp.stack([jnp.ones_like(x), jnp.zeros_like(x)])])
    ys = jax.lax.scan(body, start, None, length=max(B, Q))[1]
    cr, sr, cq, sq = ys[:, 0, 0], ys[:, 0, 1], ys[:, 1, 0], ys[:, 1, 1]
    cq, sq, cr, sr = cq[:Q, None], sq[:Q, None], cr[None, :B], sr[None, :B]
    flat = (Q * B,) + x.shape
    return (cq * cr - sq * sr).reshape(flat)[:terms], (sq * cr + cq * sr).reshape(flat)[:terms]


@harmonics.defjvp
def _harmonics_jvp(terms, primals, tangents):
    """``d cos(kx) = -k sin(kx) dx``, ``d sin(kx) = k cos(kx) dx`` from the outputs themselves:
    a gradient neither differentiates nor transposes the scan (elementwise work, no loop)."""
    (x,), (dx,) = primals, tangents
    c, s = harmonics(x, terms)
    kdx = jnp.arange(1, terms + 1, dtype=x.dtype).reshape((-1,) + (1,) * x.ndim) * dx[None]
    return (c, s), (-s * kdx, c * kdx)


def series_sum(u1, d_half, width_a, offset, bin_group, group_widths, terms, basis, active=None,
               *, finish=None, block=None):
    """The series part of the conditional CDFs ``F_{A,i}`` of one output column.

    With the window ``[L, L + W]`` and ``u_k = k u_1``, ``u_1 = pi / W``,

    .. math::
       F_{A,i}(L + \\tau) = \\frac{\\tau}{W} + \\sum_{k=1}^{K} X_{k,A,i} \\sin(u_k \\tau), \\quad
       X_{k,A,i} = \\frac{2}{k\\pi}\\, \\rho_{-A}(u_k)\\,
       \\mathrm{sinc}\\!\\left(\\frac{u_k |w_A| h_i}{2}\\right) \\cos(u_k (\\mu_{A,i} - L)),

    where ``rho_{-A}(u) = prod_{l != A} sinc(u d_l / 2)`` is the leave-one-out product of the
    other inputs' factors (:func:`loo_products`: no division) and ``mu_{A,i} - L`` is the
    conditional mean's place in the window. The harmonics come from :func:`harmonics`, laid
    out terms-first, and the sum over ``k`` is a matrix product ``(T, K) @ (K, rows k_in)``:
    ``n k_in K T`` multiply-adds per column, the floor of the work. ``block`` inputs at a time
    (a ``lax.map``), so the ``(K, block, k_in)`` coefficients stay in cache and the memory is
    bounded by a block.

    Args:
      u1: scalar first frequency ``pi / W``.
      d_half: ``(n,)`` half range widths ``d_l / 2`` of the inputs.
      width_a: ``(n,)`` ``|w_A|``.
      offset: ``(n, k_in)`` ``mu_{A,i} - L``.
      bin_group: static ``(k_in,)`` index of each bin's width in ``group_widths``.
      group_widths: static ``(G,)`` distinct input-bin widths (interior and end bins).
      terms: static ``K``.
      basis: ``(T, K)`` ``sin(u_k tau_t)`` at the thresholds' window positions ``tau``
        (terms last: a plain ``(T, K) @ (K, N)`` product, about twice as fast on the CPU as
        contracting a ``(K, T)`` basis over its leading axis).
      active: optional traced count ``<= K``: the coefficients past it are 0, so the series
        is the one of ``active`` terms (a stack of checkpoints needing different lengths then
        shares one compiled ``K``; the harmonics are the same numbers).
      finish: optional function applied to each block's ``(rows, k_in, T)`` sums (e.g. to
        turn them into each input's bits), whose outputs (leading axis ``rows``) are
        concatenated; None returns the sums.
      block: static inputs per block (None: all at once).

    Returns:
      ``(n, k_in, T)`` ``sum_k X_{k,A,i} sin(u_k tau_t)`` (add ``tau / W`` for ``F``), or
      what ``finish`` makes of it.
    """
    k = jnp.arange(1, terms + 1, dtype=u1.dtype)
    x_l = u1 * d_half                                                        # (n,)
    x_g = 0.5 * u1 * width_a[:, None] * jnp.asarray(group_widths)[None, :]   # (n, G)
    n, G = x_g.shape
    x_lg = jnp.concatenate([x_l[:, None], x_g], axis=1)                     # (n, 1 + G)
    sinc_lg = _sinc_from(harmonics(x_lg, terms)[1], k[:, None, None] * x_lg[None])
    loo = loo_products(sinc_lg[:, :, 0].T).T                                # (K, n)
    scale = (2.0 / jnp.pi) / k
    if active is not None:
        scale = jnp.where(jnp.arange(1, terms + 1, dtype=jnp.int32) <= active, scale, 0.0)
    beta = (scale[:, None] * loo)[:, :, None] * sinc_lg[:, :, 1:]           # (K, n, G)
    group = np.asarray(bin_group)
    finish = (lambda x: x) if finish is None else finish

    def rows(beta_r, offset_r):                                              # (K, r, G), (r, k_in)
        # Each bin's width group by static selects, not a gather: the gradient of a gather
        # is a scatter-add, which is serial (and slow) on the CPU.
        spread = beta_r[:, :, :1]
        for g in range(1, beta_r.shape[2]):
            spread = jnp.where(jnp.asarray(group == g)[None, None, :], beta_r[:, :, g:g + 1],
                               spread)
        coef = spread * harmonics(u1 * offset_r, terms)[0]                   # (K, r, k_in)
        r, k_in = offset_r.shape
        out = jax.lax.dot_general(basis, coef.reshape(terms, r * k_in), (((1,), (0,)), ((), ())),
                                  precision=jax.lax.Precision.HIGHEST)       # (T, r k_in)
        return finish(out.T.reshape(r, k_in, -1))

    n = offset.shape[0]
    if block is None or block >= n:
        return rows(beta, offset)
    nc = -(-n // block)
    pad = nc * block - n
    beta = jnp.pad(beta, ((0, 0), (0, pad), (0, 0))).reshape(terms, nc, block, -1)
    offset = jnp.pad(offset, ((0, pad), (0, 0))).reshape(nc, block, -1)
    out = jax.lax.map(lambda xs: rows(*xs), (jnp.moveaxis(beta, 1, 0), offset))
    return jax.tree_util.tree_map(lambda y: y.reshape((nc * block,) + y.shape[2:])[:n], out)


# --- number of terms ------------------------------------------------------------------------

def hoeffding_mass_bound() -> float:
    """Mass outside the window on one side (at most)."""
    return math.exp(-2.0 * HOEFFDING * HOEFFDING)
