"""The activation registry: the one list of the activations ei_jax knows.

Each :class:`Activation` entry holds everything any part of ei_jax or ``bridges`` needs about
one activation: its names, its JAX function, deep-ei's default output range, the preimage the
exact measures use, the function objects a model may contain for it and the torch names it
maps from. Every consumer reads :data:`REGISTRY` -- topology inference, the sampled and exact
measures, the ``ei-jax`` command's ``--activation`` and ``bridges`` (through
:func:`ei_jax.activations`) -- so adding an activation is one entry in :data:`_ENTRIES`.

The ranges are deep-ei's: sigmoid ``(0, 1)``, tanh ``(-1, 1)``, ReLU ``(0, 10)`` and no
activation ``(-10, 10)``. softplus, ELU and leaky ReLU have none: they are known by name only
(``activation="softplus"`` with an explicit ``out_range``, in the sampled and exact measures),
not recognised inside a model. GELU (erf and tanh forms), SiLU/swish and mish, which deep-ei
never had, get (their minimum rounded down to two decimals, ReLU's 10); they are not monotone
(one minimum each), so the exact measures use their NumPy form and turning point instead of an
inverse (:mod:`ei_jax._src.exact.preimages`), and a traced model's layer ending in one is
recognised by its values (:mod:`ei_jax._src.model.activation_tails`).
"""

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ei_jax._src.base.errors import InvalidOptionError, UnknownActivationError

#: Slope of ``leaky_relu`` (``jax.nn.leaky_relu``'s default).
LEAKY_SLOPE = 0.01


@dataclasses.dataclass(frozen=True)
class Activation:
    """One activation ei_jax knows: an entry of the registry (see :func:`ei_jax.activations`).

    Attributes:
      name: the canonical name, e.g. ``"sigmoid"``.
      fn: the elementwise JAX function.
      default_range: deep-ei's default output range ``(lo, hi)`` (the layer's outputs, and the
        next layer's inputs), or None: the caller passes ``out_range``. An activation with
        ``functions``, ``flax_name`` or ``torch_modules`` needs one.
      aliases: other (lower-case) names accepted for it.
      inverse: for the exact measures, the NumPy float64 inverse of a non-decreasing ``fn`` on
        the open interval ``image``; None: no inverse (see ``host_fn``).
      image: the open interval ``(lo, hi)`` where ``inverse`` applies: an output threshold at or
        below ``lo`` has pre-activation threshold ``-inf``, one at or above ``hi`` ``+inf``.
      host_fn: for the exact measures of a ``fn`` that is not monotone, its NumPy float64 form;
        the preimage of an output bin is then found on each monotone piece (between
        ``turning_points``) by bisection. None: ``inverse`` or no exact measure.
      turning_points: the sorted points where ``fn`` changes direction (``host_fn`` only).
      ends: the limits of ``fn`` at ``-inf`` and ``+inf`` (``host_fn`` only; not attained).
      functions: function objects recognised as it inside a model (a ``Sequential`` item, a
        ``SimpleCell``'s ``activation_fn``).
      flax_name: its attribute in ``flax.linen`` and ``flax.nnx`` (recognised too; ``bridges``
        builds networks with it), or None.
      torch_modules: ``torch.nn`` class names that map to it (``bridges``, ``bridges.deep_ei``).
      torch_functions: torch function names deep-ei's ``activation=`` may be: looked up, with
        their in-place ``_`` forms, on ``torch``, ``torch.Tensor`` and ``torch.nn.functional``;
        dotted names (``"special.expit"``) from ``torch``.
      torch_kwargs: the torch keyword arguments that tell apart the entries sharing a torch
        module or function name (``(("approximate", "tanh"),)``): a module maps to the entry its
        attributes of those names match, a function call to the one its keyword arguments match;
        a keyword a call leaves out has torch's default, the value of the first such entry.
    """

    name: str
    fn: Callable[[jax.Array], jax.Array]
    default_range: tuple[float, float] | None = None
    aliases: tuple[str, ...] = ()
    inverse: Callable[[np.ndarray], np.ndarray] | None = None
    image: tuple[float, float] = (-np.inf, np.inf)
    host_fn: Callable[[np.ndarray], np.ndarray] | None = None
    turning_points: tuple[float, ...] = ()
    ends: tuple[float, float] = (-np.inf, np.inf)
    functions: tuple[Any, ...] = ()
    flax_name: str | None = None
    torch_modules: tuple[str, ...] = ()
    torch_functions: tuple[str, ...] = ()
    torch_kwargs: tuple[tuple[str, Any], ...] = ()

    @property
    def names(self) -> tuple[str, ...]:
        """The canonical name and its aliases."""
        return (self.name, *self.aliases)

    @property
    def in_models(self) -> bool:
        """Recognised inside a model (so it has a default range)."""
        return bool(self.functions or self.flax_name)

    @property
    def exact(self) -> bool:
        """The exact measures know its preimage (an inverse, or a piecewise-monotone host form)."""
        return self.inverse is not None or self.host_fn is not None


