"""Exact (infinite-sample) vector EI of a small layer: polytope volumes, then I(X; Y).

deep-ei's vector binning (``ei_jax.ei``): a value ``v`` of a variable with range ``(lo, hi)``
and ``k`` bins is in bin ``floor((v - lo) / (hi - lo + 1e-4) * k)``, so the bins' edges are
``e_j = lo + j (hi - lo + 1e-4) / k`` and a row with any output index outside ``[0, k)`` is
dropped. Under do(L1 = H^max) the input is uniform on the box ``[lo, hi]^n``, so

* the input cells are boxes ``B`` (the last bin of each input is narrower: it ends at ``hi``),
  each with probability ``vol(B) / (hi - lo)^n``;
* output neuron ``o`` is in bin ``j`` iff ``t_j <= z_o < t_{j+1}`` with ``z = x @ W + b`` and
  ``t = f^{-1}(e)`` (:func:`vector_thresholds`), so an output cell's preimage inside ``B`` is
  ``B`` cut by at most two parallel hyperplanes per neuron: ``P(cell | B)`` is a polytope volume;
* rows with an output outside its range are dropped and the joint renormalised over what is
  kept (the sampled estimator's rule), and ``I(X; Y)`` of that joint is the value the plug-in
  vector EI converges to as the sample count grows.

Within a box most neurons stay in one bin: such a neuron is a constant of the box. A box
where every neuron does is a point mass; a box that one neuron crosses is a closed form; the
others are cut into signed simplices (:mod:`ei_jax._src.exact.box_cells`, compiled with numba,
one box at a time with the mutual information's sums streamed: :mod:`box_stream`) whose
determinants and B-spline distribution functions give the volumes (no sampling). The simplices to expect
are estimated beforehand from each box's range of ``z``: over ``max_work`` (or over
``max_cells`` input cells) it is an :class:`ExactUnavailableError` that gives the figures.
Measured on 2 shared, loaded cores (a thread per core): 3e6-6.4e6 simplices made per second,
4e6-7e7 estimated simplices per second (the paper's Iris layers, 8 bins; the trained 5 -> 5
layer: 3e8 estimated, about 25 s). The first call in a process loads the compiled kernels
from numba's cache (~0.5 s), or compiles them (~10 s on that machine) where the cache is empty.

Host float64 (numba): the number of pieces depends on the weights, so this has no traceable
(jit / vmap / grad) form; stacks of checkpoints are a Python loop over :func:`exact_vector_ei`.
"""

import concurrent.futures
import math
import warnings

import numpy as np

from ei_jax._src.base.cores import core_count
from ei_jax._src.base.errors import (
    EmptyHistogramError,
    ExactUnavailableError,
    InvalidOptionError,
    NonFiniteParamsError,
    OutOfRangeWarning,
    ShapeMismatchError,
)
from ei_jax._src.exact import preimages
from ei_jax._src.exact.measures import exact_layer
from ei_jax._src.info.binning import VECTOR_WIDEN, make_binning
from ei_jax._src.model import activations as _act

#: Default limit on the input cells ``in_bins ** n_in``.
MAX_CELLS = 1 << 20
#: Default limit on the estimated simplices (:func:`box_plan.box_work`); at 1e6 or more
#: estimated simplices per second, up to a minute or so.
MAX_WORK = 50_000_000
_SAMPLED = "use the sampled measure ei_jax.ei(key, topology, layer, ..., stderr=True)"
#: Most output cells one input cell may reach (its dense array: 8 bytes each).
_MAX_BOX_CELLS = 1 << 24
_RATE = "1e6 or more estimated simplices per second"


def vector_edges(lo: float, hi: float, k: int) -> np.ndarray:
    """deep-ei's vector bin edges ``lo + j (hi - lo + 1e-4) / k``, ``j = 0..k`` (float64)."""
    return lo + np.arange(k + 1, dtype=np.float64) * ((hi - lo + VECTOR_WIDEN) / k)


def vector_thresholds(activation, out_range, out_bins) -> np.ndarray:
    """Pre-activation thresholds ``t`` ``(k + 1,)``: ``f(z)`` is in vector bin ``j`` iff
    ``t_j <= z < t_{j+1}`` (``-inf`` / ``+inf`` where an edge is outside ``f``'s image)."""
    b = make_binning("out_bins", out_range, out_bins, mode="vector")
    entry = _act.REGISTRY[preimages.canonical_exact_activation(activation)]
    return preimages._preimage(entry, vector_edges(b.lo, b.hi, b.bins))


def input_cells(in_range, in_bins) -> tuple[np.ndarray, np.ndarray]:
    """``(starts, widths)`` ``(k,)`` of the input cells of one uniform input (float64; the
    last is narrower, ending at ``hi``; a cell that starts beyond ``hi`` has width 0)."""
    b = make_binning("in_bins", in_range, in_bins, mode="vector")
    e = np.minimum(vector_edges(b.lo, b.hi, b.bins), b.hi)
    return e[:-1], np.diff(e)


