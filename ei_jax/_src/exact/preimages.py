"""deep-ei's pairwise bins in the continuum limit: input-bin masses and output thresholds.

Static NumPy float64 (they depend on ranges, bin counts and the activation only):

* input bins: deep-ei's widened edges ``e_i = lo - 1e-6 + i (hi - lo + 2e-6) / k``, clipped to
  ``[lo, hi]`` where the uniform input lives, so the end bins are ~1e-6 narrower;
* output thresholds in pre-activation space: ``y = f(z)`` falls in bin ``j`` iff
  ``t_j <= z < t_{j+1}`` with ``t = f^{-1}(e)``, ``-inf`` / ``+inf`` where an edge is below /
  above the range of ``f`` (for ReLU every ``z <= 0`` lands in the bin that holds 0); ``f^{-1}``
  and the range come from the activation registry (:mod:`ei_jax._src.model.activations`);
  ``z < t_0`` or ``z >= t_k`` is outside the output range and dropped from the pair.
"""

import numpy as np

from ei_jax._src.info.binning import make_binning
from ei_jax._src.model import activations as _act
from ei_jax._src.base.errors import UnknownActivationError

#: deep-ei's widening of the pairwise histogram range.
WIDEN = 1e-6


def widened_edges(lo: float, hi: float, k: int) -> np.ndarray:
    """deep-ei's pairwise edges: ``[lo - 1e-6, hi + 1e-6)`` split into ``k`` bins (float64)."""
    xmin, xmax = lo - WIDEN, hi + WIDEN
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
    """Activations with a computable preimage (all non-decreasing): the registry's exact ones."""
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


def output_thresholds(activation, out_range, out_bins) -> np.ndarray:
    """Pre-activation thresholds ``t`` ``(k+1,)`` of deep-ei's output bins (float64, may be inf)."""
    b = make_binning("out_bins", out_range, out_bins, mode="pair")
    t = _preimage(_act.REGISTRY[canonical_exact_activation(activation)],
                  widened_edges(b.lo, b.hi, b.bins))
    return t
