"""Argument checks shared by the core and the convenient API, including checks that hold
under ``jax.jit`` / ``jax.vmap`` and a guard against differentiating a sampled measure.

Checks on Python values raise a typed error at once. Checks on array *data* use
:func:`error_if`: when the data is concrete the typed error is raised at once; inside a
user's ``jax.jit`` the check runs on the device and the call fails at run time with the same
message (a ``JaxRuntimeError`` whose text carries it), instead of being skipped. Inside
:func:`ei_jax.core.map_params` the check's result becomes an output of the compiled call
(:func:`deferred_checks`), checked on the host afterwards: the same typed error, naming the
parameter sets, and a program without host callbacks (JAX's persistent compilation cache
cannot store a program that has one).
"""

import contextlib
import logging
import math
import threading

import jax
import jax.numpy as jnp
import numpy as np

from ei_jax._src.base.errors import (
    EIJaxError,
    InvalidCallError,
    InvalidOptionError,
    InvalidRangeError,
    InvalidSamplesError,
    NonFiniteParamsError,
    NotDifferentiableError,
    ShapeMismatchError,
)
from ei_jax._src.base.interface import MAX_SAMPLES


def positive_int(name: str, value, error=InvalidOptionError) -> int:
    """``value`` as an int >= 1 (NumPy integers accepted; bools and floats are not)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < 1:
        raise error(f"{name} must be a positive int. Got {value!r}.")
    return int(value)


def check_samples(samples, start=0) -> tuple[int, int]:
    """The one sample-count check: ``(start, stop)`` of a run of ``samples`` samples.

    Raises:
      InvalidSamplesError: ``samples`` is not a positive int, ``start`` is negative, or the
        run ends past :data:`MAX_SAMPLES` (sample indices and per-call counts are int32).
    """
    samples = positive_int("samples", samples, InvalidSamplesError)
    if isinstance(start, bool) or not isinstance(start, (int, np.integer)) or start < 0:
        raise InvalidSamplesError(f"start must be an int >= 0. Got {start!r}.")
    stop = int(start) + samples
    if stop > MAX_SAMPLES:
        raise InvalidSamplesError(
            f"A measurement takes at most {MAX_SAMPLES:,} samples (sample indices and counts are "
            f"int32); this one would end at sample {stop:,}. For more, average measurements made "
            "with different keys (jax.random.split), each of at most that many samples."
        )
    return int(start), stop


def check_choice(name: str, value, choices) -> str:
    """``value`` if it is one of ``choices``, else :class:`InvalidOptionError`."""
    if not isinstance(value, str) or value not in choices:
        raise InvalidOptionError(f"{name} must be one of {tuple(choices)}. Got {value!r}.")
    return value


def check_shape(name: str, value) -> tuple[int, ...]:
    """``value`` as a non-empty tuple of positive ints (a tuple or list of ints, NumPy ints
    accepted), else :class:`ShapeMismatchError`."""
    if not isinstance(value, (tuple, list)) or not value or any(
            isinstance(d, (bool, np.bool_)) or not isinstance(d, (int, np.integer)) or d < 1
            for d in value):
        raise ShapeMismatchError(f"{name} must be a non-empty tuple of positive ints, e.g. (4,). "
                                 f"Got {value!r}.")
    return tuple(int(d) for d in value)


def check_flag(name: str, value, *, none: bool = False):
    """``value`` as a bool (NumPy bools accepted; not ``"no"``, which would read as true);
    ``none=True`` also lets ``None`` through."""
    if value is None and none:
        return None
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    allowed = "True, False or None" if none else "True or False"
    raise InvalidOptionError(f"{name} must be {allowed}. Got {value!r}.")


def check_flags(progress=None, **flags) -> None:
    """The measures' flags: ``progress`` True, False or None; every other one True or False."""
    check_flag("progress", progress, none=True)
    for name, value in flags.items():
        check_flag(name, value)


