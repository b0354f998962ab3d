"""Fixtures for the judge tests: the OpenAI-compatible test server and a tiny judge model with number tokens."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from judge_helpers import save_number_judge_model
from judge_server import JudgeTestServer

from steersweep.actors.judges import TraitDefinition


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """The tiny judge models run 10-30x faster on one thread than on two on a shared, loaded machine."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def number_model_dir(tmp_path_factory) -> Path:
    return save_number_judge_model(tmp_path_factory.mktemp("judge_model") / "number-llama")


@pytest.fixture
def judge_server():
    """A running JudgeTestServer with the deterministic hashed distribution; closed after the test."""
    server = JudgeTestServer(hang_s=10.0).start()
    yield server
    server.close()


@pytest.fixture
def trait() -> TraitDefinition:
    return TraitDefinition("optimism", "Expecting good outcomes and looking at the bright side of things.")
