"""The paper's figures of a training run, as PNG bytes (matplotlib, Agg; no pyplot state).

* :func:`ei_over_training_png`: loss, EI_parts, vector EI, sensitivity and degeneracy of
  each layer against the epoch.
* :func:`causal_plane_png`: each layer's path in the causal plane, rotated by 45 degrees as
  in the paper: horizontal ``(S - D)/sqrt 2 = EI_parts/sqrt 2``, vertical ``(S + D)/sqrt 2``,
  with the EI nullcline ``EI_parts = 0`` (the vertical axis through 0).

Both take the rows of a run's table (dicts with ``epoch``, ``layer``, ``label`` and the
measures, as written by :func:`ei_jax.experiments.reproduce`) and draw each measure's
``<measure>_corrected`` field -- the bias-corrected value, or the exact one -- with error
bands (bars in the causal plane) of ``± 1.96 <measure>_stderr`` (95%) around it; exact
values have none. deep-ei's plug-in (``<measure>_plugin``) is biased upward and is not
drawn: the standard error does not describe it. With ``settings`` (the run's measurement
settings) the figure carries a caption:
which columns are exact, the bins and sample counts, and why sensitivity ~0 at
initialisation and negative degeneracy follow from the definitions at few bins.
"""

import io
import textwrap
from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from ei_jax.experiments.table_columns import BAND, table_note


def _by_layer(rows: Sequence[dict[str, Any]]):
    layers: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        layers.setdefault(r["layer"], []).append(r)
    for rs in layers.values():
        rs.sort(key=lambda r: r["epoch"])
    return layers


def _colors(n):
    cmap = colormaps["viridis"]
    return [cmap(0.85 * i / max(1, n - 1)) for i in range(n)]


def caption(rows: Sequence[dict[str, Any]], settings) -> str:
    """The plots' caption: :func:`table_note` and what the error bands are.

    Args:
      rows: the run's table rows; settings: ``MeasureSettings`` or its dict (bins, samples,
        sensitivity_samples), as in ``measurements.json``'s ``measure``.

    Returns:
      one paragraph of text.

    Example:
      >>> text = caption([], {"samples": 1000, "sensitivity_samples": 50, "bins": 8})
      >>> "1.96" in text and "8 bins" in text
      True
    """
    mixed = any(exact_among_sampled(rs, col).size for rs in _by_layer(rows).values()
                for col in ("ei_parts", "vector_ei", "sensitivity", "degeneracy"))
    dots = (" Dots: exact values in a line that is sampled elsewhere (a sampled value flagged "
            "sample-limited can sit well above the exact one)." if mixed else "")
    return (f"Bands / error bars: ± {BAND} standard errors (95%) of sampled values where the table "
            "has them; exact values have none." + dots + " " + table_note(settings, rows))


def _stderr(rs, col) -> np.ndarray | None:
    """The rows' ``col_stderr`` (NaN as 0), or None when the rows have none (old runs)."""
    if not all(f"{col}_stderr" in r for r in rs):
        return None
    s = np.nan_to_num(np.array([r[f"{col}_stderr"] for r in rs], np.float64))
    return s if np.any(s > 0) else None


def shown(rs, col) -> np.ndarray:
    """The values drawn for ``col``: the rows' ``col_corrected`` (bias-corrected or exact;
    rows of runs from before the uncertainty columns: their bare ``col``)."""
    return np.array([r[f"{col}_corrected"] if f"{col}_corrected" in r else r[col] for r in rs],
                    np.float64)


def band(rs, col):
    """``(low, high)`` of the 95% band of ``col`` around :func:`shown`, or None (no errors)."""
    s = _stderr(rs, col)
    if s is None:
        return None
    v = shown(rs, col)
    return v - BAND * s, v + BAND * s


def exact_among_sampled(rs, col) -> np.ndarray:
    """Indices of the rows whose ``col`` is exact in a series that is sampled elsewhere (e.g.
    vector EI within ``--exact-vector-work``): the plots mark them, since the two methods
    differ by the sampled value's bias where it is flagged sample-limited. Empty where the
    series has one method (or no ``col_method`` field)."""
    methods = [r.get(f"{col}_method") for r in rs]
    if not {"exact", "sampled"} <= set(methods):
        return np.zeros((0,), np.int64)
    return np.flatnonzero(np.array(methods) == "exact")


def _band(ax, e, rs, col, color):
    b = band(rs, col)
    if b is not None:
        ax.fill_between(e, *b, color=color, alpha=0.2, lw=0)
    mark = exact_among_sampled(rs, col)
    if mark.size:
        ax.plot(np.asarray(e)[mark], shown(rs, col)[mark], ls="", marker="o", ms=3, color=color)


def _caption(fig: Figure, rows, settings, width: int):
    if settings is not None:
        fig.supxlabel(textwrap.fill(caption(rows, settings), width), fontsize=7, x=0.01, ha="left")


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=150)
    return buf.getvalue()


