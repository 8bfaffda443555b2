"""deep-ei's activations, as ei_jax takes them: names, or callables evaluated exactly.

deep-ei applies ``activation`` to a torch tensor, so it takes torch modules (``nn.Sigmoid()``),
torch functions (``torch.sigmoid``, ``F.relu``) and any callable of a tensor
(``lambda x: x``). :func:`to_ei_jax` maps

* the standard ones -- ``nn.Sigmoid``/``Tanh``/``ReLU``/``Identity`` instances, ``torch.sigmoid``,
  ``torch.tanh``, ``torch.relu``, their ``Tensor`` methods and in-place forms,
  ``torch.nn.functional``'s ``sigmoid``/``tanh``/``relu``, and the names ``"sigmoid"`` etc. --
  to ei_jax's names, with deep-ei's default output range;
* any other callable that maps a float32 tensor to one of the same shape to a JAX function
  that runs it **through torch on the host** (``jax.pure_callback``): exact, whatever it computes,
  but slower. It has no known range, so the caller needs an ``out_range``.

A callable that does not map a tensor to a same-shaped tensor is refused
(:class:`ActivationTypeError`) when the call starts, not inside a compiled loop.
"""

import functools
import weakref
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import ei_jax
from bridges._src import torch_activations
from bridges._src.deep_ei_errors import ActivationTypeError

__all__ = ["range_of", "name_of", "to_ei_jax", "module_for"]

UNKNOWN = object()  # name_of's answer for a callable that is none of the standard ones


def _standard() -> tuple:
    """The registry's activations with a torch module (:func:`ei_jax.activations`): deep-ei's
    sigmoid, tanh, relu and identity, and GELU (both forms, told apart by ``approximate``),
    SiLU and mish."""
    return tuple(a for a in ei_jax.activations() if a.torch_modules)


def _ours(entry) -> str | None:
    """ei_jax's name here: None for identity."""
    return None if entry.name == "identity" else entry.name


def range_of(name: str | None) -> tuple:
    """deep-ei's default range (``VALID_ACTIVATIONS``) of a standard activation (None: no
    activation), written as deep-ei writes it: ``(0, 1)`` for sigmoid."""
    rng = {_ours(a): a.default_range for a in _standard()}[name]
    return tuple(int(v) if float(v).is_integer() else float(v) for v in rng)


def _names() -> dict[str, str | None]:
    return {n: _ours(a) for a in _standard() for n in a.names}


@functools.lru_cache(maxsize=8)
def _known_objects(entries) -> tuple[tuple[Any, str | None], ...]:
    """``(function object, name)`` of the torch and JAX functions of ``entries``."""
    import torch
    import torch.nn.functional as F

    pairs = []
    for a in entries:
        # a function object is called with torch's defaults: F.gelu is the erf form, gelu
        for fname in (f for f in a.torch_functions
                      if torch_activations.select(torch_activations.candidates(f, function=True),
                                                  {}) is a):
            if "." in fname:  # e.g. "special.expit", from torch
                fn = functools.reduce(lambda o, attr: getattr(o, attr, None), fname.split("."), torch)
                pairs += [(fn, _ours(a))] if fn is not None else []
                continue
            for owner in (torch, torch.Tensor, F):
                for attr in (fname, fname + "_"):
                    fn = getattr(owner, attr, None)
                    if fn is not None:
                        pairs.append((fn, _ours(a)))
    pairs += [(fn, _ours(a)) for a in entries for fn in a.functions]
    return tuple(pairs)


def name_of(activation) -> Any:
    """ei_jax's name of a standard activation (``None``: no activation), else :data:`UNKNOWN`.

    Modules are recognised by exact type, as deep-ei does (a subclass may change ``forward``).
    """
    import torch.nn as nn

    if activation is None:
        return None
    if isinstance(activation, str):
        names = _names()
        key = activation.lower()
        if key not in names:
            raise ActivationTypeError(
                f"Unknown activation name {activation!r}. Expected one of {sorted(names)}, a torch "
                "module such as nn.Sigmoid(), or a callable of a tensor."
            )
        return names[key]
    standard = _standard()
    for m in dict.fromkeys(m for a in standard for m in a.torch_modules):
        if type(activation) is getattr(nn, m, None):   # nn.GELU(approximate="tanh"): gelu_tanh
            entry = torch_activations.of_module(activation, torch_activations.candidates(m))
            return UNKNOWN if entry is None else _ours(entry)
    for known, name in _known_objects(standard):
        if activation is known:
            return name
    return UNKNOWN


