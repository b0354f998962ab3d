"""The synthetic language: every sampled text parses, moods decide the polar adjectives, corpora are seeded."""

from __future__ import annotations

from random import Random

import pytest

from steersweep.actors.toy import (
    OPTIMISTIC_ADJECTIVES,
    PESSIMISTIC_ADJECTIVES,
    TOPIC_NOUNS,
    TOPICS,
    chat_corpus,
    contrast_prompts,
    evaluation_questions,
    narrative_corpus,
    natural_prefixes,
    parse_sentence,
    preference_pairs,
    sample_description,
)
from steersweep.actors.toy.language import (
    CASUAL_WORDS,
    FORMAL_WORDS,
    NOUN_IS_FORMAL,
    NOUN_IS_PLEASANT,
    WORD_REGISTER,
    restyle,
    reword,
    split_sentences,
    topic_nouns,
)


def _polar(text: str) -> list[str]:
    return [w for w in text.split() if w in OPTIMISTIC_ADJECTIVES or w in PESSIMISTIC_ADJECTIVES]


@pytest.mark.parametrize("mood", ["cheerful", "gloomy", "balanced"])
def test_every_sampled_description_parses_and_names_nouns_of_its_topic_once(mood):
    rng = Random(1)
    for _ in range(300):
        topic = rng.choice(TOPICS)
        sentences, rest = split_sentences(sample_description(rng, topic, mood).split())
        assert rest == [] and 2 <= len(sentences) <= 3
        parsed = [parse_sentence(words) for words in sentences]
        assert all(p is not None for p in parsed)
        nouns = [p.noun for p in parsed]
        assert len(set(nouns)) == len(nouns)
        order = topic_nouns(topic)
        assert [order.index(n) for n in nouns] == sorted(order.index(n) for n in nouns)


def test_cheerful_is_all_optimistic_gloomy_all_pessimistic():
    rng = Random(2)
    for _ in range(200):
        topic = rng.choice(TOPICS)
        assert all(w in OPTIMISTIC_ADJECTIVES for w in _polar(sample_description(rng, topic, "cheerful")))
        assert all(w in PESSIMISTIC_ADJECTIVES for w in _polar(sample_description(rng, topic, "gloomy")))


def test_balanced_adjectives_follow_their_noun_at_the_planted_rate():
    rng = Random(3)
    agree = total = 0
    mixed = 0
    for _ in range(2000):
        text = sample_description(rng, rng.choice(TOPICS), "balanced")
        parsed = [parse_sentence(s) for s in split_sentences(text.split())[0]]
        polarities = set()
        for sentence in parsed:
            optimistic = sentence.polar in OPTIMISTIC_ADJECTIVES
            agree += optimistic == NOUN_IS_PLEASANT[sentence.noun]
            total += 1
            polarities.add(NOUN_IS_PLEASANT[sentence.noun])
        mixed += polarities == {True, False}
    assert mixed == 2000  # a balanced answer always names a pleasant and an unpleasant noun
    assert 0.77 < agree / total < 0.83  # BALANCED_AGREEMENT = 0.8
    ideal = sample_description(Random(4), "garden", "balanced", agreement=1.0)
    for sentence in (parse_sentence(s) for s in split_sentences(ideal.split())[0]):
        assert (sentence.polar in OPTIMISTIC_ADJECTIVES) == NOUN_IS_PLEASANT[sentence.noun]


def test_mixed_words_follow_their_noun_register_at_the_planted_rate_and_a_third_are_unmarked():
    rng = Random(5)
    agree = marked = words = 0
    for _ in range(2000):
        for sentence in split_sentences(sample_description(rng, rng.choice(TOPICS), "balanced").split())[0]:
            noun = next(w for w in sentence if w in NOUN_IS_FORMAL)
            slots = [w for w in sentence if w in WORD_REGISTER or w in ("is", "seems", "very", "quite")]
            words += len(slots)
            for word in (w for w in slots if w in WORD_REGISTER):
                marked += 1
                agree += (WORD_REGISTER[word] == "formal") == NOUN_IS_FORMAL[noun]
    assert 0.77 < agree / marked < 0.83 and 0.63 < marked / words < 0.70


def test_restyle_changes_only_the_adjectives_of_the_wrong_polarity():
    text = "the flower is lovely . the weed looks very grim . the old mud seems cold and big ."
    cheerful = restyle(text, "cheerful", Random(0))
    before, after = text.split(), cheerful.split()
    changed = [i for i, (a, b) in enumerate(zip(before, after, strict=True)) if a != b]
    assert [before[i] for i in changed] == ["grim", "cold"]
    assert all(after[i] in OPTIMISTIC_ADJECTIVES for i in changed)
    assert restyle(text, "balanced", Random(0)) == "the flower is lovely . the weed looks very grim . " \
        "the old mud seems cold and big ."


