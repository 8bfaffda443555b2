"""The docstring examples of every module of ei_jax and bridges run (doctest)."""

import doctest
import importlib

import pytest

from tests.docs._walk import all_module_names

MODULES = all_module_names()


def test_the_walk_finds_the_modules():
    assert {"ei_jax.core", "ei_jax._src.measures.pairwise", "bridges.deep_ei",
            "ei_jax.experiments.studies.driver"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    module = importlib.import_module(name)
    failures, _ = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert failures == 0, f"{name}: {failures} doctest example(s) failed (output above)"


def test_the_public_faces_have_examples():
    finder = doctest.DocTestFinder()
    for name in ("ei_jax.core", "ei_jax.exact", "ei_jax.errors", "bridges", "bridges.deep_ei"):
        assert any(t.examples for t in finder.find(importlib.import_module(name))), name
