"""Vector similarity: the cosine between the trait vectors of every two sources (models) of one trait, per layer.

The weight-space question "did fine-tuning move the trait direction?" asked of the vectors themselves: base -> sft
cosine near 1 means the SFT model carries the base model's direction. Pure function over :class:`TraitVector`.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping

import pyarrow as pa

from .trait_vector import TraitVector

SCHEMA = pa.schema([("trait", pa.string()), ("source_a", pa.string()), ("source_b", pa.string()),
                    ("layer", pa.int64()), ("cosine", pa.float64()), ("method", pa.string())])


def vector_similarity(vectors: Mapping[str, TraitVector], trait: str, method: str = "") -> pa.Table:
    """One row per (source_a < source_b, common layer): cosine of the two sources' vectors at that layer.

    Example:
        >>> import numpy as np
        >>> a = TraitVector(np.array([[1.0, 0.0], [1.0, 1.0]]), (0, 1))
        >>> b = TraitVector(np.array([[1.0, 0.0], [1.0, -1.0]]), (0, 1))
        >>> vector_similarity({"base": a, "sft": b}, "optimism").column("cosine").to_pylist()
        [1.0, 0.0]
    """
    rows = []
    for a, b in itertools.combinations(sorted(vectors), 2):
        if vectors[a].dim != vectors[b].dim:
            raise ValueError(f"vector_similarity: {a!r} has dim {vectors[a].dim} but {b!r} has {vectors[b].dim}; "
                             "compare vectors of one architecture (one family)")
        for layer, cosine in sorted(vectors[a].cosine(vectors[b]).items()):
            rows.append(dict(trait=trait, source_a=a, source_b=b, layer=int(layer), cosine=cosine, method=method))
    return pa.Table.from_pylist(rows, schema=SCHEMA)