def module_for(name: str | None):
    """A fresh torch module for a standard activation name (``None`` for no activation)."""
    import torch.nn as nn

    if not name:
        return None
    entry = {a.name: a for a in _standard()}[name]
    return getattr(nn, entry.torch_modules[0])(**dict(entry.torch_kwargs))


_HOST: "weakref.WeakKeyDictionary[Any, Any]" = weakref.WeakKeyDictionary()
_HOST_BY_ID: dict[int, tuple[Any, Any]] = {}


def _torch_on_host(fn):
    """``fn`` (a callable of torch tensors) as a JAX function, run by torch on the host."""
    import torch

    def host(y):
        t = torch.from_numpy(np.array(y, dtype=np.float32))
        with torch.no_grad():
            out = fn(t)
        return np.asarray(out.detach().to("cpu").to(torch.float32).numpy(), dtype=np.float32)

    def act(y):
        spec = jax.ShapeDtypeStruct(y.shape, jnp.float32)
        return jax.pure_callback(host, spec, y.astype(jnp.float32), vmap_method="sequential")

    act.__name__ = f"torch_on_host({getattr(fn, '__name__', type(fn).__name__)})"
    return act


def _cached_host(fn):
    """The same JAX function for the same ``fn``, so that ei_jax compiles it once."""
    try:
        if fn not in _HOST:
            _HOST[fn] = _torch_on_host(fn)
        return _HOST[fn]
    except TypeError:  # not weak-referenceable (or not hashable): keep it alive by id
        entry = _HOST_BY_ID.get(id(fn))
        if entry is None or entry[0] is not fn:
            entry = _HOST_BY_ID[id(fn)] = (fn, _torch_on_host(fn))
        return entry[1]


def _probe(fn, n_out: int):
    """How ``fn`` runs: ``"torch"`` (tensor -> same-shaped tensor) or ``"jax"``; else raises."""
    import torch

    x = torch.linspace(-3.0, 3.0, 2 * n_out, dtype=torch.float32).reshape(2, n_out)
    try:
        with torch.no_grad():
            y = fn(x)
        if isinstance(y, torch.Tensor) and tuple(y.shape) == (2, n_out) and y.is_floating_point():
            return "torch"
        problem = (f"returned {type(y).__name__} of shape {tuple(getattr(y, 'shape', ()))} for a "
                   f"float32 tensor of shape (2, {n_out})")
    except Exception as e:  # noqa: BLE001 - any failure is reported with the JAX try below
        problem = f"raised {type(e).__name__}: {e}"
    try:
        y = fn(jnp.asarray(x.numpy()))
        if isinstance(y, jax.Array) and y.shape == (2, n_out):
            return "jax"
    except Exception:  # noqa: BLE001
        pass
    raise ActivationTypeError(
        f"activation={fn!r} must map a tensor of the layer's outputs to a tensor of the same shape, "
        f"as deep-ei applies it; on a float32 tensor of shape (2, {n_out}) it {problem}. Pass a "
        "torch module (nn.Sigmoid()), a torch function (torch.tanh) or such a callable."
    )


def to_ei_jax(activation, n_out: int) -> tuple[Any, Any]:
    """Maps a deep-ei activation to ``(what ei_jax's activation= takes, its default range)``.

    Args:
      activation: None, a name, a torch module or function, or a callable of a tensor.
      n_out: the layer's number of outputs (to probe a callable on a tensor of that width).

    Returns:
      ``(act, range)``: ``act`` is a name (``"identity"`` for None) or a JAX-traceable callable;
      ``range`` is deep-ei's default output range, or :data:`UNKNOWN` for a callable that is
      not a standard activation.

    Example:
      >>> import torch
      >>> to_ei_jax(torch.nn.Sigmoid(), 3)
      ('sigmoid', (0, 1))
      >>> act, rng = to_ei_jax(lambda x: 2 * x, 3)
      >>> rng is UNKNOWN, act(jnp.ones((1, 3))).tolist()
      (True, [[2.0, 2.0, 2.0]])
    """
    name = name_of(activation)
    if name is not UNKNOWN:
        return ("identity" if name is None else name), range_of(name)
    if not callable(activation):
        names = ", ".join(repr(a.name) for a in _standard())
        raise ActivationTypeError(
            f"activation must be None, a name ({names}), a torch "
            f"module or a callable of a tensor. Got {type(activation).__name__}: {activation!r}."
        )
    kind = _probe(activation, n_out)
    return (activation if kind == "jax" else _cached_host(activation)), UNKNOWN
