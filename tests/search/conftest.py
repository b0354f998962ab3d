"""Fixtures for the search tests: the tiny Llama, a random vector, a lexicon judge, a shared worker."""

from __future__ import annotations

import numpy as np
import pytest
from search_helpers import lexicon_score

from steersweep.actors import ModelSpec, ModelWorker


@pytest.fixture(scope="session")
def tiny_llama(tiny_model_dirs) -> str:
    return str(tiny_model_dirs["llama"])


@pytest.fixture(scope="session")
def tiny_vector() -> np.ndarray:
    return np.random.default_rng(0).normal(size=(4, 32))


@pytest.fixture
def lexicon_judge(tmp_path):
    from steersweep.actors.judges import JudgeCache, RuleJudge

    return RuleJudge(lexicon_score, name="lexicon", cache=JudgeCache(tmp_path / "judge-cache"))


@pytest.fixture(scope="session")
def worker(tiny_llama) -> ModelWorker:
    return ModelWorker(ModelSpec(tiny_llama, device="cpu"))
