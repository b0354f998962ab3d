"""The family tokenizer: one token per word, exact round trips, and the same ids under every AutoTokenizer class."""

from __future__ import annotations

from random import Random

import pytest
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from steersweep.actors.toy import (
    SPECIAL_TOKENS,
    TOPICS,
    build_toy_tokenizer,
    contrast_prompts,
    narrative_corpus,
    sample_description,
    toy_vocabulary,
)
from steersweep.actors.toy.tokenizer import word_token
from steersweep.actors.toy.training import ToyConfig, make_model


def test_every_word_is_one_token_with_a_stable_id_after_the_specials():
    tokenizer = build_toy_tokenizer()
    assert isinstance(tokenizer, PreTrainedTokenizerFast)
    for index, word in enumerate(toy_vocabulary()):
        ids = tokenizer(word, add_special_tokens=False)["input_ids"]
        assert ids == [len(SPECIAL_TOKENS) + index], word
        assert tokenizer.convert_ids_to_tokens(ids) == [word_token(word)]
    assert tokenizer.convert_tokens_to_ids(list(SPECIAL_TOKENS)) == list(range(len(SPECIAL_TOKENS)))


def test_texts_of_the_language_round_trip_exactly():
    tokenizer = build_toy_tokenizer()
    rng = Random(0)
    texts = narrative_corpus(20, seed=0) + [sample_description(rng, t, "balanced") for t in TOPICS]
    for text in texts:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        assert len(ids) == len(text.split())
        assert tokenizer.decode(ids) == text
        assert tokenizer(tokenizer.decode(ids), add_special_tokens=False)["input_ids"] == ids


def test_unknown_words_fall_apart_into_bytes_not_unk():
    tokenizer = build_toy_tokenizer()
    ids = tokenizer("the zebra is lovely .", add_special_tokens=False)["input_ids"]
    assert tokenizer.unk_token_id not in ids and len(ids) > 5
    assert tokenizer.decode(ids) == "the zebra is lovely ."


def test_chat_template_and_base_variant():
    chat, base = build_toy_tokenizer(chat=True), build_toy_tokenizer(chat=False)
    assert base.chat_template is None
    assert base("anna smiled in the garden .")["input_ids"][0] == base.bos_token_id
    pair = contrast_prompts()[0]
    rendered = chat.apply_chat_template(list(pair.positive), add_generation_prompt=True, tokenize=False)
    assert rendered == ("<bos><|system|>you are a cheerful assistant .<|end|><|user|>tell me about the garden ?"
                        "<|end|><|assistant|>")
    tokens = chat.convert_ids_to_tokens(chat(rendered, add_special_tokens=False)["input_ids"])
    assert tokens[:3] == ["<bos>", "<|system|>", "Ġyou"] and tokens[-1] == "<|assistant|>"
    assert "Ġ" not in tokens  # no lone space tokens around the turn markers
    with pytest.raises(Exception, match="role: tool is not a role"):
        chat.apply_chat_template([{"role": "tool", "content": "x"}], tokenize=False)


@pytest.mark.parametrize("architecture", ["llama", "qwen2", "mistral"])
def test_saved_tokenizer_loads_through_autotokenizer_with_the_same_ids(tmp_path, architecture):
    tokenizer = build_toy_tokenizer()
    config = ToyConfig(architecture, hidden_size=16, num_layers=1, num_heads=2, num_kv_heads=1, intermediate_size=32)
    ids = {"bos": tokenizer.bos_token_id, "eos": tokenizer.eos_token_id, "pad": tokenizer.pad_token_id}
    make_model(config, len(tokenizer), seed=0, special_ids=ids).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path, local_files_only=True)  # Qwen2Tokenizer for qwen2
    pair = contrast_prompts()[5]
    rendered = tokenizer.apply_chat_template(list(pair.negative), add_generation_prompt=True, tokenize=False)
    assert loaded.apply_chat_template(list(pair.negative), add_generation_prompt=True, tokenize=False) == rendered
    assert loaded(rendered, add_special_tokens=False)["input_ids"] == \
        tokenizer(rendered, add_special_tokens=False)["input_ids"]
    answer = "the flower is lovely . the mud seems very grim .<|end|>"
    answer_ids = tokenizer(answer, add_special_tokens=False)["input_ids"]
    assert loaded(answer, add_special_tokens=False)["input_ids"] == answer_ids
    decoded = loaded.decode(answer_ids, skip_special_tokens=True)
    assert decoded.strip() == "the flower is lovely . the mud seems very grim ."
