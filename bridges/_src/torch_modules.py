"""Live PyTorch modules -> layer specs (:mod:`bridges._src.ir`), and :func:`from_torch`.

torch is imported only here, and only when a torch module is actually given.
"""

import sys

import ei_jax
from bridges._src import flax_build, ir, ir_state, torch_activations
from bridges._src.errors import InvalidCallError, UnsupportedModuleError


def supported() -> str:
    """The modules :func:`from_torch` converts (the activations from ei_jax's registry)."""
    acts = ", ".join(torch_activations.label(a, m)
                     for a in ei_jax.activations() for m in a.torch_modules)
    return ("nn.Linear, nn.Conv2d (groups=1, padding_mode='zeros'), nn.AvgPool2d and nn.MaxPool2d "
            "(ceil_mode=False), nn.Flatten (start_dim=1, end_dim=-1), nn.BatchNorm1d/2d and "
            "nn.Dropout (eval mode), nn.LayerNorm (over the last axis), "
            f"{acts}, and nn.Sequential of these (other modules: pass x= to trace their forward)")


def _pair(v) -> tuple[int, int]:
    if isinstance(v, int):
        return (v, v)
    a, b = v
    return (int(a), int(b))


def _sym(v) -> tuple[tuple[int, int], tuple[int, int]]:
    ph, pw = _pair(v)
    return ((ph, ph), (pw, pw))


def _array(t, name: str):
    import torch

    t = t.detach().to("cpu")
    if not t.is_floating_point():
        raise UnsupportedModuleError(
            f"Parameter {name!r} has dtype {t.dtype}; expected floating-point weights "
            "(quantised modules are not supported)."
        )
    return ir.as_float32(name, t.to(torch.float32).numpy(), "the torch module")


def _unsupported(module, path, why=""):
    where = path or "<root>"
    extra = f" ({why})" if why else ""
    custom = ""
    if not why and len(list(module.children())):
        custom = (" Its forward() is custom: pass an example input, from_torch(module, x=x) "
                  "(NCHW images, as torch takes them), to trace it.")
    return UnsupportedModuleError(
        f"torch module {type(module).__name__} at {where!r} is not supported{extra}. "
        f"bridges converts: {supported()}.{custom}"
    )


def _own_forward(module, base) -> bool:
    """``module`` is a ``base`` whose ``forward`` is the base class's (not overridden)."""
    return isinstance(module, base) and type(module).forward is base.forward


def _activation_candidates(module) -> tuple:
    """The registry entries whose torch module ``module`` is (``forward`` not overridden): one,
    or several that its attributes tell apart (``nn.GELU``'s ``approximate``); () if none."""
    import torch.nn as nn

    for a in ei_jax.activations():
        for name in a.torch_modules:
            cls = getattr(nn, name, None)
            if cls is not None and _own_forward(module, cls):
                return torch_activations.candidates(name)
    return ()


def layer_module(module) -> bool:
    """``module`` is one layer :func:`_convert` reads alone (a traced forward pass records its
    calls without entering it): a supported layer type, an activation, or any module without
    children (an unsupported one is then named)."""
    import torch.nn as nn

    kinds = (nn.Linear, nn.Conv2d, nn.AvgPool2d, nn.MaxPool2d, nn.Flatten, nn.BatchNorm1d,
             nn.BatchNorm2d, nn.LayerNorm, nn.Dropout)
    return (any(_own_forward(module, k) for k in kinds) or bool(_activation_candidates(module))
            or next(module.children(), None) is None)


