"""Tiny real checkpoints shared by the tests: a word tokenizer and small models of real transformers classes.

One home for conftest.py's fixtures and for test modules that build their own variants (tests/analysis)."""

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
ARCHITECTURES = ("llama", "qwen2", "mistral")


def build_tiny_tokenizer(chat: bool = True):
    """A one-token-per-word tokenizer over a 53-word vocabulary (round-trips in-vocabulary text under every
    tokenizer class, Qwen2Tokenizer included, which transformers substitutes for a qwen2 checkpoint)."""
    from steersweep.actors.toy import build_word_tokenizer

    return build_word_tokenizer(WORDS, CHAT_TEMPLATE if chat else None)


def build_tiny_model(architecture: str, vocab_size: int, seed: int = 0, num_layers: int = 4):
    """A tiny randomly initialised causal LM of a real transformers class (float32, eval mode).

    Built by the toy family's ``make_model`` with a wide initialisation, so a random model's next-token
    distribution is peaked enough for greedy decoding to be far from ties.
    """
    from steersweep.actors.toy import ToyConfig, make_model

    config = ToyConfig(architecture, hidden_size=32, num_layers=num_layers, num_heads=4, num_kv_heads=2,
                       intermediate_size=64, max_positions=256, initializer_range=0.2)
    return make_model(config, vocab_size, seed, {"pad": 0, "bos": 1, "eos": 2}).eval()


def save_tiny_model(architecture: str, folder: Path, seed: int = 0, chat: bool = True) -> Path:
    tokenizer = build_tiny_tokenizer(chat=chat)
    model = build_tiny_model(architecture, vocab_size=len(tokenizer), seed=seed)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def save(model, tokenizer, folder: Path, **kwargs) -> Path:
    """Save ``model`` (``save_pretrained`` keyword arguments pass through, e.g. ``max_shard_size``) and ``tokenizer``
    into ``folder``."""
    model.save_pretrained(folder, **kwargs)
    tokenizer.save_pretrained(folder)
    return folder
