"""The perturbation ratio: how hard a vector pushes, relative to the activations it is added to.

``ratio = coefficient * ‖v_L‖ / ‖h_L‖``, so ``coefficient = ratio * ‖h_L‖ / ‖v_L‖`` (findings: 0.5-0.8 is the sweet
spot, 1.0-1.3 where text breaks, above 1.3 broken). Trials, tables and logs speak in ratio and record the
coefficient, the activation norm and the vector norm beside it.
"""

from __future__ import annotations

import math


def perturbation_coefficient(ratio: float, activation_norm: float, vector_norm: float) -> float:
    """The steering coefficient that adds ``ratio * ‖h_L‖`` along a vector of norm ``vector_norm``.

    Example:
        >>> perturbation_coefficient(0.5, activation_norm=20.0, vector_norm=4.0)
        2.5

    Raises:
        ValueError: a norm is not finite, the vector norm is not positive, or the activation norm is negative.
    """
    if not math.isfinite(vector_norm) or vector_norm <= 0:
        raise ValueError(f"vector_norm: {vector_norm!r} must be a positive finite number; the vector at this layer is "
                         "zero or NaN, re-extract it or leave the layer out of the search space")
    if not math.isfinite(activation_norm) or activation_norm < 0:
        raise ValueError(f"activation_norm: {activation_norm!r} must be a finite number >= 0; measure it again with "
                         "activation_norms on the target model")
    if not math.isfinite(ratio):
        raise ValueError(f"ratio: {ratio!r} must be a finite number")
    return float(ratio) * float(activation_norm) / float(vector_norm)


def perturbation_ratio(coefficient: float, activation_norm: float, vector_norm: float) -> float:
    """The inverse: the ratio a given coefficient amounts to (0 where the activation norm is 0).

    Example:
        >>> perturbation_ratio(2.5, activation_norm=20.0, vector_norm=4.0)
        0.5
    """
    if activation_norm <= 0:
        return 0.0
    return float(coefficient) * float(vector_norm) / float(activation_norm)
