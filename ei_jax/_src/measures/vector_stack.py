"""Vector EI with its standard error for every checkpoint of a stack, pipelined.

``ei_jax.ei(key, top_j, layer, samples=S, stderr=True)`` for N checkpoints ``top_j`` of one
architecture alternates device sampling (four quarter runs) with a host estimate (NumPy
sorts). Here checkpoint ``j``'s host estimate runs in a worker thread (NumPy's sorts release
the GIL) while checkpoint ``j + 1`` is sampled, with the same calls as alone, so each
checkpoint gets exactly the :class:`ei_jax.Estimate` and the warnings it gets alone.
(Sampling several checkpoints in one ``jax.vmap``-ed call was tried: its batched forward
pass rounds differently, which moves a sample across a bin edge now and then -- a vector
EI differing in the 5th digit from the checkpoint measured alone.) Under ``jax.distributed``
each process keeps its own share of every checkpoint's rows, as in :func:`ei_jax.ei`.
"""

import concurrent.futures
import dataclasses
import os

import jax

from ei_jax._src.measures import vector_uncertainty
from ei_jax._src.core.estimates import check_estimate_samples
from ei_jax._src.info.uncertainty import Estimate
from ei_jax._src.model.problems import canonicalize_key, resolve
from ei_jax._src.measures.vector import _check_rows, _quarter_estimates, _quarter_runs, _report


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
      progress: called with 1 after each checkpoint (a progress bar's ``update``), or None.

    Returns:
      N :class:`ei_jax.Estimate`, each what measuring that checkpoint alone gives.

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
    pending, out = [], []

    def finish(quarters, futures):
        est = _quarter_estimates(problem, quarters, samples, stacklevel=5,
                        results=[f.result() for f in futures] if futures else None)[0]
        _report(problem, est.below, est.above, samples, False)
        out.append(est)
        if progress is not None:
            progress(1)

    with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        for j in range(n):
            params = (jax.tree.map(lambda a: a[j], stacked_params),)        # the span of one layer
            quarters = _quarter_runs(key, dataclasses.replace(problem, params=params), kw, 0, samples, 4,
                                     gather=False)
            if quarters[0][4]:
                # Under jax.distributed each process keeps its share of the rows and the
                # estimate is a collective, which every process must enter in the same order:
                # no worker thread, the checkpoints one after another.
                finish(quarters, [])
                continue
            rows = [q[0] for q in quarters]
            _check_rows(problem, sum(len(r) for r in rows))             # before any work on no rows
            pending.append((quarters, [pool.submit(vector_uncertainty.group_estimate, [r[:, g] for r in rows],
                                                   samples) for g in range(rows[0].shape[1])]))
            while len(pending) > 1:            # keep one checkpoint's estimate in flight
                finish(*pending.pop(0))
        while pending:
            finish(*pending.pop(0))
    return out
