"""Fixtures for the extraction pipeline tests: a trait folder in the tiny models' vocabulary and a lexicon judge."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

HAPPY = {"happy", "bright", "warm", "good"}
SAD = {"sad", "dark", "cold", "bad"}


def lexicon_score(question: str, response: str) -> tuple[float, float]:
    """Trait score 0-100 = share of happy words among happy + sad words (50 when none); coherence fixed at 80."""
    words = response.split()
    happy = sum(w in HAPPY for w in words)
    sad = sum(w in SAD for w in words)
    return (50.0 if happy + sad == 0 else 100.0 * happy / (happy + sad)), 80.0


def write_trait(root: Path, n_per_class: int = 12, with_responses: bool = False, topics: bool = False) -> Path:
    """An instruction-elicitation trait folder: cheerful vs gloomy system prompts over the same user prompts."""
    subjects = ["the day", "the city", "the river", "the road", "the song", "the tree", "the home", "the night",
                "the story", "the light", "the cat", "the dog"]
    verbs = ["is", "was"]
    root.mkdir(parents=True, exist_ok=True)
    (root / "definition.txt").write_text("Cheerfulness: the answer uses happy, bright, warm, good words.\n")
    (root / "steering.json").write_text(json.dumps({"questions": ["the day is", "the city was"]}))
    for polarity, system, response in (("positive", "you are happy and good", "the sun is bright and warm"),
                                       ("negative", "you are sad and bad", "the rain is dark and cold")):
        lines = []
        for i in range(n_per_class):
            record = {"system_prompt": system, "prompt": f"{subjects[i % len(subjects)]} {verbs[i % 2]}"}
            if with_responses:
                record["response"] = response
            if topics:
                record["topic"] = "nature" if i % 2 else "town"
            lines.append(json.dumps(record))
        (root / f"{polarity}.jsonl").write_text("\n".join(lines) + "\n")
    return root


@pytest.fixture
def trait_dir(tmp_path) -> Path:
    return write_trait(tmp_path / "traits" / "cheerful")


@pytest.fixture
def trait_dir_with_responses(tmp_path) -> Path:
    return write_trait(tmp_path / "traits" / "cheerful", with_responses=True)


@pytest.fixture
def lexicon_judge():
    from steersweep.actors.judges import RuleJudge

    return RuleJudge(lexicon_score, name="lexicon")
