"""Multi-process faults: when one process of a ``jax.distributed`` run dies, the other stops
with a clear error within a bounded time instead of hanging.

Two processes of 2 CPU devices each (gloo collectives) measure together; process 1 then exits
abruptly (``os._exit``, no shutdown) while process 0 keeps measuring. What bounds process 0:

* its next sharded measurement fails at once: the peer's connections are closed, the gloo
  all-reduce fails, and ei_jax raises :class:`ei_jax.errors.ProcessFailedError` (a typed,
  catchable error naming the cause);
* whatever it does next (a collective that would wait forever, or its own shutdown), JAX's
  coordination service ends it ``heartbeat_timeout_seconds`` after process 1's last heartbeat
  (the argument of ``jax.distributed.initialize``; default 100 s, 10 s here), with the message
  "the JAX distributed service detected fatal errors ... another task died".

The bound stated and checked: process 0 is gone within ``HEARTBEAT_S + 20`` seconds of process
1's exit (measured: the error within a second, the exit after about ``HEARTBEAT_S``).
"""

import os
import subprocess
import sys
import textwrap
import time

from tests.children import ROOT, free_port

HEARTBEAT_S = 10
#: Seconds process 0 may live after process 1 exited.
BOUND_S = HEARTBEAT_S + 20

SCRIPT = textwrap.dedent('''
    import os, sys, time
    import jax
    port, pid, heartbeat = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    jax.config.update("jax_num_cpu_devices", 2)
    jax.distributed.initialize(coordinator_address=f"127.0.0.1:{port}", num_processes=2,
                               process_id=pid, initialization_timeout=60,
                               heartbeat_timeout_seconds=heartbeat)
    import jax.numpy as jnp, flax.linen as nn
    import ei_jax
    net = nn.Dense(3)
    x0 = jnp.zeros((1, 3))
    top = ei_jax.topology_of(net, net.init(jax.random.key(0), x0), x0)
    kw = dict(in_bins=8, out_bins=8, in_range=(0, 1), out_range=(0, 1), activation="sigmoid")
    first = ei_jax.ei_parts(jax.random.key(1), top, "Dense", samples=20_000, **kw)
    print("measured", first, flush=True)
    if pid == 1:
        print("exiting", time.time(), flush=True)
        os._exit(3)                       # abruptly: no shutdown, connections just close
    time.sleep(2)                         # process 1 is gone
    start = time.monotonic()
    try:
        for _ in range(50):
            ei_jax.ei_parts(jax.random.key(1), top, "Dense", samples=20_000, **kw)
        print("no error", flush=True)
    except ei_jax.errors.ProcessFailedError as e:
        print("caught", round(time.monotonic() - start, 2), str(e).replace(chr(10), " "), flush=True)
    ei_jax.ei(jax.random.key(1), top, "Dense", samples=20_000, **kw)  # would wait for process 1
    print("still running", flush=True)
''')


def test_a_dead_process_stops_the_other_within_the_heartbeat_timeout():
    port = free_port()
    env = dict(os.environ, PYTHONPATH=ROOT)
    procs = [subprocess.Popen([sys.executable, "-c", SCRIPT, str(port), str(pid), str(HEARTBEAT_S)],
                              env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for pid in (0, 1)]
    try:
        out1, _ = procs[1].communicate(timeout=120)
        died = time.monotonic()
        out0, err0 = procs[0].communicate(timeout=BOUND_S + 10)
        waited = time.monotonic() - died
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert procs[1].returncode == 3 and "measured" in out1
    assert "measured" in out0 and "no error" not in out0 and "still running" not in out0, out0
    caught = [line for line in out0.splitlines() if line.startswith("caught")]
    assert caught, err0[-3000:]
    seconds = float(caught[0].split()[1])
    assert seconds < 5 and "another process of this jax.distributed run stopped" in caught[0]
    # then JAX's coordination service ends it, with its message, within the bound
    assert procs[0].returncode != 0 and waited < BOUND_S, (procs[0].returncode, waited)
    assert "another task died" in err0 or "heartbeat" in err0, err0[-3000:]