def _identity(x):
    return x


def _gelu_erf(x):
    """GELU in its exact (erf) form, torch's ``nn.GELU()`` default."""
    return jax.nn.gelu(x, approximate=False)


def _gelu_tanh(x):
    """GELU's tanh approximation: ``jax.nn.gelu``'s and ``flax.linen.gelu``'s default."""
    return jax.nn.gelu(x, approximate=True)


def _logit(e):
    return np.log(e) - np.log1p(-e)


# NumPy float64 forms of the non-monotone activations (the exact measures' preimages), written
# without cancellation for negative z, where the preimages of negative outputs lie.
_ERFC = np.vectorize(math.erfc, otypes=[np.float64])


def _np_sigmoid(x):
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def _np_gelu_erf(z):
    return 0.5 * z * _ERFC(-z / math.sqrt(2.0))


def _np_gelu_tanh(z):       # 0.5 z (1 + tanh(u)) = z sigmoid(2u)
    return z * _np_sigmoid(2.0 * math.sqrt(2.0 / math.pi) * (z + 0.044715 * z ** 3))


def _np_silu(z):
    return z * _np_sigmoid(z)


def _np_mish(z):
    return z * np.tanh(np.logaddexp(0.0, z))


_ENTRIES = (
    Activation("sigmoid", jax.nn.sigmoid, (0.0, 1.0), aliases=("logistic",), inverse=_logit,
               image=(0.0, 1.0), functions=(jax.nn.sigmoid,), flax_name="sigmoid",
               torch_modules=("Sigmoid",), torch_functions=("sigmoid", "special.expit")),
    Activation("tanh", jnp.tanh, (-1.0, 1.0), inverse=np.arctanh, image=(-1.0, 1.0),
               functions=(jax.nn.tanh if hasattr(jax.nn, "tanh") else jnp.tanh, jnp.tanh),
               flax_name="tanh", torch_modules=("Tanh",), torch_functions=("tanh",)),
    Activation("relu", jax.nn.relu, (0.0, 10.0), inverse=_identity, image=(0.0, np.inf),
               functions=(jax.nn.relu,), flax_name="relu", torch_modules=("ReLU",),
               torch_functions=("relu",)),
    Activation("identity", _identity, (-10.0, 10.0), aliases=("linear", "none"),
               inverse=_identity, functions=(_identity,), torch_modules=("Identity",)),
    # Known by name only (no deep-ei default range): the measures' activation= and the exact ones.
    Activation("softplus", jax.nn.softplus, inverse=lambda v: np.log(np.expm1(v)),
               image=(0.0, np.inf)),
    Activation("elu", jax.nn.elu, inverse=lambda v: np.where(v >= 0, v, np.log1p(np.minimum(v, 0))),
               image=(-1.0, np.inf)),
    Activation("leaky_relu", jax.nn.leaky_relu,
               inverse=lambda v: np.where(v >= 0, v, v / LEAKY_SLOPE)),
    # Not monotone (one minimum, at the turning point; 0 at -inf): exact through host_fn. Not
    # recognised as objects inside a Sequential; a traced model's layer is recognised by its
    # values. Ranges: deep-ei has none; (the minimum rounded down to two decimals, ReLU's 10).
    # The turning points are the roots of f' to 17 digits (mpmath, 40 digits).
    Activation("gelu", _gelu_erf, (-0.17, 10.0), host_fn=_np_gelu_erf,
               turning_points=(-0.75179152469356446,), ends=(0.0, np.inf),
               torch_modules=("GELU",), torch_functions=("gelu",),
               torch_kwargs=(("approximate", "none"),)),
    Activation("gelu_tanh", _gelu_tanh, (-0.18, 10.0), aliases=("gelu_approximate",),
               host_fn=_np_gelu_tanh, turning_points=(-0.75246142207101626,), ends=(0.0, np.inf),
               torch_modules=("GELU",), torch_functions=("gelu",),
               torch_kwargs=(("approximate", "tanh"),)),
    Activation("silu", jax.nn.silu, (-0.28, 10.0), aliases=("swish",), host_fn=_np_silu,
               turning_points=(-1.2784645427610738,), ends=(0.0, np.inf),
               torch_modules=("SiLU",), torch_functions=("silu",)),
    Activation("mish", jax.nn.mish, (-0.31, 10.0), host_fn=_np_mish,
               turning_points=(-1.1924312145154952,), ends=(0.0, np.inf),
               torch_modules=("Mish",), torch_functions=("mish",)),
)

