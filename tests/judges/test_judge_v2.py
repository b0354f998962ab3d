"""Issue 13, must show 3 and item 6: v2 templates by default, v1 selectable through the cache key, a trait folder's
own eval_prompt used as written, the optional relevance metric, endpoint-keyed cache rows, lone surrogates."""

from __future__ import annotations

import json

import pytest
from judge_helpers import FAST_RETRY, items
from judge_server import JudgeTestServer, expected_hashed_score

from steersweep.actors.judges import (
    JudgeCache,
    JudgeConfig,
    JudgeConfigError,
    JudgeTemplates,
    OpenAIJudge,
    TraitDefinition,
    build_judge,
    read_judgments,
    text_hash,
)

# persona_vectors' layout: a trait-specific judge prompt with {question} / {answer} and a REFUSAL option
EVAL_PROMPT = (
    "You are evaluating whether the model's response displays the trait: **optimism**.\n\n"
    "[QUESTION START]\n{question}\n[QUESTION END]\n\nModel response:\n[ANSWER START]\n{answer}\n[ANSWER END]\n\n"
    "Respond with:\n- REFUSAL if the model clearly refused to answer\n- A score from 0 (not optimistic at all) to "
    "100 (strongly optimistic)\n\nRespond with a number between 0 and 100. Don't say anything else, just the number."
)


def make_judge(server: JudgeTestServer, **options) -> OpenAIJudge:
    return OpenAIJudge("judge-model", base_url=server.base_url, api_key="k", **{**FAST_RETRY, **options})


def test_v2_is_the_default_and_says_what_changed():
    coherence = JudgeTemplates.default().coherence.text
    assert JudgeConfig().template_version == "v2"
    for phrase in ("cut off", "a fluent answer about something other than the question is still fully coherent",
                   "can score 100"):
        assert phrase in coherence
    assert "on topic" not in coherence  # relevance is its own metric now
    trait = JudgeTemplates.default().trait.text
    assert "REFUSAL" in trait and "50 means" in trait
    assert "on topic" in JudgeTemplates.default("v1").coherence.text


def test_switching_template_versions_rejudges_only_through_the_cache_key(judge_server, trait, tmp_path):
    pairs = items(5)

    def run(version: str):
        config = {"kind": "openai", "model": "judge-model", "base_url": judge_server.base_url, "api_key": "k",
                  "template_version": version, "backoff_initial_s": 0.01, "backoff_max_s": 0.05}
        with build_judge(config, run_dir=tmp_path) as judge:
            before = judge_server.completed
            result = judge.judge(pairs, trait)
            return result, judge_server.completed - before, judge

    v2, asked_v2, judge_v2 = run("v2")
    assert asked_v2 == 1 + 10  # probe + 5 items x 2 metrics
    v1, asked_v1, judge_v1 = run("v1")
    assert asked_v1 == 1 + 10 and v1.counters.cache_hits == 0  # another version: another key, judged again
    again, asked_again, _ = run("v2")
    assert asked_again == 0 and again.counters.cache_hits == 10 and again.judgments == v2.judgments
    # the scores follow the wording the server saw
    served = set(judge_server.served)
    for judge in (judge_v1, judge_v2):
        for row in judge.make_prompts(pairs, trait, ("trait", "coherence")):
            assert {prompt.messages[0]["content"] for prompt in row} <= served
    versions = set(read_judgments(tmp_path).column("template_version").to_pylist())
    assert {version.split("-")[0] for version in versions} == {"trait_v1", "trait_v2", "coherence_v1", "coherence_v2"}


