"""The persistent compilation cache: ``EI_JAX_CACHE_DIR`` fills a directory, a later process
loads its programs from it (JAX counts the cache hits) and gets the same number; a directory
that cannot be written gives a warning and changes nothing."""

import json
import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import jax

from ei_jax._src.base import compilation_cache

SCRIPT = textwrap.dedent('''
    import json, jax
    hits = []
    jax.monitoring.register_event_listener(
        lambda e, **_: hits.append(e) if e == "/jax/compilation_cache/cache_hits" else None)
    import ei_jax
    from ei_jax import core
    v = core.ei_parts(jax.random.key(1), lambda w, x: jax.nn.sigmoid(x @ w), jax.numpy.eye(3),
                      in_shape=(3,), in_range=(0, 1), in_bins=8, out_range=(0, 1), out_bins=8,
                      samples=5000)
    # A stack of parameter sets: one compiled call whose NaN check is an output, not a host
    # callback (a program with one is never written to the cache).
    measure = lambda w, key: core.ei_parts(key, lambda w, x: jax.nn.sigmoid(x @ w), w, in_shape=(3,),
                                           in_range=(0, 1), in_bins=8, out_range=(0, 1), out_bins=8,
                                           samples=5000)
    stack = [float(s) for s in core.map_params(measure, jax.numpy.stack([jax.numpy.eye(3)] * 2),
                                               jax.random.key(1))]
    print(json.dumps(dict(value=float(v), stack=stack, hits=len(hits),
                          dir=jax.config.jax_compilation_cache_dir)))
''')


def _run(cache_dir) -> tuple[dict, str]:
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[3]),
               EI_JAX_CACHE_DIR=str(cache_dir))
    proc = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.splitlines()[-1]), proc.stderr


def test_a_second_process_loads_the_programs_the_first_one_compiled(tmp_path):
    cache = tmp_path / "cache"
    first, _ = _run(cache)
    assert first["dir"] == str(cache) and first["hits"] == 0
    assert any(cache.iterdir())
    assert [p.name for p in cache.glob("jit_map_stack-*")]   # map_params' program is kept too
    second, _ = _run(cache)
    assert second["hits"] >= 2
    assert second["value"] == first["value"] > 0
    assert second["stack"] == first["stack"] and abs(first["stack"][0] - first["value"]) < 1e-5


def test_an_unwritable_directory_warns_and_runs_without_a_cache(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    out, err = _run(blocker / "cache")             # a directory inside a file cannot exist
    assert out["dir"] is None and out["value"] > 0
    assert "compilation cache disabled" in err and str(blocker / "cache") in err
    before = jax.config.jax_compilation_cache_dir
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert compilation_cache.enable_compilation_cache(blocker / "cache") is None
    assert [w.category for w in caught] == [RuntimeWarning]
    assert jax.config.jax_compilation_cache_dir == before
