"""The exact measures on a topology: deep-ei's arguments, no key, no samples, no bias.

Each function resolves the layer as the sampled measures do (deep-ei's default ranges,
``activation=`` override, :class:`DefaultRangeWarning` for a first layer) and computes the
infinite-sample value with :mod:`ei_jax._src.exact.kernel`. A convolution is measured over one
receptive field: its ``(kh, kw, c_in, c_out)`` kernel is the Dense ``(kh*kw*c_in, c_out)``
kernel of the patch (inputs in ``(h, w, c)`` order). Pooling or Flatten after a layer does not
change that layer's own map, so it stays exact. A span (``in_layer`` before ``layer``) or an
activation given as an unknown callable is not one ``f(x @ W + b)``: those raise
:class:`ExactUnavailableError`, and the sampled measures apply.
"""

import dataclasses

import jax
import numpy as np

from ei_jax._src.exact import kernel as exact_core
from ei_jax._src.info.causal_plane_point import CausalPlanePoint
from ei_jax._src.base import checks
from ei_jax._src.base.errors import ExactUnavailableError, InvalidBinsError
from ei_jax._src.info import reporting
from ei_jax._src.model.problems import resolve

_SAMPLED = "use the sampled measure (ei_jax.ei_parts(key, topology, layer, ...))"


@dataclasses.dataclass(frozen=True)
class ExactLayer:
    """A resolved single layer ``y = f(x @ kernel + bias)`` (host NumPy float64)."""

    name: str
    kernel: np.ndarray
    bias: np.ndarray
    activation: str
    in_range: tuple[float, float]
    out_range: tuple[float, float]


def exact_layer(topology, layer, *, in_layer=None, in_range=None, out_range=None, activation=None,
                stacklevel=4) -> ExactLayer:
    """Resolves ``layer`` for the exact measures, or raises :class:`ExactUnavailableError`.

    Returns:
      :class:`ExactLayer`: the ``(n_in, n_out)`` float64 kernel (a conv kernel reshaped to its
      receptive field's Dense kernel), the ``(n_out,)`` bias (zeros if none), the activation
      name and the ranges after deep-ei's defaults.

    Example:
      >>> import jax, jax.numpy as jnp, flax.linen as nn
      >>> from ei_jax import exact, topology_of
      >>> net = nn.Sequential([nn.Dense(3), nn.tanh])
      >>> x0 = jnp.zeros((1, 4))
      >>> top = topology_of(net, net.init(jax.random.key(0), x0), x0)
      >>> lay = exact.exact_layer(top, "layers_0", in_range=(0, 1))
      >>> lay.kernel.shape, lay.activation, lay.out_range
      ((4, 3), 'tanh', (-1.0, 1.0))

    Raises:
      ExactUnavailableError: a span, or an activation without a known preimage (a callable
        ei_jax does not recognise).
      UnknownActivationError: ``activation=`` a name ei_jax does not know, or neither a name
        nor a callable (as the sampled measures).
      LayerNotFoundError, LayerOrderError, NonFiniteParamsError: as the sampled measures.
    """
    problem = resolve(topology, layer, in_layer=in_layer, in_range=in_range, out_range=out_range,
                      activation=activation, stacklevel=stacklevel)
    if problem.kinds == ("traced",):
        return _traced_layer(topology.nodes[problem.name], problem)
    if len(problem.params) != 1:
        raise ExactUnavailableError(
            f"The span {problem.in_layer!r} .. {problem.name!r} composes {len(problem.params)} "
            f"layers, not one f(x @ W + b); the exact measures need a single layer: {_SAMPLED}.")
    act = problem.activations[-1]
    if act is not None and not isinstance(act, str):
        raise ExactUnavailableError(
            f"Layer {layer!r} has the activation {act!r}, whose preimage ei_jax does not know; "
            f"{_SAMPLED}, or pass activation= one of the exact ones.")
    name = exact_core.canonical_exact_activation(act)
    params = problem.params[0]
    kernel = np.asarray(params["kernel"], np.float64)
    kernel = kernel.reshape(-1, kernel.shape[-1])       # conv: the receptive field's Dense kernel
    bias = params.get("bias")
    bias = np.zeros(kernel.shape[1]) if bias is None else np.asarray(bias, np.float64)
    return ExactLayer(problem.name, kernel, bias, name, problem.in_range, problem.out_range)


