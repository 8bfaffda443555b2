"""Shared pieces of the compiled (numba) exact kernels: the decorator, a vectorisable
``x log2 x`` and ``cos`` / ``sin`` on ``[0, pi]``, the start of a rotation, a column's series
window, and running a kernel over a layer's columns on every core.

numba imports in about 0.2 s, so only the modules that need it import this one (lazily, at
their first call). The elementary functions here exist because numba without Intel's SVML
calls libm one element at a time; these are straight-line float64 arithmetic that LLVM
vectorises (``x log2 x`` ~4x faster than libm's ``log2`` here, within 4e-16 relative).
"""

import concurrent.futures
import math

import numba
import numpy as np
from numba.core import types
from numba.extending import intrinsic

from ei_jax._src.base.cores import core_count
from ei_jax._src.base.progress import progress_bar
from ei_jax._src.exact.sums import HOEFFDING


def jit(fn=None, *, inline="never", contract=False):
    """``numba.njit`` with an on-disk cache (next to the source, or numba's user-wide cache
    directory where that is read-only), releasing the GIL (callers run threads), with
    NumPy's float error model (``x / 0`` is ``inf``; no zero-division branch, so loops
    vectorise). ``contract``: let LLVM fuse multiply-adds (the pairwise kernels; the vector
    EI kernels keep plain IEEE operations).

    Where numba finds no writable cache location at all it raises at decoration time: then
    the function is compiled in each process instead (a few seconds), never an error."""
    if fn is None:
        return lambda f: jit(f, inline=inline, contract=contract)
    kw = dict(nogil=True, error_model="numpy", inline=inline,
              fastmath={"contract"} if contract else False)
    try:
        return numba.njit(cache=True, **kw)(fn)
    except RuntimeError:
        return numba.njit(**kw)(fn)


@intrinsic
def _bits(typingctx, x):
    """The IEEE bits of a float64 as an int64 (an LLVM bitcast: free, vectorisable)."""
    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], context.get_value_type(types.int64))
    return types.int64(types.float64), codegen


@intrinsic
def _float(typingctx, x):
    """The float64 whose IEEE bits are the int64 ``x``."""
    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], context.get_value_type(types.float64))
    return types.float64(types.int64), codegen


@jit(inline="always", contract=True)
def _horner(z, c):
    """``c[0] + c[1] z + ... + c[-1] z^(len - 1)`` (``c`` a tuple of floats)."""
    p = c[len(c) - 1]
    for k in range(len(c) - 2, -1, -1):
        p = p * z + c[k]
    return p


_INV_LN2 = 1.0 / math.log(2.0)
_TWO54 = 2.0 ** 54
_TINY = 2.2250738585072014e-308            # the smallest normal float64
# 1 / (2k + 1), k = 1 .. 11: the atanh series ln m = 2 (s + s^3/3 + ...), |s| <= 0.1716
_ATANH = tuple(1.0 / (2 * k + 1) for k in range(1, 12))


@jit(inline="always", contract=True)
def xlog2x(x):
    """``x log2 x``, 0 for ``x <= 0``: ``x = 2^e m`` from the bits (subnormals scaled first),
    ``m`` in ``[1/sqrt 2, sqrt 2)``, ``ln m = 2 atanh(s)``, ``s = (m - 1) / (m + 1)`` by its
    series to ``s^23`` (truncation < 1e-17). Relative error < 4e-16 (tested against NumPy)."""
    tiny = x < _TINY
    xs = x * _TWO54 if tiny else x
    b = _bits(xs)
    e = ((b >> 52) & 0x7ff) - (1023 + 54 if tiny else 1023)
    m = _float((b & 0x000fffffffffffff) | 0x3ff0000000000000)
    big = m > 1.4142135623730951
    m = m * 0.5 if big else m
    e = e + 1 if big else e
    f = m - 1.0
    s = f / (2.0 + f)
    z = s * s
    ln_m = 2.0 * s + 2.0 * s * (z * _horner(z, _ATANH))
    return x * (e + ln_m * _INV_LN2) if x > 0 else 0.0


