"""Client for the deep-ei 0.7.0 reference oracle (``deepei_oracle.py``).

Runs in the dev interpreter and imports only numpy and the standard library.
The oracle itself runs in a separate, old-pinned interpreter (torch + deep-ei);
see ``deepei_oracle.py``'s docstring for the request kinds and result fields.

Example::

    from tests.reference.oracle import run_oracle
    (res,) = run_oracle([{"kind": "pairwise", "x": x32, "y": y32,
                          "in_range": [0, 1], "in_bins": 8,
                          "out_range": [0, 1], "out_bins": 8}])
    res["mi"]        # float64 (n_in, n_out), NaN where the pair's histogram is empty

Request values may be numpy arrays, lists of arrays, dicts, and JSON scalars.
Results come back as dicts of numpy arrays (for array fields) and Python
int/float/str (for scalar fields).
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[2]
ORACLE_SCRIPT = Path(__file__).resolve().with_name("deepei_oracle.py")
ENV_VAR = "EI_JAX_REFERENCE_PYTHON"
SETUP_COMMAND = (
    "python -m venv .venv-ref && .venv-ref/bin/pip install torch==2.13.0 deep-ei==0.7.0 "
    "networkx==2.5.1 numpy==1.26.4 fast-histogram scikit-learn"
)
MANIFEST_KEY = "__manifest__"
ARRAY_TAG = "__ndarray__"
DEFAULT_TIMEOUT_S = 1800.0

# Imports the oracle needs; checked without importing them (importing torch is slow).
_PROBE = (
    "import importlib.util, sys\n"
    "missing = [m for m in ('deep_ei', 'torch', 'fast_histogram', 'sklearn', 'networkx', 'numpy')"
    " if importlib.util.find_spec(m) is None]\n"
    "print(' '.join(missing)); sys.exit(1 if missing else 0)\n"
)


def _setup_error(python: Path, reason: str) -> RuntimeError:
    return RuntimeError(
        f"deep-ei reference interpreter unusable: {python} ({reason}).\n"
        f"Create it from the repository root ({REPO_ROOT}) with:\n"
        f"    {SETUP_COMMAND}\n"
        f"or set {ENV_VAR} to a python that can `import deep_ei`."
    )


@functools.lru_cache(maxsize=None)
def _checked_python(candidate: str) -> Path:
    python = Path(candidate)  # not resolved: a venv's python is a symlink that must stay one
    if not python.exists():
        raise _setup_error(python, "file does not exist")
    try:
        probe = subprocess.run([str(python), "-c", _PROBE], capture_output=True, text=True,
                               timeout=120)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise _setup_error(python, f"could not run it: {exc}") from exc
    if probe.returncode != 0:
        detail = probe.stdout.strip() or probe.stderr.strip()
        raise _setup_error(python, f"cannot import: {detail}")
    return python


def reference_python() -> Path:
    """Path of the reference interpreter: ``$EI_JAX_REFERENCE_PYTHON`` if set,
    else ``<repo>/.venv-ref/bin/python``.  Raises RuntimeError (with the command
    that creates it) if it is missing or lacks deep_ei and its dependencies."""
    candidate = os.environ.get(ENV_VAR) or str(REPO_ROOT / ".venv-ref" / "bin" / "python")
    return _checked_python(candidate)


def _encode(obj: Any, arrays: dict[str, np.ndarray]) -> Any:
    if isinstance(obj, np.ndarray):
        key = f"a{len(arrays)}"
        arrays[key] = obj
        return {ARRAY_TAG: key}
    if isinstance(obj, dict):
        return {str(k): _encode(v, arrays) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_encode(v, arrays) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def _decode(obj: Any, arrays: dict[str, np.ndarray]) -> Any:
    if isinstance(obj, dict):
        if set(obj) == {ARRAY_TAG}:
            return arrays[obj[ARRAY_TAG]]
        return {k: _decode(v, arrays) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_decode(v, arrays) for v in obj]
    return obj


def run_oracle(requests: list[dict[str, Any]], *, timeout: float = DEFAULT_TIMEOUT_S) -> list[dict[str, Any]]:
    """Run ``requests`` through deep-ei 0.7.0 in one reference-interpreter
    process and return one result dict per request, in order."""
    python = reference_python()
    with tempfile.TemporaryDirectory(prefix="deepei_oracle_") as tmp:
        in_path, out_path = Path(tmp) / "in.npz", Path(tmp) / "out.npz"
        arrays: dict[str, np.ndarray] = {}
        manifest = _encode({"requests": list(requests)}, arrays)
        arrays[MANIFEST_KEY] = np.frombuffer(json.dumps(manifest).encode("utf-8"), dtype=np.uint8)
        np.savez(in_path, **arrays)
        cmd = [str(python), str(ORACLE_SCRIPT), str(in_path), str(out_path)]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            stderr = exc.stderr.decode() if isinstance(exc.stderr, bytes) else (exc.stderr or "")
            raise RuntimeError(f"deep-ei oracle timed out after {timeout} s\nstderr:\n{stderr}") from exc
        if proc.returncode != 0 or not out_path.exists():
            hint = ""
            if "ModuleNotFoundError" in proc.stderr or "ImportError" in proc.stderr:
                hint = f"\n{_setup_error(python, 'import failed')}"
            raise RuntimeError(
                f"deep-ei oracle failed (exit {proc.returncode}): {' '.join(cmd)}\n"
                f"stderr:\n{proc.stderr}\nstdout:\n{proc.stdout}{hint}"
            )
        with np.load(out_path, allow_pickle=False) as npz:
            out_arrays = {k: npz[k] for k in npz.files}
    out_manifest = json.loads(out_arrays.pop(MANIFEST_KEY).tobytes().decode("utf-8"))
    results: list[dict[str, Any]] = _decode(out_manifest["results"], out_arrays)
    if len(results) != len(requests):
        raise RuntimeError(f"deep-ei oracle returned {len(results)} results for {len(requests)} requests")
    return results
