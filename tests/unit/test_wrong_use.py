"""Wrong uses of the public API: each is answered by a typed ei_jax error (or an ei_jax
warning), never a raw Python / JAX / NumPy exception and never a silent number.

Example-based tests for the reported cases, then property tests (hypothesis) that feed
wrong-typed or ill-shaped values to each argument of the convenient, core and exact measures.
"""

import warnings

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ei_jax
from ei_jax import core, exact
from ei_jax._src.base import progress as progress_mod
from ei_jax.errors import (
    EIJaxError,
    InvalidCallError,
    InvalidOptionError,
    InvalidRangeError,
    InvalidSamplesError,
    NonFiniteParamsError,
    SampleLimitedWarning,
    UnknownActivationError,
)

NET = nn.Dense(3)
X0 = jnp.zeros((1, 4))
PARAMS = NET.init(jax.random.key(0), X0)
TOP = ei_jax.topology_of(NET, PARAMS, X0)
KW = dict(in_range=(0, 1), out_range=(0, 1), in_bins=8, out_bins=8, activation="sigmoid")
CORE_KW = dict(in_shape=(4,), in_range=(0, 1), in_bins=8, out_range=(0, 1), out_bins=8)
KEY = jax.random.key(1)


def apply(w, x):
    return jax.nn.sigmoid(x @ w)


W = jax.random.normal(jax.random.key(2), (4, 3))


# --- the reported cases --------------------------------------------------------------------------

def test_a_range_that_is_not_a_pair():
    with pytest.raises(InvalidRangeError, match="in_range must be a pair"):
        ei_jax.ei_parts(KEY, TOP, "Dense", samples=1000, **{**KW, "in_range": 1})


def test_samples_with_extrapolate():
    with pytest.raises(InvalidOptionError, match="extrapolate=True chooses its own samples"):
        ei_jax.ei_parts(KEY, TOP, "Dense", samples=20_000, extrapolate=True, **KW)


@pytest.mark.parametrize("flag, value", [("clip", "yes"), ("progress", "x"), ("stderr", "maybe"),
                                         ("clip", 1), ("stderr", None)])
def test_flags_must_be_bools(flag, value):
    with pytest.raises(InvalidOptionError, match=f"{flag} must be True"):
        ei_jax.ei_parts(KEY, TOP, "Dense", samples=1000, **{**KW, flag: value})


def test_too_few_samples_warn():
    with pytest.warns(SampleLimitedWarning, match="samples per occupied cell"):
        ei_jax.ei_parts(KEY, TOP, "Dense", samples=10, **{**KW, "in_bins": 64, "out_bins": 64})


def test_enough_samples_do_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error", SampleLimitedWarning)
        ei_jax.ei_parts(KEY, TOP, "Dense", samples=2 * 8 * 8, **KW)


def test_nan_weights_inside_a_users_jit_carry_the_typed_message(caplog):
    f = jax.jit(lambda w: core.ei_parts(KEY, apply, w, samples=1000, **CORE_KW))
    with pytest.raises(jax.errors.JaxRuntimeError, match="NonFiniteParamsError: The layer has NaN"):
        f(jnp.full((4, 3), jnp.nan)).block_until_ready()
    assert "callback failed" not in caplog.text  # JAX's traceback log is not printed
    with pytest.raises(NonFiniteParamsError):   # outside jit: the typed error itself
        core.ei_parts(KEY, apply, jnp.full((4, 3), jnp.nan), samples=1000, **CORE_KW)


def test_core_takes_int_seeds_and_refuses_other_keys():
    assert float(core.ei_parts(1, apply, W, samples=1000, **CORE_KW)) == float(
        core.ei_parts(jax.random.key(1), apply, W, samples=1000, **CORE_KW))
    with pytest.raises(InvalidCallError, match="jax.random.key"):
        core.ei_parts("seed", apply, W, samples=1000, **CORE_KW)


