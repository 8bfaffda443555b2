"""Measuring every layer of a network, or of a stack of checkpoints, into table rows.

The paper measured each layer with 8 bins per neuron (``vector_and_pairwise_ei`` on 1e7
samples, sensitivity on 5,000 samples per input). :class:`MeasureSettings` holds those
knobs; :func:`measure_network` returns one row per layer, in bits, with the key it used:
EI_parts, sensitivity and degeneracy exact where :mod:`ei_jax.exact` applies (unless
``sampled``), vector EI sampled, every column as ``_corrected``, ``_stderr``, ``_plugin`` and
``_method`` fields (:mod:`ei_jax.experiments.table_columns`). :func:`measure_stack` measures N
checkpoints of one architecture with the same keys: the exact columns of each layer in one
vmapped call for all of them, the sampled ones per checkpoint, and gives each checkpoint the
rows :func:`measure_network` gives it alone (the exact ones to float64 rounding).
"""

import dataclasses
import math
from typing import Any

import jax
import numpy as np

from ei_jax._src.base.errors import NonFiniteParamsError, ShapeMismatchError
from ei_jax.experiments.table_columns import exact_vector, layer_columns
from ei_jax._src.base.progress import progress_bar
from ei_jax._src.exact.stacks import checkpoint_topology, stack_values
from ei_jax._src.measures.vector_stack import ei_stack


@dataclasses.dataclass(frozen=True)
class MeasureSettings:
    """How each layer is measured (the paper: 1e7 samples, 5,000 for sensitivity, 8 bins).

    ``in_range`` is the first layer's input range (the data's); later layers use their
    preceding activation's range, as in deep-ei. ``sampled``: deep-ei's plug-in EI_parts and
    sensitivity even where the exact values apply (``--sampled``). ``exact_vector_work``: exact
    vector EI for layers whose estimated work is at most this many simplices (1e6 or more
    per second; 0, the default: vector EI sampled; ``--exact-vector-work``).
    """

    samples: int = 100_000
    sensitivity_samples: int = 5_000
    bins: int = 8
    in_range: tuple[float, float] = (0.0, 1.0)
    sampled: bool = False
    exact_vector_work: float = 0.0


#: The paper's measurement settings (``ei-jax reproduce --paper``).
PAPER_MEASURE = MeasureSettings(samples=10_000_000, sensitivity_samples=5_000, bins=8)


def key_data(key) -> list[int]:
    """The two uint32 words of a ``jax.random.key`` (what the table stores)."""
    return [int(v) for v in np.asarray(jax.random.key_data(key))]


def measure_layer(key, top, layer, settings: MeasureSettings, *, first: bool,
                  exact_values=None, vector=None) -> dict[str, Any]:
    """EI_parts, vector EI, sensitivity and degeneracy of one layer (bits), with their errors.

    Exact EI_parts / sensitivity / degeneracy where they apply and ``settings.sampled`` is
    False, else deep-ei's plug-in estimates; see :func:`ei_jax.experiments.table_columns.layer_columns`
    (``exact_values``, ``vector``: precomputed exact values and vector EI, for a stack).
    """
    return layer_columns(key, top, layer, samples=settings.samples,
                        sensitivity_samples=settings.sensitivity_samples, bins=settings.bins,
                        in_range=settings.in_range if first else None, sampled=settings.sampled,
                        exact_values=exact_values, vector=vector,
                        exact_vector_work=settings.exact_vector_work)


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

def _stack_vectors(key, top, host, stacked, layer, settings, *, first, progress) -> list:
    """Vector EI of every checkpoint of one layer: exact where it fits
    ``settings.exact_vector_work``, the others sampled in one pipelined stack."""
    n = len(jax.tree.leaves(host[layer])[0])
    out = [None] * n
    if settings.exact_vector_work > 0 and not settings.sampled:
        common = dict(in_range=settings.in_range if first else None, in_bins=settings.bins,
                      out_bins=settings.bins)
        for j in range(n):
            out[j] = exact_vector(checkpoint_topology(top, host, j), layer, settings.exact_vector_work,
                                  **common)
            if out[j] is not None:
                progress(1)
    rest = [j for j in range(n) if out[j] is None]
    if rest:
        part = jax.tree.map(lambda a: a[np.asarray(rest)], stacked[layer])
        sampled = ei_stack(key, top, layer, part, samples=settings.samples, in_bins=settings.bins,
                           out_bins=settings.bins, in_range=settings.in_range if first else None,
                           progress=progress)
        for j, v in zip(rest, sampled):
            out[j] = v
    return out


