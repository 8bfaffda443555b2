"""Shared test configuration: strict JAX promotion rules and seeded keys.

Every test runs with ``jax_numpy_rank_promotion="raise"`` and strict dtype promotion, so
silent broadcasting or dtype widening in the library is a test failure.
"""

import os

# Compile faster in tests: XLA's backend optimisation level 1 roughly halves compile time
# (which dominates a test suite of many small programs) and changes no result beyond
# float32 rounding. Set before JAX starts its backend; an explicit XLA_FLAGS wins.
os.environ.setdefault("XLA_FLAGS", "--xla_backend_optimization_level=1")

# numba's on-disk cache notices a change only in the file of the function it caches, not in
# the kernels it calls from other files (editing box_cells.py left box_stream.mi_sums
# running the old box_local): the tests' cache is keyed by the kernels' sources, so a test
# never runs stale compiled code and unchanged kernels compile once.
import hashlib  # noqa: E402
import pathlib  # noqa: E402

_KERNELS = sorted(pathlib.Path(__file__).resolve().parents[1].glob("ei_jax/_src/exact/*.py"))
_digest = hashlib.sha256(b"".join(p.read_bytes() for p in _KERNELS)).hexdigest()[:16]
os.environ.setdefault("NUMBA_CACHE_DIR", str(pathlib.Path.home() / ".cache" / "ei_jax-tests"
                                             / "numba" / _digest))

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
