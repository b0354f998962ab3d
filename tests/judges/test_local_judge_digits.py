"""Issue 13, must show 4: a local judge whose tokenizer writes numbers digit by digit gets the right 0-100 score."""

from __future__ import annotations

import math

import pytest
import torch
from judge_helpers import items, save_digit_judge_model
from transformers import AutoModelForCausalLM, AutoTokenizer

from steersweep.actors import ModelSpec, ModelWorker
from steersweep.actors.judges import (
    JudgeConfigError,
    LocalJudge,
    LocalJudgeWorker,
    aggregate_logprob_score,
)

END = "<|end|>"
# the judge's answer distributions, written into the model by hand (bigram rows; see save_digit_judge_model)
TWO_DIGITS = {"<|assistant|>": {"7": 0.8, "8": 0.1, "the": 0.1}, "7": {"6": 0.9, END: 0.1},
              "8": {"2": 0.9, END: 0.1}, "6": {END: 1.0}, "2": {END: 1.0}}
THREE_DIGITS = {"<|assistant|>": {"1": 0.85, "9": 0.1, "the": 0.05}, "1": {"0": 0.95, END: 0.05},
                "9": {"5": 0.9, END: 0.1}, "5": {END: 1.0}}


@pytest.fixture(scope="module")
def digit_models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("digit_judges")
    return {
        "two": save_digit_judge_model(folder / "two", TWO_DIGITS),
        "three": save_digit_judge_model(folder / "three", THREE_DIGITS, zero_margin=1.0),
    }


def brute_force_answer_distribution(model_dir, messages) -> dict[int, float]:
    """P(answer = n), n = 0..100, by one full forward pass per answer (no cache, no batching): the reference."""
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    text = tokenizer.apply_chat_template(list(messages), add_generation_prompt=True, tokenize=False)
    prompt = tokenizer(text, add_special_tokens=False)["input_ids"]
    digit_ids = [tokenizer.convert_tokens_to_ids(str(d)) for d in range(10)]
    probabilities = {}
    for n in range(101):
        answer = [digit_ids[int(c)] for c in str(n)]
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([prompt + answer])).logits[0]
        next_token = torch.softmax(logits[len(prompt) - 1 :].double(), dim=-1)
        probability = math.prod(float(next_token[i, token]) for i, token in enumerate(answer))
        probability *= 1.0 - float(next_token[len(answer), digit_ids].sum())  # the number ends here
        probabilities[n] = probability
    return probabilities


def expected_score(distribution: dict[int, float]) -> float:
    return sum(n * p for n, p in distribution.items()) / sum(distribution.values())


@pytest.mark.parametrize(("name", "digits"), [("two", 2), ("three", 3)])
def test_digit_splitting_local_judge_scores_multi_digit_answers_right(digit_models, trait, name, digits):
    model_dir = digit_models[name]
    worker = LocalJudgeWorker(ModelSpec(str(model_dir), device="cpu"))
    assert worker.splits_numbers()  # "85" is "8", "5"
    pairs = items(3)
    with LocalJudge(worker, batch_size=4) as judge:
        result = judge.judge(pairs, trait)
        assert judge.number_mode == "joint"
        messages = judge.make_prompts(pairs[:1], trait, ("trait",))[0][0].messages
    reference = brute_force_answer_distribution(model_dir, messages)
    right = expected_score(reference)
    likeliest = max(reference, key=reference.get)
    assert len(str(likeliest)) == digits and reference[likeliest] > 0.5  # the right answer has 2 / 3 digits
    for judgment in result.judgments:
        # within 1 point, as asked; in fact equal up to float error
        assert abs(judgment.trait_score - right) < 1.0 and abs(judgment.coherence - right) < 1.0
        assert judgment.trait_score == pytest.approx(right, abs=1e-3)
        assert judgment.trait_mass == pytest.approx(sum(reference.values()), abs=1e-4)
    # reading only the first token, as before, says a one-digit number
    naive = aggregate_logprob_score(worker.top_logprobs([messages], k=20)[0])
    assert naive < 10 < right
    print(f"{name}-digit judge: right answer {right:.3f}, joint score {result.judgments[0].trait_score:.3f}, "
          f"first-token score {naive:.3f} (n=3 items x 2 metrics)")


def test_a_judge_with_number_tokens_keeps_reading_the_first_token(number_model_dir, trait):
    worker = LocalJudgeWorker(ModelSpec(str(number_model_dir), device="cpu"))
    assert not worker.splits_numbers()
    with LocalJudge(worker) as judge:
        judge.start()
        assert judge.number_mode == "token"


def test_a_plain_model_worker_with_a_digit_splitting_tokenizer_is_refused(digit_models, trait):
    worker = ModelWorker(ModelSpec(str(digit_models["two"]), device="cpu"))
    judge = LocalJudge(worker, model_id="local:digits")
    with pytest.raises(JudgeConfigError, match=r"digit by digit.*LocalJudgeWorker"):
        judge.judge(items(1), trait)
    judge.close()


def test_an_http_judge_that_splits_digits_is_refused_at_the_probe(trait):
    import math as _math

    from judge_server import JudgeTestServer

    from steersweep.actors.judges import OpenAIJudge

    def digit_splitter(messages, top_logprobs):
        # what vLLM serving a Qwen2 judge returns for "how warm ... 0 to 100": the first digit only
        return [("7", _math.log(0.6)), ("8", _math.log(0.25)), ("6", _math.log(0.1)), ("The", _math.log(0.05))]

    with JudgeTestServer(digit_splitter) as server:
        judge = OpenAIJudge("qwen2-judge", base_url=server.base_url, api_key="k")
        with pytest.raises(JudgeConfigError, match=r"single digits only.*judge\.kind: local"):
            judge.judge(items(2), trait)
        judge.close()
        assert server.completed == 1  # refused after the probe, before any judgment
