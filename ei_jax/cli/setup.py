"""What the ``ei-jax`` process sets up before JAX starts: CPU devices and the compilation cache.

* Devices: JAX gives a CPU one device unless told otherwise; ``ei-jax`` asks for one CPU
  device per core (``--devices N`` to choose), so the measures shard their sample blocks over
  all cores. The results do not depend on the number of devices. A script does the same with
  ``jax.config.update("jax_num_cpu_devices", os.cpu_count())`` right after ``import jax``.
* Compilation cache: JAX's persistent cache (``jax_compilation_cache_dir``) in the user's
  cache directory (``$XDG_CACHE_HOME/ei_jax/jax``, default ``~/.cache/ei_jax/jax``), so a
  second ``ei-jax`` process loads its programs instead of compiling them. Off with
  ``--no-cache`` or ``EI_JAX_NO_CACHE=1``; a directory already chosen (``EI_JAX_CACHE_DIR``,
  ``JAX_COMPILATION_CACHE_DIR``) is used as it is; a directory that cannot be written turns the
  cache off with a note, never the command.
"""

import os
import warnings

from ei_jax._src.base.cores import core_count

#: Environment variable that turns the compilation cache off (any non-empty value but "0").
NO_CACHE_ENV = "EI_JAX_NO_CACHE"


def set_cpu_devices(n: int, *, explicit: bool) -> str | None:
    """Asks JAX for ``n`` CPU devices; returns a note for the user when that is not possible.

    Does nothing if ``XLA_FLAGS`` already sets ``--xla_force_host_platform_device_count`` (the
    user's choice wins). Once JAX has started its backends the count cannot change: then the
    note says so if ``explicit`` (``--devices`` was given), else nothing is said. More CPU
    devices than :func:`core_count` only slow a run down (each device is a thread; the numbers
    do not depend on the count): ``--devices`` above it is lowered to the cores, with a note.
    """
    if "xla_force_host_platform_device_count" in os.environ.get("XLA_FLAGS", ""):
        return "XLA_FLAGS sets the CPU device count; --devices is ignored" if explicit else None
    cores, lowered = core_count(), None
    if n > cores:
        lowered = (f"--devices {n} is more than the {cores} CPU core{'s' * (cores > 1)} this "
                   f"process may use; more CPU devices than cores only slow the run (the numbers "
                   f"do not depend on it): using {cores}")
        n = cores
    import jax

    try:
        jax.config.update("jax_num_cpu_devices", int(n))
    except RuntimeError:  # backends already started (ei_jax.cli.main called inside a program)
        if explicit and jax.device_count("cpu") != n:
            return f"JAX has already started with {jax.device_count('cpu')} CPU devices; --devices {n} is ignored"
    return lowered


def enable_compilation_cache(*, disabled: bool = False) -> tuple[str | None, str | None]:
    """Turns on JAX's persistent compilation cache for this process, unless told not to.

    Uses :func:`ei_jax._src.base.compilation_cache.enable_compilation_cache` (the library's one
    cache switch, default directory ``~/.cache/ei_jax/jax``). A cache directory already set
    (``EI_JAX_CACHE_DIR``, ``JAX_COMPILATION_CACHE_DIR``) is kept. ``disabled`` (or
    ``EI_JAX_NO_CACHE=1``): the command does not turn it on.

    Returns:
      ``(directory or None, note or None)``: the note says why the cache is off when its
      directory cannot be written (the command runs as without a cache, never fails).
    """
    if disabled or os.environ.get(NO_CACHE_ENV, "") not in ("", "0"):
        return None, None
    import jax

    from ei_jax._src.base import compilation_cache

    if jax.config.jax_compilation_cache_dir:
        return jax.config.jax_compilation_cache_dir, None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RuntimeWarning)
        directory = compilation_cache.enable_compilation_cache()
    note = None if directory else " ".join(str(w.message) for w in caught) or "compilation cache off"
    return directory, note


def versions() -> str:
    """``ei-jax X (jax Y, jaxlib Z, flax W)`` from the installed distributions (imports nothing)."""
    from importlib import metadata

    def version(name):
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "not installed"

    deps = ", ".join(f"{name} {version(name)}" for name in ("jax", "jaxlib", "flax"))
    return f"ei-jax {version('ei-jax')} ({deps})"
