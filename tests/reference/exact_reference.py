"""Independent high-accuracy reference for the exact pairwise measures (tests only).

It shares no code with ``ei_jax._src.exact_*`` and takes other routes:

* thresholds: the output activation is applied forwards and each bin edge's preimage is found
  by bisection (the library uses closed-form inverses);
* the joint ``P(i, j)`` is built from ``Q(i, T) = int_{bin i} F_S(T - b - w x) dx`` (SPEC §8's
  antiderivative form, divided by ``w``; the library never divides by ``w``), with
  - :func:`vertex_G`: the closed form of ``G = int F_S`` for a sum of few uniforms (the sum
    over the ``2^n`` vertices of truncated powers) in extended precision (``np.longdouble``),
    for ``n_in <= 10``;
  - :func:`gil_pelaez_F`: for many inputs, ``F_S`` from the Gil-Pelaez inversion integral by
    Gauss-Legendre quadrature and ``Q`` by Gauss-Legendre quadrature over the input bin (the
    library uses a cosine series on a window);
* the MI of the renormalised joint in float64.
"""

import itertools
import math

import numpy as np

WIDEN = 1e-6

ACTIVATIONS = {
    "identity": lambda z: z,
    "sigmoid": lambda z: 0.5 * (1.0 + np.tanh(0.5 * z)),
    "tanh": np.tanh,
    "relu": lambda z: np.maximum(z, 0.0),
}


def edges(lo, hi, k):
    xmin, xmax = lo - WIDEN, hi + WIDEN
    return np.array([xmin + (xmax - xmin) * j / k for j in range(k + 1)])


def thresholds(activation, out_range, k, zbound=1e3):
    """``t_j = inf {z : f(z) >= e_j}`` by bisection (+-inf if never / always)."""
    f = ACTIVATIONS[activation]
    out = []
    for e in edges(*out_range, k):
        if f(-zbound) >= e:
            out.append(-math.inf)
            continue
        if f(zbound) < e:
            out.append(math.inf)
            continue
        a, b = -zbound, zbound          # f(a) < e <= f(b)
        for _ in range(200):
            mid = 0.5 * (a + b)
            if mid in (a, b):
                break
            if f(mid) >= e:
                b = mid
            else:
                a = mid
        out.append(b)
    return np.array(out)


def _mi(joint):
    joint = np.maximum(joint, 0.0)
    total = joint.sum()
    if total <= 1e-9:          # no kept mass (what is left is the rounding of the vertex sums)
        return math.nan
    p = joint / total
    r, c = p.sum(1), p.sum(0)
    nz = p > 0
    return float(max(np.sum(p[nz] * np.log2(p[nz] / np.outer(r, c)[nz])), 0.0))


# --- the vertex closed form ------------------------------------------------------------------

def _vertex_sum(y, widths, power):
    """``sum_J (-1)^{|J|} (y - sum_J d)_+^power / (power! prod d)`` over the 2^n vertices."""
    y = np.asarray(y, np.longdouble)
    d = [np.longdouble(x) for x in widths if x > 0]
    total = np.zeros(y.shape, np.longdouble)
    for subset in itertools.product((0, 1), repeat=len(d)):
        shift = sum((di for di, s in zip(d, subset) if s), np.longdouble(0))
        sign = -1 if sum(subset) % 2 else 1
        r = y - shift
        total += sign * (np.where(r > 0, 1, 0) if power == 0 else np.maximum(r, 0) ** power)
    norm = np.longdouble(math.factorial(power))
    for di in d:
        norm *= di
    return total / norm


def vertex_G(y, widths):
    """``G(y) = int_{-inf}^y F(s) ds``, ``F`` the CDF of ``sum_l d_l U_l`` (longdouble).

    ``G(y) = sum_J (-1)^{|J|} (y - sum_J d)_+^{n+1} / ((n+1)! prod d)``; ``n = 0`` gives ``y_+``.
    """
    return _vertex_sum(y, widths, sum(1 for x in widths if x > 0) + 1)


def vertex_F(y, widths):
    """The CDF itself, ``sum_J (-1)^{|J|} (y - sum_J d)_+^n / (n! prod d)``."""
    return _vertex_sum(y, widths, sum(1 for x in widths if x > 0))


def _Q_vertex(T, w, b, s0, widths, a):
    """``Q(i, T)`` for all bins (rows) and thresholds (columns), longdouble."""
    Tf = np.where(np.isfinite(T), T, 0.0).astype(np.longdouble)
    arg = Tf[None, :] - np.longdouble(b) - np.longdouble(s0) - np.longdouble(w) * a.astype(np.longdouble)[:, None]
    G = vertex_G(arg, widths)                                    # (k_in + 1, T)
    h = np.diff(a).astype(np.longdouble)[:, None]
    if w != 0:
        q = (G[:-1] - G[1:]) / np.longdouble(w)
    else:
        q = h * vertex_F(arg[:-1], widths)
    q = np.where(T[None, :] == np.inf, h, np.where(T[None, :] == -np.inf, 0.0, q))
    return q.astype(np.float64)


