"""torch ``nn.RNN`` (one layer, unidirectional) -> a Flax ``SimpleCell`` with its weights.

torch computes ``h' = act(x W_ih^T + b_ih + h W_hh^T + b_hh)``; Flax's ``SimpleCell`` computes
``h' = act(x K_i + b_i + h K_h)``. So ``K_i = W_ih^T``, ``K_h = W_hh^T`` and
``b_i = b_ih + b_hh`` (one bias suffices: the two are summed). The converted cell, stepped
over a sequence from the same initial state, gives torch's outputs (to float32 rounding);
``ei_jax.topology_of(cell, variables, x)`` measures its recurrent transition.
"""

import sys

import numpy as np

from bridges._src.errors import UnsupportedModuleError


def is_rnn(module) -> bool:
    """True for a ``torch.nn.RNN`` (only when torch is already imported)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(module, torch.nn.RNN)


def _weights(rnn):
    if rnn.num_layers != 1 or rnn.bidirectional or getattr(rnn, "proj_size", 0):
        raise UnsupportedModuleError(
            f"nn.RNN with num_layers={rnn.num_layers}, bidirectional={rnn.bidirectional} is not "
            "supported; bridges converts a single-layer, unidirectional nn.RNN (one cell). "
            "Convert each layer as its own nn.RNN.")
    get = lambda name: rnn.get_parameter(name).detach().cpu().float().numpy()  # noqa: E731
    w_ih, w_hh = get("weight_ih_l0"), get("weight_hh_l0")
    b = np.zeros(w_hh.shape[0], np.float32)
    if rnn.bias:
        b = get("bias_ih_l0") + get("bias_hh_l0")
    return w_ih.T.copy(), w_hh.T.copy(), b.astype(np.float32)


def rnn_from_torch(rnn, *, api: str = "linen"):
    """Converts a torch ``nn.RNN`` to a Flax ``SimpleCell`` with the same weights.

    Args:
      rnn: ``torch.nn.RNN(input_size, hidden_size, nonlinearity="tanh" | "relu")``, one
        layer, unidirectional (``batch_first`` does not matter: the cell is one step).
      api: ``"linen"`` or ``"nnx"``.

    Returns:
      linen: ``(flax.linen.SimpleCell, variables)``; NNX: a ``flax.nnx.SimpleCell``.

    Raises:
      UnsupportedModuleError: more than one layer, bidirectional, or projections.

    Example:
      >>> import torch, jax.numpy as jnp, bridges
      >>> cell, v = bridges.from_torch(torch.nn.RNN(2, 3))
      >>> {k: {n: a.shape for n, a in d.items()} for k, d in v["params"].items()}
      {'h': {'kernel': (3, 3)}, 'i': {'kernel': (2, 3), 'bias': (3,)}}
    """
    import flax.linen as nn
    import jax.numpy as jnp

    from bridges._src import flax_build

    flax_build.check_api(api)
    w_ih, w_hh, b = _weights(rnn)
    act = flax_build.activation_functions(nn)[rnn.nonlinearity]  # torch's "tanh" or "relu"
    n_x, n_h = w_ih.shape
    if api == "linen":
        cell = nn.SimpleCell(n_h, activation_fn=act)
        return cell, {"params": {"h": {"kernel": jnp.asarray(w_hh)},
                                 "i": {"kernel": jnp.asarray(w_ih), "bias": jnp.asarray(b)}}}
    from flax import nnx

    cell = nnx.SimpleCell(n_x, n_h, activation_fn=act, rngs=nnx.Rngs(0))
    cell.dense_i.kernel[...] = jnp.asarray(w_ih)
    cell.dense_i.bias[...] = jnp.asarray(b)
    cell.dense_h.kernel[...] = jnp.asarray(w_hh)
    return cell
