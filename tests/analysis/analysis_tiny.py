"""Tiny real checkpoints for the analysis tests (same shapes as tests/conftest.py's tiny models)."""

from __future__ import annotations

from pathlib import Path

WORDS = (
    "the a cat dog sun rain day night is was very quite happy sad bright dark warm cold good bad "
    "and but so then we you they it runs sleeps sings waits here there today tomorrow always never "
    "small big old new green blue red tree river city road home light song story"
).split()
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|end|>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def tiny_tokenizer():
    from steersweep.actors.toy import build_word_tokenizer

    return build_word_tokenizer(WORDS, CHAT_TEMPLATE)


def tiny_model(architecture: str, vocab_size: int, seed: int = 0, num_layers: int = 4):
    from steersweep.actors.toy import ToyConfig, make_model

    config = ToyConfig(architecture, hidden_size=32, num_layers=num_layers, num_heads=4, num_kv_heads=2,
                       intermediate_size=64, max_positions=256, initializer_range=0.2)
    return make_model(config, vocab_size, seed, {"pad": 0, "bos": 1, "eos": 2}).eval()


def save(model, tokenizer, folder: Path, **kwargs) -> Path:
    model.save_pretrained(folder, **kwargs)
    tokenizer.save_pretrained(folder)
    return folder
