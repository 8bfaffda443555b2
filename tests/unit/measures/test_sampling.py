"""Sample-count control (ei_jax/_src/measures/sampling.py): pieces, automatic rounds, extrapolation fit."""

import warnings

import jax
import jax.numpy as jnp
import flax.linen as nn
import numpy as np
import pytest

import ei_jax
from ei_jax._src.core import measures as core_measures
from ei_jax._src.measures import sampling


def test_power_law_fit_recovers_its_parameters():
    n = np.arange(5, 21) * 100_000.0
    v = 300.0 / n ** 0.9 + 2.5
    a, e, c = sampling.fit_power_law(n, v)
    assert abs(c - 2.5) < 1e-4 and abs(e - 0.9) < 1e-3




def test_pieces_cover_a_round_exactly(monkeypatch):
    monkeypatch.setattr(sampling, "PIECE", 1000)
    got = list(sampling.pieces(500, 2700, progress=False, desc=""))
    assert got == [(500, 1000), (1500, 1000), (2500, 700)]


def test_auto_rounds_double_and_stop_by_deep_eis_rule():
    # EI_parts rule: error = (prev - last) / interval * samples, relative to last.
    values = iter([10.0, 9.0, 8.9, 8.89])
    rounds = sampling.AutoRounds(0.05, vector=False, desc="t")
    seen = []
    for start, n in rounds:
        seen.append((start, n))
        rounds.record(next(values))
    # round 2: error = 1.0/10000*20000 = 2.0 -> 2/9 > 0.05; round 3: 0.1/20000*40000 = 0.2 ->
    # 0.2/8.9 = 0.022 <= 0.05: stop after 40,000 samples.
    assert seen == [(0, 10_000), (10_000, 10_000), (20_000, 20_000)]
    assert rounds.samples == 40_000 and rounds.values[-1] == 8.9


def test_vector_rule_is_an_absolute_change_in_bits():
    values = iter([5.0, 5.2, 5.24])
    rounds = sampling.AutoRounds(0.05, vector=True)
    for _ in rounds:
        rounds.record(next(values))
    assert rounds.samples == 40_000  # |5.24 - 5.2| = 0.04 < 0.05


def test_auto_rounds_warn_at_max_samples_and_need_every_estimate():
    rounds = sampling.AutoRounds(1e-9, vector=True, max_samples=30_000, desc="EI x")
    with pytest.warns(RuntimeWarning, match="max_samples=30000"):
        for i, _ in enumerate(rounds):
            rounds.record(float(i))
    assert rounds.samples == 20_000
    rounds = sampling.AutoRounds(0.05, vector=True)
    with pytest.raises(ei_jax.errors.InvalidCallError, match="record"):
        for _ in rounds:
            pass
    with pytest.raises(ei_jax.errors.InvalidSamplesError, match="max_samples"):
        sampling.AutoRounds(0.05, vector=True, max_samples=5)


def test_vector_automatic_mode_adds_rounds_and_equals_a_fixed_run(monkeypatch):
    net = nn.Dense(3, use_bias=False)
    x0 = jnp.zeros((1, 3))
    top = ei_jax.topology_of(net, net.init(jax.random.key(0), x0), x0)
    calls = []
    real = core_measures.local_rows

    def spy(*args, samples, start=0, **kw):
        calls.append((start, samples))
        return real(*args, samples=samples, start=start, **kw)

    monkeypatch.setattr(core_measures, "local_rows", spy)
    kw = dict(in_range=(0, 1), in_bins=8, out_bins=8, activation="sigmoid")
    auto = ei_jax.ei(jax.random.key(1), top, "Dense", threshold=0.05, **kw)
    # Every sample is counted once: the rounds tile [0, total) without overlap.
    total = sum(n for _, n in calls)
    assert [s for s, _ in calls] == list(np.cumsum([0] + [n for _, n in calls[:-1]]))
    assert len(calls) >= 2
    assert auto == ei_jax.ei(jax.random.key(1), top, "Dense", samples=total, **kw)
