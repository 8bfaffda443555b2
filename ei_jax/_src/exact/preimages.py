"""deep-ei's pairwise bins in the continuum limit: input-bin masses and output thresholds.

Static NumPy float64 (they depend on ranges, bin counts and the activation only):

* input bins: deep-ei's widened edges ``e_i = lo - 1e-6 + i (hi - lo + 2e-6) / k``, clipped to
  ``[lo, hi]`` where the uniform input lives, so the end bins are ~1e-6 narrower;
* output thresholds in pre-activation space: ``y = f(z)`` falls in bin ``j`` iff
  ``t_j <= z < t_{j+1}`` with ``t = f^{-1}(e)``, ``-inf`` / ``+inf`` where an edge is below /
  above the range of ``f`` (for ReLU every ``z <= 0`` lands in the bin that holds 0); ``f^{-1}``
  and the range come from the activation registry (:mod:`ei_jax._src.model.activations`);
  ``z < t_0`` or ``z >= t_k`` is outside the output range and dropped from the pair.
* a non-monotone ``f`` (GELU, SiLU, mish: registry entries with a ``host_fn`` and turning
  points) is monotone on each *piece* between its turning points. On piece ``p`` the set
  ``{f(z) < e}`` is ``[a_p, x_p(e))`` where ``f`` rises and ``(x_p(e), b_p]`` where it falls,
  with ``x_p(e)`` the branch inverse clamped to the piece (found by bisection in float64), so

  .. math::
     P(y \\in [e_j, e_{j+1})) = \\sum_p s_p \\left[F(x_p(e_{j+1})) - F(x_p(e_j))\\right],
     \\quad s_p = \\pm 1 \\text{ (rising / falling)}:

  a signed sum of CDF values at the extended thresholds ``T = [x_1(e), x_2(e), ...]``. An edge
  below the minimum leaves a piece empty (``x_p`` at the turning point), one above a piece's
  values takes all of it (``x_p`` at its far end, ``+-inf`` for an unbounded piece). The
  monotone activations are the case of one rising piece, ``T = t``: :class:`OutputBins`.
"""

import dataclasses
import functools

import jax.numpy as jnp
import numpy as np

from ei_jax._src.info.binning import PAIR_WIDEN, make_binning
from ei_jax._src.model import activations as _act
from ei_jax._src.base.errors import UnknownActivationError



def widened_edges(lo: float, hi: float, k: int) -> np.ndarray:
    """deep-ei's pairwise edges: ``[lo - 1e-6, hi + 1e-6)`` split into ``k`` bins (float64)."""
    xmin, xmax = lo - PAIR_WIDEN, hi + PAIR_WIDEN
    return xmin + np.arange(k + 1, dtype=np.float64) * ((xmax - xmin) / k)


def input_bins(in_range, in_bins):
    """Input bins of a uniform input.

    Returns:
      ``(a, h, m, p)``: clipped edges ``(k+1,)``, widths, centres and probabilities
      ``h / (hi - lo)`` ``(k,)``, float64.
    """
    b = make_binning("in_bins", in_range, in_bins, mode="pair")
    a = np.clip(widened_edges(b.lo, b.hi, b.bins), b.lo, b.hi)
    h = np.diff(a)
    return a, h, 0.5 * (a[:-1] + a[1:]), h / (b.hi - b.lo)


