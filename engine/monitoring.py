"""Monitoring glue: generate through ``ModelActor.project`` and save per-token projections onto trait vectors."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa

from steersweep.actors import ProjectRequest, PromptInput, SteerRequest, SteerRow
from steersweep.actors.arrow_io import write_parquet_atomic
from steersweep.analysis import TraitVector, projection_table

from .replay import call


def monitor(
    model: Any, vectors: Mapping[str, TraitVector], prompts: Sequence[PromptInput], layers: Sequence[int],
    max_new_tokens: int = 32, rows: Sequence[SteerRow] | None = None, decode: Any = None,
    out: str | os.PathLike[str] | None = None,
) -> pa.Table:
    """Per-token projections ``h . v / |v|`` of every generated token onto each vector at each layer.

    ``model`` is a ModelWorker, ModelActor handle or ModelHandle. ``rows`` overrides the unsteered prompts (to
    monitor a steered generation). ``decode(token_id) -> str`` names the tokens; ``out`` writes the table (e.g.
    ``RUN_DIR/data/analysis/monitoring.parquet``).
    """
    call(model, "load_vectors", {name: {layer: vector.at(layer) for layer in vector.layers}
                                 for name, vector in vectors.items()})
    steer_rows = tuple(rows) if rows is not None else tuple(SteerRow(prompt) for prompt in prompts)
    request = ProjectRequest(SteerRequest(rows=steer_rows, max_new_tokens=max_new_tokens),
                             vector_ids=tuple(vectors), layers=tuple(int(layer) for layer in layers))
    reply = call(model, "project", request)
    token_ids = reply.generation.token_ids
    tokens = [[decode(t) for t in ids] for ids in token_ids] if decode else None
    table = projection_table(reply.projections, reply.vector_ids, reply.layers, token_ids, tokens,
                             reply.generation.tags)
    if out is not None:
        write_parquet_atomic(table, Path(out))
    return table
