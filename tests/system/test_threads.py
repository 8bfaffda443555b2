"""Measures called from two Python threads at once: no hang, the same numbers as one thread.

Vector EI on CPU computes its entropies on the host. Through ``jax.pure_callback`` (as it
was also for concrete arrays), two such programs run from two threads could each hold an
XLA worker thread while waiting for a transfer the other's thread had to do: with two
threads x 30 calls on the 2-core machine, 2 runs of 4 hung before the fix, 0 of 8 after.
The child below does the same (so this test caught that hang about half the time); it is
killed after TIMEOUT seconds.
"""

import json

from tests.children import device_env, run_at_once

TIMEOUT = 240

CHILD = r'''
import json, threading
import jax, jax.numpy as jnp, flax.linen as nn, ei_jax

net = nn.Sequential([nn.Dense(5), nn.sigmoid, nn.Dense(4), nn.sigmoid])
x0 = jnp.zeros((1, 6))
top = ei_jax.topology_of(net, net.init(jax.random.key(0), x0), x0)
jobs = {"layers_0": range(0, 30), "layers_2": range(100, 130)}


def measure(layer, i):
    kw = dict(samples=20_000, in_range=(0, 1) if layer == "layers_0" else None, in_bins=8, out_bins=8)
    v, parts = ei_jax.vector_and_pairwise_ei(jax.random.key(i), top, layer, **kw)
    return [float(v), float(parts)]


threaded = {}
def work(layer):
    threaded[layer] = [measure(layer, i) for i in jobs[layer]]

threads = [threading.Thread(target=work, args=(layer,), daemon=True) for layer in jobs]
for t in threads:
    t.start()
for t in threads:
    t.join()
alone = {layer: [measure(layer, i) for i in keys[:5]] for layer, keys in jobs.items()}  # the first 5
print(json.dumps(dict(threaded=threaded, alone=alone)))
'''


def test_vector_measures_from_two_threads_finish_with_the_same_numbers():
    (out,) = run_at_once([(["-c", CHILD], device_env(1))], timeout=TIMEOUT)
    got = json.loads(out.strip().splitlines()[-1])
    assert set(got["threaded"]) == {"layers_0", "layers_2"}
    assert all(len(v) == 30 for v in got["threaded"].values())
    assert {k: v[:5] for k, v in got["threaded"].items()} == got["alone"]
