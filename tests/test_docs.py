"""Every public function documents its shapes and math and has an example that runs."""

import doctest
import inspect

import pytest

import ei_jax
import ei_jax.core
from ei_jax._src.model import activation_inference
from ei_jax._src.core import batching
from ei_jax._src.measures import causal_plane
from ei_jax._src.core import measures as core_measures
from ei_jax._src.info import estimators
from ei_jax._src.sampled import interventions
from ei_jax._src.model import layer_maps
from ei_jax._src.model import layers
from ei_jax._src.measures import pairwise as pairwise_measures
from ei_jax._src.model import recording
from ei_jax._src.info import reporting
from ei_jax._src.measures import sampling
from ei_jax._src.model import topology
from ei_jax._src.measures import vector as vector_measures

import bridges

NAMESPACES = (ei_jax, ei_jax.core, ei_jax.exact, bridges)
PUBLIC = list({id(f): f for f in (getattr(m, n) for m in NAMESPACES for n in m.__all__)
               if inspect.isfunction(f)}.values())
CLASSES = [getattr(m, n) for m in NAMESPACES for n in m.__all__ if inspect.isclass(getattr(m, n))]


@pytest.mark.parametrize("cls", CLASSES, ids=[c.__name__ for c in CLASSES])
def test_public_classes_have_a_docstring(cls):
    assert len((cls.__doc__ or "").strip()) > 20, f"{cls.__name__} needs a docstring"


@pytest.mark.parametrize("fn", PUBLIC, ids=[f"{f.__module__}.{f.__name__}" for f in PUBLIC])
def test_public_functions_are_documented_with_an_example(fn):
    doc = inspect.getdoc(fn) or ""
    assert len(doc) > 80, f"{fn.__name__} needs a docstring"
    assert "Example" in doc, f"{fn.__name__}: add a runnable example"
    assert "Returns" in doc or "returns" in doc, f"{fn.__name__}: document what it returns (shapes)"


@pytest.mark.parametrize("module", [activation_inference, batching, causal_plane, core_measures,
                                    estimators, interventions, layer_maps, layers, pairwise_measures, recording,
                                    reporting, sampling, topology, vector_measures, ei_jax.core],
                         ids=lambda m: m.__name__)
def test_docstring_examples_run(module):
    failures, tried = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)[:2]
    assert tried > 0
    assert failures == 0
