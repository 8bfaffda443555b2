"""Argument checks (ei_jax/_src/base/checks.py): the sample limit, typed option errors, checks that
hold under jax.jit, and the guard that makes jax.grad through a sampled measure an error."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ei_jax
from ei_jax import core

KW = dict(in_shape=(3,), in_range=(0, 1), in_bins=8, out_range=(0, 1), out_bins=8, samples=2000)


def apply(w, x):
    return jax.nn.sigmoid(x @ w)


W = jnp.array([[1.0, -2.0], [0.5, 3.0], [2.0, 0.0]])


def test_grad_through_a_sampled_measure_is_an_error_not_zero():
    for fn in (core.ei_parts, core.sensitivity, core.vector_ei):
        with pytest.raises(ei_jax.errors.NotDifferentiableError, match="exact_ei_parts_matrix"):
            jax.grad(lambda w: fn(jax.random.key(0), apply, w, **KW))(W)
    with pytest.raises(ei_jax.errors.NotDifferentiableError):
        jax.jit(jax.grad(lambda w: core.ei_parts(jax.random.key(0), apply, w, **KW)))(W)
    # stop_gradient makes the value a constant: no error, and the other term's gradient is kept
    g = jax.grad(lambda w: core.ei_parts(jax.random.key(0), apply, jax.lax.stop_gradient(w), **KW)
                 + jnp.sum(w))(W)
    np.testing.assert_array_equal(np.asarray(g), np.ones_like(W))
    # and without differentiation, jit and vmap work as before
    v = jax.jit(lambda w: core.ei_parts(jax.random.key(0), apply, w, **KW))(W)
    assert float(v) == pytest.approx(float(core.ei_parts(jax.random.key(0), apply, W, **KW)))


def test_nan_weights_in_the_core_fail_eagerly_and_under_jit():
    bad = W.at[0, 0].set(jnp.nan)
    with pytest.raises(ei_jax.errors.NonFiniteParamsError, match="NaN or infinite"):
        core.ei_parts(jax.random.key(0), apply, bad, **KW)
    with pytest.raises(Exception, match="NaN or infinite parameters") as info:
        jax.jit(lambda w: core.ei_parts(jax.random.key(0), apply, w, **KW))(bad).block_until_ready()
    assert "JaxRuntimeError" in type(info.value).__name__ or isinstance(info.value, ei_jax.errors.NonFiniteParamsError)
    # finite weights under jit are not affected
    jax.jit(lambda w: core.ei_parts(jax.random.key(0), apply, w, **KW))(W).block_until_ready()


def _measure(w, key):
    return core.ei_parts(key, apply, w, **KW)


def test_nan_weights_in_a_stack_name_the_parameter_sets_and_leave_no_callback():
    stack = jnp.stack([W, 2 * W, -W, W + 1, 0.5 * W])
    bad = stack.at[3, 0, 0].set(jnp.nan).at[1, 2, 1].set(jnp.inf)
    with pytest.raises(ei_jax.errors.NonFiniteParamsError, match=r"NaN or infinite.*parameter sets 1, 3 of the stack"):
        core.map_params(_measure, bad, jax.random.key(0), group_size=2)
    with pytest.raises(ei_jax.errors.NonFiniteParamsError, match=r"parameter set 4 of"):
        core.map_params(_measure, stack.at[4, 1, 1].set(jnp.nan), jax.random.key(0), group_size=2)
    good = core.map_params(_measure, stack, jax.random.key(0), group_size=2)
    np.testing.assert_allclose(np.asarray(good), [float(_measure(w, jax.random.key(0))) for w in stack],
                               rtol=1e-5)  # float32 MI, grouped vs one at a time
    # The check is an output of the compiled call, not a host callback (which the persistent
    # compilation cache cannot store); a jit of vmap of the same measure has one.
    from ei_jax._src.core import batching
    mapped = batching._mapped(_measure, 2).lower(stack, jax.random.key(0)).as_text()
    vmapped = jax.jit(jax.vmap(_measure, in_axes=(0, None))).lower(stack, jax.random.key(0)).as_text()
    assert "callback" not in mapped and "callback" in vmapped


def test_nan_weights_in_a_stack_still_fail_where_the_check_cannot_be_an_output():
    bad = jnp.stack([W, W.at[0, 0].set(jnp.nan)])
    # map_params under the user's own jit: the flags are traced, so they become a callback again
    with pytest.raises(Exception, match="NaN or infinite parameters"):
        jax.jit(lambda b: core.map_params(_measure, b, jax.random.key(0)))(bad).block_until_ready()

    # a jax.vmap inside the mapped function: its data is another trace's, checked by callback
    def scaled(w, key):
        return jax.vmap(lambda c: _measure(w * c, key))(jnp.array([1.0, 2.0]))

    with pytest.raises(Exception, match="NaN or infinite parameters"):
        jax.block_until_ready(core.map_params(scaled, bad, jax.random.key(0)))
    assert core.map_params(scaled, bad[:1], jax.random.key(0)).shape == (1, 2)


def test_a_vmapped_check_is_one_callback_for_the_whole_batch():
    """JAX batches a host callback into one per batch entry; the check reduces its flag over
    the batch first, so a jit(vmap) sweep compiles one callback whatever the stack size (and
    still fails when any entry, at any vmap depth, is not finite)."""
    stack = jnp.stack([W * c for c in np.linspace(0.5, 2.0, 40)])
    vmapped = jax.jit(jax.vmap(_measure, in_axes=(0, None)))
    assert vmapped.lower(stack, jax.random.key(0)).as_text().count("callback(") == 1
    values = np.asarray(vmapped(stack, jax.random.key(0)))
    np.testing.assert_allclose(values[[0, 39]], [float(_measure(stack[i], jax.random.key(0))) for i in (0, 39)],
                               rtol=1e-5)
    with pytest.raises(Exception, match="NaN or infinite parameters"):
        vmapped(stack.at[17, 2, 0].set(jnp.nan), jax.random.key(0)).block_until_ready()
    nested = jax.jit(jax.vmap(jax.vmap(_measure, in_axes=(0, None)), in_axes=(0, None)))
    grid = stack.reshape(8, 5, 3, 2)
    assert nested.lower(grid, jax.random.key(0)).as_text().count("callback(") == 1
    with pytest.raises(Exception, match="NaN or infinite parameters"):
        nested(grid.at[6, 3, 1, 1].set(jnp.inf), jax.random.key(0)).block_until_ready()
    # the empty-histogram check of the estimators, batched over data
    kw = dict(in_range=(0, 1), in_bins=4, out_range=(0, 1), out_bins=4)
    x = jnp.linspace(0.1, 0.9, 100)[:, None]
    mi = jax.jit(jax.vmap(lambda a, b: ei_jax.pairwise_mutual_information(a, b, **kw)))
    ys = jnp.stack([x, x * 0.5, x + 5.0])           # the last one: every output above its range
    assert mi.lower(ys[:2], ys[:2]).as_text().count("callback(") == 1
    with pytest.raises(Exception, match="every sample"):
        mi(jnp.stack([x] * 3), ys).block_until_ready()


def test_empty_pair_of_the_estimators_fails_under_jit_too():
    x = jnp.linspace(0.1, 0.9, 100)[:, None]
    y = x + 5.0  # every output above its range
    kw = dict(in_range=(0, 1), in_bins=4, out_range=(0, 1), out_bins=4)
    with pytest.raises(ei_jax.errors.EmptyHistogramError, match="clip=True"):
        ei_jax.pairwise_mutual_information(x, y, **kw)
    with pytest.raises(Exception, match="every sample"):
        jax.jit(lambda a, b: ei_jax.pairwise_mutual_information(a, b, **kw))(x, y).block_until_ready()


def test_sample_limit_message_gives_advice_that_works():
    with pytest.raises(ei_jax.errors.InvalidSamplesError, match="different keys") as info:
        core.ei_parts(jax.random.key(0), apply, W, **dict(KW, samples=3_000_000_000))
    assert "convenient API" not in str(info.value)
    assert core.MAX_SAMPLES == (1 << 31) - core.BLOCK


@pytest.mark.parametrize("option", [dict(batch_size=0), dict(devices=0), dict(devices=99),
                                    dict(method="fastest")])
def test_options_are_option_errors(option):
    with pytest.raises(ei_jax.errors.InvalidOptionError, match=next(iter(option))):
        core.ei_parts(jax.random.key(0), apply, W, **KW, **option)


def test_group_size_is_an_option_error():
    with pytest.raises(ei_jax.errors.InvalidOptionError, match="group_size"):
        core.map_params(lambda w, k: core.ei_parts(k, apply, w, **KW), jnp.stack([W, W]),
                        jax.random.key(0), group_size=0)
