"""deep-ei 0.7.0's measures, with its signatures, computed by ei_jax.

Each function takes deep-ei's arguments in deep-ei's order and with its defaults -- the torch
layer first, then the topology from :func:`bridges.deep_ei.topology_of` -- translates them
(:mod:`bridges._src.deep_ei_args`) and calls the ei_jax measure of the same name. Results are
deep-ei's types: ``float``, float64 NumPy arrays, a ``list`` for groups, a ``tuple`` for
``vector_and_pairwise_ei``.

Differences (``docs/migrating.md``): the noise is ``jax.random``'s (keyed from torch's
generator), ``batch_size``/``device`` never change the result, EI_parts below 0.01 is returned
as is. Vector bins below ``out_range`` are deep-ei's (:mod:`bridges._src.deep_ei_vector`).
"""

import warnings

import numpy as np

import ei_jax
from bridges._src.deep_ei_args import prepare
from bridges._src.deep_ei_errors import SamplesRequiredError

__all__ = ["ei", "ei_parts", "ei_parts_matrix", "eis_between_groups", "sensitivity",
           "sensitivity_matrix", "vector_and_pairwise_ei"]


def _both(key, topology, layer, *, target, in_bins, out_bins, samples):
    """Widened vector bins, unchanged pairwise bins: two passes over the same samples (key)."""
    vector = target.kwargs(in_bins, out_bins, vector=True)
    if vector["out_range"] == target.out_range:
        return ei_jax.vector_and_pairwise_ei(key, topology, layer, samples=samples, **vector)
    return (ei_jax.ei(key, topology, layer, samples=samples, **vector),
            ei_jax.ei_parts(key, topology, layer, samples=samples, **target.kwargs(in_bins, out_bins)))


def _run(fn, layer, topology, in_layer, in_range, in_bins, out_range, out_bins, activation,
         batch_size, device, *args, vector=False, **extra):
    target = prepare(layer, topology, in_layer=in_layer, in_range=in_range, out_range=out_range,
                     in_bins=in_bins, out_bins=out_bins, activation=activation,
                     batch_size=batch_size, device=device, stacklevel=4, vector=vector)
    wide = target.kwargs(in_bins, out_bins, vector=vector)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if fn is _both:
            result = _both(target.key, target.topology, target.layer, target=target,
                           in_bins=in_bins, out_bins=out_bins, **extra)
        else:
            result = fn(target.key, target.topology, target.layer, *args, **wide, **extra)
    note = (f" (bridges.deep_ei widened out_range={target.out_range} to {wide['out_range']}, "
            f"{wide['out_bins']} bins: deep-ei's extra vector bins below it; rows above it dropped.)")
    for w in caught:  # re-issued at the caller's line (ei_jax's would point here)
        if issubclass(w.category, ei_jax.DefaultRangeWarning):  # ranges were passed explicitly
            continue
        message = str(w.message)
        if wide["out_range"] != target.out_range and f"out_range={wide['out_range']}" in message:
            message += note
        warnings.warn(message, w.category, stacklevel=3)
    return result


def _required(samples, name):
    if samples is None:
        raise SamplesRequiredError(
            f"{name} needs samples=N (an int): it has no automatic mode (deep-ei raised TypeError "
            "here too). Pass e.g. samples=100_000."
        )
    return samples


