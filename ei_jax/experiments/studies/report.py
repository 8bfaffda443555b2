"""A study's outputs: statistics across seeds, the table (CSV + JSON), plots and summary.md.

Numbers across seeds are reported as mean ± standard error over seeds
(``std(ddof=1) / sqrt(S)``); differences between two arms are paired by seed (same init key).
"""

import csv
import io
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure

TABLE_COLUMNS = ("arm", "seed", "step", "layer", "label", "n_in", "n_out", "train_accuracy",
                 "test_accuracy", "ei_parts", "sensitivity", "degeneracy", "plane_x", "plane_y",
                 "vector_ei", "vector_ei_stderr", "vector_ei_plugin", "max_ei_parts",
                 "checkpoint")


def mean_se(values) -> tuple[float, float]:
    """Mean and standard error of the mean (NaN stderr for one value)."""
    v = np.asarray(values, np.float64)
    se = float(np.std(v, ddof=1) / math.sqrt(len(v))) if len(v) > 1 else math.nan
    return float(np.mean(v)), se


def fmt(mean: float, se: float, digits: int = 2) -> str:
    """``"1.23 ± 0.04"``."""
    return f"{mean:.{digits}f} ± {se:.{digits}f}"


def select(rows, **where) -> list[dict[str, Any]]:
    """Rows whose fields equal every ``where`` item, ordered by seed."""
    out = [r for r in rows if all(r[k] == v for k, v in where.items())]
    return sorted(out, key=lambda r: r["seed"])


def final_step(rows) -> int:
    return max(r["step"] for r in rows)


def per_seed(rows, field, **where) -> np.ndarray:
    """``(S,)`` values of ``field`` over seeds (one row per seed must match)."""
    return np.array([r[field] for r in select(rows, **where)], np.float64)


def paired_difference(rows, field, arm_a, arm_b, **where) -> tuple[float, float]:
    """Mean ± stderr over seeds of ``field[arm_a] - field[arm_b]`` (paired by seed)."""
    return mean_se(per_seed(rows, field, arm=arm_a, **where) - per_seed(rows, field, arm=arm_b, **where))


def csv_text(rows) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, TABLE_COLUMNS, lineterminator="\n", extrasaction="ignore")
    w.writeheader()
    for r in rows:
        w.writerow(r)
    return buf.getvalue()


def read_csv(path) -> list[dict[str, Any]]:
    """Reads ``table.csv`` back (numbers as int/float)."""
    ints, text = {"seed", "step", "n_in", "n_out"}, {"arm", "layer", "label", "checkpoint"}
    with open(path, newline="") as f:
        return [{k: v if k in text else int(v) if k in ints else float(v) for k, v in r.items()}
                for r in csv.DictReader(f)]


def _arms(rows):
    return list(dict.fromkeys(r["arm"] for r in rows))


def _layers(rows, arm):
    return list(dict.fromkeys(r["label"] for r in rows if r["arm"] == arm))


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    return buf.getvalue()


def _band(rows, field, arm, label):
    steps = sorted({r["step"] for r in rows if r["arm"] == arm})
    stats = [mean_se(per_seed(rows, field, arm=arm, label=label, step=s)) for s in steps]
    m = np.array([a for a, _ in stats])
    se = np.nan_to_num(np.array([b for _, b in stats]))
    return np.array(steps), m, se


