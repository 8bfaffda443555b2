"""What the traced-topology tests share: their bins, and Flax's default promotion rules.

Flax's own ``avg_pool`` and ``gelu`` mix int and float, which the suite's strict promotion
(tests/conftest.py) refuses; traced networks run as their users run them. Import the
fixture into a test module to apply it to every test there."""

import warnings

import jax
import pytest

import ei_jax

BINS = dict(in_bins=8, out_bins=8)


@pytest.fixture(autouse=True)
def flax_default_promotion():
    with warnings.catch_warnings(), jax.numpy_dtype_promotion("standard"), \
            jax.numpy_rank_promotion("allow"):
        warnings.simplefilter("ignore", ei_jax.DefaultRangeWarning)
        yield
