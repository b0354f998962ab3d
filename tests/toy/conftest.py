"""Fixtures of the toy-family tests: the full cached family (slow); the small-scale family is in tests/conftest.py."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def toy_family():
    """The full family from the cache (``$STEERSWEEP_HOME/toy`` or the user cache), built on first use."""
    from steersweep.actors.toy import ensure_family

    return ensure_family()
