"""Must show 4: the local judge and the HTTP judge give the same score on the same tiny model's distribution."""

from __future__ import annotations

import pytest
import torch
from judge_helpers import FAST_RETRY
from judge_server import JudgeTestServer
from transformers import AutoModelForCausalLM, AutoTokenizer

from steersweep.actors import ModelSpec, ModelWorker
from steersweep.actors.judges import JudgeCache, LocalJudge, LocalJudgeWorker, OpenAIJudge

# responses of different lengths, so the local judge's left-padded batches are exercised
PAIRS = [
    ("how was the day", "the day was very bright and good"),
    ("how was the night", "dark"),
    ("is it good", "it is good but the rain is bad and the night is dark so we sleep"),
    ("tomorrow", "tomorrow the sun"),
    ("a song", "a happy song a happy song a happy song"),
    ("home", "we never go home"),
]


class TinyModelDistribution:
    """Serves a tiny model's next-token distribution over HTTP: one prompt at a time, no padding, own code path."""

    def __init__(self, model_dir):
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        self.model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()

    def __call__(self, messages, top_logprobs):
        text = self.tokenizer.apply_chat_template(list(messages), add_generation_prompt=True, tokenize=False)
        input_ids = self.tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"]
        with torch.no_grad():
            logits = self.model(input_ids=input_ids).logits[0, -1]
        values, indices = torch.log_softmax(logits, dim=-1).topk(top_logprobs)
        return [(self.tokenizer.decode([i]), v) for i, v in zip(indices.tolist(), values.tolist(), strict=True)]


@pytest.fixture(scope="module")
def http_scores(number_model_dir, tmp_path_factory):
    """Judgments of PAIRS by the OpenAI judge, against the test server serving the tiny model."""
    from steersweep.actors.judges import TraitDefinition

    trait = TraitDefinition("optimism", "Expecting good outcomes and looking at the bright side of things.")
    with JudgeTestServer(TinyModelDistribution(number_model_dir)) as server:
        with OpenAIJudge("tiny-number-llama", base_url=server.base_url, api_key="k", **FAST_RETRY) as judge:
            result = judge.judge(PAIRS, trait)
        assert server.completed == 1 + 2 * len(PAIRS)
    return trait, result


def assert_same_scores(local, http):
    for local_judgment, http_judgment in zip(local.judgments, http.judgments, strict=True):
        # the integer tokens hold most of the mass, so every score exists
        assert http_judgment.trait_score is not None and http_judgment.coherence is not None
        assert local_judgment.trait_score == pytest.approx(http_judgment.trait_score, abs=1e-4)
        assert local_judgment.coherence == pytest.approx(http_judgment.coherence, abs=1e-4)
        assert local_judgment.trait_mass == pytest.approx(http_judgment.trait_mass, abs=1e-5)


def test_local_judge_equals_http_judge_on_the_same_tiny_model(number_model_dir, http_scores):
    trait, http = http_scores
    worker = LocalJudgeWorker(ModelSpec(str(number_model_dir), device="cpu"), max_batch_size=4)
    local_judge = LocalJudge(worker, batch_size=5)
    local = local_judge.judge(PAIRS, trait)
    local_judge.close()
    assert_same_scores(local, http)
    # distinct responses give distinct scores: the score follows the model, not a constant
    assert len({round(judgment.trait_score, 6) for judgment in local.judgments}) > 1
    assert 0.5 < local.judgments[0].trait_mass < 1.0
    # 12 prompts in batches of 5: 3 backend calls
    assert local.counters.requests == 3 and local.counters.judgments == 12


def test_local_judge_caches_like_the_others(number_model_dir, http_scores, tmp_path):
    trait, http = http_scores
    spec = ModelSpec(str(number_model_dir), device="cpu")
    with LocalJudge.from_spec(spec, cache=JudgeCache.for_run_dir(tmp_path)) as judge:
        first = judge.judge(PAIRS, trait)
        second = judge.judge(PAIRS, trait)
    assert second.counters.requests == 0 and second.counters.cache_hits == 12
    assert second.judgments == first.judgments
    with LocalJudge.from_spec(spec, cache=JudgeCache.for_run_dir(tmp_path)) as resumed:
        third = resumed.judge(PAIRS, trait)
    assert third.counters.requests == 0 and third.judgments == first.judgments
    assert_same_scores(first, http)


def test_local_judge_in_a_ray_actor_gives_the_same_scores(number_model_dir, http_scores, ray_local):
    trait, http = http_scores
    spec = ModelSpec(str(number_model_dir), device="cpu")
    judge = LocalJudge.from_spec(spec, use_ray=True, max_batch_size=3)
    assert judge.endpoint == "Ray actor"
    local = judge.judge(PAIRS, trait)
    judge.close()
    ray_local.kill(judge.backend)
    assert_same_scores(local, http)


def test_local_judge_runs_on_the_model_worker_of_the_lead(number_model_dir, http_scores):
    """The ModelWorker offers the same top_logprobs contract, so it can host the judge model too."""
    trait, http = http_scores
    worker = ModelWorker(ModelSpec(str(number_model_dir), device="cpu"))
    judge = LocalJudge(worker, model_id="local:tiny-number-llama")
    local = judge.judge(PAIRS, trait)
    judge.close()
    assert_same_scores(local, http)
