"""Multi-process: 2 processes x 2 CPU devices give, on every process, the numbers of 1 process
with 1 device.

The processes run JAX's own distributed runtime (``jax.distributed.initialize`` with a
coordinator on 127.0.0.1, gloo collectives between CPU devices), exactly as one process per
host does on a cluster. Every process runs the same script; each prints its results as JSON
and they must equal the single-process run's to the last bit (the ``stderr=True`` estimates
too). The processes are bounded in time and killed if anything fails.
"""

import json
import os
import textwrap

from tests.children import ROOT, free_port, run_at_once

TIMEOUT_S = 300

SCRIPT = textwrap.dedent('''
    import json, sys
    import jax
    port, pid, nproc, ndev = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    jax.config.update("jax_num_cpu_devices", ndev)
    if nproc > 1:
        jax.distributed.initialize(coordinator_address=f"127.0.0.1:{port}", num_processes=nproc,
                                   process_id=pid, initialization_timeout=120)
    import jax.numpy as jnp, numpy as np, flax.linen as nn
    import ei_jax
    from ei_jax import core
    net = nn.Sequential([nn.Dense(4, use_bias=False), nn.sigmoid, nn.Dense(3), nn.tanh])
    x0 = jnp.zeros((1, 3))
    top = ei_jax.topology_of(net, net.init(jax.random.key(0), x0), x0)
    key = jax.random.key(1)
    kw = dict(in_bins=8, out_bins=8, in_range=(0, 1))
    out = {"processes": jax.process_count(), "devices": jax.device_count()}
    out["ei_parts"] = ei_jax.ei_parts(key, top, "layers_0", samples=20_001, **kw)
    out["matrix"] = ei_jax.ei_parts_matrix(key, top, "layers_0", samples=20_001, **kw).tolist()
    out["auto"] = ei_jax.ei_parts(key, top, "layers_0", threshold=0.2, **kw)
    out["sensitivity"] = ei_jax.sensitivity(key, top, "layers_0", samples=3001, **kw)
    out["ei"] = ei_jax.ei(key, top, "layers_2", samples=20_001, in_bins=8, out_bins=8)
    out["groups"] = ei_jax.eis_between_groups(key, top, "layers_0", [((0, 1), (2,)), ((2,), (0, 3))],
                                              samples=20_001, **kw)
    out["both"] = ei_jax.vector_and_pairwise_ei(key, top, "layers_0", samples=20_001, **kw)
    out["ei_auto"] = ei_jax.ei(key, top, "layers_2", threshold=0.1, in_bins=8, out_bins=8)
    f = lambda q, x: jax.nn.sigmoid(x @ q)
    wv = jax.random.normal(jax.random.key(3), (3, 4)) * 3
    vkw = dict(in_shape=(3,), in_range=(0, 1), in_bins=8, out_range=(0, 1), out_bins=8, samples=40_000,
               batch_size=4096)  # 10 loop steps of 4 chunks: 6 on one process's 2 devices, 4 on the other's
    out["vector_ei"] = float(core.vector_ei(key, f, wv, **vkw))
    if nproc > 1:  # where the rows are: each process's share, counted in rounds of buckets
        from ei_jax._src.core import measures as core_measures
        from ei_jax._src.sampled import distributed_counts
        from ei_jax._src.sampled import sharding
        codes, valid, *_ = core_measures.local_rows(key, f, wv, **vkw)
        rows = sharding.local_valid_rows(codes, valid)
        mi, total, peak = distributed_counts.global_vector_mi(rows)
        out["rows"] = dict(local=len(rows), total=total, peak=peak, same=float(mi[0]) == out["vector_ei"])
    e = ei_jax.ei_parts(key, top, "layers_0", samples=20_000, stderr=True, **kw)
    out["ei_parts_se"] = [e.value, e.corrected, e.stderr]
    # The vector estimates count each process's rows where they are: no row gather (a tiled
    # process_allgather) may happen while they run.
    from jax.experimental import multihost_utils
    allgather, row_gathers = multihost_utils.process_allgather, []
    def spy(x, tiled=False):
        row_gathers.append(tiled)
        return allgather(x, tiled=tiled)
    multihost_utils.process_allgather = spy
    vkw8 = dict(in_bins=8, out_bins=8)
    from ei_jax._src.measures import vector_stack
    stacked = jax.tree.map(lambda a: jnp.stack([a, 0.5 * a]), top.nodes["layers_2"]["params"])
    ests = {"ei_se": [ei_jax.ei(key, top, "layers_2", samples=20_000, stderr=True, **vkw8)],
            "ei_auto_se": [ei_jax.ei(key, top, "layers_2", threshold=0.1, stderr=True, **vkw8)],
            "groups_se": ei_jax.eis_between_groups(key, top, "layers_0", [((0, 1), (2,)), ((2,), (0, 3))],
                                                   samples=20_000, stderr=True, **kw),
            "both_se": list(ei_jax.vector_and_pairwise_ei(key, top, "layers_0", samples=20_000,
                                                          stderr=True, **kw)),
            "stack_se": vector_stack.ei_stack(key, top, "layers_2", stacked, samples=20_000, **vkw8)}
    multihost_utils.process_allgather = allgather
    out["row_gathers"] = sum(row_gathers)
    for name, es in ests.items():
        out[name] = [[e.value, e.corrected, e.stderr] for e in es]

    def measure(w, k, devices=None):
        return core.ei_parts(k, lambda q, x: jax.nn.sigmoid(x @ q), w, in_shape=(3,), in_range=(0, 1),
                             in_bins=8, out_range=(0, 1), out_bins=8, samples=10_000, devices=devices)

    ws = jax.random.normal(jax.random.key(2), (5, 3, 2))
    out["map_params"] = np.asarray(core.map_params(measure, ws, key, group_size=2)).tolist()
    if nproc > 1:  # 3 devices: neither one process's 2 nor all 4
        try:
            measure(ws[0], key, devices=3)
        except ei_jax.errors.InvalidOptionError as e:
            out["devices_3"] = "all 4" in str(e)
    print(json.dumps(out))
''')


