"""EI of a recurrent layer: a vanilla RNN cell's transition as a chain of dense layers.

A vanilla (Elman) cell ``h_{t+1} = f(h_t W_hh + x_t W_ih + b)`` -- Flax's linen or NNX
``SimpleCell``, or torch's ``nn.RNN`` converted by ``bridges`` -- has no feed-forward layer
to measure; ei_jax defines its EI through interventions on the hidden state:

* **one-step transition** ``h_t -> h_{t+1}``: do(h_t uniform over the activation's range,
  (-1, 1) for tanh), the input held at a baseline ``x_t = x0`` (default 0). This is the dense
  layer ``h -> f(h W_hh + (b + x0 W_ih))``, so every ei_jax measure applies -- exact
  EI_parts and sensitivity included.
* **input intervened too** (``intervene_input=True``): do((h_t, x_t) uniform), the dense layer
  ``[h, x] -> f([h, x] [W_hh; W_ih] + b)`` with inputs ordered hidden first.
* **T-step unrolled span** ``h_0 -> h_T``: ``steps=T`` chains ``T`` copies of the transition
  (the input at the baseline at every step); measure the span with ``in_layer="step_1"``
  and ``layer="step_T"``, e.g. ``ei_jax.ei(key, top, "step_T", in_layer="step_1", ...)``.

:func:`cell_topology` returns these as a topology (``networkx.DiGraph`` in
:func:`ei_jax.topology_of`'s layout, nodes ``"step_1" .. "step_T"``), and ``topology_of``
hands cells to it.
"""

import networkx as nx
import numpy as np

from ei_jax._src.model.activations import model_names, name_of_function
from ei_jax._src.base.errors import InvalidCallError, InvalidOptionError, UnsupportedModuleError
from ei_jax._src.model.layer_maps import DENSE, apply_of

__all__ = ["cell_topology", "cell_weights", "is_cell"]


def is_cell(model) -> bool:
    """True for ``flax.linen.SimpleCell`` and ``flax.nnx.SimpleCell``."""
    import flax.linen as nn

    from ei_jax._src.model.recording import loaded_nnx
    nnx = loaded_nnx()
    return isinstance(model, nn.SimpleCell) or (nnx is not None and isinstance(model, nnx.SimpleCell))


def cell_weights(cell, *args) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """``(W_ih (n_x, n_h), W_hh (n_h, n_h), b (n_h,), activation)`` of a SimpleCell.

    The activation is its canonical name (``"tanh"``, ...), None for the identity.

    Args:
      cell: ``flax.linen.SimpleCell`` (then ``args = (variables, x)``) or
        ``flax.nnx.SimpleCell`` (``args = (x,)``); ``x`` is ignored here (shape only).

    Raises:
      UnsupportedModuleError: a residual cell or an activation ei_jax does not know.
      InvalidCallError: the arguments do not fit the kind of cell.
    """
    import flax.linen as nn

    if getattr(cell, "residual", False):
        raise UnsupportedModuleError(
            "A residual SimpleCell (h_{t+1} = f(h_t W_hh + x_t W_ih + b + h_t)) is not a dense "
            "layer; ei_jax measures residual=False cells. Measure it with the pure core "
            "ei_jax.core and your own apply_fn.")
    if isinstance(cell, nn.Module):
        if len(args) != 2 or not hasattr(args[0], "keys") or "params" not in args[0]:
            raise InvalidCallError(
                "For a linen SimpleCell call topology_of(cell, variables, x) with variables = "
                f"cell.init(key, carry, x); got {len(args)} argument(s) after the cell.")
        p = args[0]["params"]
        w_ih, b, w_hh = p["i"]["kernel"], p["i"]["bias"], p["h"]["kernel"]
    else:
        if len(args) != 1:
            raise InvalidCallError(
                f"For an NNX SimpleCell call topology_of(cell, x); got {len(args)} arguments.")
        w_ih, w_hh = cell.dense_i.kernel[...], cell.dense_h.kernel[...]
        b = cell.dense_i.bias[...] if cell.dense_i.bias is not None else np.zeros(w_hh.shape[1])
        if getattr(cell.dense_h, "bias", None) is not None:
            b = b + cell.dense_h.bias[...]
    act = name_of_function(cell.activation_fn)  # None: identity
    if act is ...:
        raise UnsupportedModuleError(
            f"SimpleCell activation {cell.activation_fn!r} is not one ei_jax knows "
            f"({', '.join(model_names())}).")
    f32 = lambda a: np.asarray(a, np.float32)  # noqa: E731
    return f32(w_ih), f32(w_hh), f32(b), act


