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

from tiny_models import ARCHITECTURES, save_tiny_model


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
