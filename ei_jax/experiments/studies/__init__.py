"""The studies that answer deep-ei's open questions, one module each, and their registry.

Each study module has ``run(out, *, seeds, fast, progress, seed, command) -> StudyResult``:
it trains small networks over several seeds (:mod:`~ei_jax.experiments.studies.runs`,
:mod:`~ei_jax.experiments.studies.driver`), measures every layer over training
(:mod:`~ei_jax.experiments.studies.measure`) and writes a table, plots and a summary
(:mod:`~ei_jax.experiments.studies.report`). ``ei-jax study NAME`` runs ``STUDIES[NAME]``;
adding a study is one module here and one entry below.
"""

from ei_jax.experiments.studies import depth, dropout, memorization, recurrent

#: Study name -> its ``run`` function.
STUDIES = {
    "dropout": dropout.run,
    "memorization": memorization.run,
    "depth": depth.run,
    "recurrent": recurrent.run,
}

__all__ = ["STUDIES"]
