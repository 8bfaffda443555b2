"""Recording the layer calls of one forward pass of a Flax (linen or NNX) model.

:func:`ei_jax.topology_of` runs the model once on a probe batch and records, in call order,

* :class:`Record`: one call of a weight layer (``Dense``/``Linear`` or ``Conv``) with its
  path, parameters, input and output;
* :class:`Op`: one call of a structure layer (:class:`ei_jax.Flatten`, ``AvgPool``,
  ``MaxPool``) with its input and output.

Both go to the list of the innermost active :func:`recording` block (a ``ContextVar``, so
concurrent threads and contexts do not see each other's calls); outside such a block nothing
is recorded and the layers behave as usual.

**linen** calls are seen through ``flax.linen.intercept_methods``, Flax's own hook.
**NNX** has no call hook in this Flax version (``nnx.capture(method_outputs=...)`` also
patches the module classes, and keeps only outputs, not inputs or call order), so while a
recording is active ``nnx.Linear.__call__`` and ``nnx.Conv.__call__`` are wrapped on the
class. The wrapper only records when the calling context has an active recording; it is
installed by the first and removed by the last concurrent recorder (under a lock), and
removed even when the model raises.
"""

import contextlib
import contextvars
import functools
import sys
import threading

import jax.numpy as jnp

from ei_jax._src.model.layer_maps import CONV, DENSE

# The event list of the active recording in this context (None: not recording).
_EVENTS: contextvars.ContextVar = contextvars.ContextVar("ei_jax_layer_calls", default=None)


class Record:
    """One weight-layer call: module ``path``, class name, kind, params and ``x -> y``."""

    __slots__ = ("path", "module", "kind", "params", "x", "y")

    def __init__(self, path, module, kind, params, x, y):
        self.path, self.module, self.kind, self.params, self.x, self.y = path, module, kind, params, x, y


class Op:
    """One call of a structure layer (:class:`ei_jax.Flatten`, ``AvgPool``, ``MaxPool``)."""

    __slots__ = ("layer", "x", "y")

    def __init__(self, layer, x, y):
        self.layer, self.x, self.y = layer, x, y


@contextlib.contextmanager
def recording():
    """Within the block, layer calls in this context are appended to the yielded list.

    Example:
      >>> import jax.numpy as jnp
      >>> from ei_jax import MaxPool
      >>> from ei_jax._src.model.recording import recording
      >>> with recording() as events:
      ...     y = MaxPool(2)(jnp.ones((1, 4, 4, 1)))
      >>> [(type(e.layer).__name__, e.x.shape, e.y.shape) for e in events]
      [('MaxPool', (1, 4, 4, 1), (1, 2, 2, 1))]
    """
    events = []
    token = _EVENTS.set(events)
    try:
        yield events
    finally:
        _EVENTS.reset(token)


def note_structure_call(layer, x, y):
    """Called by the structure layers: records ``layer: x -> y`` if recording; returns ``y``."""
    events = _EVENTS.get()
    if events is not None:
        events.append(Op(layer, x, y))
    return y


def layer_name(path) -> str:
    """A node name from a module path (an int joins the part before it with ``_``).

    Example:
      >>> from ei_jax._src.model.recording import layer_name
      >>> layer_name(("layers", 0, "dense")), layer_name(("hidden",))
      ('layers_0/dense', 'hidden')
    """
    parts = []
    for p in path:
        if isinstance(p, int) and parts:
            parts[-1] = f"{parts[-1]}_{p}"
        else:
            parts.append(str(p))
    return "/".join(parts)


# --- linen ---------------------------------------------------------------------------------

def kind_of_linen(module) -> str | None:
    """:data:`DENSE` / :data:`CONV` for exactly ``nn.Dense`` / ``nn.Conv``, else ``None``."""
    import flax.linen as nn

    return {nn.Dense: DENSE, nn.Conv: CONV}.get(type(module))


def _linen_params(variables, path):
    node = variables["params"]
    for p in path:
        node = node[p]
    return {k: jnp.asarray(v) for k, v in node.items()}