def _check_layer(kernel, bias):
    """``(kernel (n, m), bias (m,))`` as finite float64 arrays, or a typed error."""
    kernel = np.asarray(kernel, np.float64)
    if kernel.ndim != 2 or 0 in kernel.shape:
        raise ShapeMismatchError(f"kernel must have shape (n_in, n_out). Got {kernel.shape}.")
    bias = np.zeros(kernel.shape[1]) if bias is None else np.asarray(bias, np.float64)
    if bias.shape != (kernel.shape[1],):
        raise ShapeMismatchError(f"bias must have shape (n_out,)=({kernel.shape[1]},). Got {bias.shape}.")
    if not (np.isfinite(kernel).all() and np.isfinite(bias).all()):
        raise NonFiniteParamsError("The kernel or bias has NaN or infinite entries; measure finite weights.")
    return kernel, bias


def _sums(kernel, bias, *, activation, in_range, in_bins, out_range, out_bins, max_cells, max_work):
    """``(I in bits, dropped mass, simplices made, simplices estimated)`` of the joint over
    (input cell, output cell); the bits are NaN when no mass is kept (:mod:`box_stream`)."""
    from ei_jax._src.exact import box_cells, box_stream, simplices    # numba: only when used

    kernel, bias = _check_layer(kernel, bias)
    n, m = kernel.shape
    for name, value in (("max_cells", max_cells), ("max_work", max_work)):
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
                or not value >= 0:
            raise InvalidOptionError(f"{name} must be a number >= 0. Got {value!r}.")
    starts, widths = input_cells(in_range, in_bins)
    t = vector_thresholds(activation, out_range, out_bins)
    cells = len(starts) ** n
    if cells > max_cells:
        raise ExactUnavailableError(
            f"Exact vector EI needs every input cell: in_bins ** n_in = {len(starts)} ** {n} = "
            f"{cells:.3g} cells, more than max_cells={max_cells:.3g}. Use fewer in_bins, or "
            f"{_SAMPLED}.")
    scale = float(in_range[1]) - make_binning("in_bins", in_range, in_bins, mode="vector").lo
    geometry = (kernel, bias, t, starts, widths, scale)
    kappa, fact = float(box_cells.KAPPA_MAX), float(math.factorial(n))
    crossed, pairs, work, most = box_stream.work_estimate(*geometry, kappa, fact)
    if work > max_work or most > _MAX_BOX_CELLS:
        raise ExactUnavailableError(
            f"Exact vector EI of this layer would cut {crossed:,} of its "
            f"{int(np.count_nonzero(widths > 0)) ** n:,} input cells into up to {pairs:.3g} (input "
            f"cell, output cell) pairs ({most:.3g} in one cell), about {work:.3g} simplices in {n} "
            f"dimensions, more than max_work={max_work:.3g}. Pass a larger max_work ({_RATE}), "
            f"use fewer bins, or {_SAMPLED}.")
    args = (*geometry, int(out_bins), kappa, fact, *simplices.packed_templates(n))
    threads = core_count() if work > 1e5 else 1
    if threads == 1:
        parts = [box_stream.mi_sums(*args, 0, 1)]
    else:
        with concurrent.futures.ThreadPoolExecutor(threads) as pool:   # the kernels hold no GIL
            parts = list(pool.map(lambda s: box_stream.mi_sums(*args, s, threads), range(threads)))
    s1, s2, kept, dropped, total, made = (sum(p[i] for p in parts) for i in range(6))
    keys = np.concatenate([p[6][p[8]] for p in parts])
    _, inverse = np.unique(keys, axis=0, return_inverse=True)
    py = np.bincount(inverse.ravel(), weights=np.concatenate([p[7][p[8]] for p in parts]))
    py = py[py > 0]
    dropped = min(1.0, dropped / total) if total > 0 else 1.0
    if not kept > 0:
        return math.nan, dropped, made, work
    mi = ((s1 - s2 - float(np.sum(py * np.log(py)))) / kept + math.log(kept)) / math.log(2)
    return max(mi, 0.0), dropped, made, work


