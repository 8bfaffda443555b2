"""Activation functions ei_jax recognises, and their default output ranges.

The ranges are deep-ei's: sigmoid ``(0, 1)``, tanh ``(-1, 1)``, ReLU ``(0, 10)``
and no activation ``(-10, 10)``.
"""

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from ei_jax._src.base.errors import UnknownActivationError


def _identity(x):
    return x


ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "sigmoid": jax.nn.sigmoid,
    "tanh": jnp.tanh,
    "relu": jax.nn.relu,
    "identity": _identity,
}

DEFAULT_RANGES: dict[str | None, tuple[float, float]] = {
    "sigmoid": (0.0, 1.0),
    "tanh": (-1.0, 1.0),
    "relu": (0.0, 10.0),
    "identity": (-10.0, 10.0),
    None: (-10.0, 10.0),
}

_ALIASES = {
    "linear": "identity",
    "none": "identity",
    "logistic": "sigmoid",
}

# Functions a user may put in a Sequential, mapped to their canonical names.
_KNOWN_FUNCTIONS: list[tuple[Any, str]] = [
    (jax.nn.sigmoid, "sigmoid"),
    (jax.nn.tanh if hasattr(jax.nn, "tanh") else jnp.tanh, "tanh"),
    (jnp.tanh, "tanh"),
    (jax.nn.relu, "relu"),
    (_identity, "identity"),
]


def _flax_known_functions():
    """flax.linen's and flax.nnx's activations (today the same objects as jax.nn's): looked up
    only when a function is not found otherwise, so ``import ei_jax`` does not import
    ``flax.nnx`` (and optax, treescope) for nothing."""
    import flax.linen as linen
    from flax import nnx

    return [(getattr(mod, attr), attr) for mod in (linen, nnx) for attr in ("sigmoid", "tanh", "relu")
            if hasattr(mod, attr)]


def canonical_name(activation: str | None) -> str | None:
    """Returns the canonical activation name, ``None`` meaning no activation."""
    if activation is None:
        return None
    key = activation.lower()
    key = _ALIASES.get(key, key)
    if key not in ACTIVATIONS:
        raise UnknownActivationError(
            f"Unknown activation {activation!r}. Expected one of "
            f"{sorted(ACTIVATIONS)} (or a callable together with an explicit out_range)."
        )
    return None if key == "identity" else key


def name_of_function(fn: Any) -> str | None:
    """Maps a known activation function object to its canonical name, or ``...`` if unknown."""
    for known, name in (*_KNOWN_FUNCTIONS, *_flax_known_functions()):
        if fn is known:
            return None if name == "identity" else name
    return ...  # type: ignore[return-value]


def function_of(name: str | None) -> Callable[[jax.Array], jax.Array]:
    """Returns the activation function for a canonical name (``None`` is identity)."""
    return ACTIVATIONS["identity" if name is None else name]


def default_range(name: str | None) -> tuple[float, float]:
    """deep-ei's default output range of an activation."""
    return DEFAULT_RANGES[name]
