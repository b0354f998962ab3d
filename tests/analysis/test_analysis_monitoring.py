"""Monitoring: per-token projections from ModelWorker.project saved per token, layer and vector as Parquet."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
from tiny_models import build_tiny_model as tiny_model
from tiny_models import build_tiny_tokenizer as tiny_tokenizer
from tiny_models import save

from steersweep.actors import ModelSpec, ModelWorker, ProjectRequest, SteerRequest, SteerRow
from steersweep.analysis import TraitVector
from steersweep.engine.monitoring import monitor


def test_monitor_saves_every_generated_token_per_vector_and_layer(tmp_path):
    tokenizer = tiny_tokenizer()
    worker = ModelWorker(ModelSpec(str(save(tiny_model("llama", len(tokenizer), seed=2), tokenizer, tmp_path / "m"))))
    rng = np.random.default_rng(3)
    vectors = {name: TraitVector(rng.normal(size=(4, 32)).astype(np.float32), (0, 1, 2, 3)) for name in ("a", "b")}
    prompts = ("the cat is happy", "rain and night")
    out = tmp_path / "data" / "analysis" / "monitoring.parquet"
    table = monitor(worker, vectors, prompts, layers=(1, 3), max_new_tokens=5, decode=tokenizer.decode, out=out)
    reply = worker.project(ProjectRequest(SteerRequest(rows=tuple(SteerRow(p) for p in prompts), max_new_tokens=5),
                                          vector_ids=("a", "b"), layers=(1, 3)))
    n_tokens = sum(len(p) for p in reply.projections)
    assert table.num_rows == n_tokens * 2 * 2 and pq.read_table(out).equals(table)
    for row in table.to_pylist()[:12]:
        expected = reply.projections[row["row"]][row["token_index"], ("a", "b").index(row["vector_id"]),
                                                   (1, 3).index(row["layer"])]
        assert row["projection"] == np.float32(expected)
        assert row["token_id"] == reply.generation.token_ids[row["row"]][row["token_index"]]
        assert row["token"] == tokenizer.decode(row["token_id"])
