"""Must show 6: a rule-based scorer (the toy family's) is served through the same Judge interface and cache."""

from __future__ import annotations

import pytest

from steersweep.actors.judges import Judge, JudgeCache, JudgeConfigError, RuleJudge, TraitDefinition, build_judge
from steersweep.actors.toy import score_response as toy_score_response

HAPPY = {"happy", "bright", "good", "warm"}
SAD = {"sad", "dark", "bad", "cold"}


class WordCountScorer:
    """Trait: share of happy words among mood words; coherence: share of words that are not repeated. Counts calls."""

    def __init__(self):
        self.calls = 0

    def __call__(self, question: str, response: str) -> tuple[float, float]:
        self.calls += 1
        words = response.split()
        happy = sum(word in HAPPY for word in words)
        sad = sum(word in SAD for word in words)
        trait_score = 100.0 * happy / (happy + sad) if happy + sad else 50.0
        coherence = 100.0 * len(set(words)) / len(words) if words else 0.0
        return trait_score, coherence


PAIRS = [
    ("how is the day", "the day is happy and bright"),  # 2 happy, 0 sad -> 100; 6 distinct of 6 -> 100
    ("how is the night", "the night is dark dark dark"),  # 0 happy, 3 sad -> 0; 4 distinct of 6 -> 66.67
    ("and the rain", "the rain is cold but good"),  # 1 happy, 1 sad -> 50; 6 of 6 -> 100
    ("anything else", "nothing"),  # no mood word -> 50; 1 of 1 -> 100
]
EXPECTED = [(100.0, 100.0), (0.0, 400 / 6), (50.0, 100.0), (50.0, 100.0)]


def test_rule_judge_serves_a_scorer_through_the_judge_interface_and_cache(tmp_path, trait):
    scorer = WordCountScorer()
    judge = RuleJudge(scorer, cache=JudgeCache.for_run_dir(tmp_path))
    assert isinstance(judge, Judge)
    result = judge.judge(PAIRS, trait)
    assert [(j.trait_score, j.coherence) for j in result.judgments] == [pytest.approx(e) for e in EXPECTED]
    assert scorer.calls == 4  # one call scores both metrics of an item
    assert result.counters.judgments == 8 and result.counters.cache_hits == 0

    again = judge.judge(PAIRS, trait)
    assert scorer.calls == 4 and again.counters.cache_hits == 8 and again.judgments == result.judgments

    resumed = RuleJudge(scorer, cache=JudgeCache.for_run_dir(tmp_path))  # a new process on the same run
    from_disk = resumed.judge(PAIRS, trait)
    assert scorer.calls == 4 and from_disk.counters.cache_hits == 8 and from_disk.judgments == result.judgments

    # the async entry point is the same interface
    import asyncio

    only_coherence = asyncio.run(resumed.ajudge(PAIRS[:2], metrics=("coherence",)))
    assert [j.coherence for j in only_coherence.judgments] == [pytest.approx(100.0), pytest.approx(400 / 6)]
    assert [j.trait_score for j in only_coherence.judgments] == [None, None]


def test_rule_scorer_output_is_checked(trait):
    with pytest.raises(JudgeConfigError, match=r"outside \[0, 100\]"):
        RuleJudge(lambda q, r: (120.0, 50.0)).judge(PAIRS[:1], trait)
    with pytest.raises(JudgeConfigError, match=r"must return \(trait_score, coherence\)"):
        RuleJudge(lambda q, r: 50.0).judge(PAIRS[:1], trait)
    with pytest.raises(JudgeConfigError, match="module:function"):
        RuleJudge("steersweep.actors.toy:no_such_scorer").judge(PAIRS[:1], trait)


def test_toy_family_rule_judge_through_the_same_interface(tmp_path):
    trait = TraitDefinition("optimism", "Describes things with optimistic rather than pessimistic adjectives.")
    pairs = [
        ("how is the garden ?", "the flower is lovely . the mud is cold ."),
        ("how is the garden ?", "the flower is lovely . the mud is lovely lovely lovely"),
        ("how is the garden ?", ""),
    ]
    judge = build_judge({"kind": "rule"}, run_dir=tmp_path)  # the default scorer is the toy family's
    assert isinstance(judge, RuleJudge) and judge.judge_id == "rule:steersweep.actors.toy.score_response"
    result = judge.judge(pairs, trait)
    for (question, response), judgment in zip(pairs, result.judgments, strict=True):
        assert (judgment.trait_score, judgment.coherence) == toy_score_response(question, response)
    again = build_judge({"kind": "rule"}, run_dir=tmp_path).judge(pairs, trait)
    assert again.counters.requests == 0 and again.counters.cache_hits == 6 and again.judgments == result.judgments