def check_range(name: str, value) -> tuple[float, float]:
    """``value`` as a ``(lo, hi)`` pair of finite floats with ``lo < hi``, else
    :class:`InvalidRangeError` (the binning's own check, for layers resolved before binning)."""
    try:
        lo, hi = value
        lo, hi = float(lo), float(hi)
    except (TypeError, ValueError):
        raise InvalidRangeError(f"{name} must be a pair (lo, hi) of numbers. Got {value!r}.") from None
    if not (math.isfinite(lo) and math.isfinite(hi)) or not lo < hi:
        raise InvalidRangeError(f"{name} must be two finite numbers with lo < hi. Got {value!r}.")
    return lo, hi


def not_traced(function: str, *values) -> None:
    """:class:`InvalidCallError` if a leaf of ``values`` is a JAX tracer: the convenient API
    (NumPy / float results, Python loops over sample rounds) cannot run under ``jax.jit``,
    ``jax.vmap`` or ``jax.grad``."""
    if any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree.leaves(values)):
        raise InvalidCallError(
            f"{function} got traced values (it was called under jax.jit, jax.vmap or jax.grad); "
            "the convenient API returns NumPy / float results and cannot be traced. Inside "
            "jax.jit or jax.vmap use ei_jax.core (e.g. ei_jax.core.ei_parts(key, apply_fn, params, "
            "...)), or call this function outside the transformation."
        )


def core_key(key):
    """A core function's ``key``: an int seed becomes ``jax.random.key(seed)``; key arrays
    (typed, or legacy uint32 ``(..., 2)``, traced or not) pass unchanged; anything else is an
    :class:`InvalidCallError`."""
    if isinstance(key, (int, np.integer)) and not isinstance(key, (bool, np.bool_)):
        return jax.random.key(int(key))
    dtype = getattr(key, "dtype", None)
    if isinstance(key, (jax.Array, np.ndarray)) and dtype is not None and (
            jnp.issubdtype(dtype, jax.dtypes.prng_key) or dtype == np.uint32):
        return key
    raise InvalidCallError(
        f"key must be a jax.random.key(seed) (or an int seed). Got {type(key).__name__}"
        f"{getattr(key, 'shape', '')}."
    )


def check_devices(devices) -> int:
    """How many of ``jax.devices()`` share the work: ``None`` means all of them."""
    available = jax.device_count()
    if devices is None:
        return available
    n = positive_int("devices", devices)
    if n > available:
        raise InvalidOptionError(f"devices must be in [1, {available}] (the devices JAX sees). Got {n}.")
    return n


#: What a check failing inside a user's ``jax.jit`` adds to its message: JAX (0.10) turns an
#: exception of a host callback into a ``jax.errors.JaxRuntimeError`` carrying its text only.
IN_JIT = (" [Raised while a jax.jit program ran: JAX reports it as a jax.errors.JaxRuntimeError "
          "ending with this message. For the ei_jax error type itself, call the measure outside "
          "jax.jit, or map it over parameter stacks with ei_jax.core.map_params.]")


class _QuietCallbackFailures(logging.Filter):
    """Drops JAX's "jax.debug.callback failed" traceback log for an ei_jax check: the error's
    message reaches the user in the ``JaxRuntimeError`` already."""

    def filter(self, record):
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, EIJaxError)


logging.getLogger("jax._src.debugging").addFilter(_QuietCallbackFailures())


def error_if(pred, error: type[Exception], message: str) -> None:
    """Raises ``error(message)`` where ``pred`` (a bool array) is true anywhere.

    Concrete ``pred``: raises now. Traced ``pred`` (inside ``jax.jit`` / ``jax.vmap``): a
    ``jax.debug.callback`` raises when the program runs, so the check is never skipped. Under
    ``jax.vmap`` the flag is first reduced over the mapped axis: one callback for the whole
    batch (JAX's own batching of a callback writes one per batch entry, so a ``jit(vmap)``
    over 1,000 parameter sets would compile 1,000 callbacks).
    """
    if not isinstance(pred, jax.core.Tracer):
        if bool(np.any(np.asarray(pred))):
            raise error(message)
        return
    state = getattr(_deferring, "state", None)
    if state is not None and getattr(pred, "_trace", None) is state[0]:
        state[1].append((jnp.any(pred), error, message))
        return

    def fail(p):
        if np.any(np.asarray(p)):
            raise error(message + IN_JIT)

    @jax.custom_batching.custom_vmap
    def check(flag):
        jax.debug.callback(fail, flag)
        return flag

    @check.def_vmap
    def _check_batch(axis_size, in_batched, flag):
        del axis_size
        return check(jnp.any(flag) if in_batched[0] else flag), False

    check(jnp.any(pred))


