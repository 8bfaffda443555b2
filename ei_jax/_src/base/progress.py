"""Progress bars: the one helper every long loop of ei_jax and its CLI uses.

On a terminal the bar is a ``tqdm`` bar on stderr. When stderr is not a terminal (a log file,
a CI job, a pipe) redrawing a bar would fill the log with carriage returns, so progress is
written instead as plain lines, at most one every ``LOG_INTERVAL`` seconds plus one when the
loop ends. Disabled, it is a no-op stand-in with the same methods.

The default of the measures (``progress=None``, *automatic*) shows the bar only on a terminal
and only for a run that lasts: the ``tqdm`` bar appears :data:`AUTO_DELAY` seconds after the
loop starts (a timer, so it appears even while one long round is still counting), and a run
that ends sooner prints nothing. When stderr is not a terminal the automatic mode is silent.
"""

import sys
import threading
import time

#: Seconds between two progress lines when stderr is not a terminal.
LOG_INTERVAL = 30.0
#: Seconds after which an automatic (``enabled=None``) bar appears on a terminal.
AUTO_DELAY = 3.0

_clock = time.monotonic


def _tqdm(**kwargs):
    from tqdm.auto import tqdm

    return tqdm(**kwargs)


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


class _Delayed(_Null):
    """The automatic bar: nothing until :data:`AUTO_DELAY` seconds have passed (checked by a
    timer and at every update), then a ``tqdm`` bar that starts at the steps done so far."""

    def __init__(self, total, desc, unit, file, delay):
        self.kw = dict(total=total, desc=desc, unit=unit, unit_scale=True, leave=False,
                       dynamic_ncols=True, file=file)
        self.delay, self.start, self.n, self.postfix = delay, _clock(), 0, ""
        self.bar, self.closed, self.lock = None, False, threading.Lock()
        self.timer = threading.Timer(delay, self._show)
        self.timer.daemon = True
        self.timer.start()

    def _show(self):
        with self.lock:
            if self.bar is None and not self.closed:
                self.bar = _tqdm(initial=self.n, **self.kw)
                if self.postfix:
                    self.bar.set_postfix_str(self.postfix)

    def update(self, n=1):
        with self.lock:
            self.n += int(n)
            bar = self.bar
        if bar is not None:
            bar.update(n)
        elif _clock() - self.start >= self.delay:
            self._show()

    def set_postfix_str(self, text, refresh=True):
        self.postfix = str(text)
        if self.bar is not None:
            self.bar.set_postfix_str(self.postfix, refresh=refresh)

    def close(self):
        self.timer.cancel()
        with self.lock:
            self.closed, bar = True, self.bar
        if bar is not None:
            bar.close()


def _is_terminal(file) -> bool:
    try:
        return bool(file.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed file
        return False


def progress_bar(total, *, enabled, desc, unit="sample", file=None, interval=LOG_INTERVAL,
                 delay=AUTO_DELAY):
    """A progress bar for a loop of ``total`` steps, on stderr.

    Args:
      total: the number of steps the loop will take (an int), or ``None`` when it is not known
        in advance (automatic modes).
      enabled: ``False`` returns a no-op bar (same methods, prints nothing); ``True`` a bar
        (or plain lines, off a terminal); ``None`` (automatic) a ``tqdm`` bar on a terminal
        that appears only once the loop has run ``delay`` seconds, and nothing off a terminal.
      desc: a short label printed in front of the bar, e.g. ``"EI_parts"``.
      unit: what one step is (``"sample"``, ``"epoch"``, ``"checkpoint"``).
      file: where to write; default ``sys.stderr`` (looked up at call time).
      interval: seconds between two lines when ``file`` is not a terminal.
      delay: seconds before an automatic (``enabled=None``) bar appears.

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
    if enabled is not None and not enabled:
        return _Null()
    file = sys.stderr if file is None else file
    terminal = _is_terminal(file)
    if enabled is None:
        return _Delayed(total, desc, unit, file, float(delay)) if terminal else _Null()
    if not terminal:
        return _Lines(total, desc, unit, file, float(interval))
    return _tqdm(total=total, desc=desc, unit=unit, unit_scale=True, leave=False,
                 dynamic_ncols=True, file=file)