def exact_vector_ei(kernel, bias, *, activation, in_range, in_bins, out_range, out_bins,
                    max_cells=MAX_CELLS, max_work=MAX_WORK, name="layer", stacklevel=2) -> float:
    """Exact vector EI (bits) of ``y = f(x @ kernel + bias)``, ``x`` uniform on ``in_range``.

    The infinite-sample value of ``ei_jax.ei`` (module docstring). Host float64 (numba): not
    traceable, so no ``jit`` / ``vmap`` (see the module docstring for why).

    Args:
      kernel: ``(n_in, n_out)`` weights; bias: ``(n_out,)`` or None.
      activation: an exact activation name (``"sigmoid"``, ``"tanh"``, ``"relu"``, ...).
      in_range, in_bins, out_range, out_bins: as ``ei_jax.ei``.
      max_cells, max_work: limits on the input cells and the estimated simplices.

    Returns:
      float, bits. An :class:`OutOfRangeWarning` gives the mass dropped outside ``out_range``.

    Raises:
      ExactUnavailableError: over a limit. EmptyHistogramError: every output outside.

    Example: two inputs copied to two outputs, 4 bins each: 4 bits.

      >>> import numpy as np
      >>> round(exact_vector_ei(np.eye(2) * 1.0, np.zeros(2), activation="identity",
      ...                       in_range=(0, 1), in_bins=4, out_range=(0, 1), out_bins=4), 3)
      4.0
    """
    mi, dropped, _, _ = _sums(kernel, bias, activation=activation, in_range=in_range, in_bins=in_bins,
                           out_range=out_range, out_bins=out_bins, max_cells=max_cells,
                           max_work=max_work)
    if math.isnan(mi):
        raise EmptyHistogramError(
            f"Layer {name!r}: every output row falls outside out_range={tuple(out_range)}, so the "
            "vector EI is undefined. Widen out_range to cover the outputs.")
    if dropped > 0:
        warnings.warn(
            f"Layer {name!r}: {100 * dropped:.3g}% of the input mass gives an output outside "
            f"out_range={tuple(out_range)}; those rows are dropped (as ei_jax.ei drops them) and "
            "the rest renormalised. Widen out_range if that is not what you want.",
            OutOfRangeWarning, stacklevel=stacklevel)
    return mi


def ei(topology, layer, *, in_layer=None, in_range=None, in_bins=64, out_range=None, out_bins=64,
       activation=None, max_cells=MAX_CELLS, max_work=MAX_WORK) -> float:
    """Exact vector EI of a layer: the infinite-sample value of ``ei_jax.ei`` (no key, no samples).

    .. math::
       EI(L_1 \\to L_2) = I(X; Y) \\mid do(L_1 = H^{\\max}),
       \\quad P(x, y) = \\mathrm{vol}(B_x \\cap f^{-1}(C_y)) / \\mathrm{vol}([lo, hi]^n)

    over deep-ei's vector bins: input cells ``B_x`` are boxes, output cells' preimages
    intersections of slabs, rows with an output outside ``out_range`` dropped (module
    docstring). A convolution is measured over one receptive field, as ``exact.ei_parts``.

    Args:
      topology: from ``ei_jax.topology_of``; layer: a node of it.
      in_layer: only None or ``layer`` (a span has no exact form).
      in_range, in_bins, out_range, out_bins, activation: as ``ei_jax.ei``.
      max_cells: most input cells ``in_bins ** n_in`` (default ``2**20``).
      max_work: most simplices the volumes may take, estimated beforehand (default 5e7;
        1e6 or more per second on two shared cores).

    Returns:
      float, bits. Host float64 (numba): not traceable; the computation is
      :func:`exact_vector_ei` on the layer's kernel and bias.

    Raises:
      ExactUnavailableError: a span, an activation without a known preimage, or a layer over
        ``max_cells`` / ``max_work`` (the message gives the figures and points to
        ``ei_jax.ei(key, ..., stderr=True)``). EmptyHistogramError: every output outside
        ``out_range`` (some outside: an :class:`OutOfRangeWarning` with the mass dropped).

    Example: the sampled value converges to it (8 bins, 3 inputs, 512 input cells).

      >>> import jax, jax.numpy as jnp, flax.linen as nn, ei_jax
      >>> from ei_jax import exact
      >>> net = nn.Sequential([nn.Dense(2, use_bias=False), nn.sigmoid])
      >>> x0 = jnp.zeros((1, 3))
      >>> top = ei_jax.topology_of(net, net.init(jax.random.key(0), x0), x0)
      >>> kw = dict(in_range=(0, 1), in_bins=8, out_bins=8)
      >>> e = exact.ei(top, "layers_0", **kw)
      >>> s = ei_jax.ei(jax.random.key(1), top, "layers_0", samples=200_000, stderr=True, **kw)
      >>> abs(s.corrected - e) < 5 * s.stderr + 0.01
      True
    """
    problem = exact_layer(topology, layer, in_layer=in_layer, in_range=in_range, out_range=out_range,
                          activation=activation, stacklevel=4)
    return exact_vector_ei(problem.kernel, problem.bias, activation=problem.activation,
                           in_range=problem.in_range, in_bins=in_bins, out_range=problem.out_range,
                           out_bins=out_bins, max_cells=max_cells, max_work=max_work,
                           name=problem.name, stacklevel=3)