def _convert(module, path, out):
    import torch.nn as nn

    def key(leaf):
        return f"{path}.{leaf}" if path else leaf

    if _own_forward(module, nn.Sequential):
        for name, child in module.named_children():
            _convert(child, key(name), out)
    elif _own_forward(module, nn.Linear):
        bias = None if module.bias is None else _array(module.bias, key("bias"))
        out.append(ir.Linear(path, _array(module.weight, key("weight")), bias))
    elif _own_forward(module, nn.Conv2d):
        if module.groups != 1:
            raise _unsupported(module, path, f"groups={module.groups}; only groups=1")
        if module.padding_mode != "zeros":
            raise _unsupported(module, path, f"padding_mode={module.padding_mode!r}; only 'zeros'")
        kh, kw = module.kernel_size
        dil = _pair(module.dilation)
        if module.padding == "valid":
            padding = ((0, 0), (0, 0))
        elif module.padding == "same":
            totals = (dil[0] * (kh - 1), dil[1] * (kw - 1))
            padding = tuple((t // 2, t - t // 2) for t in totals)
        else:
            padding = _sym(module.padding)
        bias = None if module.bias is None else _array(module.bias, key("bias"))
        out.append(ir.Conv2d(path, _array(module.weight, key("weight")), bias, _pair(module.stride),
                             padding, dil))
    elif _own_forward(module, nn.AvgPool2d) or _own_forward(module, nn.MaxPool2d):
        is_avg = isinstance(module, nn.AvgPool2d)
        if module.ceil_mode:
            raise _unsupported(module, path, "ceil_mode=True; only ceil_mode=False")
        if is_avg and module.divisor_override is not None:
            raise _unsupported(module, path, "divisor_override; only None")
        if not is_avg and (_pair(module.dilation) != (1, 1) or module.return_indices):
            raise _unsupported(module, path, "dilation or return_indices; only dilation=1")
        window = _pair(module.kernel_size)
        stride = window if module.stride is None else _pair(module.stride)
        out.append(ir.Pool("avg" if is_avg else "max", window, stride, _sym(module.padding),
                           bool(module.count_include_pad) if is_avg else True))
    elif _own_forward(module, nn.Flatten):
        if module.start_dim != 1 or module.end_dim != -1:
            raise _unsupported(module, path, f"start_dim={module.start_dim}, end_dim={module.end_dim}; "
                                             "only start_dim=1, end_dim=-1")
        out.append(ir.Flatten())
    elif _own_forward(module, nn.BatchNorm1d) or _own_forward(module, nn.BatchNorm2d):
        if module.training or not module.track_running_stats:
            raise _unsupported(module, path, "training mode or no running statistics normalise with "
                                             "the batch's statistics; call .eval() first")
        w = None if module.weight is None else _array(module.weight, key("weight"))
        b = None if module.bias is None else _array(module.bias, key("bias"))
        out.append(ir_state.BatchNorm(path, w, b, _array(module.running_mean, key("running_mean")),
                                      _array(module.running_var, key("running_var")), float(module.eps)))
    elif _own_forward(module, nn.LayerNorm):
        if len(module.normalized_shape) != 1:
            raise _unsupported(module, path, f"normalized_shape={tuple(module.normalized_shape)}; only "
                                             "the last axis (one int)")
        w = None if module.weight is None else _array(module.weight, key("weight"))
        b = None if getattr(module, "bias", None) is None else _array(module.bias, key("bias"))
        out.append(ir_state.LayerNorm(path, w, b, int(module.normalized_shape[0]), float(module.eps)))
    elif _own_forward(module, nn.Dropout):
        if module.training:
            raise _unsupported(module, path, "training mode is random; call .eval() first")
    elif cands := _activation_candidates(module):
        entry = torch_activations.of_module(module, cands)
        if entry is None:
            options = {k: getattr(module, k) for k in torch_activations.keywords(cands)
                       if hasattr(module, k)}
            raise _unsupported(module, path, torch_activations.refusal(cands, options))
        if entry.name != "identity":
            out.append(ir.Activation(entry.name))
    else:
        raise _unsupported(module, path)


def _check_feature_maps(layers, module):
    """A Linear may not see a feature map: torch would apply it along the width axis (NCHW),
    which has no NHWC equivalent in a converted network."""
    spatial = False
    for layer in layers:
        if isinstance(layer, (ir.Conv2d, ir.Pool)):
            spatial = True
        elif isinstance(layer, ir.Flatten):
            spatial = False
        elif isinstance(layer, (ir.Linear, ir_state.LayerNorm)) and spatial:
            raise UnsupportedModuleError(
                f"{type(layer).__name__} at {layer.name!r} of {type(module).__name__} is applied to a convolutional "
                "feature map (torch applies it along the last, width, axis of NCHW), which bridges "
                "cannot convert to NHWC. Put an nn.Flatten before it."
            )


def describe(module):
    """The layer specs of a torch module (weights copied to float32 NumPy arrays)."""
    torch = sys.modules.get("torch")
    if torch is None or not isinstance(module, torch.nn.Module):
        raise InvalidCallError(
            f"Expected a torch.nn.Module (e.g. nn.Sequential of {supported().split(', nn.Sequential')[0]}). "
            f"Got {type(module).__name__}."
        )
    out = []
    _convert(module, "", out)
    _check_feature_maps(out, module)
    return ir.check_network(out, f"torch module {type(module).__name__}", UnsupportedModuleError)


def from_torch(module, *, api: str = "linen", x=None):
    """Converts a PyTorch module to Flax, with its weights.

    Supported: ``nn.Linear`` (with or without bias), ``nn.Conv2d`` (stride, padding, dilation,
    ``groups=1``), ``nn.AvgPool2d``, ``nn.MaxPool2d``, ``nn.Flatten``, ``nn.BatchNorm1d/2d`` and
    ``nn.Dropout`` in eval mode (``module.eval()``), ``nn.LayerNorm`` over the last axis, the
    activations of ei_jax's registry (``nn.Sigmoid``, ``nn.Tanh``, ``nn.ReLU``, ``nn.GELU``
    -- ``approximate="tanh"`` too, as ``gelu_tanh`` --, ``nn.SiLU``, ``nn.Mish``,
    ``nn.Identity``), and (nested) ``nn.Sequential`` of these. A module with its own ``forward`` (a residual block) converts when given an example input ``x``: it is run
    once and its data flow between those layers -- ``x + y``, activation functions, flatten --
    is replayed in Flax (linen only). Weights are copied as float32. The Flax network takes
    images (4-d inputs) as NHWC (``x_torch.permute(0, 2, 3, 1)``); other inputs are the same.

    Args:
      module: a ``torch.nn.Module`` built from the layers above.
      api: ``"linen"`` or ``"nnx"``.
      x: an example input as torch takes it (NCHW images): needed only for a module with its
        own ``forward``.

    Returns:
      linen: ``(model, variables)`` -- measure with ``ei_jax.topology_of(model, variables, x)``
      (BatchNorm statistics are in ``variables["batch_stats"]``).
      NNX: an ``nnx.Sequential`` -- measure with ``ei_jax.topology_of(model, x)``.
      Layers of a Sequential are named ``"layers_<i>"`` by their index in the flattened
      Sequential (activations and pooling count too); those of a traced ``forward`` by their
      torch module path with ``.`` -> ``_`` (``"block_conv1"``).

    Raises:
      UnsupportedModuleError: a module outside the list above (named, with the list), a
        BatchNorm or Dropout in training mode, a custom ``forward`` without ``x`` or with NNX.
      TypeError: ``module`` is not a torch module; ValueError: unknown ``api``.

    Example:
      >>> import torch, jax.numpy as jnp, bridges, ei_jax
      >>> net = torch.nn.Sequential(torch.nn.Linear(20, 10), torch.nn.Sigmoid(),
      ...                           torch.nn.Linear(10, 5), torch.nn.Tanh())
      >>> model, variables = bridges.from_torch(net)
      >>> {k: v["kernel"].shape for k, v in variables["params"].items()}
      {'layers_0': (20, 10), 'layers_2': (10, 5)}
      >>> top = ei_jax.topology_of(model, variables, jnp.zeros((1, 20)))
      >>> [top.nodes[n]["output"]["activation"] for n in top]
      ['sigmoid', 'tanh']
    """
    from bridges._src import torch_rnn

    if torch_rnn.is_rnn(module):  # a recurrent cell, not a layer stack
        return torch_rnn.rnn_from_torch(module, api=api)
    flax_build.check_api(api)
    try:
        layers = describe(module)
    except UnsupportedModuleError:
        if x is None:
            raise
        if api != "linen":
            raise UnsupportedModuleError(
                f"{type(module).__name__} has its own forward(), which bridges converts by tracing "
                "to linen only: pass api='linen'.") from None
        from bridges._src.torch_graph import graph_from_torch

        return graph_from_torch(module, x)
    return flax_build.build(layers, api)
