"""JAX's persistent compilation cache for scripts: compiled programs kept on disk.

A one-measure script is a whole process: imports, compilation, measurement. Compilation is
most of a small measure's first call; with the cache, the second and later runs of the same
script load the compiled programs instead (any program of the process: the network's own
initialisation too). ``EI_JAX_CACHE_DIR`` (read when ``ei_jax`` is imported) or
:func:`enable_compilation_cache` turns it on; an unusable directory gives a warning, never
an error.
"""

import os
import warnings
from pathlib import Path

#: Environment variable read at ``import ei_jax``: a directory for the cache (``""``: the
#: default directory).
ENV_VAR = "EI_JAX_CACHE_DIR"


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/ei_jax/jax`` (``~/.cache/ei_jax/jax`` when unset)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "ei_jax" / "jax"


def _usable(path: Path) -> str | None:
    """Why ``path`` cannot hold the cache, or None when it can."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".ei_jax_probe_{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        return f"{type(e).__name__}: {e.strerror or e}"
    return None


def enable_compilation_cache(path=None) -> str | None:
    """Keeps JAX's compiled programs in ``path``, so later processes skip compiling them.

    Sets JAX's ``jax_compilation_cache_dir`` to ``path`` and caches every program, however
    fast it compiled (``jax_persistent_cache_min_compile_time_secs = 0``: the programs of a
    small measurement compile in well under JAX's default threshold of 1 s). Call it before
    the first measurement; it affects the whole process, as JAX's options do. The same
    happens at ``import ei_jax`` when the environment variable ``EI_JAX_CACHE_DIR`` is set
    (to a directory, or empty for the default one). Results are unchanged: the cache holds
    the very programs XLA would compile.

    Args:
      path: the cache directory (created if missing); default :func:`default_cache_dir`.

    Returns:
      the directory in use, or None when it cannot be created or written: then a
      ``RuntimeWarning`` says why and everything runs as before, without the cache.

    Example:
      In a script, before the first measurement (or ``EI_JAX_CACHE_DIR=~/.cache/ei_jax/jax
      python script.py``)::

        from ei_jax._src.base.compilation_cache import enable_compilation_cache
        enable_compilation_cache()          # ~/.cache/ei_jax/jax

      A directory that cannot be written turns nothing on:

      >>> import warnings
      >>> from ei_jax._src.base.compilation_cache import enable_compilation_cache
      >>> with warnings.catch_warnings(record=True) as caught:
      ...     warnings.simplefilter("always")
      ...     print(enable_compilation_cache("/dev/null/cache"), caught[0].category.__name__)
      None RuntimeWarning
    """
    import jax

    target = Path(path).expanduser() if path not in (None, "") else default_cache_dir()
    why = _usable(target)
    if why is not None:
        warnings.warn(f"ei_jax: compilation cache disabled: cannot write to {str(target)!r} ({why}). "
                      f"Set {ENV_VAR} to a writable directory.", RuntimeWarning, stacklevel=2)
        return None
    jax.config.update("jax_compilation_cache_dir", str(target))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    return str(target)


def enable_from_environment() -> str | None:
    """:func:`enable_compilation_cache` with ``$EI_JAX_CACHE_DIR`` if it is set (else nothing)."""
    if ENV_VAR not in os.environ:
        return None
    return enable_compilation_cache(os.environ[ENV_VAR])
