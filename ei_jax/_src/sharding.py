"""Sharding sample blocks over devices.

Device ``d`` of ``n`` handles loop steps ``t * n + d``: the set of blocks, hence of samples,
is the same for any device count, and integer statistics are summed with ``psum``, so
results are identical on 1 or N devices.
"""

import functools

import jax
import numpy as np

AXIS = "blocks"


@functools.lru_cache(maxsize=None)
def mesh(n: int):
    """A 1-d mesh over the first ``n`` of ``jax.devices()``, axis :data:`AXIS`."""
    from jax.sharding import Mesh

    return Mesh(np.asarray(jax.devices()[:n]), (AXIS,))


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
    """Commits concrete arrays to one device, so a float stage after a sharded loop is one
    and the same program for any device count (tracers pass through)."""
    dev = jax.devices()[0]
    return jax.tree.map(lambda a: a if isinstance(a, jax.core.Tracer) else jax.device_put(a, dev), tree)