def cell_topology(cell, *args, steps: int = 1, baseline=None, intervene_input: bool = False):
    """The recurrent transition of a SimpleCell as a topology of ``steps`` dense layers.

    Args:
      cell, *args: as :func:`ei_jax.topology_of` -- ``(variables, x)`` for a linen
        ``SimpleCell``, ``(x,)`` for an NNX one.
      steps: ``T >= 1`` unrolled steps, nodes ``"step_1" .. "step_T"`` (edges between them).
      baseline: the input ``x0`` held at every step, ``(n_x,)``; None means 0.
      intervene_input: ``"step_1"`` takes ``[h_0, x_0]`` (``n_h + n_x`` inputs, hidden first)
        with both intervened on; later steps keep the input at the baseline.

    Returns:
      ``networkx.DiGraph`` in ``topology_of``'s node layout: each node's ``"params"`` is
      ``{"kernel": W_hh (n_h, n_h) (or [W_hh; W_ih]), "bias": b + x0 W_ih (n_h,)}``, its input
      and output activation the cell's (so the default ranges are the activation's: (-1, 1)
      for tanh). Pass ``in_range`` explicitly to the measures for ``"step_1"``.

    Example:
      >>> import jax, jax.numpy as jnp, flax.linen as nn
      >>> cell = nn.SimpleCell(3)
      >>> x = jnp.zeros((1, 2))
      >>> v = cell.init(jax.random.key(0), cell.initialize_carry(jax.random.key(1), x.shape), x)
      >>> top = cell_topology(cell, v, x, steps=2)
      >>> list(top), top.nodes["step_1"]["params"]["kernel"].shape
      (['step_1', 'step_2'], (3, 3))
      >>> cell_topology(cell, v, x, intervene_input=True).nodes["step_1"]["input"]["shape"]
      (1, 5)
    """
    if not (isinstance(steps, int) and steps >= 1):
        raise InvalidOptionError(f"steps must be an int >= 1; got {steps!r}.")
    w_ih, w_hh, b, act = cell_weights(cell, *args)
    x0 = np.zeros(w_ih.shape[0], np.float32) if baseline is None else np.asarray(baseline, np.float32)
    if x0.shape != (w_ih.shape[0],):
        raise InvalidOptionError(f"baseline must have shape ({w_ih.shape[0]},); got {x0.shape}.")
    b0 = (b + x0 @ w_ih).astype(np.float32)
    top = nx.DiGraph()
    order = []
    for t in range(1, steps + 1):
        kernel, bias = w_hh, b0
        if t == 1 and intervene_input:
            kernel, bias = np.concatenate([w_hh, w_ih], axis=0), b
        name = f"step_{t}"
        top.add_node(name, **{
            "input": {"activation": act, "shape": (1, int(kernel.shape[0]))},
            "output": {"activation": act, "shape": (1, int(kernel.shape[1]))},
            "kind": DENSE, "module": type(cell).__name__, "path": (name,),
            "params": {"kernel": kernel, "bias": bias}, "apply": apply_of(DENSE), "after": (),
        })
        if order:
            top.add_edge(order[-1], name)
        order.append(name)
    top.graph["order"] = order
    return top
