"""Interventions: the noise that do(L1 = H^max) pushes through a layer.

Sample ``s`` belongs to block ``b = s // BLOCK``; the noise of block ``b`` is drawn from
``jax.random.fold_in(key, b)``. The block size is a constant, so the noise of every sample
depends only on the key and the sample's index — never on ``batch_size``, chunking or the
number of devices — and integer counts summed over any grouping of blocks are identical.
"""

import jax
import jax.numpy as jnp

from ei_jax._src.base import checks
from ei_jax._src.base.interface import BLOCK


def uniform_blocks(key, block_ids, shape, lo, hi):
    """Uniform noise on ``[lo, hi)`` for the given blocks.

    Args:
      key: a ``jax.random`` key (or an int seed).
      block_ids: int32 ``(m,)`` block indices.
      shape: per-sample shape (static tuple).
      lo, hi: the range (static floats).

    Returns:
      float32 ``(m * BLOCK, *shape)``: sample ``j`` of block ``b`` at row ``i * BLOCK + j``
      where ``block_ids[i] == b``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> u = uniform_blocks(jax.random.key(0), jnp.array([0, 7], jnp.int32), (3,), 0.0, 1.0)
      >>> u.shape
      (2048, 3)
      >>> bool(jnp.all(u[1024:] == uniform_blocks(jax.random.key(0), jnp.array([7], jnp.int32), (3,), 0.0, 1.0)))
      True
    """
    key = checks.core_key(key)

    def one(b):
        return jax.random.uniform(jax.random.fold_in(key, b), (BLOCK, *shape), jnp.float32, lo, hi)

    # Pin the threefry variant, so results do not change with JAX's global default; the
    # non-partitionable one is also faster on CPU (blocks are already split per device).
    with jax.threefry_partitionable(False):
        u = jax.vmap(one)(block_ids)
    return u.reshape(block_ids.shape[0] * BLOCK, *shape)


def sample_indices(block_ids):
    """Global sample index of every row of :func:`uniform_blocks`' output, int32 ``(m * BLOCK,)``."""
    return (block_ids[:, None] * BLOCK + jnp.arange(BLOCK, dtype=jnp.int32)[None, :]).reshape(-1)


def one_at_a_time(u, a, baseline):
    """The sensitivity intervention do(x_A = H^max) for input ``a``; the others at ``baseline``.

    Args:
      u: float ``(C, n)`` uniform noise (flattened inputs).
      a: index of the input intervened on (may be traced).
      baseline: value of the inputs that are not intervened on.

    Returns:
      float ``(C, n)`` equal to ``baseline`` except column ``a``, which is ``u[:, a]``.
    """
    col = jnp.arange(u.shape[1]) == a
    return jnp.where(col[None, :], u, jnp.asarray(baseline, u.dtype))
