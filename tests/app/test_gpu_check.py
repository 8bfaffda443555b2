"""benchmarks/gpu_check.sh in its smoke mode, on CPU: the GPU check cannot rot before it first
runs on a GPU machine (every command of the full check runs, at tiny sizes)."""

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_gpu_check_smoke_runs_on_cpu():
    env = {**os.environ, "PYTHON": sys.executable, "JAX_PLATFORMS": "cpu"}
    env.pop("XLA_FLAGS", None)
    p = subprocess.run(["bash", "benchmarks/gpu_check.sh", "--smoke"], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=1200)
    assert p.returncode == 0, (p.stdout[-2000:], p.stderr[-3000:])
    out = p.stdout
    assert "backend cpu" in out and "ns/sample" in out  # the kernel breakdown ran
    values = {w: [float(v) for v in re.findall(rf"^{w} ei_jax.*?value (?:mean )?([0-9.]+)", out, re.M)]
              for w in ("W1", "W2", "B1")}
    assert len(values["W1"]) == 2 and len(values["W2"]) == 1 and len(values["B1"]) == 2, out
    # W1 at 1e5 samples both times: the same key gives the same EI_parts; 0 < EI_parts <= 6 x 3 bits.
    assert values["W1"][0] == values["W1"][1] and 0 < values["W1"][0] <= 18
    # B1: the vmapped call and map_params measure the same stack: the same mean.
    assert values["B1"][0] == values["B1"][1] > 0
    # T1: the traced ResNet-style CNN, every layer measured once (exact where it folds).
    t1 = re.findall(r"^T1 (\S+) (exact|sampled): EI_parts ([0-9.]+) bits", out, re.M)
    assert [name for name, _, _ in t1] == ["Conv_0", "Conv_1", "Conv_2", "Dense_0"], out
    assert all(float(v) >= 0 for _, _, v in t1) and sum(h == "exact" for _, h, _ in t1) >= 3
    # F1: the exact measures' first calls in a fresh process (exact_floor.py's table row)
    assert re.search(r"^\| F1 \| 100->100 \| 8 \| new \|.*EI_parts [0-9.]+ s, sensitivity [0-9.]+ s", out, re.M), out
