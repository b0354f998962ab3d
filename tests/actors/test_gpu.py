"""The same guarantees on a CUDA device (run with `pytest -m gpu` on a GPU machine)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from steersweep.actors import CaptureRequest, ModelSpec, ModelWorker, SteeringTerm, SteerRequest, SteerRow

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]

PROMPTS = ("the cat is happy", "a dog runs here today and then it sleeps", "we")


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_cuda_batched_steering_equals_separate_calls(tiny_model_dirs, dtype):
    worker = ModelWorker(ModelSpec(str(tiny_model_dirs["llama"]), dtype=dtype, device="cuda"))
    assert worker.info().devices == ("cuda:0",)
    rng = np.random.default_rng(0)
    worker.load_vectors({"v": rng.normal(size=(worker.num_layers, worker.hidden_size)).astype(np.float32)})
    rows = tuple(SteerRow(PROMPTS[i % 3], (SteeringTerm("v", i % 4, 2.0 * i),) if i else ()) for i in range(6))
    batched = worker.steer(SteerRequest(rows=rows, max_new_tokens=10))
    separate = [worker.steer(SteerRequest(rows=(row,), max_new_tokens=10)).token_ids[0] for row in rows]
    agree = sum(b == s for b, s in zip(batched.token_ids, separate, strict=True))
    # float32 is exact; bf16 batching may flip a near-tie token in a random tiny model, so allow one row.
    assert agree == len(rows) if dtype == "float32" else agree >= len(rows) - 1


def test_cuda_capture_matches_cpu_capture(tiny_model_dirs):
    cpu = ModelWorker(ModelSpec(str(tiny_model_dirs["qwen2"]), device="cpu"))
    gpu = ModelWorker(ModelSpec(str(tiny_model_dirs["qwen2"]), dtype="float32", device="cuda"))
    request = CaptureRequest(prompts=PROMPTS, responses=("happy day", "bright", ""), positions=("all[:]",))
    a, b = cpu.capture(request), gpu.capture(request)
    for key, value in a.activations.items():
        np.testing.assert_allclose(b.activations[key], value, rtol=1e-3, atol=1e-3)


def test_device_map_auto_loads_and_steers(tiny_model_dirs):
    worker = ModelWorker(ModelSpec(str(tiny_model_dirs["mistral"]), device_map="auto", dtype="float32"))
    assert all(d.startswith("cuda") for d in worker.info().devices)
    reply = worker.steer(SteerRequest(rows=(SteerRow(PROMPTS[0]),), max_new_tokens=5))
    assert reply.response_token_counts[0] >= 1