#: The registry: canonical name -> :class:`Activation`, in registration order.
REGISTRY: dict[str, Activation] = {}


def register(entry: Activation) -> Activation:
    """Adds ``entry`` to :data:`REGISTRY` (its name and aliases must be new); returns it."""
    taken = {n for e in REGISTRY.values() for n in e.names}
    clash = [n for n in entry.names if n in taken or n != n.lower()]
    if clash:
        raise InvalidOptionError(f"Activation {entry.name!r}: names {clash} are taken or not lower case.")
    if (entry.in_models or entry.torch_modules) and entry.default_range is None:
        raise InvalidOptionError(f"Activation {entry.name!r} is recognised in models, so it needs a "
                         "default_range.")
    REGISTRY[entry.name] = entry
    return entry


for _entry in _ENTRIES:
    register(_entry)


def activations() -> tuple[Activation, ...]:
    """The activations ei_jax knows: the registry's entries, in registration order.

    ``bridges`` and the ``ei-jax`` command read this instead of keeping their own lists.

    Returns:
      a tuple of :class:`ei_jax.Activation` (frozen): names, JAX function, deep-ei's default
      range, exact-measure preimage, and the flax / torch objects recognised as each.

    Example:
      >>> import ei_jax
      >>> [(a.name, a.default_range) for a in ei_jax.activations() if a.in_models]
      [('sigmoid', (0.0, 1.0)), ('tanh', (-1.0, 1.0)), ('relu', (0.0, 10.0)), ('identity', (-10.0, 10.0))]
    """
    return tuple(REGISTRY.values())


def lookup(name: str) -> Activation | None:
    """The entry a name or alias (any case) stands for, or None."""
    key = name.lower()
    for entry in REGISTRY.values():
        if key in entry.names:
            return entry
    return None


def canonical_name(activation: str | None) -> str | None:
    """Returns the canonical activation name, ``None`` meaning no activation."""
    if activation is None:
        return None
    entry = lookup(activation)
    if entry is None:
        raise UnknownActivationError(
            f"Unknown activation {activation!r}. Expected one of "
            f"{sorted(REGISTRY)} (or a callable together with an explicit out_range)."
        )
    return None if entry.name == "identity" else entry.name


def model_names() -> tuple[str, ...]:
    """Canonical names of the activations recognised inside a model, in registry order."""
    return tuple(e.name for e in REGISTRY.values() if e.in_models)


def _flax_known_functions():
    """flax.linen's and flax.nnx's activations (today the same objects as jax.nn's): looked up
    only when a function is not found otherwise, so ``import ei_jax`` does not import
    ``flax.nnx`` (and optax, treescope) for nothing."""
    import flax.linen as linen
    from flax import nnx

    return [(getattr(mod, e.flax_name), e.name) for mod in (linen, nnx) for e in REGISTRY.values()
            if e.flax_name is not None and hasattr(mod, e.flax_name)]


def name_of_function(fn: Any) -> str | None:
    """Maps a known activation function object to its canonical name, or ``...`` if unknown."""
    for entry in REGISTRY.values():
        if any(fn is known for known in entry.functions):
            return None if entry.name == "identity" else entry.name
    for known, name in _flax_known_functions():
        if fn is known:
            return None if name == "identity" else name
    return ...  # type: ignore[return-value]


def function_of(name: str | None) -> Callable[[jax.Array], jax.Array]:
    """Returns the activation function for a canonical name (``None`` is identity)."""
    return REGISTRY["identity" if name is None else name].fn


def default_range(name: str | None) -> tuple[float, float]:
    """deep-ei's default output range of an activation (a canonical name; None: identity)."""
    rng = REGISTRY["identity" if name is None else name].default_range
    if rng is None:
        raise UnknownActivationError(
            f"activation {name!r} has no default output range (deep-ei defines none for it); "
            "pass out_range=(lo, hi).")
    return rng