def _check_stack(stacked, layer, n: int, labels):
    for leaf in jax.tree.leaves(stacked):
        if np.shape(leaf)[:1] != (n,):
            raise ShapeMismatchError(f"Layer {layer!r}: every parameter needs a leading axis of {n} "
                                     f"checkpoints. Got shape {np.shape(leaf)}.")
        bad = ~np.isfinite(np.asarray(leaf)).reshape(n, -1).all(axis=1)
        if bad.any():
            raise NonFiniteParamsError(f"Layer {layer!r} of {labels[int(np.argmax(bad))]} has NaN or "
                                       "infinite parameters; measure checkpoints with finite weights.")


def measure_stack(key, top, stacked: dict, settings: MeasureSettings, *, labels=None, group_size=None,
                  progress: bool = False) -> list[list[dict[str, Any]]]:
    """Measures every layer of N checkpoints of one architecture.

    The exact EI_parts and sensitivity of each layer are computed for all N checkpoints in one
    vmapped call (:func:`ei_jax._src.exact.stacks.stack_values`); the vector EI of those layers
    is pipelined (:func:`ei_jax._src.measures.vector_stack.ei_stack`: one checkpoint's host estimate
    runs while the next is sampled); layers where exact does not apply, or
    ``settings.sampled``, are measured per checkpoint. All with the same keys.

    Args:
      key: the measuring key; layer ``i`` uses ``fold_in(key, i)`` for every checkpoint (as
        :func:`measure_network`), so each checkpoint gets the numbers it gets alone.
      top: ``ei_jax.topology_of`` of one of the networks (its structure and layer names; its
        own parameters are not used).
      stacked: ``{layer: params}`` for every layer of ``top``, each a pytree shaped like
        ``top.nodes[layer]["params"]`` with a leading axis of N checkpoints.
      settings: samples, sensitivity samples, bins, the first layer's input range, sampled.
      labels: N names for messages (default ``checkpoint 0`` ...).
      group_size: accepted for compatibility; unused (the sampled columns with their standard
        errors are measured per checkpoint).
      progress: show a progress bar (stderr), advancing per checkpoint and layer.

    Returns:
      N lists (one per checkpoint) of one row per layer, as :func:`measure_network`.

    Raises:
      ShapeMismatchError: a parameter without the leading axis N. NonFiniteParamsError: NaN or
        infinite weights (naming the checkpoint). EmptyHistogramError: as the measures.

    Example:
      >>> import jax, jax.numpy as jnp, ei_jax
      >>> from ei_jax.experiments.paper_nets import mlp
      >>> model, x0 = mlp((3, 2)), jnp.zeros((1, 3))
      >>> nets = [model.init(jax.random.key(i), x0) for i in range(2)]
      >>> top = ei_jax.topology_of(model, nets[0], x0)
      >>> stacked = {"layers_0": jax.tree.map(lambda *a: jnp.stack(a), *[v["params"]["layers_0"] for v in nets])}
      >>> s = MeasureSettings(samples=2_000, sensitivity_samples=200, bins=4)
      >>> rows = measure_stack(jax.random.key(0), top, stacked, s)
      >>> alone = measure_network(jax.random.key(0), ei_jax.topology_of(model, nets[1], x0), s)
      >>> abs(rows[1][0]["ei_parts_corrected"] - alone[0]["ei_parts_corrected"]) < 1e-12
      True
    """
    del group_size
    layers = list(top)
    n = len(jax.tree.leaves(stacked[layers[0]])[0])
    labels = list(labels) if labels is not None else [f"checkpoint {j}" for j in range(n)]
    for layer in layers:
        _check_stack(stacked[layer], layer, n, labels)
    host = {layer: jax.tree.map(np.asarray, stacked[layer]) for layer in layers}
    exact = {} if settings.sampled else stack_values(top, host, bins=settings.bins,
                                                     in_range=settings.in_range, labels=labels)
    total = n * len(layers)
    with progress_bar(total, enabled=progress, desc=f"measuring {n} checkpoints", unit="layer") as bar:
        vectors = {}       # layers with exact EI_parts: vector EI of all checkpoints, pipelined
        for i, layer in enumerate(layers):
            if exact.get(layer, {}).get("ei_parts") is not None:
                vectors[layer] = _stack_vectors(jax.random.fold_in(key, i), top, host, stacked, layer,
                                                settings, first=i == 0, progress=bar.update)
        rows = [[] for _ in range(n)]
        for j in range(n):
            top_j = checkpoint_topology(top, host, j)
            for i, layer in enumerate(layers):
                ex = exact.get(layer)
                given = None if ex is None else {c: None if v is None else float(v[j]) for c, v in ex.items()}
                k = jax.random.fold_in(key, i)
                vec = vectors[layer][j] if layer in vectors else None
                rows[j].append(dict(layer=layer, n_in=_shape(top, layer, "input"),
                                    n_out=_shape(top, layer, "output"),
                                    **measure_layer(k, top_j, layer, settings, first=i == 0,
                                                    exact_values=given, vector=vec), key=key_data(k)))
                if vec is None:
                    bar.update(1)
    return rows
