"""The fast path on a CUDA device: graphs captured per bucket, not per config; bf16 agrees with the reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from steersweep.actors import ModelSpec, ModelWorker, SteeringTerm, SteerRequest, SteerRow

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]

PROMPTS = ("the cat is happy", "a dog runs here today and then it sleeps", "we", "blue river song")


def test_graph_captures_stay_bounded_when_configs_change_every_batch(tiny_model_dirs):
    worker = ModelWorker(ModelSpec(str(tiny_model_dirs["llama"]), dtype="float32", device="cuda"),
                         max_fast_slots=8)
    generator = worker.fast_generator
    assert generator is not None and generator.use_graphs
    rng = np.random.default_rng(0)
    worker.load_vectors({"v": rng.normal(size=(worker.num_layers, worker.hidden_size)).astype(np.float32)})
    reference = ModelWorker(ModelSpec(str(tiny_model_dirs["llama"]), dtype="float32", device="cuda"), fast=False)
    reference.load_vectors({"v": rng.normal(size=(worker.num_layers, worker.hidden_size)).astype(np.float32)})
    reference.vectors = worker.vectors
    captures = []
    for call in range(8):
        rows = tuple(SteerRow(PROMPTS[(call + i) % 4], (SteeringTerm("v", int(rng.integers(4)), float(rng.normal())),))
                     for i in range(8))
        request = SteerRequest(rows=rows, max_new_tokens=24)
        got = worker.steer(request)
        captures.append(generator.graph_captures)
        if call < 2:
            assert got.token_ids == reference.steer(request).token_ids  # float32 on the GPU: exact
    # one slot bucket, one length bucket, residual only: one graph, captured on the first call and never again
    assert captures[0] >= 1 and captures[-1] == captures[0], captures


def test_bf16_fast_path_agrees_with_reference(tiny_model_dirs):
    spec = ModelSpec(str(tiny_model_dirs["qwen2"]), dtype="bfloat16", device="cuda")
    fast, reference = ModelWorker(spec), ModelWorker(spec, fast=False)
    rng = np.random.default_rng(1)
    vectors = {"v": rng.normal(size=(fast.num_layers, fast.hidden_size)).astype(np.float32)}
    fast.load_vectors(vectors)
    reference.load_vectors(vectors)
    rows = tuple(SteerRow(PROMPTS[i % 4], (SteeringTerm("v", i % 4, 0.5 * i),) if i % 3 else ()) for i in range(12))
    request = SteerRequest(rows=rows, max_new_tokens=32, stop_at_eos=False)
    a, b = fast.steer(request), reference.steer(request)
    same = sum(x == y for ta, tb in zip(a.token_ids, b.token_ids, strict=True) for x, y in zip(ta, tb, strict=True))
    assert same / sum(len(t) for t in b.token_ids) >= 0.9


def test_row_capacity_on_cuda_shrinks_with_longer_rows(tiny_model_dirs):
    worker = ModelWorker(ModelSpec(str(tiny_model_dirs["mistral"]), device="cuda"))
    short, long = worker.row_capacity(64, 64), worker.row_capacity(1024, 1024)
    assert short > long > 0
