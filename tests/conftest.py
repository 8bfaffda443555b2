"""Shared test configuration: strict JAX promotion rules and seeded keys.

Every test runs with ``jax_numpy_rank_promotion="raise"`` and strict dtype promotion, so
silent broadcasting or dtype widening in the library is a test failure.
"""

import os

# Compile faster in tests: XLA's backend optimisation level 1 roughly halves compile time
# (which dominates a test suite of many small programs) and changes no result beyond
# float32 rounding. Set before JAX starts its backend; an explicit XLA_FLAGS wins.
os.environ.setdefault("XLA_FLAGS", "--xla_backend_optimization_level=1")

import jax  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_numpy_rank_promotion", "raise")
jax.config.update("jax_numpy_dtype_promotion", "strict")


@pytest.fixture(params=[0])
def seed(request):
    """The seed of the test's key; shown in the test id so a failure can be rerun."""
    return request.param


@pytest.fixture
def key(seed):
    return jax.random.key(seed)
