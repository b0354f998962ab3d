"""Fixtures of the toy-family tests: a quick small-scale family (default suite) and the full cached family (slow)."""

from __future__ import annotations

import pytest

SMALL_SCALE = 0.05
"""Corpus scale of the quick family: every member trains on 5% of its corpus (seconds, not minutes)."""


@pytest.fixture(scope="session")
def small_family(tmp_path_factory):
    """A complete family at 5% corpus scale, built once per session with two workers; its progress events too."""
    from steersweep.actors.toy import build_family

    events = []
    family = build_family(tmp_path_factory.mktemp("toy_home"), seed=0, scale=SMALL_SCALE, workers=2,
                          progress=events.append)
    return family, events


@pytest.fixture(scope="session")
def toy_family():
    """The full family from the cache (``$STEERSWEEP_HOME/toy`` or the user cache), built on first use."""
    from steersweep.actors.toy import ensure_family

    return ensure_family()
