"""The package's shape and public surface: layered subpackages, small modules, exceptions in
``ei_jax.errors``, the version from the package metadata, and an import that leaves JAX's
global configuration alone."""

import inspect
import json
import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import ei_jax
import ei_jax.errors
from ei_jax._src.base import errors as _errors

ROOT = Path(__file__).resolve().parents[2]
LAYERS = {"base", "info", "model", "sampled", "exact", "core", "measures"}


def test_no_module_sits_directly_in_src_and_every_subpackage_is_a_layer():
    src = ROOT / "ei_jax" / "_src"
    flat = sorted(p.name for p in src.glob("*.py") if p.name != "__init__.py")
    assert flat == []
    subpackages = {p.name for p in src.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert subpackages == LAYERS


def test_no_module_is_over_300_lines():
    long = {str(p.relative_to(ROOT)): n for p in [*ROOT.glob("ei_jax/**/*.py"), *ROOT.glob("bridges/**/*.py")]
            if (n := len(p.read_text().splitlines())) > 300}
    assert long == {}


def test_every_exception_and_warning_is_in_ei_jax_errors():
    defined = {n for n, c in inspect.getmembers(_errors, inspect.isclass)
               if c.__module__ == _errors.__name__ and issubclass(c, (Exception, Warning))}
    assert set(ei_jax.errors.__all__) == defined
    for name in defined:
        assert getattr(ei_jax.errors, name) is getattr(_errors, name)


def test_the_top_level_keeps_only_the_base_error_and_the_warnings():
    exported = {n for n in ei_jax.__all__ if inspect.isclass(getattr(ei_jax, n))
                and issubclass(getattr(ei_jax, n), (Exception, Warning))}
    assert exported == {"EIJaxError", "DefaultRangeWarning", "OutOfRangeWarning", "SampleLimitedWarning"}


def test_version_comes_from_the_package_metadata():
    assert ei_jax.__version__ == metadata.version("ei-jax")


def test_importing_ei_jax_changes_no_jax_setting(tmp_path):
    """A fresh process without EI_JAX_CACHE_DIR: every jax.config value is the same before and
    after importing the package's faces (and bridges); with the variable set, only the two
    compilation-cache settings change (the documented opt-in)."""
    code = ("import json, jax\n"
            "before = {k: repr(v) for k, v in jax.config.values.items()}\n"
            "import ei_jax, ei_jax.core, ei_jax.exact, ei_jax.errors, bridges\n"
            "after = {k: repr(v) for k, v in jax.config.values.items()}\n"
            "print(json.dumps(sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))))\n")

    def changed(env):
        out = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True,
                             text=True, timeout=120, check=True).stdout
        return json.loads(out.strip().splitlines()[-1])

    env = {k: v for k, v in os.environ.items() if k != "EI_JAX_CACHE_DIR"}
    assert changed(env) == []
    opted = changed(dict(env, EI_JAX_CACHE_DIR=str(tmp_path / "cache")))
    assert set(opted) <= {"jax_compilation_cache_dir", "jax_persistent_cache_min_compile_time_secs"}
    assert "jax_compilation_cache_dir" in opted


def test_measuring_a_linen_model_imports_neither_flax_nnx_nor_numba():
    """A one-measure script on a linen model (deep-ei's README example, small: its sampled
    EI_parts and the exact one of a 10 -> 10 layer, under SMALL) never imports flax.nnx
    (~0.2-0.45 s with optax and treescope) or numba: whether a model is an nnx.Module is
    asked only of a process that has imported flax.nnx (an nnx model implies it)."""
    code = ("import sys, jax, jax.numpy as jnp, flax.linen as nn, ei_jax\n"
            "net = nn.Dense(10)\n"
            "x0 = jnp.zeros((1, 10))\n"
            "top = ei_jax.topology_of(net, net.init(jax.random.key(4), x0), x0)\n"
            "kw = dict(in_range=(0, 1), in_bins=8, out_range=(0, 1), out_bins=8, activation='sigmoid')\n"
            "ei_jax.ei_parts(jax.random.key(0), top, 'Dense', samples=1000, **kw)\n"
            "ei_jax.exact.ei_parts(top, 'Dense', **kw)\n"
            "print(sorted(m for m in ('flax.nnx', 'optax', 'numba') if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         timeout=300, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"
