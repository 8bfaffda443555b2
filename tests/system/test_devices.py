"""Multi-device: the same key gives identical results on 1 and 4 (host) devices.

JAX fixes its device count at start-up, so the 4-device run is a subprocess with
``XLA_FLAGS=--xla_force_host_platform_device_count=4``; both processes run the same
script and the results must be equal to the last bit.
"""

import json
import textwrap

from tests.children import device_env, run_at_once

SCRIPT = textwrap.dedent('''
    import json, sys, warnings
    import jax, jax.numpy as jnp, numpy as np, flax.linen as nn
    import ei_jax
    from ei_jax import core
    net = nn.Sequential([nn.Dense(6, use_bias=False), nn.sigmoid, nn.Dense(4), nn.tanh])
    x0 = jnp.zeros((1, 5))
    top = ei_jax.topology_of(net, net.init(jax.random.key(0), x0), x0)
    kw = dict(in_bins=8, out_bins=8, samples=30_001)
    out = {"devices": jax.device_count()}
    for layer, extra in (("layers_0", {"in_range": (0, 1)}), ("layers_2", {})):
        out[layer] = {
            "ei_parts": ei_jax.ei_parts(jax.random.key(1), top, layer, **kw, **extra),
            "ei": ei_jax.ei(jax.random.key(1), top, layer, **kw, **extra),
            "sensitivity": ei_jax.sensitivity(jax.random.key(1), top, layer, **dict(kw, samples=3001), **extra),
            "matrix": ei_jax.ei_parts_matrix(jax.random.key(1), top, layer, **kw, **extra).tolist(),
        }
    w = jax.random.normal(jax.random.key(2), (8, 5, 3))
    f = jax.vmap(lambda p: core.ei_parts(jax.random.key(3), lambda q, x: jax.nn.sigmoid(x @ q), p,
                                         in_shape=(5,), in_range=(0, 1), in_bins=8, out_range=(0, 1),
                                         out_bins=8, samples=10_000))
    out["vmapped"] = np.asarray(f(w)).tolist()
    # a vector measure under map_params: its host entropy must not deadlock the devices
    g = lambda p, k: core.vector_ei(k, lambda q, x: jax.nn.sigmoid(x @ q), p, in_shape=(5,),
                                    in_range=(0, 1), in_bins=4, out_range=(0, 1), out_bins=4,
                                    samples=10_000)
    out["vector_mapped"] = np.asarray(core.map_params(g, w[:3], jax.random.key(3), group_size=2)).tolist()
    json.dump(out, sys.stdout)
''')


def _run_all(*device_counts: int) -> list[dict]:
    """Starts one child per device count at once (they are independent); their JSON outputs.
    (A deadlock between devices ends at the timeout, as a failure.)"""
    runs = [(["-c", SCRIPT], device_env(d)) for d in device_counts]
    return [json.loads(o) for o in run_at_once(runs, timeout=600)]


def test_four_devices_give_identical_results_to_one():
    one, four = _run_all(1, 4)
    assert one.pop("devices") == 1 and four.pop("devices") == 4
    assert one == four
    assert one["layers_2"]["ei"] > 0 and one["layers_0"]["ei_parts"] > 0
    assert min(one["vector_mapped"]) > 0