def _with_limits(e, inside, low_out, high_out, inverse):
    """``inverse(e)`` where ``inside``, -inf where ``low_out``, +inf where ``high_out``."""
    t = np.full(e.shape, np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(inside, inverse(np.where(inside, e, 0.5)), t)
    return np.where(low_out, -np.inf, np.where(high_out, np.inf, t))


def _preimage(entry, e):
    """``inf {z : f(z) >= e}`` per edge: the inverse inside the open image, +-inf outside it."""
    lo, hi = entry.image
    return _with_limits(e, (e > lo) & (e < hi), e <= lo, e >= hi, entry.inverse)


def exact_activations() -> tuple[str, ...]:
    """Activations with a computable preimage: the registry's exact ones (an inverse of a
    non-decreasing function, or the pieces of a piecewise-monotone one)."""
    return tuple(e.name for e in _act.REGISTRY.values() if e.exact)


def canonical_exact_activation(activation) -> str:
    """Maps None / 'linear' / 'none' to 'identity'; checks the name is one exact supports."""
    if activation is None:
        return "identity"
    if not isinstance(activation, str):
        raise UnknownActivationError(
            f"activation must be a name, one of {sorted(exact_activations())}. Got {activation!r}; "
            "for other functions use the sampled measure (ei_jax.ei_parts(key, ...))."
        )
    entry = _act.lookup(activation)
    if entry is None or not entry.exact:
        name = activation.lower() if entry is None else entry.name
        raise UnknownActivationError(
            f"The exact measures know the preimages of {sorted(exact_activations())}; got activation "
            f"{name!r}. Use the sampled measure (ei_jax.ei_parts(key, ...)) for other activations."
        )
    return entry.name


@dataclasses.dataclass(frozen=True, eq=False)
class OutputBins:
    """The preimage of deep-ei's output bins in pre-activation space (static, float64).

    Attributes:
      t: ``(P * (k + 1),)`` thresholds, piece by piece (may be +-inf); ``F`` is evaluated there.
      signs: ``(P,)`` +1 (the piece rises) / -1 (it falls): output bin ``j``'s mass is
        ``sum_p signs[p] * (F(t[p, j+1]) - F(t[p, j]))`` (:func:`bin_masses`).
      kept: ``P`` intervals ``(lo, hi)`` of ``z`` whose output is inside the output range.
    """

    t: np.ndarray
    signs: tuple[int, ...]
    kept: tuple[tuple[float, float], ...]

    @property
    def monotone(self) -> bool:
        """One rising piece: bin ``j`` is ``t_j <= z < t_{j+1}``."""
        return self.signs == (1,)

    def empty(self, zmin, zmax, xp=jnp):
        """No mass kept for ``z`` uniform-ish on ``[zmin, zmax]`` (a point if equal)."""
        out = None
        for t0, tk in self.kept:
            e = xp.where(zmax > zmin, (zmax <= t0) | (zmin >= tk), (zmin < t0) | (zmin >= tk))
            out = e if out is None else out & e
        return out


def bin_masses(cdf, signs):
    """Unnormalised output-bin masses from CDF values at :attr:`OutputBins.t` (last axis).

    Args:
      cdf: ``(..., P * (k + 1))``; signs: :attr:`OutputBins.signs`.

    Returns:
      ``(..., k)``: the differences for a monotone activation, else their signed sum over pieces.

    Example:
      >>> import jax.numpy as jnp
      >>> from ei_jax._src.exact.preimages import bin_masses
      >>> bin_masses(jnp.array([0.0, 0.3, 1.0]), (1,))
      Array([0.3, 0.7], dtype=float32)
      >>> bin_masses(jnp.array([0.5, 0.25, 0.0, 0.5, 0.75, 1.0]), (-1, 1))   # two pieces
      Array([0.5, 0.5], dtype=float32)
    """
    if signs == (1,):
        return jnp.diff(cdf, axis=-1)
    k1 = cdf.shape[-1] // len(signs)
    parts = [s * jnp.diff(cdf[..., p * k1:(p + 1) * k1], axis=-1) for p, s in enumerate(signs)]
    return functools.reduce(jnp.add, parts)


def _bisect(fn, lo, hi, e, rising):
    """The float64 crossing of ``f = e`` in each bracket ``[lo, hi]``: for a rising piece the
    least ``z`` with ``f(z) >= e``, for a falling one the greatest (``f(lo) < e <= f(hi)`` /
    ``f(lo) >= e > f(hi)`` on entry)."""
    for _ in range(2200):
        mid = 0.5 * (lo + hi)
        done = (mid <= lo) | (mid >= hi)
        if np.all(done):
            break
        above = fn(mid) >= e
        move_hi = above if rising else ~above
        hi, lo = np.where(move_hi & ~done, mid, hi), np.where(~move_hi & ~done, mid, lo)
    return hi if rising else lo


def _finite_end(fn, z, e, want, step):
    """Moves the infinite end of a bracket from ``z`` by ``step * 2^i`` until ``(f >= e) == want``."""
    z, step = z.copy(), np.full_like(z, step)
    for _ in range(1100):
        bad = (fn(z) >= e) != want
        if not np.any(bad):
            break
        z, step = np.where(bad, z + step, z), step * 2.0
    return z


def _branch(entry, a, b, e):
    """``x_p(e)`` on the piece ``[a, b]`` (ends may be infinite), and whether it rises."""
    fn = entry.host_fn
    with np.errstate(all="ignore"):
        fa = entry.ends[0] if np.isneginf(a) else float(fn(np.float64(a)))
        fb = entry.ends[1] if np.isposinf(b) else float(fn(np.float64(b)))
        rising = fb > fa
        # rising: {f < e} = [a, x); falling: {f < e} = (x, b]. A limit at an infinite end is
        # not attained, so an edge at it takes the whole piece.
        if rising:
            at_a, at_b = e <= fa, (e > fb) | (np.isposinf(b) & (e >= fb))
        else:
            at_a, at_b = (e > fa) | (np.isneginf(a) & (e >= fa)), e <= fb
        root = ~(at_a | at_b)
        er = np.where(root, e, 0.5 * (fa + fb) if np.isfinite(fa + fb) else 0.0)
        base = 0.0 if not np.isfinite(a) and not np.isfinite(b) else (b if np.isneginf(a) else a)
        lo = np.full_like(e, a) if np.isfinite(a) else _finite_end(
            fn, np.full_like(e, base - 1.0), er, not rising, -1.0)
        hi = np.full_like(e, b) if np.isfinite(b) else _finite_end(
            fn, np.full_like(e, base + 1.0), er, rising, 1.0)
        x = _bisect(fn, lo, hi, er, rising)
    return np.where(at_a, a, np.where(at_b, b, x)), rising


def _pieces_preimage(entry, e):
    """:class:`OutputBins` of a piecewise-monotone activation for the edges ``e``."""
    ends = (-np.inf, *entry.turning_points, np.inf)
    ts, signs, kept = [], [], []
    for a, b in zip(ends[:-1], ends[1:]):
        x, rising = _branch(entry, a, b, e)
        ts.append(x)
        signs.append(1 if rising else -1)
        kept.append((float(min(x[0], x[-1])), float(max(x[0], x[-1]))))
    t = np.concatenate(ts)
    t.flags.writeable = False
    return OutputBins(t, tuple(signs), tuple(kept))


@functools.lru_cache(maxsize=256)
def output_bins(activation, out_range, out_bins) -> OutputBins:
    """The pre-activation preimage of deep-ei's ``out_bins`` output bins (cached, static).

    Args:
      activation: an exact activation's name; out_range: ``(lo, hi)``; out_bins: ``k``.

    Returns:
      :class:`OutputBins`; for a monotone activation ``t`` is :func:`output_thresholds`.

    Example:
      >>> from ei_jax._src.exact.preimages import output_bins
      >>> ob = output_bins("silu", (-0.28, 10.0), 4)
      >>> ob.signs, ob.t.shape                    # falling then rising: two pieces of 5 edges
      ((-1, 1), (10,))
      >>> bool(ob.t[0] == ob.t[5] == -1.2784645427610738)  # the lowest edge is below the minimum
      True
    """
    entry = _act.REGISTRY[canonical_exact_activation(activation)]
    if entry.host_fn is None:
        t = output_thresholds(activation, out_range, out_bins)
        return OutputBins(t, (1,), ((t[0], t[-1]),))
    b = make_binning("out_bins", out_range, out_bins, mode="pair")
    return _pieces_preimage(entry, widened_edges(b.lo, b.hi, b.bins))


def output_thresholds(activation, out_range, out_bins) -> np.ndarray:
    """Pre-activation thresholds ``t`` ``(k+1,)`` of deep-ei's output bins (float64, may be inf)
    for a monotone activation (the others: :func:`output_bins`)."""
    b = make_binning("out_bins", out_range, out_bins, mode="pair")
    t = _preimage(_act.REGISTRY[canonical_exact_activation(activation)],
                  widened_edges(b.lo, b.hi, b.bins))
    return t
