"""Must show 5: every architecture of the family loads and runs through ModelWorker / ModelActor (capture, steer)."""

from __future__ import annotations

import numpy as np
import pytest

from steersweep.actors import (
    CaptureRequest,
    ModelActor,
    ModelWorker,
    SteeringTerm,
    SteerRequest,
    SteerRow,
)
from steersweep.actors.toy import FAMILY_KEYS, contrast_prompts, evaluation_questions, natural_prefixes

ARCHITECTURES = {"llama-base": "llama", "llama-sft": "llama", "llama-dpo": "llama", "qwen2-sft": "qwen2",
                 "mistral-sft": "mistral"}


def _capture_and_steer(worker_call, key: str) -> None:
    info = worker_call("info")
    assert info.model_type == ARCHITECTURES[key] and info.num_layers == 4 and info.hidden_size == 64
    assert info.has_chat_template == (key != "llama-base")
    if key == "llama-base":
        pairs = natural_prefixes()[:4]
        questions = [pair.question for pair in pairs]
    else:
        pairs = contrast_prompts()[:4]
        questions = evaluation_questions()[:4]
    replies = [worker_call("capture", CaptureRequest(
        prompts=tuple(getattr(p, side) for p in pairs), layers=(1, 2), positions=("response[:5]", "prompt[-1]"),
        generate=True, max_new_tokens=8)) for side in ("positive", "negative")]
    activations = {side: reply.get(2, "residual", "response[:5]") for side, reply in zip("pn", replies,
                                                                                       strict=True)}
    assert activations["p"].shape == (4, 64) and np.isfinite(activations["p"]).all()
    vector = activations["p"].mean(0) - activations["n"].mean(0)
    assert worker_call("load_vectors", {"optimism": {2: vector}}) == ["optimism"]
    coefficient = 8.0 / float(np.linalg.norm(vector))
    rows = tuple(SteerRow(q, terms) for q in questions
                 for terms in ((), (SteeringTerm("optimism", 2, coefficient),)))
    reply = worker_call("steer", SteerRequest(rows=rows, max_new_tokens=12))
    assert len(reply.texts) == 2 * len(questions)
    # A hidden-size-64 push of norm 8 at layer 2 changes what the model says.
    assert reply.token_ids[0::2] != reply.token_ids[1::2]


@pytest.mark.parametrize("key", FAMILY_KEYS)
def test_every_member_captures_and_steers_in_a_model_worker(small_family, key):
    family, _ = small_family
    worker = ModelWorker(family.spec(key))
    _capture_and_steer(lambda method, *args: getattr(worker, method)(*args), key)


def test_a_toy_model_runs_as_a_ray_model_actor(small_family, ray_local):
    family, _ = small_family
    actor = ModelActor.remote(family.spec("qwen2-sft"))
    try:
        _capture_and_steer(lambda method, *args: ray_local.get(getattr(actor, method).remote(*args)), "qwen2-sft")
    finally:
        ray_local.kill(actor)
