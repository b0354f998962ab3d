"""Training and DPO on tiny real transformers models: losses fall, runs are deterministic, DPO moves preferences."""

from __future__ import annotations

import copy
import itertools
import math

import pytest
import torch

from steersweep.actors.toy import build_toy_tokenizer, chat_corpus, dpo_loss, preference_pairs, train_dpo
from steersweep.actors.toy.dpo import encode_pair
from steersweep.actors.toy.training import (
    ToyConfig,
    collate,
    encode_chat_example,
    learning_rate,
    make_model,
    sequence_logprobs,
    train_causal_lm,
)

SMALL = dict(hidden_size=32, num_layers=2, num_heads=2, num_kv_heads=1, intermediate_size=64, batch_size=16)


@pytest.fixture(scope="module")
def tokenizer():
    return build_toy_tokenizer(chat=True)


def _model(tokenizer, architecture="llama", seed=0):
    config = ToyConfig(architecture, **SMALL)
    ids = {"bos": tokenizer.bos_token_id, "eos": tokenizer.eos_token_id, "pad": tokenizer.pad_token_id}
    return make_model(config, len(tokenizer), seed, ids)


@pytest.mark.parametrize(("architecture", "class_name"), [
    ("llama", "LlamaForCausalLM"), ("qwen2", "Qwen2ForCausalLM"), ("mistral", "MistralForCausalLM")])
def test_make_model_builds_the_real_transformers_class_deterministically(tokenizer, architecture, class_name):
    first, second = _model(tokenizer, architecture), _model(tokenizer, architecture)
    assert type(first).__name__ == class_name
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), second.state_dict().values(),
                                                 strict=True))
    assert not torch.equal(first.lm_head.weight, _model(tokenizer, architecture, seed=1).lm_head.weight)


def test_collate_learns_only_the_answer_tokens(tokenizer):
    example = chat_corpus(1, seed=0)[0]
    sequence = encode_chat_example(tokenizer, example)
    input_ids, mask, labels = collate([sequence, sequence.__class__(sequence.ids[:5], 1)], tokenizer.pad_token_id)
    assert input_ids.shape == (2, len(sequence.ids)) and mask[1].sum() == 5
    learned = labels[0][labels[0] != -100].tolist()
    assert tokenizer.decode(learned) == f"{example.response}<|end|>"
    assert (labels[1, 5:] == -100).all()


def test_training_lowers_the_loss_and_repeats_exactly(tokenizer):
    sequences = [encode_chat_example(tokenizer, e) for e in chat_corpus(96, seed=0)]
    config = ToyConfig("llama", **SMALL, epochs=3, learning_rate=3e-3, warmup_steps=2)
    reports = []
    first = _model(tokenizer)
    losses = train_causal_lm(first, sequences, config, seed=0, pad_id=tokenizer.pad_token_id,
                             on_epoch=reports.append)
    assert losses[-1] < losses[0] - 0.5
    assert [r.epoch for r in reports] == [1, 2, 3] and reports[-1].steps == 3 * math.ceil(96 / 16)
    second = _model(tokenizer)
    assert train_causal_lm(second, sequences, config, seed=0, pad_id=tokenizer.pad_token_id) == losses
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), second.state_dict().values(),
                                                 strict=True))


def test_learning_rate_warms_up_then_decays_to_a_tenth():
    config = ToyConfig(learning_rate=1.0, warmup_steps=4)
    rates = [learning_rate(step, 20, config) for step in range(21)]
    assert rates[:4] == [0.25, 0.5, 0.75, 1.0]
    assert rates[4] == pytest.approx(1.0) and rates[20] == pytest.approx(0.1)
    assert all(a >= b for a, b in itertools.pairwise(rates[4:]))


def test_config_errors_name_the_field():
    with pytest.raises(ValueError, match="architecture: 'gpt2' is not a toy architecture"):
        ToyConfig("gpt2")
    with pytest.raises(ValueError, match="num_heads"):
        ToyConfig(hidden_size=30, num_heads=4)


def test_dpo_loss_matches_the_formula():
    zero = torch.zeros(3)
    assert dpo_loss(zero, zero, zero, zero, beta=0.1).item() == pytest.approx(math.log(2))
    policy_chosen, policy_rejected = torch.tensor([-1.0, -2.0]), torch.tensor([-3.0, -1.0])
    reference_chosen, reference_rejected = torch.tensor([-2.0, -2.0]), torch.tensor([-2.0, -2.0])
    margins = [(-1 + 2) - (-3 + 2), (-2 + 2) - (-1 + 2)]  # 2 and -1
    expected = sum(-math.log(1 / (1 + math.exp(-0.5 * m))) for m in margins) / 2
    assert dpo_loss(policy_chosen, policy_rejected, reference_chosen, reference_rejected, 0.5).item() == \
        pytest.approx(expected)


def test_dpo_raises_the_chosen_answer_over_the_rejected_one(tokenizer):
    sft = _model(tokenizer)
    train_causal_lm(sft, [encode_chat_example(tokenizer, e) for e in chat_corpus(96, seed=0)],
                    ToyConfig("llama", **SMALL, epochs=2), seed=0, pad_id=tokenizer.pad_token_id)
    pairs = [encode_pair(tokenizer, p) for p in preference_pairs(48, seed=0)]

    def margin(model):
        batch = collate([p.chosen for p in pairs] + [p.rejected for p in pairs], tokenizer.pad_token_id)
        with torch.no_grad():
            logprobs, _ = sequence_logprobs(model, *batch)
        return (logprobs[: len(pairs)] - logprobs[len(pairs):]).mean().item()

    policy = copy.deepcopy(sft)
    losses = train_dpo(policy, sft, pairs, ToyConfig("llama", **SMALL, epochs=4, learning_rate=3e-3),
                       seed=0, pad_id=tokenizer.pad_token_id, beta=0.5, sft_weight=0.0)
    assert losses[-1] < losses[0]
    assert margin(policy) > margin(sft) + 0.5  # nats of log p(chosen) - log p(rejected), mean over pairs
    assert all(not p.requires_grad for p in sft.parameters())
    with pytest.raises(ValueError, match="beta: 0 must be > 0"):
        train_dpo(policy, sft, pairs, ToyConfig(), seed=0, pad_id=0, beta=0)