def _traced_layer(node, problem) -> ExactLayer:
    """A layer of a traced topology: its folded kernel, or why it is not one f(x @ W + b)."""
    if node["exact"] is not None:
        raise ExactUnavailableError(
            f"Layer {problem.name!r} is not one f(x @ W + b): {node['exact']}. It is measured by "
            f"sampling only: {_SAMPLED}.")
    kernel, bias = node["fold"](problem.params[0])
    name = exact_core.canonical_exact_activation(problem.activations[-1])
    return ExactLayer(problem.name, np.asarray(kernel, np.float64), np.asarray(bias, np.float64),
                      name, problem.in_range, problem.out_range)


def _matrix(which, problem, in_bins, out_bins) -> np.ndarray:
    fn = exact_core.exact_ei_parts_matrix if which == "parts" else exact_core.exact_sensitivity_matrix
    in_bins = checks.positive_int("in_bins", in_bins, InvalidBinsError)
    out_bins = checks.positive_int("out_bins", out_bins, InvalidBinsError)
    with jax.enable_x64(True):
        mat = np.asarray(fn(problem.kernel, problem.bias, activation=problem.activation,
                            in_range=problem.in_range, in_bins=in_bins,
                            out_range=problem.out_range, out_bins=out_bins), np.float64)
    # the sampled measures' rule: an empty pair is 0 bits with a warning; all empty, an error
    return reporting.zero_empty_pairs(mat, f"Layer {problem.name!r}", f"out_range={problem.out_range}",
                                      stacklevel=6, clip=False)


def _layer_matrix(which, topology, layer, *, in_layer, in_range, in_bins, out_range, out_bins,
                  activation) -> np.ndarray:
    problem = exact_layer(topology, layer, in_layer=in_layer, in_range=in_range,
                          out_range=out_range, activation=activation)
    return _matrix(which, problem, in_bins, out_bins)


def ei_parts_matrix(topology, layer, *, in_layer=None, in_range=None, in_bins=64, out_range=None,
                    out_bins=64, activation=None) -> np.ndarray:
    """Exact EI of every connection ``A -> B``: the infinite-sample ``ei_jax.ei_parts_matrix``.

    .. math::
       EI(A \\to B) = I(t_A; t_B) \\mid do(L_1 = H^{\\max})

    computed from the exact binned joint distribution (no sampling, no plug-in bias).

    Args:
      topology: from ``ei_jax.topology_of``; layer: a node of it.
      in_layer: only None or ``layer`` (a span has no exact form).
      in_range, in_bins, out_range, out_bins, activation: as ``ei_jax.ei_parts_matrix``.

    Returns:
      float64 ``(n_in, n_out)`` NumPy array of bits (rows = inputs).

    Raises:
      ExactUnavailableError: a span, or an activation callable whose preimage ei_jax does not
      know. UnknownActivationError: ``activation=`` an unknown name (or not a name or a
      callable). EmptyHistogramError: every pair with every output outside ``out_range`` (one
      such pair is 0 bits, with an ``OutOfRangeWarning``).

    Example:
      >>> import jax, jax.numpy as jnp, flax.linen as nn
      >>> from ei_jax import exact, topology_of
      >>> net, x0 = nn.Dense(3, use_bias=False), jnp.zeros((1, 4))
      >>> top = topology_of(net, net.init(jax.random.key(0), x0), x0)
      >>> exact.ei_parts_matrix(top, "Dense", in_range=(0, 1), in_bins=8, out_range=(0, 1),
      ...                       out_bins=8, activation="sigmoid").shape
      (4, 3)
    """
    return _layer_matrix("parts", topology, layer, in_layer=in_layer, in_range=in_range,
                         in_bins=in_bins, out_range=out_range, out_bins=out_bins, activation=activation)