def ei_parts(layer, topology, threshold=0.05, samples=None, extrapolate=False, batch_size=20,
             in_layer=None, in_range=None, in_bins=64, out_range=None, out_bins=64,
             activation=None, device='cpu'):
    r"""EI_parts of ``layer``: the sum over all pairs (A, B) of ``I(t_A; t_B) | do(L1 = H^max)``.

    .. math::
       EI_{parts}(L_1 \to L_2) = \sum_{A \in L_1, B \in L_2} I(t_A, t_B) \mid do(L_1 = H^{\max})

    deep-ei's ``ei_parts``, computed by :func:`ei_jax.ei_parts`.

    Args:
      layer: an ``nn.Linear`` or ``nn.Conv2d`` module in ``topology``.
      topology: from :func:`bridges.deep_ei.topology_of`.
      threshold: automatic mode (``samples=None``): double the samples from 10,000 until
        doubling again would change EI_parts by less than ``threshold`` of its value.
      samples: a fixed number of samples instead.
      extrapolate: fit ``a / n**e + C`` to estimates at 100k..2M samples; report the limit
        (``samples`` is then ignored, as in deep-ei).
      batch_size: checked (a positive int) but unused: ei_jax picks its chunks, same result.
      in_layer: first module of a span ``in_layer .. layer`` (default ``layer``).
      in_range, out_range: ``(lo, hi)``; default from the activations (deep-ei's ranges).
      in_bins, out_bins: bin counts.
      activation: the layer's output activation (default from the topology): a torch module,
        a torch function, a name, or any callable of a tensor (run through torch).
      device: checked (a torch device); JAX places the work.

    Returns:
      float: bits (a value below 0.01 is returned as is, not as deep-ei's 0.0).

    Example:
      >>> import torch, torch.nn as nn
      >>> from bridges.deep_ei import topology_of, ei_parts
      >>> layer = nn.Linear(1, 1, bias=False)
      >>> top = topology_of(layer, input=torch.zeros((1, 1)))
      >>> with torch.no_grad():
      ...     layer.weight[0, 0] = 1.0
      >>> round(ei_parts(layer, top, samples=100_000, in_range=(0, 1), in_bins=8,
      ...                out_range=(0, 1), out_bins=8), 3)      # identity: log2(8) bits
      3.0
    """
    return _run(ei_jax.ei_parts, layer, topology, in_layer, in_range, in_bins, out_range, out_bins,
                activation, batch_size, device, threshold=threshold,
                samples=None if extrapolate else samples,  # deep-ei: extrapolate wins over samples
                extrapolate=extrapolate)


def ei_parts_matrix(layer, topology, samples=None, batch_size=20, in_layer=None, in_range=None,
                    in_bins=64, out_range=None, out_bins=64, activation=None, device='cpu'):
    r"""The EI of every connection A -> B of ``layer``: ``I(t_A; t_B) | do(L1 = H^max)``.

    .. math::
       EI(A \to B) = I(t_A, t_B) \mid do(L_1 = H^{\max})

    deep-ei's ``ei_parts_matrix``, computed by :func:`ei_jax.ei_parts_matrix`. deep-ei needs
    ``samples``; here ``samples=None`` uses ei_jax's automatic mode (threshold 0.05).

    Args: as :func:`ei_parts` (without ``threshold`` and ``extrapolate``).

    Returns:
      ``np.ndarray`` float64 ``(n_in, n_out)``: rows are input neurons, columns output neurons.

    Example:
      >>> import torch, torch.nn as nn
      >>> from bridges.deep_ei import topology_of, ei_parts_matrix
      >>> network = nn.Linear(3, 3, bias=False)
      >>> top = topology_of(network, input=torch.zeros((1, 3)))
      >>> with torch.no_grad():
      ...     _ = network.weight.copy_(torch.eye(3))    # identity: log2(4) bits on the diagonal
      >>> m = ei_parts_matrix(network, top, samples=20_000, in_range=(0, 1), in_bins=4,
      ...                     out_range=(0, 1), out_bins=4)
      >>> m.shape, m.diagonal().round(2).tolist()
      ((3, 3), [2.0, 2.0, 2.0])
    """
    return _run(ei_jax.ei_parts_matrix, layer, topology, in_layer, in_range, in_bins, out_range,
                out_bins, activation, batch_size, device, samples=samples)


