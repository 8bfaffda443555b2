"""Measuring every layer of a network, or of a stack of checkpoints, into table rows.

The paper measured each layer with 8 bins per neuron (``vector_and_pairwise_ei`` on 1e7
samples, sensitivity on 5,000 samples per input). :class:`MeasureSettings` holds those
knobs; :func:`measure_network` returns one row per layer, in bits, with the key it used.
:func:`measure_stack` measures N checkpoints of one architecture with the same keys in
two compiled ``ei_jax.core.map_params`` calls per layer (vector EI with EI_parts from the
same samples, then sensitivity), and gives each checkpoint the rows :func:`measure_network`
gives it alone -- up to float rounding: the stacked (vmapped) matrix products can round a
sample's output differently in the last bit and move it to the neighbouring bin (measured on
200 random checkpoints: 3 of 600 layer rows differed, by at most 3e-5 bits).
"""

import dataclasses
import functools
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import ei_jax
from ei_jax import core
from ei_jax._src import reporting
from ei_jax._src.errors import EmptyHistogramError, NonFiniteParamsError, ShapeMismatchError
from ei_jax._src.problems import resolve
from ei_jax._src.progress import progress_bar


@dataclasses.dataclass(frozen=True)
class MeasureSettings:
    """How each layer is measured (the paper: 1e7 samples, 5,000 for sensitivity, 8 bins).

    ``in_range`` is the first layer's input range (the data's); later layers use their
    preceding activation's range, as in deep-ei.
    """

    samples: int = 100_000
    sensitivity_samples: int = 5_000
    bins: int = 8
    in_range: tuple[float, float] = (0.0, 1.0)


#: The paper's measurement settings (``ei-jax reproduce --paper``).
PAPER_MEASURE = MeasureSettings(samples=10_000_000, sensitivity_samples=5_000, bins=8)


def key_data(key) -> list[int]:
    """The two uint32 words of a ``jax.random.key`` (what the table stores)."""
    return [int(v) for v in np.asarray(jax.random.key_data(key))]


def measure_layer(key, top, layer, settings: MeasureSettings, *, first: bool) -> dict[str, float]:
    """EI_parts and vector EI (same samples), sensitivity and degeneracy of one layer, in bits."""
    in_range = settings.in_range if first else None
    common = dict(in_range=in_range, in_bins=settings.bins, out_bins=settings.bins)
    vec, parts = ei_jax.vector_and_pairwise_ei(key, top, layer, samples=settings.samples, **common)
    sens = ei_jax.sensitivity(key, top, layer, samples=settings.sensitivity_samples, **common)
    return _values(parts, vec, sens)


def _values(parts: float, vec: float, sens: float) -> dict[str, float]:
    x, y = ei_jax.rotate_causal_plane(sens, sens - parts)
    return dict(ei_parts=parts, vector_ei=vec, sensitivity=sens, degeneracy=sens - parts,
                degeneracy_vector=sens - vec, plane_x=x, plane_y=y)


def _shape(top, layer, side) -> int:
    return math.prod(top.nodes[layer][side]["shape"][1:])


def measure_network(key, top, settings: MeasureSettings) -> list[dict[str, Any]]:
    """Measures every layer of ``top``; layer ``i`` uses ``fold_in(key, i)`` (stored in ``key``)."""
    rows = []
    for i, layer in enumerate(top):
        k = jax.random.fold_in(key, i)
        rows.append(dict(layer=layer, n_in=_shape(top, layer, "input"), n_out=_shape(top, layer, "output"),
                         **measure_layer(k, top, layer, settings, first=i == 0), key=key_data(k)))
    return rows


# --- a stack of checkpoints -------------------------------------------------------------------

@functools.lru_cache(maxsize=32)
def _stack_fns(apply_fn, kwargs: tuple, samples: int, sensitivity_samples: int):
    """The two per-checkpoint measures of one layer problem, defined once (compiled once)."""
    kw = dict(kwargs)

    def vector_and_pairs(params, key):
        st = core.vector_stats(key, apply_fn, params, samples=samples, with_pairs=True, devices=1, **kw)
        return st.mi[0], st.rows, st.below, st.above, st.pairs.counts

    def sensitivity(params, key):
        st = core.sensitivity_stats(key, apply_fn, params, samples=sensitivity_samples, devices=1, **kw)
        return st.counts, st.below, st.above

    return vector_and_pairs, sensitivity


def _check_stack(stacked, layer, n: int, labels):
    for leaf in jax.tree.leaves(stacked):
        if np.shape(leaf)[:1] != (n,):
            raise ShapeMismatchError(f"Layer {layer!r}: every parameter needs a leading axis of {n} "
                                     f"checkpoints. Got shape {np.shape(leaf)}.")
        bad = ~np.isfinite(np.asarray(leaf)).reshape(n, -1).all(axis=1)
        if bad.any():
            raise NonFiniteParamsError(f"Layer {layer!r} of {labels[int(np.argmax(bad))]} has NaN or "
                                       "infinite parameters; measure checkpoints with finite weights.")


