"""Fixtures for the actor tests: one ModelWorker per tiny architecture, loaded once."""

from __future__ import annotations

import pytest

from steersweep.actors import ModelSpec, ModelWorker


@pytest.fixture(scope="session")
def workers(tiny_model_dirs) -> dict[str, ModelWorker]:
    return {arch: ModelWorker(ModelSpec(str(path), device="cpu")) for arch, path in tiny_model_dirs.items()}
