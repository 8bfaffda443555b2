"""One layer's table row: exact pairwise measures where they apply, sampled ones with errors.

The CLI's tables (``ei-jax reproduce`` / ``ei-jax measure``) hold, per layer, EI_parts, vector
EI, sensitivity, degeneracy (``S - EI_parts``), ``degeneracy_vector`` (``S - vector EI``) and
the rotated causal-plane coordinates ``plane_x = (S - D)/sqrt 2``, ``plane_y = (S + D)/sqrt 2``.
Every one of those columns ``c`` is four fields, named for what they hold:

* ``c_corrected``: the value the tables print and the plots draw -- the bias-corrected
  estimate when sampled, the exact value when exact;
* ``c_stderr``: the standard error of ``c_corrected`` (the ``±`` of the tables and the
  half-width / 1.96 of the plots' bands; 0.0 for an exact value);
* ``c_plugin``: deep-ei's plug-in estimate from the same samples (its own column: biased
  upward, and ``c_stderr`` does not describe it); for an exact column the exact value, as
  ``c_corrected``;
* ``c_method``: ``"exact"`` (the infinite-sample value, :mod:`ei_jax.exact`) or
  ``"sampled"``.

EI_parts and sensitivity are exact wherever :mod:`ei_jax.exact` applies (a single
``f(x @ W + b)`` with a known activation); otherwise, or with ``sampled=True``, they are
sampled: ``_corrected`` bias-corrected, ``_plugin`` the plug-in estimates the plain measures
give for the same key (to float32 rounding: the same counts, their MI taken in float64). Vector EI is
sampled unless ``exact_vector_work`` > 0 and the layer's exact vector EI (:func:`ei_jax.exact.ei`)
needs at most that many estimated simplices (1e6 or more per second; the Iris layers: 2e5-4e6
at initialisation, 3e7-3e8 trained). A derived column is exact only when all its parts are; its standard error
adds the parts' in quadrature (as if independent).
"""

import dataclasses
import math

import ei_jax
from ei_jax import exact
from ei_jax._src.base.errors import ExactUnavailableError

#: The measured columns of a row, in table order.
COLUMNS = ("ei_parts", "vector_ei", "sensitivity", "degeneracy", "degeneracy_vector", "plane_x",
           "plane_y")
#: The suffixes of a column's fields: the value shown, its standard error, deep-ei's plug-in
#: and the method.
SUFFIXES = ("_corrected", "_stderr", "_plugin", "_method")
#: Every column a row holds besides layer/shape/key: each measure's four fields.
ROW_FIELDS = tuple(f"{c}{s}" for c in COLUMNS for s in SUFFIXES)
#: The half-width of the plots' error bands, in standard errors (a 95% interval).
BAND = 1.96


@dataclasses.dataclass(frozen=True)
class Column:
    """One measured number: its value, bias-corrected value, standard error and method.

    ``value`` is the exact value, or deep-ei's plug-in estimate when sampled; ``stderr`` is
    the standard error of ``corrected`` (0.0 when exact).

    Example:
      >>> Column.of(ei_jax.Estimate(2.0, 1.9, 0.1, 1000)) - Column.exact(0.5)
      Column(value=1.5, corrected=1.4, stderr=0.1, method='sampled')
    """

    value: float
    corrected: float
    stderr: float
    method: str

    @staticmethod
    def exact(value) -> "Column":
        """An exact value (no error)."""
        return Column(float(value), float(value), 0.0, "exact")

    @staticmethod
    def of(estimate) -> "Column":
        """A sampled :class:`ei_jax.Estimate`, or a bare plug-in float (stderr NaN: unknown);
        a :class:`Column` as it is."""
        if isinstance(estimate, Column):
            return estimate
        if isinstance(estimate, ei_jax.Estimate):
            return Column(float(estimate.value), float(estimate.corrected), float(estimate.stderr),
                          "sampled")
        return Column(float(estimate), float(estimate), math.nan, "sampled")

    def _combine(self, other, a: float, b: float) -> "Column":
        method = "exact" if self.method == other.method == "exact" else "sampled"
        return Column(a * self.value + b * other.value, a * self.corrected + b * other.corrected,
                      math.hypot(a * self.stderr, b * other.stderr), method)

    def __sub__(self, other: "Column") -> "Column":
        return self._combine(other, 1.0, -1.0)