def ei_parts(topology, layer, *, in_layer=None, in_range=None, in_bins=64, out_range=None,
             out_bins=64, activation=None) -> float:
    """Exact EI_parts of a layer: the sum of :func:`ei_parts_matrix` (bits).

    Arguments as :func:`ei_parts_matrix`.

    Returns:
      float, bits: the infinite-sample value of ``ei_jax.ei_parts``.

    Example: one input, weight 100, 4 bins: every input bin lands in its own output bin.

      >>> import jax.numpy as jnp, flax.linen as nn
      >>> from ei_jax import exact, topology_of
      >>> w = {"params": {"kernel": jnp.array([[100.0]])}}
      >>> top = topology_of(nn.Dense(1, use_bias=False), w, jnp.zeros((1, 1)))
      >>> round(exact.ei_parts(top, "Dense", in_range=(0, 1), in_bins=4, out_range=(0, 100), out_bins=4), 3)
      2.0
    """
    return float(ei_parts_matrix(topology, layer, in_layer=in_layer, in_range=in_range, in_bins=in_bins,
                                out_range=out_range, out_bins=out_bins, activation=activation).sum())


def sensitivity_matrix(topology, layer, *, in_layer=None, in_range=None, in_bins=64, out_range=None,
                       out_bins=64, activation=None) -> np.ndarray:
    """Exact sensitivity of every connection: ``I(x_A; y_B)`` under do(x_A = H^max), others at 0.

    Returns:
      float64 ``(n_in, n_out)`` bits (the infinite-sample ``ei_jax.sensitivity_matrix``).

    Example: with an identity kernel only the diagonal connections carry information.

      >>> import jax.numpy as jnp, flax.linen as nn
      >>> from ei_jax import exact, topology_of
      >>> top = topology_of(nn.Dense(2, use_bias=False), {"params": {"kernel": jnp.eye(2)}}, jnp.zeros((1, 2)))
      >>> exact.sensitivity_matrix(top, "Dense", in_range=(0, 1), in_bins=4, out_range=(0, 1), out_bins=4)
      array([[2., 0.],
             [0., 2.]])
    """
    return _layer_matrix("sensitivity", topology, layer, in_layer=in_layer, in_range=in_range,
                         in_bins=in_bins, out_range=out_range, out_bins=out_bins, activation=activation)


def sensitivity(topology, layer, *, in_layer=None, in_range=None, in_bins=64, out_range=None,
                out_bins=64, activation=None) -> float:
    """Exact sensitivity of a layer: the sum of :func:`sensitivity_matrix` (bits).

    Arguments as :func:`ei_parts_matrix`.

    Returns:
      float, bits: the infinite-sample value of ``ei_jax.sensitivity``.

    Example: the second input's weight is 0, so only the first connection counts.

      >>> import jax.numpy as jnp, flax.linen as nn
      >>> from ei_jax import exact, topology_of
      >>> kernel = jnp.array([[100.0], [0.0]])
      >>> top = topology_of(nn.Dense(1, use_bias=False), {"params": {"kernel": kernel}}, jnp.zeros((1, 2)))
      >>> round(exact.sensitivity(top, "Dense", in_range=(0, 1), in_bins=4, out_range=(0, 100), out_bins=4), 3)
      2.0
    """
    return float(sensitivity_matrix(topology, layer, in_layer=in_layer, in_range=in_range, in_bins=in_bins,
                                   out_range=out_range, out_bins=out_bins, activation=activation).sum())


