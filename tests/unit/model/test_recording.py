"""Recording layer calls: call order and values, and the NNX call wrapper stays contained."""

import threading

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import ei_jax
from ei_jax import Flatten, MaxPool
from ei_jax._src.model import recording as rec

LINEAR_CALL, CONV_CALL = nnx.Linear.__call__, nnx.Conv.__call__


def _assert_unpatched():
    assert nnx.Linear.__call__ is LINEAR_CALL and nnx.Conv.__call__ is CONV_CALL


def test_layer_names_from_paths():
    assert rec.layer_name(("layers", 0, "dense")) == "layers_0/dense"
    assert rec.layer_name(("hidden",)) == "hidden"
    assert rec.layer_name(()) == ""


def test_linen_events_in_call_order_with_their_values():
    net = nn.Sequential([nn.Conv(2, (3, 3)), nn.relu, MaxPool(2), Flatten(), nn.Dense(3)])
    x = jnp.asarray(np.random.default_rng(0).normal(size=(2, 6, 6, 1)), jnp.float32)
    variables = net.init(jax.random.key(0), x)
    events, unsupported, y = rec.record_linen(net, variables, x)
    assert [type(e).__name__ for e in events] == ["Record", "Op", "Op", "Record"]
    conv, pool, flat, dense = events
    assert (conv.path, conv.module, conv.kind) == (("layers_0",), "Conv", "conv")
    assert [type(e.layer).__name__ for e in (pool, flat)] == ["MaxPool", "Flatten"]
    np.testing.assert_array_equal(np.asarray(conv.x), np.asarray(x))
    np.testing.assert_array_equal(np.asarray(pool.x), np.asarray(jax.nn.relu(conv.y)))
    np.testing.assert_array_equal(np.asarray(dense.x), np.asarray(flat.y))
    np.testing.assert_array_equal(np.asarray(y), np.asarray(net.apply(variables, x)))
    assert unsupported == [] and set(dense.params) == {"kernel", "bias"}


def test_nnx_events_and_unsupported_modules():
    r = nnx.Rngs(0)
    net = nnx.Sequential(nnx.Linear(4, 3, rngs=r), nnx.LayerNorm(3, rngs=r), nnx.Linear(3, 2, use_bias=False, rngs=r))
    x = jnp.ones((2, 4))
    events, unsupported, y = rec.record_nnx(net, x)
    assert [(e.path, e.kind, set(e.params)) for e in events] == [
        (("layers", 0), "dense", {"kernel", "bias"}), (("layers", 2), "dense", {"kernel"})]
    assert unsupported == [(("layers", 1), "LayerNorm")]
    np.testing.assert_array_equal(np.asarray(events[1].y), np.asarray(y))
    _assert_unpatched()


def test_nnx_wrapper_is_removed_even_when_the_model_raises():
    class Broken(nnx.Module):
        def __init__(self):
            self.a = nnx.Linear(6, 3, rngs=nnx.Rngs(0))

        def __call__(self, x):
            self.a(x)
            raise RuntimeError("model bug")

    with pytest.raises(RuntimeError, match="model bug"):
        ei_jax.topology_of(Broken(), jnp.zeros((1, 6)))
    _assert_unpatched()


def test_nnx_wrapper_records_only_in_the_recording_context():
    lin = nnx.Linear(3, 2, rngs=nnx.Rngs(0))
    x = jnp.ones((1, 3))
    seen_elsewhere = []
    with rec.recording() as events, rec._nnx_calls_recorded():
        # Another thread calls the (wrapped) class meanwhile: same result, nothing recorded here.
        t = threading.Thread(target=lambda: seen_elsewhere.append(lin(x)))
        t.start()
        t.join()
        assert events == []
        y = lin(x)
        assert len(events) == 1 and events[0][0] is lin and events[0][2] is y
    np.testing.assert_array_equal(np.asarray(seen_elsewhere[0]), np.asarray(y))
    _assert_unpatched()
    # Outside a recording a wrapped call records nothing.
    with rec._nnx_calls_recorded():
        lin(x)
    _assert_unpatched()


def test_overlapping_recorders_keep_the_wrapper_until_the_last_one_leaves():
    outer = rec._nnx_calls_recorded()
    outer.__enter__()
    try:
        with rec._nnx_calls_recorded():
            pass
        assert nnx.Linear.__call__ is not LINEAR_CALL  # the outer recorder still needs it
        # A topology taken meanwhile is unaffected, and leaves the outer wrapper in place.
        top = ei_jax.topology_of(nnx.Linear(6, 3, rngs=nnx.Rngs(0)), jnp.zeros((1, 6)))
        assert list(top) == ["Linear"]
        assert nnx.Linear.__call__ is not LINEAR_CALL
    finally:
        outer.__exit__(None, None, None)
    _assert_unpatched()


def test_structure_layers_record_only_inside_a_recording():
    x = jnp.ones((1, 4, 4, 1))
    with rec.recording() as events:
        y = MaxPool(2)(x)
        with rec.recording() as inner:
            Flatten()(y)
    assert [type(e.layer).__name__ for e in events] == ["MaxPool"] and len(inner) == 1
    assert rec._EVENTS.get() is None