def _run_all(runs) -> list[dict]:
    """Starts every ``(port, process id, processes, devices)`` run at once; their JSON outputs."""
    env = dict(os.environ, PYTHONPATH=ROOT)
    outs = run_at_once([(["-c", SCRIPT, *map(str, run)], env) for run in runs], timeout=TIMEOUT_S)
    return [json.loads(o.splitlines()[-1]) for o in outs]  # (gloo prints lines first)


def test_two_processes_of_two_devices_give_the_single_device_numbers():
    port = free_port()
    single, *workers = _run_all([(0, 0, 1, 1), (port, 0, 2, 2), (port, 1, 2, 2)])
    assert single.pop("processes") == 1 and single.pop("devices") == 1
    for w in workers:
        assert w.pop("processes") == 2 and w.pop("devices") == 4
        assert w.pop("devices_3") is True
        rows = w.pop("rows")
        # Each process holds its own share of the rows (its devices' loop steps), and the
        # largest round it gathers is a fraction of all rows: one code kind's (code, count)
        # pairs of one of 8 buckets from both processes, padded to the largest local bucket
        # (<= 2 x 23,616 / 8 x rounding), not the R rows a gather would hold.
        assert rows["same"] and rows["local"] <= 0.62 * rows["total"]
        assert rows["peak"] < 0.25 * rows["total"]
        assert w == single
    # real measurements, not empty ones
    assert single["ei_parts"] > 0 and single["ei"] > 0 and single["sensitivity"] > 0
    assert single["vector_ei"] > 1 and single["ei_auto"] > 0 and single["row_gathers"] == 0
    assert all(e[2] > 0 for name in ("ei_se", "ei_auto_se", "groups_se", "both_se", "stack_se") for e in single[name])
    assert min(single["map_params"]) > 0 and min(single["groups"]) > 0
    assert single["stack_se"][0] == single["ei_se"][0] != single["stack_se"][1]  # checkpoint 0 is top's
