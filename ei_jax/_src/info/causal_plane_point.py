"""A layer's point in the causal plane and the paper's 45-degree rotation of it.

The measures that produce a point (sampled and exact) live above; this module holds only the
result type and the arithmetic on it, so both can return it.
"""

import dataclasses
import math

import numpy as np

from ei_jax._src.info.uncertainty import Estimate


@dataclasses.dataclass(frozen=True)
class CausalPlanePoint:
    """A layer's place in the causal plane (all in bits).

    Attributes:
      sensitivity: S.
      degeneracy: D = S - EI (``ei`` is EI_parts or vector EI, see ``versus``).
      ei: the EI it was computed against.
      versus: ``"parts"`` or ``"vector"``.
      x, y: the paper's 45-degree rotated coordinates, ``(S - D)/sqrt 2 = EI/sqrt 2`` and
        ``(S + D)/sqrt 2`` (of the corrected values when the fields are estimates).

    With ``stderr=True`` the three fields are :class:`ei_jax.Estimate`; the standard error
    of ``degeneracy`` combines those of S and EI as if they were independent.
    """

    sensitivity: float | Estimate
    degeneracy: float | Estimate
    ei: float | Estimate
    versus: str

    def _xy(self):
        s, d = (v.corrected if isinstance(v, Estimate) else v for v in (self.sensitivity, self.degeneracy))
        return rotate_causal_plane(s, d)

    @property
    def x(self) -> float:
        return self._xy()[0]

    @property
    def y(self) -> float:
        return self._xy()[1]


def rotate_causal_plane(sensitivity, degeneracy):
    """The paper's rotated causal-plane coordinates ``((S - D)/sqrt 2, (S + D)/sqrt 2)``.

    Works on floats or arrays. The horizontal coordinate equals ``EI / sqrt 2``.

    Returns:
      ``(x, y)``: floats, or arrays of the broadcast shape of the inputs.

    Example:
      >>> rotate_causal_plane(3.0, 1.0)
      (1.414213562373095, 2.82842712474619)
    """
    r = math.sqrt(2.0)
    if isinstance(sensitivity, (int, float)) and isinstance(degeneracy, (int, float)):
        return ((sensitivity - degeneracy) / r, (sensitivity + degeneracy) / r)
    s, d = np.asarray(sensitivity), np.asarray(degeneracy)
    return (s - d) / r, (s + d) / r


def difference(s, e):
    """``s - e`` of two floats, or of two :class:`ei_jax.Estimate` (standard errors added in
    quadrature, as if independent)."""
    if not isinstance(s, Estimate):
        return s - e
    return Estimate(s.value - e.value, s.corrected - e.corrected,
                    math.sqrt(s.stderr ** 2 + e.stderr ** 2), e.samples, s.below, s.above)
