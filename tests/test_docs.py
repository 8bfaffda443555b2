"""Every public function documents its shapes and math and has an example that runs."""

import doctest
import inspect

import pytest

import ei_jax
import ei_jax.core
from ei_jax._src import (
    activation_inference,
    batching,
    causal_plane,
    core_measures,
    estimators,
    layer_maps,
    layers,
    pairwise_measures,
    recording,
    reporting,
    sampling,
    topology,
    vector_measures,
)

PUBLIC = [getattr(ei_jax, n) for n in ei_jax.__all__
          if inspect.isfunction(getattr(ei_jax, n))]


@pytest.mark.parametrize("fn", PUBLIC, ids=[f.__name__ for f in PUBLIC])
def test_public_functions_are_documented_with_an_example(fn):
    doc = inspect.getdoc(fn) or ""
    assert len(doc) > 80, f"{fn.__name__} needs a docstring"
    assert "Example" in doc, f"{fn.__name__}: add a runnable example"
    assert "Returns" in doc or "returns" in doc, f"{fn.__name__}: document what it returns (shapes)"


@pytest.mark.parametrize("module", [activation_inference, batching, causal_plane, core_measures,
                                    estimators, layer_maps, layers, pairwise_measures, recording,
                                    reporting, sampling, topology, vector_measures, ei_jax.core],
                         ids=lambda m: m.__name__)
def test_docstring_examples_run(module):
    failures, tried = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)[:2]
    assert tried > 0
    assert failures == 0
