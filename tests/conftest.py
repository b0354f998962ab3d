"""Shared fixtures: tiny real transformers models (Llama, Qwen2, Mistral) built from configs, and a local Ray."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# One intra-op thread: the tiny models gain nothing from more, and on a loaded 2-core machine torch's spinning
# worker threads made a 6-token forward pass ~30x slower (0.66 s against 0.023 s). Set before torch is imported.
os.environ.setdefault("OMP_NUM_THREADS", "1")

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


@pytest.fixture(scope="session")
def tiny_model_dirs(tmp_path_factory) -> dict[str, Path]:
    """Saved tiny chat models, one per architecture: ``{"llama": path, "qwen2": path, "mistral": path}``."""
    root = tmp_path_factory.mktemp("tiny_models")
    return {arch: save_tiny_model(arch, root / arch, seed=i) for i, arch in enumerate(ARCHITECTURES)}


@pytest.fixture(scope="session")
def tiny_base_model_dir(tmp_path_factory) -> Path:
    """A tiny Llama with a tokenizer that has no chat template (a base model)."""
    return save_tiny_model("llama", tmp_path_factory.mktemp("tiny_base") / "llama", seed=7, chat=False)


@pytest.fixture(scope="session")
def ray_local():
    """A real local Ray instance shared by the session's tests."""
    import ray

    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()


SMALL_TOY_SCALE = 0.05
"""Corpus scale of the quick toy family: every member trains on 5% of its corpus (seconds, not minutes)."""


@pytest.fixture(scope="session")
def small_family(tmp_path_factory):
    """A complete toy family at 5% corpus scale, built once per session with two workers; its progress events too.

    Its home is ``family.root.parent``: ``ensure_family(home, seed=0, scale=SMALL_TOY_SCALE)`` reuses it.
    """
    from steersweep.actors.toy import build_family

    events = []
    family = build_family(tmp_path_factory.mktemp("toy_home"), seed=0, scale=SMALL_TOY_SCALE, workers=2,
                          progress=events.append)
    return family, events


@pytest.hookimpl(wrapper=True)
def pytest_collect_file(file_path, parent):
    """``--doctest-modules`` (pyproject) is meant for the package folders; under tests/ it would import every
    conftest.py a second time under the one name ``conftest`` and fail, and test files carry no examples."""
    collectors = yield
    return [c for c in collectors if type(c).__name__ != "DoctestModule"]
