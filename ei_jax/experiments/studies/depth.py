"""Study ``depth``: do hidden layers differentiate in the causal plane on a task that needs depth?

deep-ei's open question 3. The task needs depth: nested XOR of four thresholded coordinates
(:func:`ei_jax.experiments.tasks.nested_xor`, the parity of a 4-d checkerboard, generated from
the key). A deep tanh network (four hidden layers of 12) and a shallow one (one hidden layer
with the same number of parameters, 79 units) train on it; the deep one wins by about 30
points of test accuracy. The deep network's hidden-to-hidden layers have identical shapes and
start out statistically identical, so their distance in the causal plane measures how much
training differentiates them.
"""

import dataclasses
import itertools

import jax
import numpy as np

from ei_jax.experiments.studies import report as rep
from ei_jax.experiments.studies.driver import StudyResult, training_setup, write_arms_study
from ei_jax.experiments.studies.runs import Arm, TrainSettings
from ei_jax.experiments.tasks import nested_xor

QUESTION = ("On a task that needs depth, do a deep network's hidden layers move apart "
            "(differentiate) in the causal plane? (deep-ei's README, open question 3.)")


def config(*, fast: bool, seeds: int | None):
    """``(dims, hidden width, deep hidden layers, TrainSettings, seeds, n_train)``."""
    if fast:
        return (4, 8, 3, TrainSettings(steps=300, every=100, lr=3e-3, activation="tanh"),
                seeds or 2, 600)
    return (4, 12, 4, TrainSettings(steps=8_000, every=400, lr=3e-3, activation="tanh"),
            seeds or 5, 3_000)


def n_params(widths) -> int:
    """Weights and biases of a dense network with these widths."""
    return sum(a * b + b for a, b in zip(widths[:-1], widths[1:]))


def arms(key, dims, width, depth, n_train) -> list[Arm]:
    """The deep network and a one-hidden-layer one with (as near as possible) as many parameters."""
    d = nested_xor(key, dims=dims, n_train=n_train, n_test=1_000)
    data = (d.x_train, d.y_train.argmax(1), d.x_test, d.y_test.argmax(1))
    deep = (dims, *[width] * depth, 2)
    hidden = max(1, round((n_params(deep) - 2) / (dims + 3)))
    return [Arm("shallow", (dims, hidden, 2), *data), Arm("deep", deep, *data)]


def hidden_spread(rows, arm, step) -> np.ndarray:
    """Per-seed mean pairwise causal-plane distance between the hidden-to-hidden layers."""
    labels = [r["label"] for r in rep.select(rows, arm=arm, step=step, seed=0)
              if r["label"][0] == "T" and r["label"][-1] != "Y"]
    pts = {lb: np.stack([rep.per_seed(rows, f, arm=arm, label=lb, step=step)
                         for f in ("plane_x", "plane_y")]) for lb in labels}
    pairs = list(itertools.combinations(labels, 2))
    return np.mean([np.hypot(*(pts[a] - pts[b])) for a, b in pairs], axis=0)


def findings(rows) -> list[str]:
    step = rep.final_step(rows)
    out = []
    for arm in ("shallow", "deep"):
        lbs = list(dict.fromkeys(r["label"] for r in rows if r["arm"] == arm))
        acc = rep.mean_se(rep.per_seed(rows, "test_accuracy", arm=arm, step=step, label=lbs[0]))
        tr = rep.mean_se(rep.per_seed(rows, "train_accuracy", arm=arm, step=step, label=lbs[0]))
        vals = "; ".join(f"{lb} ({rep.fmt(*rep.mean_se(rep.per_seed(rows, 'plane_x', arm=arm, step=step, label=lb)))}, "
                         f"{rep.fmt(*rep.mean_se(rep.per_seed(rows, 'plane_y', arm=arm, step=step, label=lb)))})"
                         for lb in lbs)
        out.append(f"{arm}: train accuracy {rep.fmt(*tr)}, test accuracy {rep.fmt(*acc)}; final "
                   f"causal-plane points (x, y) in bits: {vals}")
    first = {arm: next(r["label"] for r in rows if r["arm"] == arm) for arm in ("shallow", "deep")}
    gap = rep.mean_se(rep.per_seed(rows, "test_accuracy", arm="deep", step=step, label=first["deep"])
                      - rep.per_seed(rows, "test_accuracy", arm="shallow", step=step,
                                     label=first["shallow"]))
    out.append(f"deep minus shallow test accuracy (same number of parameters, paired by seed): "
               f"{rep.fmt(*gap)}")
    s0, s1 = hidden_spread(rows, "deep", 0), hidden_spread(rows, "deep", step)
    d, se = rep.mean_se(s1 - s0)
    verdict = "move apart" if d > 2 * se else "move closer" if d < -2 * se else "do not measurably move apart"
    out.append(f"deep network hidden-to-hidden layers: mean pairwise causal-plane distance "
               f"{rep.fmt(*rep.mean_se(s0))} bits at initialisation, {rep.fmt(*rep.mean_se(s1))} "
               f"bits at step {step}: change {rep.fmt(d, se)} bits -- they {verdict}")
    return out


def run(out, *, seeds: int | None = None, fast: bool = False, progress: bool = True,
        seed: int = 0, command: str = "") -> StudyResult:
    """Runs the depth study into ``out`` (see the module docstring).

    Example:
      >>> r = run("runs/study-depth", fast=True, progress=False)   # doctest: +SKIP
      >>> sorted({row["arm"] for row in r.rows})                    # doctest: +SKIP
      ['deep', 'shallow']
    """
    dims, width, depth, settings, seeds, n_train = config(fast=fast, seeds=seeds)
    k_data, k_run = jax.random.split(jax.random.key(seed))
    the_arms = arms(k_data, dims, width, depth, n_train)
    nets = (f"shallow {'-'.join(map(str, the_arms[0].widths))} ({n_params(the_arms[0].widths)} "
            f"parameters) vs deep {'-'.join(map(str, the_arms[1].widths))} "
            f"({n_params(the_arms[1].widths)} parameters) {settings.activation} MLPs")
    setup = (training_setup(nets, seeds, settings) + f" on {len(the_arms[0].x_train)} training / "
             f"{len(the_arms[0].x_test)} test points of nested XOR: x uniform in [0, 1]^{dims}, "
             f"label = parity of [x_i > 1/2] (ei_jax.experiments.tasks.nested_xor). Exact "
             f"EI_parts and sensitivity ({settings.bins} bins) every {settings.every} steps.")
    meta = dict(widths={a.name: list(a.widths) for a in the_arms}, seeds=seeds,
                settings=dataclasses.asdict(settings))
    return write_arms_study(
        out, k_run, the_arms, settings, seeds, progress=progress,
        name="depth", title="Depth and differentiation in the causal plane", question=QUESTION,
        setup=setup, meta=meta,
        findings=findings, command=command)
