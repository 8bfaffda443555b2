"""Sharding sample blocks over devices, of one process or of several (``jax.distributed``).

Device ``d`` of ``n`` handles loop steps ``t * n + d``: the set of blocks, hence of samples,
is the same for any device count, and integer statistics are summed with ``psum``, so
results are identical on 1 or N devices. With several processes the mesh holds every
process's devices: each process passes the same (replicated) key and parameters, the summed
counts come back replicated on every device, and every process gets the whole result. Row
codes stay where they were made (:func:`local_valid_rows`): vector entropies count them
across processes in hash buckets (:mod:`ei_jax._src.sampled.distributed_counts`, and
:mod:`ei_jax._src.sampled.distributed_uncertainty` for the ``stderr=True`` estimates); only
``core_measures.vector_rows`` and vector EI of checkpoint stacks gather them all
(:func:`on_first_device`).
"""

import contextlib
import functools

import jax
import numpy as np

AXIS = "blocks"

#: Text of the runtime errors that mean a peer process is gone: a collective's connection
#: reset or closed (gloo on CPU; NCCL on GPU), or the coordination service's verdict.
_PEER_FAILURE = ("Gloo", "gloo", "NCCL", "Connection reset", "Connection closed",
                 "coordination service", "heartbeat")


@contextlib.contextmanager
def peer_failures():
    """Within: a ``JaxRuntimeError`` of a failed collective under ``jax.distributed`` (another
    process exited or crashed) becomes :class:`ProcessFailedError` saying so.

    A process whose peer dies mid-run gets the failure at its next collective at once when the
    peer's connections close (the usual case: the peer process exited, even abruptly). JAX's
    coordination service then terminates the surviving processes ``heartbeat_timeout_seconds``
    after the peer's last heartbeat (``jax.distributed.initialize``'s argument, default 100):
    pass a smaller one to bound how long a survivor may wait, e.g. on a peer that hangs.
    """
    try:
        yield
    except jax.errors.JaxRuntimeError as e:
        if jax.process_count() > 1 and any(m in str(e) for m in _PEER_FAILURE):
            from ei_jax._src.base.errors import ProcessFailedError

            first = str(e).strip().splitlines()[0][:300]
            raise ProcessFailedError(
                f"Process {jax.process_index()} of {jax.process_count()}: another process of this "
                f"jax.distributed run stopped during the measurement (its collective failed: {first}). "
                "The result cannot be completed: find why that process stopped (its log) and "
                "restart every process. JAX ends the remaining processes heartbeat_timeout_seconds "
                "(an argument of jax.distributed.initialize, default 100) after the peer stopped."
            ) from e
        raise


@functools.lru_cache(maxsize=None)
def mesh(n: int):
    """A 1-d mesh of ``n`` devices, axis :data:`AXIS`.

    Under ``jax.distributed`` (several processes), ``n`` up to this process's device count
    takes its local devices (every process computes the whole measure, no communication);
    ``n = jax.device_count()`` takes every process's devices, which share the blocks.
    """
    from jax.sharding import Mesh

    local = jax.local_devices()
    if n <= len(local):
        return Mesh(np.asarray(local[:n]), (AXIS,))
    if n != jax.device_count():
        from ei_jax._src.base.errors import InvalidOptionError

        raise InvalidOptionError(
            f"With {jax.process_count()} processes, devices must be at most the "
            f"{len(local)} devices of one process or all {jax.device_count()}. Got {n}; "
            "pass devices=None to use all of them."
        )
    return Mesh(np.asarray(jax.devices()), (AXIS,))


def step_ids(b0, t, m, n_dev, dev):
    """Block ids of loop step ``t`` on device ``dev`` of ``n_dev`` (``m`` blocks a step)."""
    import jax.numpy as jnp

    return b0 + (t * n_dev + dev) * m + jnp.arange(m, dtype=jnp.int32)


def sharded(loop, devices: int, args, *, gathered=()):
    """Runs ``loop(*args, n_dev, dev)`` on ``devices`` devices and psums its outputs.

    Args:
      loop: returns a tuple of pytrees of integer arrays.
      devices: how many devices share the work (1: call ``loop`` directly).
      args: the loop's array arguments (replicated on every device).
      gathered: indices of outputs concatenated along their first axis over devices
        instead of summed.

    Returns:
      the tuple of summed (or gathered) outputs.
    """
    if devices == 1:
        return loop(*args, 1, 0)
    from jax.sharding import PartitionSpec as P

    def per_device(*a):
        out = loop(*a, devices, jax.lax.axis_index(AXIS))
        return tuple(o if i in gathered else jax.tree.map(lambda v: jax.lax.psum(v, AXIS), o)
                     for i, o in enumerate(out))

    probe = jax.eval_shape(lambda *a: loop(*a, 1, 0), *args)
    out_specs = tuple(jax.tree.map(lambda _: P(AXIS) if i in gathered else P(), o)
                      for i, o in enumerate(probe))
    return jax.shard_map(per_device, mesh=mesh(devices), in_specs=P(), out_specs=out_specs,
                         check_vma=False)(*args)


def on_first_device(tree):
    """Concrete arrays as arrays of this process's first device (tracers pass through).

    A float stage after a sharded loop is then one and the same program for any device
    count. Outputs spanning other processes' devices are fetched first: replicated ones
    from a local copy, device-sharded ones (row codes) gathered from every process.
    """
    dev = jax.local_devices()[0]

    def one(a):
        if isinstance(a, jax.core.Tracer):
            return a
        if not a.is_fully_addressable:
            if a.is_fully_replicated:
                a = a.addressable_data(0)
            else:
                from jax.experimental import multihost_utils

                a = multihost_utils.process_allgather(a, tiled=True)
        return jax.device_put(a, dev)

    return jax.tree.map(one, tree)


def spans_processes(a) -> bool:
    """Whether ``a`` is a concrete array with shards on other processes' devices."""
    return not isinstance(a, jax.core.Tracer) and isinstance(a, jax.Array) and not a.is_fully_addressable


def _valid_part(codes: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """The valid rows: a view when they are a prefix (every sample in range: the row buffer's
    unused tail is the only invalid part), else a copy."""
    k = int(np.count_nonzero(valid))
    return codes[:k] if valid[:k].all() else codes[valid]


def local_valid_rows(codes, valid) -> np.ndarray:
    """This process's valid rows of row codes sharded along their first axis: NumPy
    ``(R_local, ...)``, from its own devices' shards only (all rows of a local array), without
    a copy where a device's valid rows are a prefix of its buffer."""
    with peer_failures():
        if not spans_processes(codes):
            return _valid_part(np.asarray(codes), np.asarray(valid))
        by_start = lambda s: s.index[0].start or 0  # noqa: E731
        shards = sorted(codes.addressable_shards, key=by_start)
        masks = sorted(valid.addressable_shards, key=by_start)
        parts = [_valid_part(np.asarray(c.data), np.asarray(v.data)) for c, v in zip(shards, masks)]
    return parts[0] if len(parts) == 1 else np.concatenate(parts)