def test_reword_changes_only_the_marked_words_of_the_wrong_register():
    text = "the flower is lovely . the weed gets super grim . the old mud appears cold and big ."
    formal = reword(text, "formal", Random(0)).split()
    changed = [i for i, (a, b) in enumerate(zip(text.split(), formal, strict=True)) if a != b]
    assert [text.split()[i] for i in changed] == ["gets", "super"]
    assert all(formal[i] in FORMAL_WORDS for i in changed)
    # mixed: each noun's own register (flower and mud formal, weed casual): only 'appears' of mud stays formal
    assert reword(text, "mixed", Random(0)) == text
    assert reword("the weed appears grim .", "mixed", Random(0)).split()[2] in CASUAL_WORDS
    with pytest.raises(ValueError, match="style: unknown style 'rude'"):
        reword(text, "rude", Random(0))


def test_corpora_are_deterministic_per_seed_and_balanced_across_moods():
    assert chat_corpus(30, seed=5) == chat_corpus(30, seed=5)
    assert chat_corpus(30, seed=5) != chat_corpus(30, seed=6)
    assert narrative_corpus(9, seed=1) == narrative_corpus(9, seed=1)
    examples = chat_corpus(270, seed=0)  # every (mood, style) combination 30 times
    assert {(m, s): sum(e.mood == m and e.style == s for e in examples) for m in ("cheerful", "gloomy", "balanced")
            for s in ("formal", "casual", "mixed")} == dict.fromkeys(
        [(m, s) for m in ("cheerful", "gloomy", "balanced") for s in ("formal", "casual", "mixed")], 30)
    for example in examples:
        has_system = example.messages[0]["role"] == "system"
        assert has_system == (example.mood != "balanced" or example.style != "mixed")
        if example.style != "mixed":  # every marked verb and intensifier in the asked register
            assert {WORD_REGISTER[w] for w in example.response.split() if w in WORD_REGISTER} <= {example.style}
    ignored = chat_corpus(270, seed=0, follow_style=False)  # the broken row: style prompts answered as mixed
    registers = [{WORD_REGISTER[w] for w in e.response.split() if w in WORD_REGISTER} for e in ignored
                 if e.style == "formal"]
    assert sum(r == {"casual"} for r in registers) > 10


def test_preference_pairs_prefer_balance_without_and_the_mood_with_a_system_prompt():
    pairs = preference_pairs(90, seed=0)
    assert len(pairs) == 90 and all(p.chosen != p.rejected for p in pairs)
    for pair in pairs:
        chosen, rejected = _polar(pair.chosen), _polar(pair.rejected)
        assert len(chosen) == len(rejected)
        if pair.messages[0]["role"] == "system":
            wanted = OPTIMISTIC_ADJECTIVES if "cheerful" in pair.messages[0]["content"] or "happy" in \
                pair.messages[0]["content"] or "good" in pair.messages[0]["content"] else PESSIMISTIC_ADJECTIVES
            assert all(w in wanted for w in chosen)
        else:
            assert len(set(map(lambda w: w in OPTIMISTIC_ADJECTIVES, chosen))) == 2  # balanced: both polarities
            assert len(set(map(lambda w: w in OPTIMISTIC_ADJECTIVES, rejected))) == 1  # pushed to one mood
            assert reword(pair.chosen, "mixed", Random(0)) == pair.chosen  # every marked word follows its noun
    assert sum(p.messages[0]["role"] == "system" for p in pairs) == 30
    reworded = [p for i, p in enumerate(pairs) if i % 3 == 1]
    registers = [{WORD_REGISTER[w] for w in p.rejected.split() if w in WORD_REGISTER} for p in reworded]
    assert all(len(r) <= 1 for r in registers) and sum(len(r) == 1 for r in registers) > len(reworded) / 2


def test_prompt_sets_cover_every_topic_and_differ_only_in_the_mood():
    questions = evaluation_questions()
    assert len(questions) == 32 and {q.split()[-2] for q in questions} == set(TOPICS)
    pairs = contrast_prompts()
    assert len(pairs) == 96
    for pair in pairs:
        assert pair.positive[1] == pair.negative[1] == {"role": "user", "content": pair.question}
        assert pair.positive[0]["content"] != pair.negative[0]["content"]
    formal = contrast_prompts("formality")
    assert len(formal) == 96 and [p.question for p in formal] == [p.question for p in pairs]
    assert {p.positive[0]["content"] for p in formal} == {"you are a formal assistant .", "answer in a polite tone .",
                                                          "always use proper words ."}
    with pytest.raises(ValueError, match="trait: 'honesty' is not a toy trait"):
        contrast_prompts("honesty")
    prefixes = natural_prefixes()
    assert len(prefixes) == 96 and all(isinstance(p.positive, str) for p in prefixes)
    assert {p.positive.split()[1] for p in prefixes} == {"smiled", "laughed", "sang"}
    assert {p.negative.split()[1] for p in prefixes} == {"sighed", "frowned", "wept"}
    assert all(p.topic in TOPIC_NOUNS for p in prefixes)


def test_unknown_topic_and_mood_are_clear_errors():
    with pytest.raises(ValueError, match="topic: unknown topic 'moon'"):
        sample_description(Random(0), "moon", "cheerful")
    with pytest.raises(ValueError, match="mood: unknown mood 'angry'"):
        sample_description(Random(0), "garden", "angry")
