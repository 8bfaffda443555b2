"""Prints the repr of 26 public results (sampled, exact, core, vmap, map_params, estimators,
conv) for bit-identity checks around a refactor: run it before and after and diff the outputs.

    .venv/bin/python scripts/value_snapshot.py > before.txt   # ... change ... then > after.txt
"""
import warnings, sys
warnings.simplefilter("ignore")
import jax, jax.numpy as jnp, numpy as np, flax.linen as nn
import ei_jax
from ei_jax import core, exact, topology_of, ei, ei_parts, ei_parts_matrix, sensitivity, causal_plane
from ei_jax import sensitivity_matrix, eis_between_groups, vector_and_pairwise_ei, degeneracy
from ei_jax import mutual_information, entropy, pairwise_mutual_information

def show_inner(v):
    import dataclasses
    if dataclasses.is_dataclass(v):
        return {f.name: show_inner(getattr(v, f.name)) for f in dataclasses.fields(v)}
    return repr(v)

def show(name, v):
    import dataclasses
    if dataclasses.is_dataclass(v):
        print(name, type(v).__name__, {f.name: (show_inner(getattr(v, f.name))) for f in dataclasses.fields(v)})
    else:
        a = np.asarray(jax.device_get(v)) if not isinstance(v, (float, int, tuple)) else v
        print(name, repr(a.tolist() if isinstance(a, np.ndarray) else a))

net = nn.Sequential([nn.Dense(10, use_bias=False), nn.sigmoid, nn.Dense(5, use_bias=False), nn.tanh])
x0 = jnp.zeros((1, 20))
variables = net.init(jax.random.key(0), x0)
top = topology_of(net, variables, x0)
l1, l2 = list(top)
k = jax.random.key(1)
show("ei_parts", ei_parts(k, top, l1, samples=100_000, in_range=(0, 1), in_bins=8, out_bins=8))
show("ei", ei(k, top, l2, samples=100_000, in_bins=8, out_bins=8))
show("sens", sensitivity(k, top, l2, samples=5_000, in_bins=8, out_bins=8))
show("cp", causal_plane(k, top, l2, samples=100_000, in_bins=8, out_bins=8))
show("ei_parts_se", ei_parts(k, top, l2, samples=50_000, in_bins=16, out_bins=16, stderr=True))
show("ei_se", ei(k, top, l2, samples=50_000, in_bins=4, out_bins=4, stderr=True))
show("epm", ei_parts_matrix(k, top, l2, samples=20_000, in_bins=16, out_bins=16))
show("sm", sensitivity_matrix(k, top, l2, samples=5_000, in_bins=16, out_bins=16))
show("ei_auto", ei_parts(k, top, l2, in_bins=8, out_bins=8, progress=False))
show("vpe", vector_and_pairwise_ei(k, top, l2, samples=20_000, in_bins=4, out_bins=4))
show("deg", degeneracy(k, top, l2, samples=20_000, in_bins=8, out_bins=8))
show("ex_ep", exact.ei_parts(top, l1, in_range=(0, 1), in_bins=8, out_bins=8))
show("ex_s", exact.sensitivity(top, l2, in_bins=32, out_bins=32))
show("ex_cp", exact.causal_plane(top, l2, in_bins=8, out_bins=8))
show("ex_epm", exact.ei_parts_matrix(top, l2, in_bins=8, out_bins=8))
def apply(w, x): return jax.nn.sigmoid(x @ w)
ws = jax.random.normal(jax.random.key(0), (8, 3, 2)) * 4
f = jax.jit(jax.vmap(lambda w: core.ei_parts(jax.random.key(1), apply, w, in_shape=(3,), in_range=(0, 1), in_bins=16, out_range=(0, 1), out_bins=16, samples=20_000)))
show("core_vmap", f(ws))
show("core_vec", core.vector_ei(jax.random.key(2), apply, ws[0], in_shape=(3,), in_range=(0, 1), in_bins=8, out_range=(0, 1), out_bins=8, samples=20_000))
show("core_est", core.ei_parts_estimate(jax.random.key(2), apply, ws[0], in_shape=(3,), in_range=(0, 1), in_bins=8, out_range=(0, 1), out_bins=8, samples=20_000))
show("map_params", core.map_params(lambda w: core.sensitivity(jax.random.key(3), apply, w, in_shape=(3,), in_range=(0, 1), in_bins=8, out_range=(0, 1), out_bins=8, samples=2_000), ws))
show("exact_core", core.exact_ei_parts_matrix(ws[0], jnp.zeros(2), in_range=(0, 1), in_bins=8, out_range=(0, 1), out_bins=8, activation="sigmoid") if True else 0)
r = np.random.default_rng(0)
x = r.uniform(0, 1, (5000, 3)); y = r.uniform(0, 1, (5000, 2))
show("mi", mutual_information(x, y, in_range=(0, 1), out_range=(0, 1), in_bins=4, out_bins=4))
show("pmi", pairwise_mutual_information(x, y, in_range=(0, 1), out_range=(0, 1), in_bins=8, out_bins=8))
show("ent", entropy(y, range=(0, 1), bins=8))
# conv
cnn = nn.Sequential([nn.Conv(2, (3, 3), use_bias=False), nn.relu, ei_jax.Flatten(), nn.Dense(3), nn.sigmoid])
xc = jnp.zeros((1, 5, 5, 1)); vc = cnn.init(jax.random.key(5), xc); tc = topology_of(cnn, vc, xc)
lc = list(tc)
show("conv_ep", ei_parts(k, tc, lc[0], samples=20_000, in_range=(0, 1), in_bins=8, out_bins=8, out_range=(0, 2)))
show("conv_ex", exact.ei_parts(tc, lc[0], in_range=(0, 1), in_bins=8, out_bins=8, out_range=(0, 2)))
import bridges
print("bridges", sorted(bridges.__all__))
