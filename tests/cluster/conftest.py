"""Fixtures of the cluster tests: one tiny saved Llama (cheaper than the three-architecture session fixture)."""

from __future__ import annotations

from pathlib import Path

import pytest

WORDS = "the a cat dog sun rain day night is was happy sad bright dark warm cold good bad and but so".split()


def save_tiny_llama(folder: Path, seed: int = 0) -> Path:
    from steersweep.actors.toy import ToyConfig, build_word_tokenizer, make_model

    tokenizer = build_word_tokenizer(WORDS, None)
    config = ToyConfig("llama", hidden_size=32, num_layers=4, num_heads=4, num_kv_heads=2, intermediate_size=64,
                       max_positions=128, initializer_range=0.2)
    model = make_model(config, len(tokenizer), seed, {"pad": 0, "bos": 1, "eos": 2}).eval()
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory) -> Path:
    return save_tiny_llama(tmp_path_factory.mktemp("cluster_models") / "llama")
