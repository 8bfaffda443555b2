"""One ei_jax measurement in a fresh process; started by ``benchmarks/run.py``.

    python benchmarks/_child_ei_jax.py SPEC.json

``SPEC.json`` names the workload, its sizes, the ``.npz`` of weights (torch layout
``[out, in]``, shared with the deep-ei side) and the seeds. The child calls the measure once
per seed (the first call includes compilation, later calls use new keys and no compilation)
and prints ONE JSON line: per-call wall time, compilations seen by ``jax.monitoring`` in
that call, the values, and the process's peak RSS (``ru_maxrss``) at the end.
"""

import json
import resource
import sys
import time

_T_START = time.perf_counter()


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def main(spec_path: str) -> None:
    with open(spec_path) as f:
        spec = json.load(f)

    import flax.linen as nn
    import jax
    import jax.numpy as jnp
    import numpy as np

    import ei_jax
    from ei_jax import core

    events = []
    jax.monitoring.register_event_duration_secs_listener(
        lambda event, duration, **_: events.append((event, duration)))
    import_s = time.perf_counter() - _T_START
    rss_import = peak_rss_mb()

    weights = dict(np.load(spec["weights"]))
    wid = spec["workload"]
    samples = spec.get("samples")
    bins = spec.get("bins")
    batch_size = spec.get("batch_size")
    unit = (0.0, 1.0)

    def dense_topology(w_torch):
        """A Flax ``nn.Dense(out, use_bias=False)`` holding deep-ei's ``[out, in]`` weight."""
        n_out, n_in = w_torch.shape
        net = nn.Dense(n_out, use_bias=False)
        x0 = jnp.zeros((1, n_in))
        return ei_jax.topology_of(net, {"params": {"kernel": jnp.asarray(w_torch.T)}}, x0)

    convenient = dict(in_range=unit, in_bins=bins, out_range=unit, out_bins=bins,
                      activation="sigmoid", batch_size=batch_size)

    if wid in ("W1", "S1"):
        top = dense_topology(weights["w1"])
        work = samples

        def measure(key):
            return ei_jax.ei_parts(key, top, "Dense", samples=samples, **convenient)
    elif wid == "W2":
        top = dense_topology(weights["w1"])
        work = samples

        def measure(key):
            return list(ei_jax.vector_and_pairwise_ei(key, top, "Dense", samples=samples, **convenient))
    elif wid == "S2":
        top = dense_topology(weights["w1"])
        work = samples

        def measure(key):
            return ei_jax.ei(key, top, "Dense", samples=samples, **convenient)
    elif wid == "W3":
        ws = jnp.asarray(weights["w3"], jnp.float32).reshape(-1, 1, 1)
        work = samples * ws.shape[0]
        kw = dict(in_shape=(1,), in_range=unit, in_bins=bins, out_range=unit, out_bins=bins,
                  samples=samples, batch_size=batch_size)

        # One compiled call, defined once; the key is an argument, not a constant.
        if spec.get("via") == "map_params":   # one map_params group of every weight
            def one(w, key):
                return core.ei_parts(key, dense_sigmoid, w, **kw)

            def f(key, ws):
                return core.map_params(one, ws, key, group_size=len(ws))
        else:                                 # jit of vmap
            f = jax.jit(lambda key, ws: jax.vmap(lambda w: core.ei_parts(key, dense_sigmoid, w, **kw))(ws))

        def measure(key):
            return np.asarray(f(key, ws)).tolist()
    elif wid == "W4":
        top = dense_topology(weights["w1"])
        work = samples * weights["w1"].shape[1]

        def measure(key):
            return ei_jax.sensitivity(key, top, "Dense", samples=samples, **convenient)
    elif wid == "W5":
        top = dense_topology(weights["w5"])
        work = None  # chosen by the automatic mode

        def measure(key):
            return ei_jax.ei_parts(key, top, "Dense", threshold=spec["threshold"], **convenient)
    elif wid == "B1":
        stacks = [jnp.asarray(np.swapaxes(weights[f"b1_{i}"], 1, 2)) for i in range(spec["layers"])]
        n_ckpt = stacks[0].shape[0]
        work = samples * n_ckpt * len(stacks)
        variant = spec["variant"]

        def kw(k):
            return dict(in_shape=(k.shape[-2],), in_range=unit, in_bins=bins, out_range=unit,
                        out_bins=bins, samples=samples, batch_size=batch_size)

        def stacked(kwargs):
            """One jitted function of (key, stack) per layer shape, defined before timing."""
            def one(key, w):
                return core.ei_parts(key, dense_sigmoid, w, **kwargs)
            if variant == "vmap":
                return jax.jit(lambda key, ks: jax.vmap(lambda w: one(key, w))(ks))
            return jax.jit(lambda key, ks: jax.lax.map(lambda w: one(key, w), ks))

        def per_set(kwargs):
            """map_params' fn, defined once per layer; the key is a shared (unmapped) argument."""
            return lambda w, key: core.ei_parts(key, dense_sigmoid, w, **kwargs)

        if variant in ("vmap", "lax.map"):
            fns = [stacked(kw(k)) for k in stacks]
        elif variant == "map_params":
            fns = [per_set(kw(k)) for k in stacks]
        elif variant not in ("loop", "map_params_new_fn"):
            raise ValueError(f"unknown B1 variant {variant!r}")

        def measure(key):
            out = []
            for i, k in enumerate(stacks):
                if variant == "loop":  # the Python loop a user would write, results kept on device
                    out.append(jnp.stack([core.ei_parts(key, dense_sigmoid, k[t], **kw(k))
                                          for t in range(n_ckpt)]))
                elif variant == "map_params":  # as its docstring advises: same fn, key shared
                    out.append(core.map_params(fns[i], k, key))
                elif variant == "map_params_new_fn":  # a new lambda closing over the key: compiles again
                    out.append(core.map_params(
                        lambda w, k=k: core.ei_parts(key, dense_sigmoid, w, **kw(k)), k))
                else:
                    out.append(fns[i](key, k))
            return np.asarray(jnp.stack(out)).tolist()  # (layers, checkpoints)
    else:
        raise ValueError(f"unknown workload {wid!r}")

    calls = []
    for seed in spec["seeds"]:
        n0 = len(events)
        t0 = time.perf_counter()
        value = measure(jax.random.key(seed))
        wall = time.perf_counter() - t0
        new = events[n0:]
        calls.append(dict(
            seed=seed, wall_s=wall, value=value,
            compiles=sum(1 for e, _ in new if e == "/jax/core/compile/backend_compile_duration"),
            compile_s=sum(d for e, d in new if e.startswith("/jax/core/compile/")),
        ))
    print(json.dumps(dict(
        side="ei_jax", workload=wid, work=work, calls=calls, import_s=import_s,
        rss_import_mb=rss_import, peak_rss_mb=peak_rss_mb(), backend=jax.default_backend(),
        devices=jax.device_count(), jax_version=jax.__version__, ei_jax_file=ei_jax.__file__,
    )))


def dense_sigmoid(w, x):  # module level: one definition, so one compilation per shape
    import jax

    return jax.nn.sigmoid(x @ w)


if __name__ == "__main__":
    main(sys.argv[1])
