#!/usr/bin/env bash
# GPU check of issue 4: ei_jax alone (no deep-ei) on a GPU machine, in < 5 minutes on an H100.
#   W1 (EI_parts of Linear(25,6) sigmoid, 8 bins) at 1e8 and 1e9 samples, W2
#   (vector_and_pairwise_ei, same layer) at 1e8 samples, and B1 (200 stacked checkpoints of a
#   25-6-6-6-5 net: Python loop vs one compiled call), after timing the counting kernels
#   (one-hot, bits, scatter) on W1's layer. Prints samples/second ("throughput")
#   and the first call's compile time for each, one fresh process per measurement.
#   Then T1 (benchmarks/traced.py): a traced ResNet-style CNN (BatchNorm, identity skip,
#   average pooling) on 16x16 inputs, each layer exact where it folds, else sampled at 1e7.
#   Last the exact kernels at issue 27's sizes against U and their FLOP floors
#   (benchmarks/exact_floor.py --big: EI_parts up to 4096->4096, sensitivity, gradients).
# Installs nothing: it assumes `pip install -e .` and a CUDA jaxlib (e.g. `pip install -U
# "jax[cuda12]"`) were done in the Python it runs ($PYTHON, else .venv/bin/python, else python).
# Usage: bash benchmarks/gpu_check.sh            # on a GPU machine
#        bash benchmarks/gpu_check.sh --smoke    # tiny sizes, any backend (CI: tests/app/test_gpu_check.py)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-}
if [ -z "$PY" ]; then
  if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python; fi
fi
SMOKE=0
if [ "${1:-}" = "--smoke" ]; then SMOKE=1; fi

BACKEND=$("$PY" -c 'import jax; print(jax.default_backend())')
"$PY" -c 'import jax; print("jax", jax.__version__, "| backend", jax.default_backend(), "|", jax.devices())'
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
if [ "$BACKEND" != "gpu" ] && [ "$SMOKE" = 0 ]; then
  echo "ERROR: jax.default_backend() is '$BACKEND', not 'gpu'. Install a CUDA jaxlib in $PY" >&2
  echo "       (pip install -U \"jax[cuda12]\") and check that jax.devices() lists the GPU." >&2
  exit 1
fi

RUN=("$PY" benchmarks/run.py --skip-deep-ei --reps 1 --timeout 300)
# Which counting kernel suits this accelerator (ei_jax picks "onehot" off CPU, untested so far).
if [ "$SMOKE" = 1 ]; then
  # Every command of the full check at tiny sizes (tests/app/test_gpu_check.py runs this on CPU).
  # They are independent and compile-bound, so they run at the same time; their outputs are
  # printed afterwards in the full check's order, and any failure fails the smoke run.
  LOGS=$(mktemp -d); trap 'rm -rf "$LOGS"' EXIT
  "$PY" benchmarks/breakdown.py --samples 2e4 >"$LOGS/1.out" 2>"$LOGS/1.err" & P1=$!
  "${RUN[@]}" --only W1,W2,B1 --samples W1=1e5 --samples W2=1e5 --samples B1=1e3 --checkpoints 2 \
    --variants vmap,map_params >"$LOGS/2.out" 2>"$LOGS/2.err" & P2=$!
  "${RUN[@]}" --only W1 --samples W1=1e5 --no-steady >"$LOGS/3.out" 2>"$LOGS/3.err" & P3=$!
  "$PY" benchmarks/traced.py --size 8 --channels 2 --samples 2e4 >"$LOGS/4.out" 2>"$LOGS/4.err" & P4=$!
  "$PY" benchmarks/exact_floor.py --only F1 --paths new >"$LOGS/5.out" 2>"$LOGS/5.err" & P5=$!
  FAILED=0
  for i in 1 2 3 4 5; do
    P=P$i
    wait "${!P}" || { echo "ERROR: smoke command $i failed (exit $?)" >&2; FAILED=1; }
    cat "$LOGS/$i.out"; cat "$LOGS/$i.err" >&2
  done
  exit "$FAILED"
else
  "$PY" benchmarks/breakdown.py --samples 1e8 --batch-size 1048576
  "${RUN[@]}" --only W1,W2,B1 --samples W1=1e8 --samples W2=1e8
  "${RUN[@]}" --only W1 --samples W1=1e9 --no-steady
  "$PY" benchmarks/traced.py --size 16 --channels 8 --samples 1e7
  "$PY" benchmarks/exact_floor.py --paths new --only S1,P1,G1,G2,F1 --big
fi