@pytest.mark.parametrize("transform", ["jit", "vmap", "grad"])
def test_the_convenient_api_under_a_transformation(transform):
    if transform == "jit":
        call = lambda: jax.jit(lambda k: ei_jax.ei_parts(k, TOP, "Dense", samples=1000, **KW))(KEY)  # noqa: E731
    elif transform == "vmap":
        call = lambda: jax.vmap(lambda k: ei_jax.ei(k, TOP, "Dense", samples=1000, **KW))(  # noqa: E731
            jax.random.split(KEY, 2))
    else:
        call = lambda: jax.grad(lambda p: ei_jax.ei_parts(  # noqa: E731
            KEY, ei_jax.topology_of(NET, p, X0), "Dense", samples=1000, **KW))(PARAMS)
    with pytest.raises(InvalidCallError, match="ei_jax.core"):
        call()


def test_stderr_target_is_named():
    with pytest.raises(InvalidSamplesError, match="stderr_target must be"):
        ei_jax.ei_parts(KEY, TOP, "Dense", stderr_target=0, **KW)


def test_exact_activation_errors_are_the_documented_types():
    kw = dict(in_range=(0, 1), in_bins=8, out_range=(0, 1), out_bins=8)
    with pytest.raises(UnknownActivationError):
        exact.ei_parts(TOP, "Dense", activation="foo", **kw)
    with pytest.raises(ei_jax.errors.ExactUnavailableError):
        exact.ei_parts(TOP, "Dense", activation=lambda x: x, **kw)
    assert "UnknownActivationError" in exact.ei_parts.__doc__ + exact.ei_parts_matrix.__doc__


# --- progress in automatic mode ------------------------------------------------------------------

class _FakeBar:
    made = []

    def __init__(self, **kw):
        self.kw, self.n = kw, kw.get("initial", 0)
        _FakeBar.made.append(self)

    def update(self, n=1):
        self.n += n

    def set_postfix_str(self, text, refresh=True):
        pass

    def close(self):
        pass


@pytest.mark.parametrize("terminal", [True, False])
def test_automatic_progress_appears_on_a_terminal_after_the_delay(monkeypatch, terminal):
    now = [100.0]
    _FakeBar.made = []
    monkeypatch.setattr(progress_mod, "_clock", lambda: now[0])
    monkeypatch.setattr(progress_mod, "_is_terminal", lambda f: terminal)
    monkeypatch.setattr(progress_mod, "_tqdm", _FakeBar)
    with progress_mod.progress_bar(None, enabled=None, desc="EI_parts", delay=3600) as bar:
        bar.update(10_000)          # quick start: nothing shown
        assert _FakeBar.made == []
        now[0] += 3600              # a long run
        bar.update(10_000)
    assert [b.n for b in _FakeBar.made] == ([20_000] if terminal else [])
    with progress_mod.progress_bar(None, enabled=None, desc="short", delay=3600) as bar:
        bar.update(5)               # a short run never shows one
    assert len(_FakeBar.made) == (1 if terminal else 0)


def test_automatic_mode_passes_progress_none_to_the_bar(monkeypatch):
    from ei_jax._src.measures import sampling

    seen = []
    real = sampling.progress_bar
    monkeypatch.setattr(sampling, "progress_bar",
                        lambda total, *, enabled, desc: seen.append(enabled) or real(total, enabled=False, desc=desc))
    rounds = sampling.AutoRounds(0.05, vector=True, desc="EI")
    for _ in rounds:
        rounds.record(1.0)
    assert seen == [None]


# --- property tests: wrong values for each argument ----------------------------------------------

WRONG = st.one_of(
    st.none(), st.booleans(), st.text(max_size=3), st.floats(allow_nan=True),
    st.integers(min_value=-5, max_value=0), st.lists(st.integers(-2, 2), max_size=3),
    st.tuples(st.floats(allow_nan=True), st.floats(allow_nan=True)),
    st.just(object()), st.just(np.zeros((2, 2))), st.just({"a": 1}),
)

#: argument -> values that are wrong for it (beyond WRONG, filtered by ``valid``).
CONVENIENT_ARGS = {
    "in_range": WRONG, "out_range": WRONG, "in_bins": WRONG, "out_bins": WRONG,
    "samples": WRONG, "layer": WRONG, "key": WRONG, "topology": WRONG, "clip": WRONG,
    "progress": WRONG, "stderr": WRONG, "threshold": WRONG, "batch_size": WRONG,
    "method": WRONG, "activation": WRONG, "in_layer": WRONG,
}


