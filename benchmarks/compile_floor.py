"""The compile-time floor of a sampled measure's first call: what its noise alone costs.

Every sampled measure draws its noise inside its compiled program (``jax.random`` threefry,
one ``fold_in`` per block of 1024 samples; see ``ei_jax/_src/sampled/interventions.py``), which is
what makes results independent of batch size and device count. This script compiles, in a
fresh process, programs of growing size and prints the backend compile time of each
(``jax.monitoring``), so the first-call numbers of ``run.py`` (W3–W5) can be read against
the part no smaller program can avoid:

    .venv/bin/python benchmarks/compile_floor.py

deep-ei's whole W3 / W4 first calls (``run.py``) are 0.3 s / 0.16 s on this machine.
"""

import time

import jax
import jax.numpy as jnp

from ei_jax._src.sampled.interventions import uniform_blocks

EVENTS = []
jax.monitoring.register_event_duration_secs_listener(lambda e, d, **_: EVENTS.append((e, d)))


def timed(name, fn, *args):
    n = len(EVENTS)
    t0 = time.perf_counter()
    jax.block_until_ready(fn(*args))
    wall = time.perf_counter() - t0
    new = EVENTS[n:]
    backend = sum(d for e, d in new if e == "/jax/core/compile/backend_compile_duration")
    front = sum(d for e, d in new if e.startswith("/jax/core/compile/") and "backend" not in e)
    print(f"| {name} | {wall:.3f} s | {backend:.3f} s | {front:.3f} s |", flush=True)


def main():
    key = jax.random.key(0)
    print("| program (first call, fresh process) | wall | backend compile | trace + lower |")
    print("|---|---|---|---|")
    timed("x + 1 (any program's fixed cost)", jax.jit(lambda x: x + 1), jnp.ones(3))
    with jax.threefry_partitionable(False):
        timed("`jax.random.bits` (4096, 25)", jax.jit(lambda k: jax.random.bits(k, (4096, 25))), key)
    timed("ei_jax noise of 4 blocks: `fold_in` + uniform", jax.jit(
        lambda k: uniform_blocks(k, jnp.arange(4, dtype=jnp.int32), (25,), 0.0, 1.0)), key)
    timed("the same noise in a `fori_loop` (as in every measure)", jax.jit(
        lambda k: jax.lax.fori_loop(0, 5, lambda i, acc: acc + jnp.sum(
            uniform_blocks(k, i * 4 + jnp.arange(4, dtype=jnp.int32), (25,), 0.0, 1.0) > 0.5), 0)), key)


if __name__ == "__main__":
    main()