def row_columns(parts: Column, vec: Column, sens: Column) -> dict:
    """The row fields (:data:`ROW_FIELDS`) from EI_parts, vector EI and sensitivity.

    Values are computed as :mod:`ei_jax.experiments.measure_rows` computes them (same rounding):
    ``degeneracy = S - EI_parts`` and ``ei_jax.rotate_causal_plane(S, degeneracy)``.

    Example:
      >>> r = row_columns(Column.exact(2.0), Column.of(3.0), Column.exact(0.0))
      >>> r["degeneracy_corrected"], r["degeneracy_method"], r["vector_ei_method"]
      (-2.0, 'exact', 'sampled')
    """
    deg = sens - parts
    r2 = math.sqrt(2.0)
    x, y = ei_jax.rotate_causal_plane(sens.value, sens.value - parts.value)
    xc, yc = ei_jax.rotate_causal_plane(sens.corrected, deg.corrected)
    plane = {"plane_x": Column(x, xc, parts.stderr / r2, deg.method),
             "plane_y": Column(y, yc, math.hypot(2 * sens.stderr, parts.stderr) / r2, deg.method)}
    cols = dict(ei_parts=parts, vector_ei=vec, sensitivity=sens, degeneracy=deg,
                degeneracy_vector=sens - vec, **plane)
    out = {}
    for name in COLUMNS:
        c = cols[name]
        out.update({f"{name}_corrected": c.corrected, f"{name}_stderr": c.stderr,
                    f"{name}_plugin": c.value, f"{name}_method": c.method})
    return out


def _exact_or_none(fn, top, layer, **kw):
    try:
        return Column.exact(fn(top, layer, **kw))
    except ExactUnavailableError:
        return None


def exact_vector(top, layer, work: float, **common):
    """The exact vector EI :class:`Column` of a layer within ``work`` estimated simplices, or
    None (``work`` 0, or exact does not apply or would take more)."""
    if not work > 0:
        return None
    return _exact_or_none(exact.ei, top, layer, max_work=work, **common)


def layer_columns(key, top, layer, *, samples: int, sensitivity_samples: int, bins: int,
                 in_range=None, sampled: bool = False, exact_values=None, vector=None,
                 exact_vector_work: float = 0.0) -> dict:
    """EI_parts, vector EI, sensitivity, degeneracy and the causal plane of one layer, with errors.

    Args:
      key: the layer's key (``measure_network`` passes ``fold_in(key, i)`` for layer ``i``).
      top: ``ei_jax.topology_of(...)``; layer: a node of it.
      samples: noise samples for vector EI (and EI_parts when sampled).
      sensitivity_samples: samples per input neuron for sampled sensitivity.
      bins: bins per neuron, inputs and outputs.
      in_range: the layer's input range (the data's for the first layer; None: deep-ei's
        default from the preceding activation).
      sampled: True gives deep-ei's plug-in EI_parts and sensitivity even where exact applies.
      exact_values: ``{"ei_parts": float or None, "sensitivity": float or None}`` computed
        already (a stack of checkpoints: :func:`ei_jax._src.exact.stacks.stack_values`), used
        instead of computing them; None entries are measured sampled.
      vector: vector EI measured already (an :class:`ei_jax.Estimate` for this key: a stack,
        :func:`ei_jax._src.measures.vector_stack.ei_stack`; or an exact :class:`Column`), used
        where EI_parts is exact.
      exact_vector_work: exact vector EI where it takes at most this many estimated simplices
        (:func:`ei_jax.exact.ei`'s ``max_work``); 0 (default): sampled.

    Returns:
      ``{field: value}`` for every field of :data:`ROW_FIELDS` (floats in bits, methods as
      ``"exact"`` / ``"sampled"``). With ``sampled=True`` the ``*_plugin`` values are those
      of the plain (``stderr=False``) measures for the same key: the same samples and
      counts, the plug-in computed in float64 on the host (the plain vector EI is float32:
      equal to float32 rounding, ~1e-7 relative).

    Raises:
      EmptyHistogramError and the sampled measures' errors (a layer where exact does not
      apply is measured sampled, not an error).

    Example:
      >>> import jax, jax.numpy as jnp, flax.linen as nn
      >>> net = nn.Sequential([nn.Dense(2), nn.sigmoid])
      >>> x0 = jnp.zeros((1, 3))
      >>> top = ei_jax.topology_of(net, net.init(jax.random.key(0), x0), x0)
      >>> r = layer_columns(jax.random.key(1), top, "layers_0", samples=2_000,
      ...                  sensitivity_samples=100, bins=4, in_range=(0, 1))
      >>> r["ei_parts_method"], r["ei_parts_stderr"], r["vector_ei_method"], r["vector_ei_stderr"] > 0
      ('exact', 0.0, 'sampled', True)
    """
    common = dict(in_range=in_range, in_bins=bins, out_bins=bins)
    parts = sens = None
    if not sampled and exact_values is not None:
        parts, sens = (None if exact_values.get(c) is None else Column.exact(exact_values[c])
                       for c in ("ei_parts", "sensitivity"))
    elif not sampled:
        parts = _exact_or_none(exact.ei_parts, top, layer, **common)
        sens = _exact_or_none(exact.sensitivity, top, layer, **common)
    exact_vec = None if sampled or vector is not None else exact_vector(top, layer, exact_vector_work,
                                                                         **common)
    if parts is None:
        vec, est = ei_jax.vector_and_pairwise_ei(key, top, layer, samples=samples, stderr=True, **common)
        parts = Column.of(est)
        vec = exact_vec or vec
    elif vector is not None:
        vec = vector
    elif exact_vec is not None:
        vec = exact_vec
    else:          # the same samples and vector estimate, without the pairs' second pass
        vec = ei_jax.ei(key, top, layer, samples=samples, stderr=True, **common)
    if sens is None:
        sens = Column.of(ei_jax.sensitivity(key, top, layer, samples=sensitivity_samples, stderr=True,
                                            **common))
    return row_columns(parts, Column.of(vec), sens)