_deferring = threading.local()


@contextlib.contextmanager
def deferred_checks(reference):
    """Within: :func:`error_if` on data traced in the same trace as ``reference`` (a tracer,
    e.g. the parameters :func:`ei_jax.core.map_params` maps over) records ``(flag, error,
    message)`` in the yielded list instead of adding a host callback; the caller returns
    :class:`Flags` of them from its compiled call and :func:`raise_flagged` checks them.
    Data of any other trace (a ``jax.vmap`` inside, a value not depending on ``reference``)
    keeps its callback, so no check is ever lost."""
    outer = getattr(_deferring, "state", None)
    found = []
    _deferring.state = (getattr(reference, "_trace", None) or object(), found)
    try:
        yield found
    finally:
        _deferring.state = outer


@jax.tree_util.register_pytree_node_class
class Flags:
    """Deferred checks as an output of a compiled call: their bool flags (leaves) and their
    ``(error, message)`` (static, so a cached call returns them too)."""

    def __init__(self, flags, checks):
        self.flags, self.checks = list(flags), tuple(checks)

    @classmethod
    def of(cls, found):
        return cls([f for f, _, _ in found], [(e, m) for _, e, m in found])

    def tree_flatten(self):
        return self.flags, self.checks

    @classmethod
    def tree_unflatten(cls, checks, flags):
        return cls(flags, checks)


def raise_flagged(flags: Flags) -> None:
    """Raises the first deferred check whose flag ``(N,)`` is set, naming the entries where it
    is (on concrete flags; traced ones become :func:`error_if` checks again)."""
    for flag, (error, message) in zip(flags.flags, flags.checks):
        if isinstance(flag, jax.core.Tracer):
            error_if(flag, error, message)
            continue
        bad = np.flatnonzero(np.asarray(flag).reshape(-1))
        if bad.size:
            listed = ", ".join(map(str, bad[:10])) + (", ..." if bad.size > 10 else "")
            raise error(f"{message} (parameter set{'s' if bad.size > 1 else ''} {listed} of the stack, "
                        "counting from 0)")


@jax.jit
def _any_non_finite(leaves):
    """One compiled program per structure (not one per operation) for the finite check."""
    return jnp.logical_not(jnp.all(jnp.stack([jnp.all(jnp.isfinite(v)) for v in leaves])))


def check_finite_params(params, what: str) -> None:
    """:class:`NonFiniteParamsError` if any leaf of ``params`` holds NaN or infinity (jit-safe)."""
    leaves = [jnp.asarray(v) for v in jax.tree.leaves(params)]
    leaves = [v for v in leaves if jnp.issubdtype(v.dtype, jnp.inexact)]
    if not leaves:
        return
    error_if(_any_non_finite(leaves), NonFiniteParamsError,
             f"{what} has NaN or infinite parameters; measure a checkpoint with finite weights.")


def measured_params(params, what: str = "The layer"):
    """``params`` checked finite (jit-safe) and guarded by :func:`no_gradient`."""
    check_finite_params(params, what)
    return no_gradient(params)


_NO_GRADIENT = (
    "Sampled measures are not differentiable: binning is a step function, so their gradient "
    "is zero almost everywhere and jax.grad would silently return 0. For a gradient, use the "
    "exact measures of a single layer (ei_jax.core.exact_ei_parts_matrix, "
    "ei_jax.core.exact_sensitivity_matrix); to use a sampled value as a constant, wrap its "
    "inputs in jax.lax.stop_gradient."
)


@jax.custom_jvp
def no_gradient(tree):
    """Identity on a pytree that raises :class:`NotDifferentiableError` when differentiated."""
    return tree


@no_gradient.defjvp
def _no_gradient_jvp(primals, tangents):
    raise NotDifferentiableError(_NO_GRADIENT)