def _valid(name, value):
    """Values some wrong-value strategies hit that are in fact valid for ``name``."""
    if name in ("progress", "in_layer", "batch_size", "activation", "in_range", "out_range") \
            and value is None:                          # None: the default
        return True
    if name in ("clip", "stderr", "progress") and isinstance(value, bool):
        return True
    if name == "key" and isinstance(value, int) and not isinstance(value, bool):
        return True                                     # int seeds are keys
    if name in ("threshold",) and isinstance(value, float) and value > 0 and np.isfinite(value):
        return True
    if name in ("in_range", "out_range") and isinstance(value, (tuple, list)) and len(value) == 2:
        lo, hi = value
        return bool(np.isfinite(lo) and np.isfinite(hi) and lo < hi)
    if name == "samples" and value is None:
        return True
    return False


def _call_convenient(fn, name, value):
    args = dict(key=KEY, topology=TOP, layer="Dense")
    kw = dict(samples=1000, **KW)
    if name in args:
        args[name] = value
    else:
        kw[name] = value
    if name == "samples" and value is None and fn is ei_jax.sensitivity:
        return
    return fn(args["key"], args["topology"], args["layer"], **kw)


def _expect_typed(call):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            result = call()
        except EIJaxError:
            return
        except Exception as e:  # noqa: BLE001 - the point of the test
            pytest.fail(f"raw {type(e).__module__}.{type(e).__name__}: {e}")
    pytest.fail(f"a wrong argument was accepted silently; the call returned {result!r}")


PROPERTY = settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))


@pytest.mark.parametrize("fn", [ei_jax.ei_parts, ei_jax.sensitivity, ei_jax.ei])
@PROPERTY
@given(data=st.data())
def test_wrong_arguments_of_the_convenient_measures(fn, data):
    name = data.draw(st.sampled_from(sorted(CONVENIENT_ARGS)))
    if fn is ei_jax.sensitivity and name == "threshold":
        name = "out_bins"                       # sensitivity has no automatic mode
    value = data.draw(CONVENIENT_ARGS[name])
    if _valid(name, value):
        return
    if name == "samples" and fn is ei_jax.ei and value is None:
        return
    _expect_typed(lambda: _call_convenient(fn, name, value))


CORE_ARGS = ("key", "in_shape", "in_range", "in_bins", "out_range", "out_bins", "samples", "start",
             "batch_size", "clip", "method", "devices")


@pytest.mark.parametrize("fn", [core.ei_parts, core.sensitivity, core.vector_ei])
@PROPERTY
@given(name=st.sampled_from(CORE_ARGS), value=WRONG)
def test_wrong_arguments_of_the_core_measures(fn, name, value):
    if _valid(name, value) or (name in ("batch_size", "devices") and value is None):
        return
    if name == "start" and isinstance(value, int) and not isinstance(value, bool) and value == 0:
        return
    kw = dict(CORE_KW, samples=1000)
    key = KEY
    if name == "key":
        key = value
    else:
        kw[name] = value
    _expect_typed(lambda: fn(key, apply, W, **kw))


EXACT_ARGS = ("layer", "in_range", "in_bins", "out_range", "out_bins", "activation", "in_layer", "topology")


@pytest.mark.parametrize("fn", [exact.ei_parts, exact.sensitivity])
@PROPERTY
@given(name=st.sampled_from(EXACT_ARGS), value=WRONG)
def test_wrong_arguments_of_the_exact_measures(fn, name, value):
    if _valid(name, value):
        return
    args = dict(topology=TOP, layer="Dense")
    kw = dict(in_range=(0, 1), in_bins=8, out_range=(0, 1), out_bins=8, activation="sigmoid")
    if name in args:
        args[name] = value
    else:
        kw[name] = value
    _expect_typed(lambda: fn(args["topology"], args["layer"], **kw))


@PROPERTY
@given(groups=st.one_of(WRONG, st.lists(st.tuples(WRONG, WRONG), min_size=1, max_size=2),
                        st.just([((0, 9), (0,))]), st.just([((), (0,))])))
def test_wrong_groups(groups):
    _expect_typed(lambda: ei_jax.eis_between_groups(KEY, TOP, "Dense", groups, samples=1000, **KW))