def sensitivity(layer, topology, samples=500, batch_size=20, in_layer=None, in_range=None,
                in_bins=64, out_range=None, out_bins=64, activation=None, device='cpu'):
    r"""Sensitivity of ``layer``: the sum over (A, B) of ``I(t_A; t_B) | do(A = H^max)``.

    .. math::
       Sensitivity(L_1 \to L_2) = \sum_{A \in L_1, B \in L_2} I(t_A, t_B) \mid do(A = H^{\max})

    Input A alone is uniform over ``in_range``, the others are 0; ``samples`` per input.
    deep-ei's ``sensitivity``, computed by :func:`ei_jax.sensitivity`.

    Args: as :func:`ei_parts_matrix` (``samples`` default 500, per input neuron).

    Returns:
      float: bits.

    Example:
      >>> import torch, torch.nn as nn
      >>> from bridges.deep_ei import topology_of, sensitivity
      >>> network = nn.Linear(3, 3, bias=False)
      >>> top = topology_of(network, input=torch.zeros((1, 3)))
      >>> with torch.no_grad():
      ...     _ = network.weight.copy_(torch.eye(3))    # identity: 3 x log2(4) bits
      >>> round(sensitivity(network, top, samples=20_000, in_range=(0, 1), in_bins=4,
      ...                   out_range=(0, 1), out_bins=4), 2)
      6.0
    """
    return _run(ei_jax.sensitivity, layer, topology, in_layer, in_range, in_bins, out_range,
                out_bins, activation, batch_size, device, samples=samples)


def sensitivity_matrix(layer, topology, samples=500, batch_size=20, in_layer=None, in_range=None,
                       in_bins=64, out_range=None, out_bins=64, activation=None, device='cpu'):
    r"""The sensitivity of every connection: ``I(t_A; t_B) | do(A = H^max)``, others at 0.

    deep-ei's ``sensitivity_matrix``, computed by :func:`ei_jax.sensitivity_matrix`.

    Args: as :func:`sensitivity`.

    Returns:
      ``np.ndarray`` float64 ``(n_in, n_out)``, bits.

    Example:
      >>> import torch, torch.nn as nn
      >>> from bridges.deep_ei import topology_of, sensitivity_matrix
      >>> network = nn.Linear(3, 3, bias=False)
      >>> top = topology_of(network, input=torch.zeros((1, 3)))
      >>> with torch.no_grad():
      ...     _ = network.weight.copy_(torch.eye(3))
      >>> sensitivity_matrix(network, top, samples=20_000, in_range=(0, 1), in_bins=4,
      ...                    out_range=(0, 1), out_bins=4).shape
      (3, 3)
    """
    return _run(ei_jax.sensitivity_matrix, layer, topology, in_layer, in_range, in_bins, out_range,
                out_bins, activation, batch_size, device, samples=samples)


def ei(layer, topology, threshold=0.05, samples=None, batch_size=20, in_layer=None, in_range=None,
       in_bins=64, out_range=None, out_bins=64, activation=None, device='cpu'):
    r"""Vector EI of ``layer``: ``I(L1; L2) | do(L1 = H^max)`` over whole binned vectors.

    .. math::
       EI(L_1 \to L_2) = I(L_1; L_2) \mid do(L_1 = H^{\max}) = H(X) + H(Y) - H(X, Y)

    deep-ei's ``ei``, computed by :func:`ei_jax.ei` with deep-ei's vector binning: a value below
    ``out_range`` gets an extra bin (deep-ei's negative index; ``out_range`` is widened
    downwards by whole bins), a sample with a value above it is dropped. Arguments not listed
    below are as in :func:`ei_parts`.

    Args:
      threshold: automatic mode (``samples=None``): double the samples until the estimate
        changes by less than ``threshold`` bits.

    Returns:
      float: bits.

    Example:
      >>> import torch, torch.nn as nn
      >>> from bridges.deep_ei import topology_of, ei
      >>> network = nn.Linear(3, 3, bias=False)
      >>> top = topology_of(network, input=torch.zeros((1, 3)))
      >>> with torch.no_grad():
      ...     _ = network.weight.copy_(torch.eye(3))    # identity: 3 x log2(4) bits
      >>> round(ei(network, top, samples=20_000, in_range=(0, 1), in_bins=4, out_range=(0, 1),
      ...          out_bins=4), 2)
      6.0
    """
    return _run(ei_jax.ei, layer, topology, in_layer, in_range, in_bins, out_range, out_bins,
                activation, batch_size, device, threshold=threshold, samples=samples, vector=True)