# Taylor coefficients of sin and cos at 0 to degree 25 / 24: on |y| <= pi/2 the remainder
# is below 1e-18.
_S = tuple((-1.0) ** k / math.factorial(2 * k + 1) for k in range(13))
_C = tuple((-1.0) ** k / math.factorial(2 * k) for k in range(13))
_HALF_PI = 0.5 * math.pi


@jit(inline="always", contract=True)
def cos_sin_0pi(th):
    """``(cos th, sin th)`` for ``th`` in ``[0, pi]`` (absolute error ~2e-16): polynomials in
    ``y = th - pi/2``, ``cos th = -sin y``, ``sin th = cos y``."""
    y = th - _HALF_PI
    z = y * y
    return -(y * _horner(z, _S)), _horner(z, _C)


@jit(inline="always", contract=True)
def rotation_start(x):
    """``(cos x, sin x, cos x, sin x)`` of each ``x``: the steps of a rotation ``k x -> (k + 1) x``
    and its state at ``k = 1``."""
    n = x.shape[0]
    c1 = np.empty(n)
    s1 = np.empty(n)
    c = np.empty(n)
    s = np.empty(n)
    for l in range(n):
        c1[l] = math.cos(x[l])
        s1[l] = math.sin(x[l])
        c[l] = c1[l]
        s[l] = s1[l]
    return c1, s1, c, s


@jit(inline="always", contract=True)
def window(v, span, c, b, tfin, tau):
    """A column's window (:func:`ei_jax._src.exact.sums.window_half_width` and
    :func:`ei_jax._src.exact.conditionals.cdf_series`) and the finite thresholds' places in
    it (``tau``): ``(sd, root, dmax, hoeffding, half, width, u1, lower)``, ``sd`` / ``root`` /
    ``dmax`` the sum, root sum of squares and largest of the inputs' range widths."""
    sd = 0.0
    sd2 = 0.0
    dmax = 0.0
    sv = 0.0
    for l in range(v.shape[0]):
        dl = abs(v[l]) * span
        sd += dl
        sd2 += dl * dl
        dmax = max(dmax, dl)
        sv += v[l]
    root = math.sqrt(sd2) if sd2 > 0 else 0.0
    hoeffding = 0.5 * dmax + HOEFFDING * root
    half = min(0.5 * sd, hoeffding)
    width = 2.0 * half if half > 0 else 1.0
    u1 = math.pi / width
    lower = b + c * sv - half
    for f in range(tfin.shape[0]):
        tau[f] = min(max(tfin[f] - lower, 0.0), width)
    return sd, root, dmax, hoeffding, half, width, u1, lower


def over_columns(kernel, *args, columns, work, desc):
    """Runs ``kernel(*args, start, stop)`` over blocks ``[start, stop)`` of ``columns`` on every
    core (threads; the kernels hold no GIL), or on this thread alone when ``work`` (any unit)
    is below 1e6. Blocks of about a sixteenth of each thread's share, so the threads finish
    together and the automatic progress bar (on a terminal, once the call has lasted a few
    seconds: :func:`~ei_jax._src.base.progress.progress_bar`) moves."""
    threads = core_count() if work >= 1e6 else 1
    size = max(1, -(-columns // (16 * threads)))
    blocks = [(s, min(s + size, columns)) for s in range(0, columns, size)]
    with progress_bar(columns, enabled=None, desc=desc, unit="column") as bar:
        if threads == 1:
            for start, stop in blocks:
                kernel(*args, start, stop)
                bar.update(stop - start)
            return
        with concurrent.futures.ThreadPoolExecutor(threads) as pool:
            done = {pool.submit(kernel, *args, start, stop): stop - start for start, stop in blocks}
            for future in concurrent.futures.as_completed(done):
                future.result()
                bar.update(done[future])
