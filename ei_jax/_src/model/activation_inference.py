"""Which activation sits between consecutive recorded layers, and whether the chain is direct.

:func:`ei_jax.topology_of` records one forward pass (:mod:`ei_jax._src.model.recording`) as a
*chain*: ``[(record, ops), ...]``, one weight-layer call each with the structure-layer calls
(``Flatten``/``AvgPool``/``MaxPool``) that follow it. Between layer ``i``'s output and the
next layer's input (or the model's output) there are ``len(ops) + 1`` *gaps*; in exactly one
of them an activation may sit, elsewhere values must pass unchanged.

* A ``Sequential`` declares its activations: :func:`declared_activations` reads them from
  its layer list and :func:`verify_segment` checks that the recorded values agree.
* Any other module is *probed*: :func:`probe_segment` finds, per gap, which of the activations
  recognised in models (identity, sigmoid, tanh, relu: the registry's, in
  :mod:`ei_jax._src.model.activations`) maps the recorded source to the recorded target, and
  refuses when none does (a skip connection, a normalisation, an unknown activation) or when it
  cannot tell.

Values are compared in float32 with ``rtol=1e-5, atol=1e-6``.
"""

import jax.numpy as jnp
import numpy as np

from ei_jax._src.model import activations as _act
from ei_jax._src.model import layers as _layers
from ei_jax._src.base.errors import UnsupportedModuleError
from ei_jax._src.model.recording import layer_name

#: What the errors suggest when a model cannot be read as a chain of layers.
PURE_CORE_WAY_OUT = (
    "To measure it anyway, write the map you mean as apply_fn(params, x) and use the pure core: "
    "ei_jax.core.ei_parts(key, apply_fn, params, in_shape=..., in_range=..., in_bins=..., "
    "out_range=..., out_bins=..., samples=...)."
)



def _supported_between() -> str:
    """``"sigmoid, tanh, relu (flax.linen / ...) and ei_jax.Flatten / ..."`` from the registry."""
    names = ", ".join(n for n in _act.model_names() if n != "identity")
    return (f"{names} (flax.linen / flax.nnx / jax.nn functions) and "
            "ei_jax.Flatten / ei_jax.AvgPool / ei_jax.MaxPool")


def label_of(item) -> str:
    """A readable name of a Sequential item (a function's ``__name__`` or the class name)."""
    return getattr(item, "__name__", type(item).__name__)


def _sequential_structure(layers, is_layer):
    """Reads a Sequential's layer list.

    Returns ``(leading structure layers, segments)`` with one segment per weight layer:
    ``[activation name or None, position, structure layers]``, where ``position`` is how many
    of the structure layers come before the activation.
    """
    lead, segs = [], []
    for item in layers:
        if is_layer(item):
            segs.append([None, 0, []])
            continue
        if isinstance(item, _layers.STRUCTURE_TYPES):
            (segs[-1][2] if segs else lead).append(item)
            continue
        name = _act.name_of_function(item)
        if name is ...:
            raise UnsupportedModuleError(
                f"Sequential contains {label_of(item)!r}, which ei_jax cannot measure through. "
                f"Supported between layers: {_supported_between()}. {PURE_CORE_WAY_OUT}"
            )
        if not segs:
            raise UnsupportedModuleError(
                f"Sequential starts with activation {label_of(item)!r} before any Dense/Linear layer; "
                "remove it and pass the layer's in_range instead."
            )
        if name is None:  # identity
            continue
        seg = segs[-1]
        if seg[0] is not None:
            raise UnsupportedModuleError(
                "Two activations in a row in a Sequential are not supported: ei_jax measures a layer "
                f"as activation(W x + b). {PURE_CORE_WAY_OUT}"
            )
        seg[0], seg[1] = name, len(seg[2])
    return lead, segs


def nested_message(unsupported) -> str:
    """The error for a Sequential whose recorded calls differ from its layer list."""
    if unsupported:
        path, name = unsupported[0]
        head = f"Module {name} at {layer_name(path)!r} is not supported inside the Sequential."
    else:
        head = "The Sequential contains nested modules ei_jax cannot measure layer by layer."
    return (f"{head} Write it as a flat Sequential of Dense/Linear or Conv layers with "
            f"{_supported_between()} between them. {PURE_CORE_WAY_OUT}")


def declared_activations(model_layers, is_layer, before, chain, unsupported):
    """Activations ``[(name or None, position), ...]`` of a Sequential, checked against the chain."""
    lead, segs = _sequential_structure(model_layers, is_layer)
    if len(segs) != len(chain):
        raise UnsupportedModuleError(nested_message(unsupported))
    recorded = [[op.layer for op in before]] + [[op.layer for op in ops] for _, ops in chain]
    declared = [lead] + [seg[2] for seg in segs]
    if recorded != declared:
        raise UnsupportedModuleError(nested_message(unsupported))
    return [(seg[0], seg[1]) for seg in segs]


