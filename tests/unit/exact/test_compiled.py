"""The shared pieces of the compiled kernels (``ei_jax/_src/exact/compiled.py``): the
vectorisable elementary functions against NumPy, and the column driver."""

import threading

import numpy as np
import pytest

from ei_jax._src.exact import compiled


@compiled.jit(contract=True)
def _xlog2x_all(x, out):
    for i in range(x.shape[0]):
        out[i] = compiled.xlog2x(x[i])


@compiled.jit(contract=True)
def _cos_sin_all(th, c, s):
    for i in range(th.shape[0]):
        c[i], s[i] = compiled.cos_sin_0pi(th[i])


def test_xlog2x_against_numpy_over_the_whole_float64_range():
    rng = np.random.default_rng(0)
    x = np.concatenate([np.exp(rng.uniform(np.log(1e-320), 0.0, 100_000)),   # subnormals too
                        rng.uniform(0, 1, 10_000), [0.0, -1.0, 1.0, 0.5, 5e-324, 2.0 ** -1022,
                                                     np.sqrt(0.5), np.sqrt(2.0), 4.0]])
    out = np.empty_like(x)
    _xlog2x_all(x, out)
    pos = x > 0
    ref = np.where(pos, x * np.log2(np.where(pos, x, 1.0)), 0.0)
    assert (out[~pos] == 0).all() and out[x == 1.0][0] == 0.0
    rel = np.abs(out[pos] - ref[pos]) / np.abs(np.where(ref[pos] == 0, 1.0, ref[pos]))
    assert rel.max() < 1e-15


def test_cos_sin_on_zero_to_pi_against_numpy():
    th = np.concatenate([np.linspace(0, np.pi, 100_001), [0.0, np.pi, np.pi / 2, 1e-300]])
    c, s = np.empty_like(th), np.empty_like(th)
    _cos_sin_all(th, c, s)
    assert np.abs(c - np.cos(th)).max() < 5e-16 and np.abs(s - np.sin(th)).max() < 5e-16


@pytest.mark.parametrize("columns, work", [(1, 0), (7, 0), (1000, 1e9), (3, 1e9)])
def test_over_columns_covers_every_column_once_and_counts_them(monkeypatch, columns, work):
    seen, threads, bars, calls = [], set(), [], []

    class Bar:
        def __init__(self, total, **kw):
            self.total, self.done = total, 0
            bars.append(self)

        def update(self, n):
            self.done += n

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(compiled, "progress_bar", Bar)
    monkeypatch.setattr(compiled, "core_count", lambda: 2)

    def kernel(tag, start, stop):
        assert tag == "t" and 0 <= start < stop <= columns
        seen.extend(range(start, stop))
        calls.append(stop - start)
        threads.add(threading.get_ident())

    compiled.over_columns(kernel, "t", columns=columns, work=work, desc="x")
    assert sorted(seen) == list(range(columns))
    assert [(b.total, b.done) for b in bars] == [(columns, columns)]
    assert (threading.get_ident() in threads) == (work < 1e6)
    # blocks of about a sixteenth of each thread's share: a long call moves the bar often
    assert len(calls) >= min(columns, 16)
