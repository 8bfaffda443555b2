"""The paper's figures of a training run, as PNG bytes (matplotlib, Agg; no pyplot state).

* :func:`ei_over_training_png`: loss, EI_parts, vector EI, sensitivity and degeneracy of
  each layer against the epoch.
* :func:`causal_plane_png`: each layer's path in the causal plane, rotated by 45 degrees as
  in the paper: horizontal ``(S - D)/sqrt 2 = EI_parts/sqrt 2``, vertical ``(S + D)/sqrt 2``,
  with the EI nullcline ``EI_parts = 0`` (the vertical axis through 0).

Both take the rows of a run's table (dicts with ``epoch``, ``layer``, ``label`` and the
measures, as written by :func:`ei_jax._src.experiments.reproduce`).
"""

import io
from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.lines import Line2D


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


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=150)
    return buf.getvalue()


def ei_over_training_png(rows: Sequence[dict[str, Any]], title: str = "") -> bytes:
    """Four panels against the epoch: loss; EI_parts; vector EI; sensitivity and degeneracy."""
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
        ax_parts.plot(e, [r["ei_parts"] for r in rs], color=c, label=label)
        ax_vec.plot(e, [r["vector_ei"] for r in rs], color=c, label=label)
        ax_sd.plot(e, [r["sensitivity"] for r in rs], color=c, label=f"{rs[0]['label']} sensitivity")
        ax_sd.plot(e, [r["degeneracy"] for r in rs], color=c, ls="--", label=f"{rs[0]['label']} degeneracy")
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
    return _png(fig)


def causal_plane_png(rows: Sequence[dict[str, Any]], title: str = "") -> bytes:
    """Each layer's path in the rotated causal plane over training, with the EI nullcline."""
    layers = _by_layer(rows)
    colors = _colors(len(layers))
    fig = Figure(figsize=(7, 6), layout="constrained")
    ax = fig.subplots()
    handles = []
    for (name, rs), c in zip(layers.items(), colors):
        x = np.array([r["plane_x"] for r in rs])
        y = np.array([r["plane_y"] for r in rs])
        (line,) = ax.plot(x, y, color=c, lw=1.5, marker=".", ms=3, label=f"{rs[0]['label']} ({name})")
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
    return _png(fig)