def matches(a, b) -> bool:
    """``a`` and ``b`` hold the same values (any shapes of equal size), to float32 precision.

    Example:
      >>> import numpy as np
      >>> from ei_jax._src.model.activation_inference import matches
      >>> matches(np.ones((2, 3)), np.ones(6)), matches([np.nan], [np.nan]), matches([1.0], [1.1])
      (True, True, False)
    """
    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
    if a.size != b.size:
        return False
    return bool(np.allclose(a.reshape(b.shape), b, rtol=1e-5, atol=1e-6, equal_nan=True))


def _infer_activation(z, target, where: str):
    """Which known activations map pre-activation ``z`` to ``target`` (at least one)."""
    names = sorted(_act.model_names(), key=lambda n: n != "identity")  # identity first
    found = [n for n in names if matches(_act.function_of(n)(jnp.asarray(z)), target)]
    if not found:
        raise UnsupportedModuleError(
            f"Between {where} the network does something ei_jax cannot measure through (a skip "
            "connection, normalisation, dropout, a reshape of a non-flat tensor, or an unknown "
            "activation). Supported: chains of Dense/Linear (or Conv) layers with "
            f"{', '.join(n for n in names if n != 'identity')} or no activation between them, and "
            f"ei_jax.Flatten / AvgPool / MaxPool. {PURE_CORE_WAY_OUT}"
        )
    return found


def _gaps(chain, i, y_final):
    """``(source, target)`` pairs along layer ``i``'s output path, one per gap around its ops."""
    r, ops = chain[i]
    nxt = chain[i + 1][0].x if i + 1 < len(chain) else y_final
    sources = [r.y] + [op.y for op in ops]
    targets = [op.x for op in ops] + [nxt]
    return list(zip(sources, targets))


def _where(chain, i):
    r = chain[i][0]
    return (f"{layer_name(r.path)!r} and {layer_name(chain[i + 1][0].path)!r}" if i + 1 < len(chain)
            else f"{layer_name(r.path)!r} and the model's output")


def probe_segment(chain, i, y_final):
    """``(activation, position)`` after layer ``i``, inferred from the recorded values."""
    found = []
    for j, (src, tgt) in enumerate(_gaps(chain, i, y_final)):
        cands = _infer_activation(src, tgt, _where(chain, i))
        if j > 0 and "identity" in cands:
            continue
        if len(cands) > 1:
            raise UnsupportedModuleError(
                f"Cannot tell the activation after {layer_name(chain[i][0].path)!r} from a probe "
                f"(candidates {cands}). Write the model as a Sequential, or initialise it with random "
                "weights before calling topology_of."
            )
        if cands[0] != "identity":
            found.append((cands[0], j))
    if len(found) > 1:
        raise UnsupportedModuleError(
            f"Two activations ({found[0][0]}, {found[1][0]}) follow {layer_name(chain[i][0].path)!r}; "
            f"ei_jax measures a layer as one weight map and one activation. {PURE_CORE_WAY_OUT}"
        )
    return found[0] if found else (None, 0)


def verify_segment(chain, i, y_final, act, pos):
    """Checks that layer ``i``'s output, activated at gap ``pos``, feeds the next layer."""
    for j, (src, tgt) in enumerate(_gaps(chain, i, y_final)):
        z = _act.function_of(act if j == pos else None)(jnp.asarray(src))
        if not matches(z, tgt):
            raise UnsupportedModuleError(
                f"The output of {layer_name(chain[i][0].path)!r} does not feed the next layer directly "
                f"(something other than its declared activation sits between them). {PURE_CORE_WAY_OUT}"
            )


def check_activation_position(chain, i, act, pos):
    """Refuses an activation that follows a structure layer it does not commute with."""
    for op in chain[i][1][:pos]:
        if not isinstance(op.layer, _layers.COMMUTES_WITH_ACTIVATION):
            raise UnsupportedModuleError(
                f"The activation {act!r} after {layer_name(chain[i][0].path)!r} comes after "
                f"{type(op.layer).__name__}; ei_jax measures a layer as activation(W x + b), and an "
                "activation after average pooling does not commute with it. Apply the activation "
                "before the pooling (or use MaxPool)."
            )


def check_chain_input(before, chain, xp):
    """Checks that the first layer sees the model's input, through structure layers only."""
    sources = [xp] + [op.y for op in before]
    targets = [op.x for op in before] + [chain[0][0].x]
    if not all(matches(s, t) for s, t in zip(sources, targets)):
        raise UnsupportedModuleError(
            f"The first layer {layer_name(chain[0][0].path)!r} does not receive the model's input "
            "unchanged; ei_jax needs the model to start with a Dense/Linear or Conv layer (optionally "
            "after ei_jax.Flatten / AvgPool / MaxPool). Move any preprocessing out of the model and "
            f"measure from the first layer, or: {PURE_CORE_WAY_OUT}"
        )
