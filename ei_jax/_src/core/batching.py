"""Measuring a stack of parameter sets (checkpoints, weight sweeps) in one compiled call."""

import functools

import jax

from ei_jax._src.base import checks
from ei_jax._src.base.errors import InvalidCallError, ShapeMismatchError
from ei_jax._src.base.interface import CHUNK_BUDGET


def map_params(fn, stacked_params, *shared, group_size=None, memory_budget=1 << 30):
    """Applies a measure to every parameter set of a stack in one compiled call.

    ``fn(params, *shared) -> pytree of arrays`` is e.g. a function calling
    ``ei_jax.core.ei_parts(key, apply_fn, params, ...)``. The stack is processed
    ``group_size`` parameter sets at a time (vectorised with ``jax.vmap`` within a group,
    sequential across groups with ``jax.lax.map``), so memory stays bounded however many
    checkpoints there are.

    ``shared`` arguments (typically the key) are the same for every parameter set and are
    not mapped over: with one key, every checkpoint is measured on the same noise, which is
    drawn once per group instead of once per checkpoint (and differences between
    checkpoints are not blurred by different noise).

    The call is one ``jax.jit`` of ``fn``, cached per ``fn`` and group size: define ``fn``
    once and pass what changes (the stack, the key) as arguments -- a new ``fn`` object
    (e.g. a new ``lambda`` per key) compiles again.

    Args:
      fn: a function of one parameter set (and the ``shared`` arguments).
      stacked_params: pytree whose leaves all have the same leading axis ``N``.
      *shared: arguments passed unchanged to every call of ``fn``.
      group_size: parameter sets measured at once; default ``memory_budget // CHUNK_BUDGET``.
      memory_budget: working memory (bytes) the default group size aims at.

    Returns:
      ``fn``'s output with a leading axis ``N``.

    Example:
      >>> import jax
      >>> from ei_jax import core
      >>> def apply(w, x):
      ...     return jax.nn.sigmoid(x @ w)
      >>> def measure(w, key):
      ...     return core.ei_parts(key, apply, w, in_shape=(3,), in_range=(0, 1), in_bins=8,
      ...                          out_range=(0, 1), out_bins=8, samples=5000)
      >>> ws = jax.random.normal(jax.random.key(0), (20, 3, 2))
      >>> core.map_params(measure, ws, jax.random.key(1), group_size=8).shape
      (20,)
    """
    if not callable(fn):
        raise InvalidCallError(f"map_params(fn, stacked_params, ...): fn must be a function of one "
                               f"parameter set. Got {type(fn).__name__}.")
    leaves = jax.tree.leaves(stacked_params)
    if not leaves:
        raise ShapeMismatchError("stacked_params has no arrays.")
    n = leaves[0].shape[0] if leaves[0].ndim else None
    if n is None or any(leaf.ndim == 0 or leaf.shape[0] != n for leaf in leaves):
        raise ShapeMismatchError(
            "Every leaf of stacked_params needs the same leading (stack) axis. Got shapes "
            f"{[tuple(leaf.shape) for leaf in leaves]}."
        )
    if group_size is None:
        group_size = max(1, int(memory_budget) // CHUNK_BUDGET)
    group_size = checks.positive_int("group_size", group_size)
    return _mapped(fn, min(group_size, n))(stacked_params, *shared)


@functools.lru_cache(maxsize=64)
def _mapped(fn, batch_size: int):
    def one(q, *shared):
        # Checks on the mapped parameters (finite weights) come out as flags, checked on the
        # host below: the same errors, and a program the persistent cache can keep.
        with checks.deferred_checks(jax.tree.leaves(q)[0]) as found:
            out = fn(q, *shared)
        return out, checks.Flags.of(found)

    def map_stack(p, *shared):
        return jax.lax.map(lambda q: one(q, *shared), p, batch_size=batch_size)

    compiled = jax.jit(map_stack)

    def call(p, *shared):
        out, flags = compiled(p, *shared)
        checks.raise_flagged(flags)
        return out

    call.lower = compiled.lower     # the compiled program, for inspection
    return call
