"""Checks made before any generation: every bad input names its field and the fix."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ._space import SearchConfigError, SearchSpace, Site


def vector_layers(vector: Any) -> dict[int, np.ndarray]:
    """A vector as ``{layer: [hidden]}``: a TraitVector-like object (``.vectors`` + ``.layers``), an array
    ``[num_layers, hidden]`` or a mapping ``{layer: [hidden]}``."""
    if hasattr(vector, "vectors") and hasattr(vector, "layers"):
        arrays = np.asarray(vector.vectors, dtype=np.float64)
        return {int(layer): arrays[i] for i, layer in enumerate(vector.layers)}
    if isinstance(vector, Mapping):
        return {int(layer): np.asarray(v, dtype=np.float64) for layer, v in vector.items()}
    array = np.asarray(vector, dtype=np.float64)
    if array.ndim != 2:
        raise SearchConfigError(f"vector: an array of shape {array.shape}; give [num_layers, hidden] (one row per "
                                "layer), a {layer: vector} mapping or a TraitVector")
    return {i: array[i] for i in range(array.shape[0])}


def check_study_inputs(model: str, num_layers: int, hidden_size: int, vector: Mapping[int, np.ndarray],
                       space: SearchSpace, questions: Sequence[str]) -> list[Site]:
    """Validate one study against its target model; returns the sites. Raises SearchConfigError naming the field."""
    if not questions or any(not isinstance(q, str) or not q.strip() for q in questions):
        raise SearchConfigError("questions: the evaluation questions are empty or hold a blank entry; give at least "
                                "one non-empty question (the research used 5-20)")
    sites = space.sites(num_layers)
    for site in sites:
        for layer in site.layers:
            if layer not in vector:
                raise SearchConfigError(
                    f"vector: no vector for layer {layer} (site {site.label}); the vector holds layers "
                    f"{sorted(vector)}; extract that layer or leave it out of the search space")
            values = vector[layer]
            if values.ndim != 1 or values.shape[0] != hidden_size:
                raise SearchConfigError(
                    f"vector: layer {layer} has hidden size {values.shape[-1] if values.ndim else 0}, but target "
                    f"model {model!r} has hidden size {hidden_size}; use a vector extracted from a model with the "
                    "same hidden size (e.g. the same family's base model)")
            if not np.all(np.isfinite(values)):
                raise SearchConfigError(
                    f"vector: layer {layer} holds NaN or inf values; re-extract it (e.g. a class with no samples "
                    "gives NaN) or leave the layer out of the search space")
            if float(np.linalg.norm(values)) == 0.0:
                raise SearchConfigError(f"vector: layer {layer} is all zeros, so no ratio can be turned into a "
                                        "coefficient; re-extract it or leave the layer out of the search space")
    return sites