def ei_over_training_png(rows: Sequence[dict[str, Any]], title: str = "", *, settings=None) -> bytes:
    """Four panels against the epoch: loss; EI_parts; vector EI; sensitivity and degeneracy.

    Draws the ``*_corrected`` values; sampled ones get ``± 1.96`` standard-error bands; with
    ``settings`` (bins, samples, sensitivity_samples) the figure has :func:`caption` below it.
    """
    layers = _by_layer(rows)
    colors = _colors(len(layers))
    fig = Figure(figsize=(11, 7.5), layout="constrained")
    (ax_loss, ax_parts), (ax_vec, ax_sd) = fig.subplots(2, 2, sharex=True)
    first = next(iter(layers.values()))
    epochs = [r["epoch"] for r in first]
    ax_loss.plot(epochs, [r["train_loss"] for r in first], color="tab:purple", label="training")
    if not np.all(np.isnan([r["test_loss"] for r in first])):
        ax_loss.plot(epochs, [r["test_loss"] for r in first], color="tab:orange", label="test")
        acc = first[-1]["test_accuracy"]
        ax_loss.set_title(f"Loss (final test accuracy {100 * acc:.0f}%)")
    else:
        ax_loss.set_title("Loss")
    ax_loss.set_yscale("log")
    ax_loss.set_ylabel("summed squared error per example")
    ax_loss.legend(loc="upper right")
    for (name, rs), c in zip(layers.items(), colors):
        e = [r["epoch"] for r in rs]
        label = f"{rs[0]['label']} ({name})"
        ax_parts.plot(e, shown(rs, "ei_parts"), color=c, label=label)
        ax_vec.plot(e, shown(rs, "vector_ei"), color=c, label=label)
        ax_sd.plot(e, shown(rs, "sensitivity"), color=c, label=f"{rs[0]['label']} sensitivity")
        ax_sd.plot(e, shown(rs, "degeneracy"), color=c, ls="--", label=f"{rs[0]['label']} degeneracy")
        for ax, col in ((ax_parts, "ei_parts"), (ax_vec, "vector_ei"), (ax_sd, "sensitivity"),
                        (ax_sd, "degeneracy")):
            _band(ax, e, rs, col, c)
    ax_parts.set_title("$EI_{parts}$ of each layer")
    ax_parts.set_ylabel("$EI_{parts}$ (bits)")
    ax_vec.set_title("Vector EI of each layer")
    ax_vec.set_ylabel("EI (bits)")
    ax_sd.set_title("Sensitivity S (solid), degeneracy S − $EI_{parts}$ (dashed)")
    ax_sd.set_ylabel("bits")
    for ax in (ax_parts, ax_vec, ax_sd):
        ax.legend(loc="best", fontsize="small")
    for ax in (ax_vec, ax_sd):
        ax.set_xlabel("epoch")
    for ax in (ax_loss, ax_parts, ax_vec, ax_sd):
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    _caption(fig, rows, settings, 190)
    return _png(fig)


def causal_plane_png(rows: Sequence[dict[str, Any]], title: str = "", *, settings=None) -> bytes:
    """Each layer's path in the rotated causal plane over training, with the EI nullcline.

    Sampled points with ``plane_x_stderr`` / ``plane_y_stderr`` get ``± 1.96`` standard-error
    bars; with ``settings`` the figure has :func:`caption` below it.
    """
    layers = _by_layer(rows)
    colors = _colors(len(layers))
    fig = Figure(figsize=(7, 6), layout="constrained")
    ax = fig.subplots()
    handles = []
    for (name, rs), c in zip(layers.items(), colors):
        x, y = shown(rs, "plane_x"), shown(rs, "plane_y")
        (line,) = ax.plot(x, y, color=c, lw=1.5, marker=".", ms=3, label=f"{rs[0]['label']} ({name})")
        sx, sy = _stderr(rs, "plane_x"), _stderr(rs, "plane_y")
        if sx is not None or sy is not None:
            ax.errorbar(x, y, xerr=None if sx is None else BAND * sx, yerr=None if sy is None else BAND * sy,
                        fmt="none", ecolor=c, alpha=0.5, elinewidth=0.8)
        ax.plot(x[:1], y[:1], "o", mfc="white", mec=c, ms=8, mew=1.5)
        ax.plot(x[-1:], y[-1:], "s", color=c, ms=8)
        handles.append(line)
    ax.axvline(0.0, color="black", lw=1.2)
    epochs = sorted({r["epoch"] for r in rows})
    handles += [
        Line2D([], [], color="black", lw=1.2, label="EI nullcline ($EI_{parts}$ = 0)"),
        Line2D([], [], ls="", marker="o", mfc="white", mec="gray", ms=8, label=f"epoch {epochs[0]}"),
        Line2D([], [], ls="", marker="s", color="gray", ms=8, label=f"epoch {epochs[-1]}"),
    ]
    ax.legend(handles=handles, loc="best")
    lo, hi = ax.get_xlim()
    ax.set_xlim(min(lo, -0.05 * (hi - lo)), hi)
    ax.set_xlabel("← more degenerate — more sensitive →\n"
                  "(sensitivity − degeneracy)/√2 = $EI_{parts}$/√2 (bits)")
    ax.set_ylabel("(sensitivity + degeneracy)/√2 (bits)")
    ax.set_title("Causal plane over training" + (f"\n{title}" if title else ""))
    ax.grid(alpha=0.3)
    _caption(fig, rows, settings, 120)
    return _png(fig)
