#!/usr/bin/env bash
# Installs everything the tests need from this repository's own files, then runs them.
#   .venv      ei_jax with its test extra (jax, flax, torch==2.13.0 CPU, safetensors, ...)
#   .venv-ref  deep-ei 0.7.0, the reference implementation, with the old pins it needs
#              (networkx<2.6, numpy<2), used by the differential tests through a subprocess.
# Usage: bash scripts/test.sh [pytest args]
# The tests run in EI_JAX_TEST_WORKERS pytest-xdist processes (default 2: most tests are
# compile-bound, and two processes keep two cores busy; 0 runs them in this process).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[test,docs]"

if [ ! -x .venv-ref/bin/python ]; then
  "$PY" -m venv .venv-ref
fi
# Keep these pins in sync with the `reference` extra in pyproject.toml.
.venv-ref/bin/python -m pip install --quiet --disable-pip-version-check \
  torch==2.13.0 deep-ei==0.7.0 networkx==2.5.1 numpy==1.26.4 fast-histogram scikit-learn

# The import contract of the layers ([tool.importlinter] in pyproject.toml).
.venv/bin/lint-imports

# --durations: the slowest tests in every run, to keep the suite within its time budget.
exec .venv/bin/python -m pytest -q -n "${EI_JAX_TEST_WORKERS:-2}" --durations=15 "$@"
