"""bridges without torch: safetensors checkpoints load and measure; torch files say what to install.

Runs a child Python in which ``import torch`` fails: a ``sitecustomize.py`` on the child's
``PYTHONPATH`` puts a meta-path finder first on ``sys.meta_path`` that raises
``ModuleNotFoundError`` for ``torch`` and every ``torch.*`` module, exactly as if torch were
not installed (it is installed in the test environment, so a plain child would import it).
Nothing here imports torch in this process either: the checkpoint is written with
``safetensors.numpy`` and a torch file is faked by its zip signature.
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

pytest.importorskip("safetensors")
from safetensors.numpy import save_file  # noqa: E402

import bridges  # noqa: E402
import ei_jax  # noqa: E402

REPO = Path(__file__).resolve().parents[2]

BLOCKER = textwrap.dedent('''
    import sys

    class _NoTorch:
        """Makes ``import torch`` fail as if torch were not installed."""

        def find_spec(self, name, path=None, target=None):
            if name == "torch" or name.startswith("torch."):
                raise ModuleNotFoundError(f"No module named {name!r} (blocked by the test)", name=name)
            return None

    sys.meta_path.insert(0, _NoTorch())
''')

CHILD = textwrap.dedent('''
    import json, sys
    try:
        import torch  # noqa: F401
        torch_importable = True
    except ImportError:
        torch_importable = False
    import jax, jax.numpy as jnp
    import bridges, ei_jax
    out = {"torch_importable": torch_importable, "torch_after_import_bridges": "torch" in sys.modules}
    model, variables = bridges.load_checkpoint(sys.argv[1], activation="sigmoid")
    top = ei_jax.topology_of(model, variables, jnp.zeros((1, 25)))
    out["layers"] = list(top)
    out["ei_parts"] = ei_jax.ei_parts(jax.random.key(3), top, "layers_2", samples=20_000,
                                      in_bins=8, out_bins=8)
    out["y"] = model.apply(variables, jnp.full((1, 25), 0.5)).tolist()
    try:
        bridges.load_checkpoint(sys.argv[2], activation="sigmoid")
    except bridges.MissingDependencyError as e:
        out["missing"] = [str(e), isinstance(e, ImportError), isinstance(e, ei_jax.EIJaxError)]
    try:
        bridges.from_torch(object())
    except TypeError as e:
        out["from_torch"] = str(e)
    out["torch_at_end"] = "torch" in sys.modules
    print(json.dumps(out))
''')


def _stack(rng):
    return {"0.weight": rng.normal(0, 1, (6, 25)).astype(np.float32),
            "0.bias": rng.normal(0, 1, (6,)).astype(np.float32),
            "2.weight": rng.normal(0, 1, (6, 6)).astype(np.float32),
            "4.weight": rng.normal(0, 1, (5, 6)).astype(np.float32),
            "4.bias": rng.normal(0, 1, (5,)).astype(np.float32)}


def test_safetensors_measured_without_torch(tmp_path):
    """A child process where ``import torch`` fails (sitecustomize meta-path blocker) loads a
    safetensors Linear stack, measures it, and gets the same numbers as this process; a
    torch.save file there raises MissingDependencyError naming ``pip install torch==2.13.0``."""
    state = _stack(np.random.default_rng(0))
    ckpt = tmp_path / "mnist_like.safetensors"
    save_file(state, str(ckpt))
    fake_torch_file = tmp_path / "model.pt"
    fake_torch_file.write_bytes(b"PK\x03\x04" + b"\x00" * 60)  # a torch.save zip, as far as bytes go
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(BLOCKER)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(blocker), str(REPO)]), JAX_PLATFORMS="cpu")
    proc = subprocess.run([sys.executable, "-c", CHILD, str(ckpt), str(fake_torch_file)], env=env,
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])

    assert out["torch_importable"] is False
    assert out["torch_after_import_bridges"] is False and out["torch_at_end"] is False
    assert out["layers"] == ["layers_0", "layers_2", "layers_4"]
    message, is_import_error, is_ei_error = out["missing"]
    assert "pip install torch==2.13.0" in message and "model.pt" in message
    assert is_import_error and is_ei_error
    assert "torch.nn.Module" in out["from_torch"]

    # The same file in this process gives the same network and the same number.
    model, variables = bridges.load_checkpoint(ckpt, activation="sigmoid")
    top = ei_jax.topology_of(model, variables, jnp.zeros((1, 25)))
    want = ei_jax.ei_parts(jax.random.key(3), top, "layers_2", samples=20_000, in_bins=8, out_bins=8)
    assert out["ei_parts"] == want and want > 0.05
    # ... and the network computes sigmoid(x W^T + b) layer by layer, from the file's weights.
    h = np.full((1, 25), 0.5, np.float32)
    for k in ("0", "2", "4"):
        h = 1 / (1 + np.exp(-(h @ state[f"{k}.weight"].T + state.get(f"{k}.bias", 0))))
    np.testing.assert_allclose(out["y"], h, atol=1e-5, rtol=0)