def _host_mi(counts, problem) -> np.ndarray:
    mat = reporting.mi_matrix(np.asarray(counts, np.int64))
    reporting.raise_if_empty(mat, f"Layer {problem.name!r}", f"out_range={problem.out_range}")
    return mat


def measure_stack(key, top, stacked: dict, settings: MeasureSettings, *, labels=None, group_size=None,
                  progress: bool = False) -> list[list[dict[str, Any]]]:
    """Measures every layer of N checkpoints of one architecture, in one go per layer.

    Args:
      key: the measuring key; layer ``i`` uses ``fold_in(key, i)`` for every checkpoint (as
        :func:`measure_network`), so each checkpoint gets the numbers it gets alone.
      top: ``ei_jax.topology_of`` of one of the networks (its structure and layer names; its
        own parameters are not used).
      stacked: ``{layer: params}`` for every layer of ``top``, each a pytree shaped like
        ``top.nodes[layer]["params"]`` with a leading axis of N checkpoints.
      settings: samples, sensitivity samples, bins and the first layer's input range.
      labels: N names for messages (default ``checkpoint 0`` ...).
      group_size: checkpoints measured at once within a call (``ei_jax.core.map_params``).
      progress: show a progress bar (stderr), advancing per layer.

    Returns:
      N lists (one per checkpoint) of one row per layer, as :func:`measure_network`.

    Raises:
      ShapeMismatchError: a parameter without the leading axis N. NonFiniteParamsError: NaN or
        infinite weights (naming the checkpoint). EmptyHistogramError: as the measures.

    Example:
      >>> import jax, jax.numpy as jnp, ei_jax
      >>> from ei_jax._src.paper_nets import mlp
      >>> model, x0 = mlp((3, 2)), jnp.zeros((1, 3))
      >>> nets = [model.init(jax.random.key(i), x0) for i in range(4)]
      >>> top = ei_jax.topology_of(model, nets[0], x0)
      >>> stacked = {"layers_0": jax.tree.map(lambda *a: jnp.stack(a), *[v["params"]["layers_0"] for v in nets])}
      >>> s = MeasureSettings(samples=5_000, sensitivity_samples=200, bins=4)
      >>> rows = measure_stack(jax.random.key(0), top, stacked, s)
      >>> rows[3] == measure_network(jax.random.key(0), ei_jax.topology_of(model, nets[3], x0), s)
      True
    """
    layers = list(top)
    n = len(jax.tree.leaves(stacked[layers[0]])[0])
    labels = list(labels) if labels is not None else [f"checkpoint {j}" for j in range(n)]
    rows = [[] for _ in range(n)]
    with progress_bar(n * len(layers), enabled=progress, desc=f"measuring {n} checkpoints",
                      unit="layer") as bar:
        for i, layer in enumerate(layers):
            _check_stack(stacked[layer], layer, n, labels)
            problem = resolve(top, layer, in_range=settings.in_range if i == 0 else None)
            kwargs = tuple(problem.kwargs(settings.bins, settings.bins).items())
            vec_fn, sens_fn = _stack_fns(problem.apply_fn, kwargs, settings.samples,
                                         settings.sensitivity_samples)
            params = (jax.tree.map(jnp.asarray, stacked[layer]),)  # a span of one layer, as resolve's
            k = jax.random.fold_in(key, i)
            kw = dict(group_size=group_size) if group_size else {}
            vec, n_rows, vb, va, pair_counts = core.map_params(vec_fn, params, k, **kw)
            sens_counts, sb, sa = core.map_params(sens_fn, params, k, **kw)
            for j in range(n):
                if int(n_rows[j]) == 0:
                    raise EmptyHistogramError(f"Layer {layer!r} of {labels[j]}: no sample had every output "
                                              f"inside out_range={problem.out_range}. Widen out_range.")
                for below, above, values in ((vb[j], va[j], settings.samples * vb[j].size),
                                             (sb[j], sa[j], settings.sensitivity_samples * sb[j].size)):
                    reporting.warn_out_of_range(layer, problem.out_range, below, above, values, False)
                parts = float(_host_mi(pair_counts[j], problem).sum())
                sens = float(_host_mi(sens_counts[j], problem).sum())
                rows[j].append(dict(layer=layer, n_in=_shape(top, layer, "input"),
                                    n_out=_shape(top, layer, "output"),
                                    **_values(parts, float(vec[j]), sens), key=key_data(k)))
            bar.update(n)
    return rows