def layer_values(topology, layer, *, in_range=None, in_bins=64, out_range=None, out_bins=64,
                 activation=None) -> dict[str, float]:
    """Exact ``{"ei_parts", "sensitivity", "degeneracy"}`` of one layer (floats, bits).

    For tables (the CLI): one resolution, both matrices. Raises
    :class:`ExactUnavailableError` where exact does not apply (then report the sampled value).

    Returns:
      dict of three floats (bits): ``ei_parts``, ``sensitivity``, ``degeneracy``.

    Example:
      >>> import jax, jax.numpy as jnp, flax.linen as nn
      >>> from ei_jax import exact, topology_of
      >>> net = nn.Dense(2)
      >>> x0 = jnp.zeros((1, 3))
      >>> top = topology_of(net, net.init(jax.random.key(0), x0), x0)
      >>> v = exact.layer_values(top, "Dense", in_range=(0, 1), in_bins=8, out_range=(0, 1),
      ...                        out_bins=8, activation="sigmoid")
      >>> abs(v["sensitivity"] - v["ei_parts"] - v["degeneracy"]) < 1e-12
      True
    """
    problem = exact_layer(topology, layer, in_range=in_range, out_range=out_range,
                          activation=activation)
    e = float(_matrix("parts", problem, in_bins, out_bins).sum())
    s = float(_matrix("sensitivity", problem, in_bins, out_bins).sum())
    return {"ei_parts": e, "sensitivity": s, "degeneracy": s - e}


def causal_plane(topology, layer, *, in_layer=None, in_range=None, in_bins=64, out_range=None,
                 out_bins=64, activation=None) -> CausalPlanePoint:
    """Exact sensitivity, degeneracy (= sensitivity - EI_parts) and EI_parts of a layer.

    Returns:
      :class:`ei_jax.CausalPlanePoint` with ``versus="parts"``.

    Example:
      >>> import jax, jax.numpy as jnp, flax.linen as nn
      >>> from ei_jax import exact, topology_of
      >>> net = nn.Dense(2)
      >>> x0 = jnp.zeros((1, 3))
      >>> top = topology_of(net, net.init(jax.random.key(0), x0), x0)
      >>> p = exact.causal_plane(top, "Dense", in_range=(0, 1), in_bins=8, out_range=(0, 1),
      ...                        out_bins=8, activation="sigmoid")
      >>> abs(p.sensitivity - p.degeneracy - p.ei) < 1e-12
      True
    """
    if in_layer not in (None, layer):
        exact_layer(topology, layer, in_layer=in_layer, in_range=in_range, out_range=out_range,
                    activation=activation)            # raises for the span
    v = layer_values(topology, layer, in_range=in_range, in_bins=in_bins, out_range=out_range,
                     out_bins=out_bins, activation=activation)
    return CausalPlanePoint(v["sensitivity"], v["degeneracy"], v["ei_parts"], "parts")


def degeneracy(topology, layer, *, in_layer=None, in_range=None, in_bins=64, out_range=None,
               out_bins=64, activation=None) -> float:
    """Exact degeneracy of a layer: sensitivity - EI_parts (bits).

    Arguments as :func:`ei_parts_matrix`.

    Returns:
      float, bits.

    Example:
      >>> import jax, jax.numpy as jnp, flax.linen as nn
      >>> from ei_jax import exact, topology_of
      >>> net = nn.Dense(2)
      >>> x0 = jnp.zeros((1, 3))
      >>> top = topology_of(net, net.init(jax.random.key(0), x0), x0)
      >>> isinstance(exact.degeneracy(top, "Dense", in_range=(0, 1), in_bins=8,
      ...                             out_range=(0, 1), out_bins=8, activation="sigmoid"), float)
      True
    """
    return causal_plane(topology, layer, in_layer=in_layer, in_range=in_range, in_bins=in_bins,
                        out_range=out_range, out_bins=out_bins, activation=activation).degeneracy
