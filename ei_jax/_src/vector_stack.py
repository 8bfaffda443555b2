"""Vector EI with its standard error for every checkpoint of a stack, batched.

``ei_jax.ei(key, top_j, layer, samples=S, stderr=True)`` for N checkpoints ``top_j`` of one
architecture costs N x 4 sampling calls (one per quarter) and N host estimates. Here the
row codes of a quarter are sampled for a group of checkpoints in one ``jax.vmap``-ed call
(the same key, so the noise is drawn once and shared, exactly as each checkpoint draws it
alone), and the host estimates (NumPy sorts, which release the GIL) run on all CPU cores.
Each checkpoint gets the :class:`ei_jax.Estimate` and the warnings it gets alone.
"""

import concurrent.futures
import os

import jax
import numpy as np

from ei_jax._src import core_measures, pairwise_uncertainty, vector_uncertainty
from ei_jax._src.core_estimates import check_estimate_samples
from ei_jax._src.estimate import Estimate
from ei_jax._src.interface import CHUNK_BUDGET
from ei_jax._src.problems import canonicalize_key, resolve
from ei_jax._src.vector_measures import _check_rows, _report

#: Bytes of row codes one vmapped group of checkpoints may hold (16 bytes per sample).
GROUP_BUDGET = 1 << 28


def group_size(samples: int, n: int) -> int:
    """Checkpoints sampled at once: their quarter's row codes within :data:`GROUP_BUDGET`,
    and their vmapped working chunks within 1 GiB (as ``map_params``' default group)."""
    per = 16 * max(1, -(-samples // 4))
    return max(1, min(n, GROUP_BUDGET // per, (1 << 30) // CHUNK_BUDGET))


def _sample_quarters(key, problem, kw, params, samples):
    """Valid rows of each quarter ``[q][j] -> (R, G, 4)`` and out-of-range counts ``(N, n_out)``
    of the checkpoints ``params`` (a stacked pytree)."""
    quarters, below, above = [], 0, 0
    for start, n in pairwise_uncertainty.split(0, samples, 4):
        run = jax.vmap(lambda w: core_measures.vector_rows(key, problem.apply_fn, w, samples=n, start=start,
                                                           **kw)[:4])(params)
        codes, valid, b, a = (np.asarray(v) for v in run)
        quarters.append([codes[j][valid[j]] for j in range(len(valid))])
        below, above = below + b.astype(np.int64), above + a.astype(np.int64)
    return quarters, below, above


def ei_stack(key, topology, layer, stacked_params, *, samples: int, in_range=None, in_bins=64, out_bins=64,
             progress=None) -> list[Estimate]:
    """``[ei_jax.ei(key, top_j, layer, samples=samples, stderr=True, ...) for each checkpoint]``.

    Args:
      key: the key every checkpoint is measured with.
      topology: ``ei_jax.topology_of`` of one checkpoint (its structure; its parameters unused).
      layer: the measured node.
      stacked_params: the layer's parameters with a leading axis of N checkpoints.
      samples: noise samples per checkpoint (at least 4).
      in_range, in_bins, out_bins: as :func:`ei_jax.ei` (the output range is the activation's).
      progress: called with the number of checkpoints done after each group (or None).

    Returns:
      N :class:`ei_jax.Estimate`, equal to measuring each checkpoint alone (same samples,
      same counts; the forward pass batched by ``jax.vmap``).

    Example:
      >>> import jax, jax.numpy as jnp, flax.linen as nn, ei_jax
      >>> net = nn.Sequential([nn.Dense(2), nn.sigmoid])
      >>> x0 = jnp.zeros((1, 3))
      >>> nets = [net.init(jax.random.key(i), x0)["params"]["layers_0"] for i in range(3)]
      >>> top = ei_jax.topology_of(net, {"params": {"layers_0": nets[0]}}, x0)
      >>> stacked = jax.tree.map(lambda *a: jnp.stack(a), *nets)
      >>> kw = dict(samples=4_000, in_range=(0, 1), in_bins=4, out_bins=4)
      >>> est = ei_stack(jax.random.key(1), top, "layers_0", stacked, **kw)
      >>> top.nodes["layers_0"]["params"] = nets[2]
      >>> est[2] == ei_jax.ei(jax.random.key(1), top, "layers_0", stderr=True, **kw)
      True
    """
    key = canonicalize_key(key)
    problem = resolve(topology, layer, in_range=in_range)
    kw = problem.kwargs(in_bins, out_bins, clip=False, method="auto")
    _, samples = check_estimate_samples(samples)
    n = len(jax.tree.leaves(stacked_params)[0])
    g = group_size(samples, n)
    out = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        for lo in range(0, n, g):
            params = (jax.tree.map(lambda a: a[lo:lo + g], stacked_params),)     # the span of one layer
            quarters, below, above = _sample_quarters(key, problem, kw, params, samples)
            rows = [[q[j] for q in quarters] for j in range(len(below))]
            for r in rows:
                _check_rows(problem, sum(len(q) for q in r))
            jobs = [[pool.submit(vector_uncertainty.group_estimate, [q[:, k] for q in r], samples)
                     for k in range(r[0].shape[1])] for r in rows]
            for r, job, b, a in zip(rows, jobs, below, above, strict=True):
                est = vector_uncertainty.estimates(r, samples, b, a, name=problem.name, stacklevel=3,
                                                   results=[f.result() for f in job])[0]
                _report(problem, est.below, est.above, samples, False)
                out.append(est)
            if progress is not None:
                progress(len(out))
    return out
