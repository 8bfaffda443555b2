"""Progress bars: the one helper every long loop of ei_jax and its CLI uses.

On a terminal the bar is a ``tqdm`` bar on stderr. When stderr is not a terminal (a log file,
a CI job, a pipe) redrawing a bar would fill the log with carriage returns, so progress is
written instead as plain lines, at most one every ``LOG_INTERVAL`` seconds plus one when the
loop ends. Disabled, it is a no-op stand-in with the same methods.
"""

import sys
import time

#: Seconds between two progress lines when stderr is not a terminal.
LOG_INTERVAL = 30.0


class _Null:
    """The disabled bar: every method does nothing."""

    def update(self, n=1):
        pass

    def set_postfix_str(self, text, refresh=True):
        pass

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class _Lines(_Null):
    """Progress as plain lines for logs: ``desc: n/total unit (p%) [elapsed]``, rate-limited."""

    def __init__(self, total, desc, unit, file, interval):
        self.total, self.desc, self.unit, self.file = total, desc, unit, file
        self.interval, self.n, self.postfix = interval, 0, ""
        self.start = self.last = time.monotonic()
        self.closed, self.written = False, None

    def _write(self, now):
        of = f"/{self.total}" if self.total else ""
        pct = f" ({100 * self.n / self.total:.0f}%)" if self.total else ""
        post = f" {self.postfix}" if self.postfix else ""
        self.file.write(f"{self.desc}: {self.n}{of} {self.unit}{pct} [{now - self.start:.0f}s]{post}\n")
        self.file.flush()
        self.last, self.written = now, self.n

    def update(self, n=1):
        self.n += int(n)
        now = time.monotonic()
        if now - self.last >= self.interval:
            self._write(now)

    def set_postfix_str(self, text, refresh=True):
        self.postfix = str(text)

    def close(self):
        if not self.closed:
            self.closed = True
            if self.written != self.n:
                self._write(time.monotonic())


def _is_terminal(file) -> bool:
    try:
        return bool(file.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed file
        return False


def progress_bar(total, *, enabled, desc, unit="sample", file=None, interval=LOG_INTERVAL):
    """A progress bar for a loop of ``total`` steps, on stderr.

    Args:
      total: the number of steps the loop will take (an int), or ``None`` when it is not known
        in advance (automatic modes).
      enabled: ``False`` returns a no-op bar (same methods, prints nothing).
      desc: a short label printed in front of the bar, e.g. ``"EI_parts"``.
      unit: what one step is (``"sample"``, ``"epoch"``, ``"checkpoint"``).
      file: where to write; default ``sys.stderr`` (looked up at call time).
      interval: seconds between two lines when ``file`` is not a terminal.

    Returns:
      An object with ``update(n)`` (``n`` more steps done), ``set_postfix_str(text)`` and
      ``close()``, usable as a context manager (``close`` on exit). On a terminal it is a
      ``tqdm`` bar; otherwise it writes one line at most every ``interval`` seconds and a
      last line on ``close``, without carriage returns.

    Example:
      >>> import io
      >>> log = io.StringIO()
      >>> with progress_bar(3, enabled=True, desc="epochs", unit="epoch", file=log) as bar:
      ...     bar.update(2)
      ...     bar.update(1)
      >>> log.getvalue().split(" [")[0]
      'epochs: 3/3 epoch (100%)'
      >>> with progress_bar(3, enabled=False, desc="quiet") as bar:
      ...     bar.update(3)
    """
    if not enabled:
        return _Null()
    file = sys.stderr if file is None else file
    if not _is_terminal(file):
        return _Lines(total, desc, unit, file, float(interval))
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, unit_scale=True, leave=False,
                dynamic_ncols=True, file=file)