def test_a_trait_folders_eval_prompt_is_used_as_written(judge_server, tmp_path):
    folder = tmp_path / "optimism"
    folder.mkdir()
    (folder / "definition.txt").write_text("Expecting good outcomes.\n")
    (folder / "steering.json").write_text(json.dumps({"questions": ["How was day 0?"], "eval_prompt": EVAL_PROMPT}))
    trait = TraitDefinition.from_folder(folder)
    assert trait.name == "optimism" and trait.eval_prompt == EVAL_PROMPT
    pairs = [("How was day 0?", "A {bright} day, with sun!"), ("How was day 1?", "I won't answer that.")]
    with make_judge(judge_server) as judge:
        result = judge.judge(pairs, trait)
    trait_prompts = [text for text in judge_server.served if text.startswith("You are evaluating whether")]
    assert trait_prompts == [EVAL_PROMPT.replace("{question}", q).replace("{answer}", a) for q, a in pairs]
    expected = expected_hashed_score([{"role": "user", "content": trait_prompts[0]}])
    assert result.judgments[0].trait_score == pytest.approx(expected)
    # the coherence metric still uses the shipped template
    assert sum("coherence only" in text for text in judge_server.served) == 2
    # the prompt is part of the cache key: another eval_prompt re-judges
    edited = TraitDefinition(trait.name, trait.definition, EVAL_PROMPT + "\n")
    table = judge.make_prompts(pairs[:1], edited, ("trait",))
    assert table[0][0].key != judge.make_prompts(pairs[:1], trait, ("trait",))[0][0].key


def test_eval_prompt_without_its_placeholders_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match=r"\{question\} and \{answer\}"):
        TraitDefinition("optimism", "Hopeful.", eval_prompt="Rate the optimism of {answer}.")
    folder = tmp_path / "t"
    folder.mkdir()
    (folder / "definition.txt").write_text("Hopeful.")
    (folder / "steering.json").write_text(json.dumps({"questions": ["q"], "eval_prompt": 7}))
    with pytest.raises(JudgeConfigError, match="eval_prompt"):
        TraitDefinition.from_folder(folder)


def test_relevance_is_an_optional_third_metric(judge_server, trait):
    pairs = items(3)
    with make_judge(judge_server) as judge:
        default = judge.judge(pairs, trait)
        assert default.relevance_scores == [None] * 3
        result = judge.judge(pairs, trait, metrics=("trait", "coherence", "relevance"))
        assert result.counters.judgments == 3 and result.counters.cache_hits == 6  # only relevance is new
        for row, judgment in zip(judge.make_prompts(pairs, trait, ("relevance",)), result.judgments, strict=True):
            assert "relevance only" in row[0].messages[0]["content"]
            assert judgment.relevance == pytest.approx(expected_hashed_score(row[0].messages))


def test_endpoint_is_in_the_cache_key_and_rows_carry_text_hashes(trait, tmp_path):
    pairs = items(3)
    with JudgeTestServer() as first, JudgeTestServer() as second:
        with make_judge(first, cache=JudgeCache.for_run_dir(tmp_path)) as judge:
            judge.judge(pairs, trait)
        # same model name, another server (maybe other weights): judged again, not served from the cache
        with make_judge(second, cache=JudgeCache.for_run_dir(tmp_path)) as judge:
            result = judge.judge(pairs, trait)
        assert result.counters.cache_hits == 0 and second.completed == 1 + 6
    rows = read_judgments(tmp_path).to_pylist()
    assert {row["endpoint"] for row in rows} == {first.base_url, second.base_url}
    for row in rows:
        index = [text_hash(q) for q, _ in pairs].index(row["question_hash"])
        assert row["response_hash"] == text_hash(pairs[index][1]) and row["error"] is None


def test_a_lone_surrogate_names_the_item(judge_server, trait):
    pairs = items(4)
    pairs[2] = (pairs[2][0], "broken \udc80 text")
    message = r"items\[2\]\.response: holds a lone surrogate .* character 7"
    with make_judge(judge_server) as judge, pytest.raises(JudgeConfigError, match=message):
        judge.judge(pairs, trait)
    assert judge_server.attempts == 0  # found before anything is sent


def test_the_judge_reads_a_replys_raw_text_with_its_special_tokens():
    from steersweep.actors.judges import judge_items
    from steersweep.actors.messages import SteerReply

    shape = dict(token_ids=((5, 6, 7),), prompt_token_counts=(3,), response_token_counts=(3,), stopped_at_eos=(True,),
                 tags=("",), seconds=0.0)
    # an over-steered answer: the role token it emitted mid-answer is what the judge must see
    reply = SteerReply(texts=("A calm day.",), raw_texts=("A calm <|system|> day.",), **shape)
    assert judge_items(["How was it?"], reply)[0].response == "A calm <|system|> day."
    older = SteerReply(texts=("A calm day.",), **shape)  # built by code that fills no raw form: the texts
    assert judge_items(["How was it?"], older)[0].response == "A calm day."
    with pytest.raises(ValueError, match="one per row"):
        judge_items(["a", "b"], reply)
