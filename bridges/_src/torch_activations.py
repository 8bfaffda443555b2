"""Which registry entry a torch activation maps to: its module or function name, and the
keyword arguments (``torch_kwargs``) that tell apart entries sharing that name -- ``nn.GELU()``
is ``gelu`` (erf form), ``nn.GELU(approximate="tanh")`` is ``gelu_tanh``.

The mapping itself lives in ei_jax's registry (:func:`ei_jax.activations`); this module only
reads it, for :mod:`bridges._src.torch_modules`, :mod:`bridges._src.torch_graph` and
:mod:`bridges._src.deep_ei_activations`.
"""

import ei_jax


def candidates(name: str, *, function: bool = False) -> tuple:
    """The registry entries a torch module class name (``function``: a torch function name)
    maps to, in registry order (several when ``torch_kwargs`` tell them apart)."""
    return tuple(a for a in ei_jax.activations()
                 if name in (a.torch_functions if function else a.torch_modules))


def keywords(cands) -> tuple[str, ...]:
    """The keyword names that tell ``cands`` apart (``("approximate",)`` for GELU)."""
    return tuple(dict.fromkeys(k for a in cands for k, _ in a.torch_kwargs))


def select(cands, options: dict):
    """The entry of ``cands`` whose ``torch_kwargs`` ``options`` match, or None. An option
    missing from ``options`` has torch's default: the first candidate's value."""
    if not cands:
        return None
    defaults = dict(cands[0].torch_kwargs)
    for a in cands:
        if all(options.get(k, defaults.get(k)) == v for k, v in a.torch_kwargs):
            return a
    return None


def of_module(module, cands):
    """The entry of ``cands`` a torch activation module maps to (its attributes), or None."""
    return select(cands, {k: getattr(module, k) for k in keywords(cands) if hasattr(module, k)})


def supported_options(cands) -> str:
    """``approximate='none' (gelu) or approximate='tanh' (gelu_tanh)``: what ``cands`` take."""
    return " or ".join(", ".join(f"{k}={v!r}" for k, v in a.torch_kwargs) + f" ({a.name})"
                       for a in cands)


def refusal(cands, options: dict) -> str:
    """Why ``options`` select none of ``cands``: the values given and those converted."""
    given = ", ".join(f"{k}={options[k]!r}" for k in keywords(cands) if k in options)
    return f"{given}; bridges converts {supported_options(cands)}"


def label(entry, torch_name: str, prefix: str = "nn.") -> str:
    """How a torch activation reads in a list: ``nn.GELU``, ``nn.GELU(approximate='tanh')`` (the
    keywords only where they are not torch's defaults)."""
    cands = candidates(torch_name)
    if not entry.torch_kwargs or select(cands, {}) is entry:
        return f"{prefix}{torch_name}"
    return f"{prefix}{torch_name}(" + ", ".join(f"{k}={v!r}" for k, v in entry.torch_kwargs) + ")"
