"""Measuring every layer of a network into table rows: EI_parts, vector EI, sensitivity.

The paper measured each layer with 8 bins per neuron (``vector_and_pairwise_ei`` on 1e7
samples, sensitivity on 5,000 samples per input). :class:`MeasureSettings` holds those
knobs; :func:`measure_network` returns one row per layer, in bits, with the key it used.
"""

import dataclasses
import math
from typing import Any

import jax
import numpy as np

import ei_jax


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
    x, y = ei_jax.rotate_causal_plane(sens, sens - parts)
    return dict(ei_parts=parts, vector_ei=vec, sensitivity=sens, degeneracy=sens - parts,
                degeneracy_vector=sens - vec, plane_x=x, plane_y=y)


def measure_network(key, top, settings: MeasureSettings) -> list[dict[str, Any]]:
    """Measures every layer of ``top``; layer ``i`` uses ``fold_in(key, i)`` (stored in ``key``)."""
    rows = []
    for i, layer in enumerate(top):
        k = jax.random.fold_in(key, i)
        rows.append(dict(layer=layer, n_in=math.prod(top.nodes[layer]["input"]["shape"][1:]),
                         n_out=math.prod(top.nodes[layer]["output"]["shape"][1:]),
                         **measure_layer(k, top, layer, settings, first=i == 0), key=key_data(k)))
    return rows
