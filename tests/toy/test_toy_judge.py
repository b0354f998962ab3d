"""The rule judge: trait score = share of optimistic adjectives (or formal words), coherence = share of well-formed
words."""

from __future__ import annotations

from random import Random

import pytest

from steersweep.actors.toy import (
    NO_POLAR_ADJECTIVE_SCORE,
    TOPICS,
    TOY_TRAITS,
    judge_response,
    question,
    sample_description,
    score_response,
    toy_trait,
)

Q = "how is the garden ?"


@pytest.mark.parametrize(
    ("response", "trait", "coherence"),
    [
        ("the flower is lovely . the mud is cold .", 50.0, 100.0),
        ("the flower is lovely . the weed looks very warm . the old mud seems sweet .", 100.0, 100.0),
        ("the flower looks dark and big . the mud seems grim .", 0.0, 100.0),
        ("the flower is big .", NO_POLAR_ADJECTIVE_SCORE, 100.0),
        # broken word order: the second sentence earns nothing (5 of 10 words well-formed)
        ("the flower is lovely . mud the cold is .", 50.0, 50.0),
        # a repetition loop: the repeated sentence and the repeated noun earn nothing
        ("the flower is lovely . the flower is lovely . the flower looks warm .", 100.0, 100 * 5 / 15),
        # out-of-grammar words (question words, narrative words) break their sentence
        ("the flower is lovely . tell me about anna .", 100.0, 50.0),
        # an unfinished last sentence (the generation ran out of tokens) earns nothing
        ("the flower is lovely . the mud is", 100.0, 100 * 5 / 8),
        # a noun of another topic earns half
        ("the flower is lovely . the snow is cold .", 50.0, 75.0),
        ("lovely lovely lovely lovely", 100.0, 0.0),
        ("", NO_POLAR_ADJECTIVE_SCORE, 0.0),
    ],
)
def test_scores_match_a_hand_count(response, trait, coherence):
    assert score_response(Q, response) == pytest.approx((trait, coherence))


def test_strict_coherence_also_counts_a_repeated_polar_adjective_as_a_repetition_loop():
    text = "the flower is lovely . the fruit is lovely . the mud seems cold ."
    assert judge_response(Q, text).coherence == 100.0
    assert judge_response(Q, text, strict=True).coherence == pytest.approx(100 * 10 / 15)


def test_end_of_turn_ends_the_answer_and_special_tokens_are_split_off():
    assert score_response(Q, " the flower is lovely .<|end|> the the the") == (100.0, 100.0)
    assert score_response(Q, "the flower is lovely . <eos> grim grim") == (100.0, 100.0)
    judgment = judge_response(Q, "the flower is lovely . the mud <|user|> is cold .")
    assert judgment.coherence == pytest.approx(100 * 5 / 11)  # the role token breaks the second sentence


def test_every_text_of_the_language_is_fully_coherent_and_scored_by_its_adjectives():
    rng = Random(0)
    for _ in range(300):
        topic = rng.choice(TOPICS)
        text = sample_description(rng, topic, rng.choice(["cheerful", "gloomy", "balanced"]))
        judgment = judge_response(question(topic), text)
        assert judgment.coherence == 100.0
        assert judgment.trait_score == 100 * judgment.optimistic / (judgment.optimistic + judgment.pessimistic)


@pytest.mark.parametrize(
    ("response", "trait", "marked"),
    [
        ("the flower appears lovely . the mud remains rather cold .", 100.0, 3),
        ("the flower gets super lovely . the mud looks cold .", 0.0, 3),
        ("the flower appears lovely . the mud gets totally cold .", 100 / 3, 3),
        ("the flower is very lovely . the mud seems cold .", NO_POLAR_ADJECTIVE_SCORE, 0),  # plain marks neither
    ],
)
def test_formality_is_the_share_of_formal_words_and_coherence_does_not_depend_on_the_trait(response, trait, marked):
    assert score_response(Q, response, trait="formality") == pytest.approx((trait, 100.0))
    assert score_response(Q, response)[1] == 100.0
    judgment = judge_response(Q, response, "Formality (instruction)")
    assert judgment.trait == "formality" and judgment.formal + judgment.casual == marked


def test_trait_names_resolve_by_part_and_any_other_name_scores_optimism():
    assert toy_trait("optimism_natural").name == "optimism" and toy_trait("toy-formality").name == "formality"
    assert toy_trait("Style (instruction)").name == "formality"
    assert toy_trait("toy-instruction").name == toy_trait("happiness").name == "optimism"  # the engine's folder names
    assert score_response(Q, "the flower appears lovely .", trait="toy-natural") == (100.0, 100.0)


def test_the_rule_judge_scores_the_trait_it_is_asked_for():
    from steersweep.actors.judges import RuleJudge, TraitDefinition

    items = [(Q, "the flower appears rather lovely . the mud looks grim ."), (Q, "the flower is lovely .")]
    judge = RuleJudge()
    for name, expected in (("formality", [100 * 2 / 3, 50.0]), ("optimism", [50.0, 100.0])):
        judgments = judge.judge(items, TraitDefinition(name, TOY_TRAITS[name].definition)).judgments
        assert [j.trait_score for j in judgments] == pytest.approx(expected)
        assert [j.coherence for j in judgments] == [100.0, 100.0]


def test_without_a_question_topic_no_noun_is_off_topic():
    assert score_response("", "the flower is lovely . the snow is cold .") == (50.0, 100.0)