def eis_between_groups(layer, topology, groups, samples=None, batch_size=20, in_layer=None,
                       in_range=None, in_bins=64, out_range=None, out_bins=64, activation=None,
                       device='cpu'):
    r"""Vector EI between chosen groups of input and output neurons, all from one sample.

    deep-ei's ``eis_between_groups``, computed by :func:`ei_jax.eis_between_groups`, binned as
    :func:`ei` bins. Arguments not listed below are as in :func:`ei`.

    Args:
      groups: list of ``(input indices, output indices)``, e.g. ``[((0, 1, 2), (1,))]``
        (indices into the flattened input and output).
      samples: number of samples (required, as in deep-ei).

    Returns:
      list of floats (bits), one per group, in order.

    Example:
      >>> import torch, torch.nn as nn
      >>> from bridges.deep_ei import topology_of, eis_between_groups
      >>> network = nn.Linear(3, 3, bias=False)
      >>> top = topology_of(network, input=torch.zeros((1, 3)))
      >>> with torch.no_grad():
      ...     _ = network.weight.copy_(torch.eye(3))    # identity
      >>> groups = [((0,), (0,)), ((0,), (1,)), ((0, 1), (0, 1))]
      >>> eis = eis_between_groups(network, top, groups, samples=20_000, in_range=(0, 1),
      ...                          in_bins=4, out_range=(0, 1), out_bins=4)
      >>> [round(v, 2) for v in eis]                # log2(4), independent, 2 x log2(4)
      [2.0, 0.0, 4.0]
    """
    samples = _required(samples, "eis_between_groups")
    return _run(ei_jax.eis_between_groups, layer, topology, in_layer, in_range, in_bins, out_range,
                out_bins, activation, batch_size, device, groups, samples=samples, vector=True)


def vector_and_pairwise_ei(layer, topology, samples=None, batch_size=20, in_layer=None,
                           in_range=None, in_bins=64, out_range=None, out_bins=64, activation=None,
                           device='cpu'):
    r"""``(vector EI, EI_parts)`` of ``layer``, both from the same samples.

    deep-ei's ``vector_and_pairwise_ei``, computed by :func:`ei_jax.vector_and_pairwise_ei`,
    the vector EI binned as :func:`ei` bins (where outputs go below ``out_range``, by
    :func:`ei_jax.ei` and :func:`ei_jax.ei_parts` on the same samples), EI_parts with deep-ei's
    pairwise bins.

    Args: as :func:`ei`; ``samples`` is required (as in deep-ei).

    Returns:
      tuple of two floats (bits): ``(vector_ei, pairwise_ei)``.

    Example:
      >>> import torch, torch.nn as nn
      >>> from bridges.deep_ei import topology_of, vector_and_pairwise_ei
      >>> network = nn.Linear(3, 3, bias=False)
      >>> top = topology_of(network, input=torch.zeros((1, 3)))
      >>> with torch.no_grad():
      ...     _ = network.weight.copy_(torch.eye(3))    # identity: both 3 x log2(4) bits
      >>> v, p = vector_and_pairwise_ei(network, top, samples=20_000, in_range=(0, 1), in_bins=4,
      ...                               out_range=(0, 1), out_bins=4)
      >>> round(v, 2), round(p, 2)
      (6.0, 6.0)
    """
    samples = _required(samples, "vector_and_pairwise_ei")
    vec, pairs = _run(_both, layer, topology, in_layer, in_range, in_bins, out_range, out_bins,
                      activation, batch_size, device, samples=samples, vector=True)
    return float(vec), float(np.float64(pairs))
