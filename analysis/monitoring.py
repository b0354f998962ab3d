"""Monitoring: per-token projections of the hidden state onto trait vectors during generation, as a long table.

The numbers come from ``ModelActor.project`` (``engine/monitoring.py`` calls it); this module only lays them out: one
row per (prompt row, response token, vector, layer), so a notebook can plot a trait's trajectory token by token.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa

SCHEMA = pa.schema([("row", pa.int64()), ("tag", pa.string()), ("token_index", pa.int64()), ("token_id", pa.int64()),
                    ("token", pa.string()), ("vector_id", pa.string()), ("layer", pa.int64()),
                    ("projection", pa.float64())])


def projection_table(
    projections: Sequence[np.ndarray], vector_ids: Sequence[str], layers: Sequence[int],
    token_ids: Sequence[Sequence[int]], tokens: Sequence[Sequence[str]] | None = None,
    tags: Sequence[str] | None = None,
) -> pa.Table:
    """Long table of ``projections[row][token, vector, layer]`` (``ProjectReply`` layout) with the token it produced.

    Example:
        >>> import numpy as np
        >>> t = projection_table([np.arange(4.0).reshape(2, 1, 2)], ["optimism"], [1, 3], [[7, 8]])
        >>> [(r["token_index"], r["layer"], r["projection"]) for r in t.to_pylist()]
        [(0, 1, 0.0), (0, 3, 1.0), (1, 1, 2.0), (1, 3, 3.0)]
    """
    if len(projections) != len(token_ids):
        raise ValueError(f"{len(projections)} projection arrays for {len(token_ids)} token rows; pass one per row")
    rows = []
    for row, values in enumerate(projections):
        values = np.asarray(values, dtype=np.float64)
        n_tokens = len(token_ids[row])
        if values.ndim != 3 or values.shape[1:] != (len(vector_ids), len(layers)) or values.shape[0] > n_tokens:
            raise ValueError(f"row {row}: projections of shape {values.shape}, expected [<= {n_tokens} tokens, "
                             f"{len(vector_ids)} vectors, {len(layers)} layers]")
        for t in range(values.shape[0]):
            token = tokens[row][t] if tokens is not None else ""
            for v, vector_id in enumerate(vector_ids):
                for j, layer in enumerate(layers):
                    rows.append(dict(row=row, tag=tags[row] if tags else "", token_index=t,
                                     token_id=int(token_ids[row][t]), token=token, vector_id=vector_id,
                                     layer=int(layer), projection=float(values[t, v, j])))
    return pa.Table.from_pylist(rows, schema=SCHEMA)
