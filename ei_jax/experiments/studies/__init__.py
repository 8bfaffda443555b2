"""The studies that answer deep-ei's open questions, one module each, and their registry.

Each study module has ``run(out, *, seeds, fast, progress, seed, command) -> StudyResult``:
it trains small networks over several seeds (:mod:`~ei_jax.experiments.studies.runs`,
:mod:`~ei_jax.experiments.studies.driver`), measures every layer over training
(:mod:`~ei_jax.experiments.studies.measure`) and writes a table, plots and a summary
(:mod:`~ei_jax.experiments.studies.report`). ``ei-jax study NAME`` runs ``STUDIES[NAME]``;
adding a study is one module here and one entry below.
"""

import importlib
from collections.abc import Mapping


class _Registry(Mapping):
    """Study name -> its ``run`` function, importing the study's module on first use (so the
    command line lists the names without importing every study)."""

    def __init__(self, modules):
        self._modules = dict(modules)

    def __getitem__(self, name):
        module = self._modules[name]            # KeyError for an unknown study, as a dict
        return importlib.import_module(f"{__name__}.{module}").run

    def __iter__(self):
        return iter(self._modules)

    def __len__(self):
        return len(self._modules)


#: Study name -> its ``run`` function (the value is the module below this package).
STUDIES = _Registry({
    "dropout": "dropout",
    "memorization": "memorization",
    "depth": "depth",
    "recurrent": "recurrent",
})

__all__ = ["STUDIES"]