def _count(n) -> str:
    return f"{n:,}" if isinstance(n, int) else str(n)


def _setting(settings, name):
    return settings[name] if isinstance(settings, dict) else getattr(settings, name)


def method_summary(rows) -> str:
    """Which columns of ``rows`` are exact and which sampled, as one sentence.

    Rows without ``*_method`` fields (runs written before exact measures) are all sampled.

    Example:
      >>> method_summary([{"ei_parts_method": "exact", "sensitivity_method": "exact"}])
      'Exact (infinite-sample) values: EI_parts, sensitivity, degeneracy; sampled: vector EI.'
    """
    names = {"ei_parts": "EI_parts", "sensitivity": "sensitivity", "degeneracy": "degeneracy",
             "vector_ei": "vector EI"}
    groups: dict[str, list[str]] = {"exact": [], "mixed": [], "sampled": []}
    for col, label in names.items():
        methods = {r.get(f"{col}_method", "sampled") for r in rows}
        if col == "degeneracy" and not any("degeneracy_method" in r for r in rows):
            methods = {"exact" if all(r.get(f"{c}_method") == "exact" for c in ("ei_parts", "sensitivity"))
                       else "sampled" for r in rows}
        groups[methods.pop() if len(methods) == 1 else "mixed"].append(label)
    heads = {"exact": "exact (infinite-sample) values", "mixed": "exact where the layer allows, "
             "sampled elsewhere", "sampled": "sampled"}
    text = "; ".join(f"{heads[k]}: {', '.join(v)}" for k, v in groups.items() if v)
    return text[0].upper() + text[1:] + "."


def table_note(settings, rows=()) -> str:
    """The note printed under a table (and written into the plots' captions).

    States which columns are exact and which sampled (from the rows' ``*_method`` fields),
    that the values shown are the bias-corrected ones and what ``±`` means, the bins and
    sample counts, and why sensitivity ~0 at initialisation and negative degeneracy are what
    the definitions give at few bins, not a bug.

    Args:
      settings: ``MeasureSettings`` or a dict with ``samples``, ``sensitivity_samples``, ``bins``.
      rows: the table's rows (optional; without them the exact/sampled sentence is left out).

    Returns:
      a paragraph of plain text (no line breaks).

    Example:
      >>> note = table_note({"samples": 100_000, "sensitivity_samples": 5_000, "bins": 8})
      >>> "8 bins" in note and "100,000 samples" in note and "bin edge" in note
      True
    """
    bins, n, m = (_setting(settings, k) for k in ("bins", "samples", "sensitivity_samples"))
    lead = method_summary(rows) + " " if rows else ""
    return (f"{lead}Sampled values are bias-corrected estimates at {bins} bins per neuron from "
            f"{_count(n)} samples ({_count(m)} per input neuron for sensitivity), shown ± one "
            "standard error (the *_corrected and *_stderr fields; plots: 95% bands around them); "
            "deep-ei's plug-in estimates, biased upward, are the plug-in columns (*_plugin). "
            "Sensitivity near 0 (as small as 1e-14, float rounding of 0) at "
            "initialisation is not a bug: it perturbs one input at a time with the others at 0, "
            f"and small weights never move an output across a bin edge at {bins} bins, so each "
            "pair's output stays in one bin and carries 0 bits, while EI_parts of the same layer "
            "(all inputs noised together) can be positive. Degeneracy = sensitivity - EI_parts is "
            "then negative; it is negative whenever sensitivity < EI_parts, which the "
            "definitions allow.")
