"""Independent child Python processes started at once, for the tests that compare processes
(device counts, JAX multi-process runs): their outputs, every child killed on a failure."""

import os
import socket
import subprocess
import sys
from pathlib import Path

#: The repository root, put on the children's PYTHONPATH.
ROOT = str(Path(__file__).resolve().parents[1])


def device_env(devices: int) -> dict:
    """This process's environment with ``devices`` CPU devices for JAX and the repository importable."""
    return dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}", PYTHONPATH=ROOT)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (for a ``jax.distributed`` coordinator)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_at_once(children, *, timeout: float) -> list[str]:
    """Starts every ``(args, env)`` child (``python -c`` / ``python -m`` arguments) at once.

    Returns:
      each child's stdout, once all have exited with status 0 (an assertion otherwise, with
      the failing child's stderr). A child still running at ``timeout`` seconds -- a deadlock
      between devices or processes -- is killed, and the test fails.
    """
    procs = [subprocess.Popen([sys.executable, *args], env=env, text=True, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE) for args, env in children]
    try:
        outs = [p.communicate(timeout=timeout) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for p, (_, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
    return [out for out, _ in outs]
