"""Conditional CDFs of a layer's pre-activation given one input's bin, at the output thresholds.

For one output column with weights ``v`` and bias ``b``, ``F[A, i, j]`` is the probability
that ``z = b + sum_l v_l x_l`` lies below the threshold ``t_j`` while ``x_A`` is uniform on
input bin ``i`` and the other inputs are uniform on the input range (or 0, for
sensitivity). Three routes by the fan-in (static): a point mass (one input, or sensitivity),
the trapezoid closed form (two or three inputs), the cosine series (four or more); see
:mod:`ei_jax._src.exact.sums`. Thresholds of +-inf give exactly 1 / 0.
"""

import jax.numpy as jnp
import numpy as np

from ei_jax._src.exact import sums


def _finite(t):
    """The finite thresholds of a static 1-D ``t`` (not necessarily sorted), as an array."""
    t = np.asarray(t)
    fin = np.isfinite(t)
    return jnp.asarray(t[fin] if fin.any() else np.zeros(1))


def _fill(t, val):
    """``val (..., T_finite)`` at the finite thresholds of ``t``, 1 / 0 at +inf / -inf."""
    t = np.asarray(t)
    fin = np.isfinite(t)
    if fin.all():
        return val
    where = np.cumsum(fin) - 1
    cols = [val[..., where[j]:where[j] + 1] if fin[j]
            else jnp.full(val.shape[:-1] + (1,), 1.0 if t[j] > 0 else 0.0, val.dtype)
            for j in range(t.shape[0])]
    return jnp.concatenate(cols, axis=-1)


def _at_thresholds(t, fn):
    """``fn`` at the finite thresholds only (``(T_finite,)`` to ``(..., T_finite)``), with 1 / 0
    at thresholds of +inf / -inf."""
    return _fill(t, fn(_finite(t)))


def _uniform_cdf(zlo, zhi, t):
    """CDF at ``t (T,)`` of uniforms on ``[zlo, zhi]`` ``(..., )`` (point masses if equal)."""
    width = zhi - zlo
    ok = width > 0
    t = t.reshape((1,) * zlo.ndim + (-1,))
    frac = jnp.clip((t - zlo[..., None]) / jnp.where(ok, width, 1.0)[..., None], 0.0, 1.0)
    return jnp.where(ok[..., None], frac, (t > zlo[..., None]).astype(t.dtype))


def cdf_point_sum(v, b, s_mean, a, t):
    """S a point mass at ``s_mean``: z | bin i uniform on ``b + s + v a_i .. b + s + v a_{i+1}``."""
    z0 = b + s_mean[:, None] + v[:, None] * a[None, :-1]
    z1 = b + s_mean[:, None] + v[:, None] * a[None, 1:]
    return _at_thresholds(t, lambda tt: _uniform_cdf(jnp.minimum(z0, z1), jnp.maximum(z0, z1), tt))


def cdf_trapezoid(v, b, lo, hi, a, t):
    """``n_in`` = 2 or 3: the other inputs' sum is a uniform or a trapezoid (closed form)."""
    n = v.shape[0]
    others = np.array([[l for l in range(n) if l != A] for A in range(n)])       # (n, n-1)
    vo = v[others]
    d = jnp.abs(vo) * (hi - lo)
    d1 = jnp.max(d, axis=1)
    d2 = jnp.min(d, axis=1) if n == 3 else jnp.zeros_like(d1)
    s_mean = 0.5 * (lo + hi) * jnp.sum(vo, axis=1)

    def fn(tt):
        base = tt[None, None, :] - b - s_mean[:, None, None]                   # (n, 1, T)
        p_end = base - v[:, None, None] * a[None, :-1, None]
        q_end = base - v[:, None, None] * a[None, 1:, None]
        return sums.trapezoid_interval_mean(p_end, q_end, d1[:, None, None], d2[:, None, None])

    return _at_thresholds(t, fn)


def _bin_groups(h):
    """Static: each input bin's index among the distinct widths (end bins are narrower)."""
    widths, group = [], []
    for x in h:
        for g, y in enumerate(widths):
            if abs(x - y) <= 1e-12 * max(abs(x), abs(y)):
                group.append(g)
                break
        else:
            widths.append(float(x))
            group.append(len(widths) - 1)
    return np.array(group), np.array(widths)


#: Bytes of series coefficients per block of inputs (:func:`~ei_jax._src.exact.sums.series_sum`):
#: a block's ``(K, rows, k_in)`` float64 array stays in the cache.
BLOCK_BYTES = 1 << 19


def cdf_series(v, b, lo, hi, m, h, t, terms, active=None, combine=None):
    """``n_in`` >= 4: the cosine series of each conditional CDF on the column's window
    (``terms`` static; ``active``: :func:`~ei_jax._src.exact.sums.series_sum`).

    ``combine``: optional function of a block of inputs' CDFs ``(rows, k_in, T)`` (leading
    axis ``rows``), applied block by block so the full ``(n_in, k_in, T)`` array is never
    formed; None returns the CDFs.
    """
    d = jnp.abs(v) * (hi - lo)
    c = 0.5 * (lo + hi)
    half = sums.window_half_width(d)
    width = jnp.where(half > 0, 2.0 * half, 1.0)
    u1 = jnp.pi / width
    offset = half + v[:, None] * (m[None, :] - c)                               # (n, k_in)
    group, widths = _bin_groups(h)
    lower = b + c * jnp.sum(v) - half
    u = jnp.arange(1, terms + 1, dtype=v.dtype) * u1
    tau = jnp.clip(_finite(t) - lower, 0.0, width)                              # (T,)
    basis = jnp.sin(tau[:, None] * u[None, :])                                  # (T, K)
    combine = (lambda x: x) if combine is None else combine

    def finish(series):
        return combine(_fill(t, (tau / width)[None, None, :] + series))

    block = max(1, BLOCK_BYTES // (8 * terms * m.shape[0]))
    return sums.series_sum(u1, 0.5 * d, jnp.abs(v), offset, group, widths, terms, basis, active,
                           finish=finish, block=block)