def _split(v, lo, hi):
    """``sum v_l x_l = s0 + sum d_l U_l`` with ``d_l >= 0``, ``U_l ~ U(0, 1)``."""
    v = np.asarray(v, np.float64)
    return float(np.sum(np.minimum(v * lo, v * hi))), list(np.abs(v) * (hi - lo))


# --- Gil-Pelaez for many summands --------------------------------------------------------------

def _gauss(n):
    x, w = np.polynomial.legendre.leggauss(n)
    return 0.5 * (x + 1.0), 0.5 * w          # on [0, 1]


def gil_pelaez_F(y, mean, widths):
    """CDF of ``mean + sum_l d_l (U_l - 1/2)`` at ``y`` by the Gil-Pelaez integral.

    ``F(y) = 1/2 + (1/pi) int_0^inf sin(u (y - mean)) prod_l sinc(u d_l / 2) / u du``, by
    16-point Gauss-Legendre panels up to where the sinc-product bound is below 1e-17.
    """
    d = np.asarray([x for x in widths if x > 0], np.float64)
    y = np.asarray(y, np.float64) - mean
    s2 = float(np.sum(d * d))
    half = min(0.5 * d.sum(), 4.6 * math.sqrt(s2))
    yc = np.clip(y, -half, half)
    # u_max: bound log|sinc x| <= -x^2/6 (x <= pi), -log x (x > pi)
    u = 1.0
    while True:
        x = 0.5 * d * u
        logb = np.sum(np.where(x <= np.pi, -x * x / 6, -np.log(x)))
        if logb < -40:
            break
        u *= 1.1
    panels = int(math.ceil(u * half / (2 * math.pi))) + 4   # 16 nodes per period
    gx, gw = _gauss(16)
    nodes = ((np.arange(panels)[:, None] + gx[None, :]) * (u / panels)).ravel()
    weights = np.tile(gw * (u / panels), panels)
    rho = np.prod(np.sinc(0.5 * d[:, None] * nodes[None, :] / np.pi), axis=0)
    kern = rho * weights / nodes
    flat = yc.ravel()
    out = np.empty(flat.shape)
    for s in range(0, flat.size, 4096):
        out[s:s + 4096] = 0.5 + np.sin(np.outer(flat[s:s + 4096], nodes)) @ kern / np.pi
    out = out.reshape(y.shape)
    return np.where(y >= half, 1.0, np.where(y <= -half, 0.0, out))


def _Q_gil(T, w, b, s_mean, widths, a, nodes=10):
    gx, gw = _gauss(nodes)
    h = np.diff(a)
    xs = a[:-1, None] + h[:, None] * gx[None, :]                # (k_in, g)
    Tf = np.where(np.isfinite(T), T, 0.0)
    y = Tf[None, None, :] - b - w * xs[:, :, None]               # (k_in, g, T)
    F = gil_pelaez_F(y, s_mean, widths)
    q = np.einsum("igt,g->it", F, gw) * h[:, None]
    return np.where(T[None, :] == np.inf, h[:, None], np.where(T[None, :] == -np.inf, 0.0, q))


# --- the matrices --------------------------------------------------------------------------------

def ei_parts_matrix(kernel, bias, *, activation, in_range, in_bins, out_range, out_bins,
                    sensitivity=False, method="auto"):
    """Reference exact EI_parts (or sensitivity) matrix ``(n_in, n_out)``; NaN for empty pairs."""
    kernel = np.asarray(kernel, np.float64)
    n, m = kernel.shape
    bias = np.zeros(m) if bias is None else np.asarray(bias, np.float64)
    lo, hi = in_range
    a = np.clip(edges(lo, hi, in_bins), lo, hi)
    T = thresholds(activation, out_range, out_bins)
    if method == "auto":
        method = "vertex" if (sensitivity or n <= 10) else "gil"
    out = np.zeros((n, m))
    for B in range(m):
        for A in range(n):
            w = kernel[A, B]
            others = np.zeros(0) if sensitivity else np.delete(kernel[:, B], A)
            if method == "vertex":
                s0, widths = _split(others, lo, hi)
                q = _Q_vertex(T, w, bias[B], s0, widths, a)
            else:
                q = _Q_gil(T, w, bias[B], 0.5 * (lo + hi) * others.sum(),
                           np.abs(others) * (hi - lo), a)
            out[A, B] = _mi(np.diff(q, axis=1) / (hi - lo))
    return out
