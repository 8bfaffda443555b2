"""Argument types of the ``ei-jax`` command: each turns a string into a checked value or
raises ``argparse.ArgumentTypeError`` with a one-line reason (argparse prints it, exit 2)."""

import argparse
import math

import ei_jax

#: Most bins per neuron the command accepts.
MAX_BINS = 1024


def activation_choices() -> tuple[str, ...]:
    """Activation names ``--activation`` accepts (one, or one per layer separated by commas):
    the registry's activations that a network may contain (:func:`ei_jax.activations`)."""
    return tuple(a.name for a in ei_jax.activations() if a.in_models)


def count(text: str) -> int:
    """A positive integer, also written as 1e7 or 10_000_000."""
    try:
        value = float(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if not (math.isfinite(value) and value >= 1 and value == int(value)):
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return int(value)


def seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer seed >= 0, got {text!r}") from None
    if not 0 <= value < 2**32:
        raise argparse.ArgumentTypeError(f"expected an integer seed in [0, 2**32), got {text!r}")
    return value


def _number(text: str, *, positive: bool) -> float:
    what = "a positive number" if positive else "a finite number"
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if not (math.isfinite(value) and (value > 0 or not positive)):
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
    return value


def positive_float(text: str) -> float:
    return _number(text, positive=True)


def finite(text: str) -> float:
    return _number(text, positive=False)


def bins(text: str) -> int:
    value = count(text)
    if value > MAX_BINS:
        raise argparse.ArgumentTypeError(f"expected at most {MAX_BINS} bins, got {value}")
    return value


def activation(text: str):
    """One activation name (used after every layer), or a tuple of one name per layer."""
    names = [t.strip().lower() for t in text.split(",")]
    choices = activation_choices()
    for name in names:
        if name not in choices:
            raise argparse.ArgumentTypeError(
                f"invalid choice {name!r}: expected one of {', '.join(choices)}, or one per "
                "layer separated by commas (e.g. sigmoid,tanh)")
    return names[0] if len(names) == 1 else tuple(names)


def display(activation_value) -> str:
    """How an :func:`activation` value is printed: ``sigmoid`` or ``sigmoid,tanh``."""
    return activation_value if isinstance(activation_value, str) else ",".join(activation_value)


def architecture(text: str) -> str:
    """``FILE.py:NAME`` or ``package.module:NAME`` (imported only when the command runs)."""
    where, sep, name = text.rpartition(":")
    if not sep or not where or not name.isidentifier():
        raise argparse.ArgumentTypeError(
            f"expected FILE.py:NAME or package.module:NAME (NAME returns your torch.nn.Module "
            f"or flax.linen module), got {text!r}")
    return text


def shape(text: str) -> tuple[int, ...]:
    """One example's shape, positive sizes separated by commas: ``1,8,8`` or ``16``."""
    try:
        dims = tuple(int(t) for t in text.replace("x", ",").split(","))
    except ValueError:
        dims = ()
    if not dims or any(d < 1 for d in dims):
        raise argparse.ArgumentTypeError(
            f"expected positive sizes separated by commas (one example, no batch axis, e.g. "
            f"1,8,8 for a torch image C,H,W), got {text!r}")
    return dims