def over_training_png(rows: Sequence[dict[str, Any]], title: str, field: str = "ei_parts",
                      ylabel: str = "$EI_{parts}$ (bits, exact)") -> bytes:
    """One panel per layer (and one of train/test accuracy): mean over seeds ± stderr band."""
    arms = _arms(rows)
    labels = list(dict.fromkeys(lb for a in arms for lb in _layers(rows, a)))
    colors = [colormaps["tab10"](i % 10) for i in range(len(arms))]
    n = len(labels) + 1
    cols = min(3, n)
    fig = Figure(figsize=(4.2 * cols, 3.3 * math.ceil(n / cols)), layout="constrained")
    axes = np.atleast_1d(fig.subplots(math.ceil(n / cols), cols, squeeze=False)).ravel()
    for arm, c in zip(arms, colors):
        for acc, ls in (("train_accuracy", "-"), ("test_accuracy", "--")):
            s, m, se = _band(rows, acc, arm, _layers(rows, arm)[0])
            axes[0].plot(s, m, color=c, ls=ls, label=f"{arm} {acc.split('_')[0]}")
        for ax, label in zip(axes[1:], labels):
            if label in _layers(rows, arm):
                s, m, se = _band(rows, field, arm, label)
                ax.plot(s, m, color=c, label=arm)
                ax.fill_between(s, m - se, m + se, color=c, alpha=0.25)
    axes[0].set_title("accuracy (solid train, dashed test)")
    axes[0].legend(fontsize="x-small")
    for ax, label in zip(axes[1:], labels):
        sampled = all(math.isnan(r["sensitivity"]) for r in rows if r["label"] == label)
        text = ylabel.replace("exact", "sampled") if sampled else ylabel
        ax.set_title(f"{label}: {text}", fontsize="small")
        ax.legend(fontsize="x-small")
    for ax in axes[:n]:
        ax.set_xlabel("training step")
        ax.grid(alpha=0.3)
    for ax in axes[n:]:
        ax.set_visible(False)
    fig.suptitle(f"{title} (mean ± s.e. over seeds)")
    return _png(fig)


def causal_plane_png(rows: Sequence[dict[str, Any]], title: str) -> bytes:
    """Each arm's layers' mean path in the rotated causal plane (start o, end ■)."""
    arms = _arms(rows)
    fig = Figure(figsize=(5.2 * len(arms), 4.8), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(arms), sharex=True, sharey=True, squeeze=False)).ravel()
    for ax, arm in zip(axes, arms):
        labels = _layers(rows, arm)
        cmap = colormaps["viridis"]
        for i, label in enumerate(labels):
            c = cmap(0.85 * i / max(1, len(labels) - 1))
            _, x, _ = _band(rows, "plane_x", arm, label)
            _, y, _ = _band(rows, "plane_y", arm, label)
            ax.plot(x, y, color=c, marker=".", ms=3, label=label)
            ax.plot(x[:1], y[:1], "o", mfc="white", mec=c, ms=8)
            ax.plot(x[-1:], y[-1:], "s", color=c, ms=8)
        ax.axvline(0.0, color="black", lw=1)
        ax.set_title(arm)
        ax.set_xlabel("$EI_{parts}/\\sqrt{2}$ (bits)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="x-small")
    axes[0].set_ylabel("(sensitivity + degeneracy)$/\\sqrt{2}$ (bits)")
    fig.suptitle(f"{title}: causal plane over training (mean over seeds)")
    return _png(fig)


def comparison_findings(rows, base: str, others: Sequence[str], *, field: str = "ei_parts",
                        name: str = "EI_parts") -> list[str]:
    """Sentences comparing each arm in ``others`` with ``base`` at the last step, per layer."""
    step = final_step(rows)
    seeds = len(select(rows, arm=base, step=step, label=_layers(rows, base)[0]))
    out = []
    for arm in [base, *others]:
        tr = mean_se(per_seed(rows, "train_accuracy", arm=arm, step=step, label=_layers(rows, arm)[0]))
        te = mean_se(per_seed(rows, "test_accuracy", arm=arm, step=step, label=_layers(rows, arm)[0]))
        vals = "; ".join(f"{lb} {fmt(*mean_se(per_seed(rows, field, arm=arm, step=step, label=lb)))}"
                         for lb in _layers(rows, arm))
        out.append(f"{arm}: train accuracy {fmt(*tr)}, test accuracy {fmt(*te)}; final {name} "
                   f"(bits) {vals}")
    for arm in others:
        for lb in _layers(rows, base):
            d, se = paired_difference(rows, field, arm, base, step=step, label=lb)
            verb = "raises" if d > 0 else "lowers"
            sig = "" if abs(d) > 2 * se else " (within 2 s.e. of no change)"
            out.append(f"{arm} {verb} {lb} {name} by {abs(d):.2f} ± {se:.2f} bits relative to "
                       f"{base} at the end of training (step {step}, {seeds} seeds){sig}")
    return out
