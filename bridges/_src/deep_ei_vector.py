"""deep-ei's vector binning of outputs below ``out_range``: kept, as extra bins.

deep-ei bins a vector measure's values with ``i = floor((v - lo) / (hi - lo + 1e-4) * k)`` and
drops a row only if some ``i >= k``: a value below ``lo`` gets a negative index, an extra bin
(an identity layer whose outputs leave ``(0, 1)`` downwards is measured, not refused). ei_jax
drops such rows. The drop-in keeps them by widening the range downwards by a whole number
``m`` of deep-ei's bin widths ``w = (hi - lo + 1e-4) / k``:

    lo' = lo - m w,   k' = k + m,   hi - lo' + 1e-4 = k' w

so ei_jax's bin ``floor((v - lo') / (hi - lo' + 1e-4) * k')`` is deep-ei's bin ``+ m`` (exactly
in real arithmetic; in float32 the two can differ only for a value within a few ulps of a bin
edge), and a row is dropped exactly when deep-ei drops it (some index ``>= k``). Empty extra
bins change no plug-in entropy, so ``m`` only has to cover the lowest output, which
:func:`output_floor` bounds from the weights, the activations and ``in_range``.
"""

import math

import numpy as np

import ei_jax
from bridges._src import deep_ei_activations as acts

__all__ = ["output_floor", "widen"]

#: The most bins ei_jax accepts per neuron (``ei_jax``'s limit).
_MAX_BINS = 1 << 20
#: Grid points per output at which an activation of unknown shape is evaluated.
_GRID = 4097


def _affine(weight, bias, lo, hi, include_zero):
    """The interval of ``sum_i w_i x_i + b`` (per output, then over outputs) for x_i in [lo, hi]."""
    if include_zero:  # zero padding puts 0 among the inputs
        lo, hi = min(lo, 0.0), max(hi, 0.0)
    w = weight.reshape(weight.shape[0], -1)
    b = np.zeros(w.shape[0]) if bias is None else bias
    low = b + np.minimum(w * lo, w * hi).sum(axis=1)
    high = b + np.maximum(w * lo, w * hi).sum(axis=1)
    return float(low.min()), float(high.max())


def _through(module, lo, hi):
    """The interval after one torch module of a span, or None if it cannot be bounded."""
    import torch
    import torch.nn as nn

    if type(module) in (nn.Linear, nn.Conv2d):
        pad = type(module) is nn.Conv2d and module.padding not in ("valid", 0, (0, 0))
        bias = None if module.bias is None else module.bias.detach().double().numpy()
        return _affine(module.weight.detach().double().numpy(), bias, lo, hi, pad)
    if type(module) in (nn.MaxPool2d, nn.AvgPool2d):
        pad = module.padding not in (0, (0, 0))
        return (min(lo, 0.0), max(hi, 0.0)) if pad else (lo, hi)
    if type(module) is nn.Flatten:
        return lo, hi
    name = acts.name_of(module)
    if name is not acts.UNKNOWN:  # a registry activation: monotone between its turning points
        entry = {a.name: a for a in ei_jax.activations()}["identity" if name is None else name]
        points = [lo, hi] + [z for z in entry.turning_points if lo < z < hi]   # GELU's minimum
        with torch.no_grad():
            values = module(torch.tensor(points, dtype=torch.float64)).tolist()
        return min(values), max(values)
    return None


def _lowest(act, lo, hi, n_out):
    """The lowest value of the final activation over pre-activations in ``[lo, hi]``."""
    import jax.numpy as jnp

    if isinstance(act, str):
        entry = {a.name: a for a in ei_jax.activations()}.get(act)
        if entry is not None and entry.inverse is not None:  # invertible, increasing
            return float(np.asarray(entry.fn(jnp.float32(lo))))
        fn = entry.fn if entry is not None else None
    else:
        fn = act
    if fn is None:
        return None
    grid = np.linspace(lo, hi, _GRID, dtype=np.float32)
    grid = np.concatenate([grid, np.zeros(1, np.float32)]) if lo < 0 < hi else grid
    y = np.asarray(fn(jnp.asarray(np.repeat(grid[:, None], n_out, axis=1))), np.float64)
    y = y[np.isfinite(y)]
    return float(y.min()) if y.size else None


def output_floor(mods, act, in_range, n_out):
    """A lower bound of every output of the span ``mods`` followed by ``act``.

    Args:
      mods: the torch modules of the span, in order (layers, pooling, Flatten and the inner
        activation modules).
      act: the final activation as ei_jax takes it: a name or a JAX callable.
      in_range: ``(lo, hi)`` of the inputs.
      n_out: the number of outputs (the width a callable activation is evaluated on).

    Returns:
      float, or None where the span holds a module it cannot bound. Interval arithmetic, so a
      bound, not the minimum; for a callable activation (whose shape is unknown) the lowest
      value on a fine grid of the pre-activation interval.

    Example:
      >>> import torch, torch.nn as nn
      >>> layer = nn.Linear(2, 1, bias=False)
      >>> with torch.no_grad():
      ...     _ = layer.weight.copy_(torch.tensor([[1.0, -2.0]]))
      >>> output_floor([layer], "identity", (0, 1), 1)
      -2.0
    """
    lo, hi = float(in_range[0]), float(in_range[1])
    for module in mods:
        bounds = _through(module, lo, hi)
        if bounds is None:
            return None
        lo, hi = bounds
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return None
    return _lowest(act, lo, hi, n_out)


def widen(out_range, out_bins, floor):
    """deep-ei's vector bins below ``out_range``, as a wider range with more bins.

    Args:
      out_range: deep-ei's ``(lo, hi)``.
      out_bins: deep-ei's ``k``.
      floor: a lower bound of the outputs (:func:`output_floor`), or None.

    Returns:
      ``(range, bins, m)``: ``((lo - m w, hi), k + m, m)`` with ``w = (hi - lo + 1e-4) / k`` and
      ``m`` the number of bins of width ``w`` below ``lo`` that ``floor`` needs, plus one
      (``m = 0``, the range unchanged, when nothing goes below ``lo``).

    Example:
      >>> (lo, hi), k, m = widen((0, 1), 4, -0.3)  # w = 0.250025: 2 bins cover -0.3, 1 spare
      >>> round(lo, 9), hi, k, m
      (-0.750075, 1, 7, 3)
      >>> widen((0, 1), 4, 0.2)
      ((0, 1), 4, 0)
    """
    lo, hi = out_range
    if (floor is None or not math.isfinite(floor) or floor >= lo or isinstance(out_bins, bool)
            or not isinstance(out_bins, (int, np.integer)) or out_bins < 1):
        return out_range, out_bins, 0
    w = (hi - lo + 0.0001) / out_bins
    out_bins = int(out_bins)
    m = min(math.ceil((lo - floor) / w) + 1, _MAX_BINS - out_bins)
    if m <= 0:
        return out_range, out_bins, 0
    return (lo - m * w, hi), out_bins + m, m
