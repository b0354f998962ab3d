"""The rule-based judge of the toy traits: trait score and coherence (0-100) computed from the grammar.

``trait_score`` of ``optimism`` (the default) is the share of optimistic adjectives among the polar adjectives of
the response, times 100; of ``formality`` the share of formal words among the formal and casual verbs and
intensifiers (see :mod:`.traits`). A response without any marked word shows neither pole and scores **50** (the
neutral midpoint, as a judge asked "how optimistic is this?" would answer for a text that says nothing either way).

``coherence`` is the share of the response's words that sit in well-formed sentences, times 100. A sentence earns
its words when it parses under the grammar of :mod:`.language`; it earns nothing when it is broken (wrong word
order, a missing or doubled word, an unfinished sentence at the end) or when it repeats a sentence or a noun that
the response already used (repetition loops; with ``strict=True`` also a polar adjective, which the language names
at most once too, though the family's models do not always keep to it unsteered); a sentence
about a noun of another topic than the question's earns half. Words outside the answer vocabulary (question words,
role tokens, narrative words) break their sentence. An empty response scores 0.

Example:
    >>> score_response("how is the garden ?", "the flower is lovely . the mud is cold .")
    (50.0, 100.0)
    >>> score_response("how is the garden ?", "the flower is lovely . the mud is cold cold cold .")
    (25.0, 41.666666666666664)
    >>> score_response("how is the garden ?", "the flower appears lovely . the mud gets cold .", trait="formality")
    (50.0, 100.0)
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .corpus import topic_of
from .language import NOUN_TOPIC, POLAR_ADJECTIVES, RESPONSE_WORDS, parse_sentence, split_sentences
from .tokenizer import SPECIAL_TOKENS
from .traits import FORMALITY, NO_MARKED_WORD_SCORE, OPTIMISM, toy_trait

NO_POLAR_ADJECTIVE_SCORE = NO_MARKED_WORD_SCORE
"""Trait score of a response with no polar adjective (neither optimistic nor pessimistic)."""

_SPECIALS = frozenset(SPECIAL_TOKENS)


@dataclass(frozen=True)
class ToyJudgment:
    """Both scores of one response and what they were computed from."""

    trait_score: float
    coherence: float
    optimistic: int
    """Number of optimistic adjectives in the response."""
    pessimistic: int
    """Number of pessimistic adjectives in the response."""
    words: int
    well_formed_words: float
    """Words credited as parts of well-formed, non-repeating, on-topic sentences (half credit off topic)."""
    formal: int = 0
    """Number of formal verbs and intensifiers."""
    casual: int = 0
    """Number of casual verbs and intensifiers."""
    trait: str = "optimism"
    """The trait ``trait_score`` scores."""


_MARKUP = re.compile(r"(<[^<>\s]+>)")


def _words(response: str) -> list[str]:
    # The end-of-turn / end-of-text markers close a response; anything after them is not part of the answer.
    words = []
    for word in _MARKUP.sub(r" \1 ", response).split():
        if word in ("<|end|>", "<eos>"):
            break
        if word not in ("<pad>", "<bos>"):
            words.append(word)
    return words


def trait_score(response: str, trait: str = "optimism") -> float:
    """Share of the trait's positive words among its marked words, 0-100; 50 when there is no marked word."""
    return judge_response("", response, trait).trait_score


def coherence(question: str, response: str) -> float:
    """Share of the words in well-formed, non-repeating, on-topic sentences, 0-100 (0 for an empty response)."""
    return judge_response(question, response).coherence


def judge_response(question: str, response: str, trait: str = "optimism", strict: bool = False) -> ToyJudgment:
    """Judge one response to ``question`` for ``trait``; see the module docstring for the two scores (``strict``:
    a repeated polar adjective breaks its sentence too)."""
    scored = toy_trait(trait)
    words = _words(response)
    _, optimistic, pessimistic = OPTIMISM.score(words)
    _, formal, casual = FORMALITY.score(words)
    trait_value = scored.score(words)[0]
    topic = topic_of(question)
    sentences, _unfinished = split_sentences(words)
    credited = 0.0
    seen_sentences: set[tuple[str, ...]] = set()
    seen_nouns: set[str] = set()
    seen_polar: set[str] = set()
    for sentence_words in sentences:
        key = tuple(sentence_words)
        parsed = None
        if all(word in RESPONSE_WORDS and word not in _SPECIALS for word in sentence_words):
            parsed = parse_sentence(sentence_words)
        if (parsed is not None and key not in seen_sentences and parsed.noun not in seen_nouns
                and parsed.polar not in seen_polar):
            on_topic = topic is None or NOUN_TOPIC[parsed.noun] == topic
            credited += len(sentence_words) * (1.0 if on_topic else 0.5)
        seen_sentences.add(key)
        if parsed is not None:
            seen_nouns.add(parsed.noun)
            if strict and parsed.polar in POLAR_ADJECTIVES:
                seen_polar.add(parsed.polar)
    coherence_score = 100.0 * credited / len(words) if words else 0.0
    return ToyJudgment(trait_value, coherence_score, optimistic, pessimistic, len(words), credited, formal, casual,
                       scored.name)


def score_response(question: str, response: str, trait: str = "optimism") -> tuple[float, float]:
    """``(trait_score, coherence)`` of ``response`` to ``question`` for ``trait`` (optimism or formality), 0-100.

    The same two numbers an LLM judge returns; deterministic and free, so every toy sweep can be judged exactly.
    The rule judge passes the name of the trait it judges (see :func:`.traits.toy_trait` for the names it takes).
    """
    judgment = judge_response(question, response, trait)
    return judgment.trait_score, judgment.coherence