def record_linen(model, variables, x):
    """Runs ``model.apply(variables, x)`` recording its layer calls.

    Returns ``(events, unsupported, y)``: the :class:`Record`/:class:`Op` events in call order,
    ``(path, class name)`` of every other ``flax.linen`` module called (except
    ``Sequential``), and the model's output.
    """
    import flax.linen as nn

    unsupported = []

    def interceptor(next_fun, args, kwargs, context):
        out = next_fun(*args, **kwargs)
        mod = context.module
        if context.method_name != "__call__":
            return out
        kind = kind_of_linen(mod)
        if kind is not None:
            events.append(Record(tuple(mod.path), type(mod).__name__, kind,
                                 _linen_params(variables, mod.path), args[0], out))
        elif type(mod).__module__.startswith("flax.linen.") and not isinstance(mod, nn.Sequential):
            unsupported.append((tuple(mod.path), type(mod).__name__))
        return out

    with recording() as events, nn.intercept_methods(interceptor):
        y = model.apply(variables, x)
    return events, unsupported, y


# --- NNX -----------------------------------------------------------------------------------

def loaded_nnx():
    """``flax.nnx`` if this process has imported it, else None. A model that is an
    ``nnx.Module`` implies the import, so a linen model or a function is told apart without
    importing ``flax.nnx`` (with optax and treescope ~0.2-0.45 s of a one-measure script's
    process)."""
    return sys.modules.get("flax.nnx")


def kind_of_nnx(module) -> str | None:
    """:data:`DENSE` / :data:`CONV` for exactly ``nnx.Linear`` / ``nnx.Conv``, else ``None``."""
    from flax import nnx

    return {nnx.Linear: DENSE, nnx.Conv: CONV}.get(type(module))


_PATCH_LOCK = threading.Lock()
_patch_users = 0
_originals: dict = {}


def _recording_call(cls, orig):
    @functools.wraps(orig)
    def __call__(self, x, *args, **kwargs):
        y = orig(self, x, *args, **kwargs)
        events = _EVENTS.get()
        if events is not None and type(self) is cls:
            events.append((self, x, y))
        return y

    return __call__


@contextlib.contextmanager
def _nnx_calls_recorded():
    """``nnx.Linear``/``nnx.Conv`` calls append ``(module, x, y)`` while a recording is active."""
    from flax import nnx

    global _patch_users
    with _PATCH_LOCK:
        if _patch_users == 0:
            for cls in (nnx.Linear, nnx.Conv):
                _originals[cls] = cls.__call__
                cls.__call__ = _recording_call(cls, _originals[cls])
        _patch_users += 1
    try:
        yield
    finally:
        with _PATCH_LOCK:
            _patch_users -= 1
            if _patch_users == 0:
                for cls, orig in _originals.items():
                    cls.__call__ = orig
                _originals.clear()


def record_nnx(model, x):
    """Runs ``model(x)`` recording its layer calls; returns as :func:`record_linen`."""
    from flax import nnx

    paths, unsupported = {}, []
    for path, node in nnx.iter_graph(model):
        if isinstance(node, nnx.Module):
            paths.setdefault(id(node), tuple(path))
            if type(node).__module__.startswith("flax.nnx.nn.") and kind_of_nnx(node) is None:
                unsupported.append((tuple(path), type(node).__name__))
    with recording() as calls, _nnx_calls_recorded():
        y = model(x)

    def as_record(mod, xin, yout):
        params = {"kernel": jnp.asarray(mod.kernel[...])}
        if getattr(mod, "bias", None) is not None:
            params["bias"] = jnp.asarray(mod.bias[...])
        return Record(paths.get(id(mod), ("?",)), type(mod).__name__, kind_of_nnx(mod), params, xin, yout)

    return [as_record(*c) if isinstance(c, tuple) else c for c in calls], unsupported, y


def split_events(events):
    """``(structure ops before the first layer, [(record, ops after it), ...])``."""
    before, chain = [], []
    for e in events:
        if isinstance(e, Op):
            (chain[-1][1] if chain else before).append(e)
        else:
            chain.append((e, []))
    return before, chain
