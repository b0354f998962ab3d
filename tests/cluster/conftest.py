"""Fixtures of the cluster tests: one tiny saved Llama (cheaper than the three-architecture session fixture)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sweep_helpers import save_tiny_llama


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory) -> Path:
    return save_tiny_llama(tmp_path_factory.mktemp("cluster_models") / "llama")
