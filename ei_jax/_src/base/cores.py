"""How many CPU cores this process may use (the compiled exact kernels' threads, the CLI's
CPU devices)."""

import os


def core_count() -> int:
    """The CPU cores this process may run on (its affinity mask, else ``os.cpu_count()``)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)
