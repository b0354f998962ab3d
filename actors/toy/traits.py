"""The toy world's planted traits: optimism (the mood) and formality (the style), and how each is scored.

A trait is scored from the words that mark it: ``100 * positive / (positive + negative)``, and 50 (the neutral
midpoint) when the response has none of its marked words. Optimism is marked by the polar adjectives, formality by
the verbs and intensifiers of the formal and casual registers (the plain ones, ``is`` or ``very``, mark neither).
Each trait is set by its own system prompts (index-aligned positive and negative sets) and the two are independent: a
system prompt may ask for a mood, a style, both or neither.

:func:`toy_trait` resolves a trait by name (formality when the name says so, else optimism); the rule judge passes
the name of the trait it is asked to judge.

Example:
    >>> toy_trait("formality").score("the flower appears rather lovely . the mud gets grim .".split())
    (66.66666666666667, 2, 1)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .corpus import TRAIT_PROMPTS
from .language import CASUAL_WORDS, FORMAL_WORDS, OPTIMISTIC_ADJECTIVES, PESSIMISTIC_ADJECTIVES

NO_MARKED_WORD_SCORE = 50.0
"""Trait score of a response with none of the trait's marked words (neither pole)."""


@dataclass(frozen=True)
class ToyTrait:
    """One planted trait: the words of its two poles, the system prompts that set it and a definition text."""

    name: str
    positive_words: frozenset[str]
    negative_words: frozenset[str]
    positive_prompts: tuple[str, ...]
    """System prompts that elicit the trait, index-aligned with ``negative_prompts``."""
    negative_prompts: tuple[str, ...]
    definition: str
    """A judge-style definition (what an LLM judge would be told the trait means)."""

    def score(self, words: Sequence[str]) -> tuple[float, int, int]:
        """``(score 0-100, positive words, negative words)``; the score is 50 when neither pole shows."""
        positive = sum(word in self.positive_words for word in words)
        negative = sum(word in self.negative_words for word in words)
        marked = positive + negative
        return (100.0 * positive / marked if marked else NO_MARKED_WORD_SCORE), positive, negative


OPTIMISM = ToyTrait(
    "optimism", frozenset(OPTIMISTIC_ADJECTIVES), frozenset(PESSIMISTIC_ADJECTIVES),
    *TRAIT_PROMPTS["optimism"],
    "Optimism: the answer describes things with optimistic, cheerful adjectives (lovely, bright, hopeful) rather "
    "than pessimistic, gloomy ones (dull, bleak, grim).",
)
FORMALITY = ToyTrait(
    "formality", frozenset(FORMAL_WORDS), frozenset(CASUAL_WORDS),
    *TRAIT_PROMPTS["formality"],
    "Formality: the answer chooses formal words (appears, remains, rather, truly) rather than casual ones (gets, "
    "looks, super, totally).",
)
TOY_TRAITS: dict[str, ToyTrait] = {trait.name: trait for trait in (OPTIMISM, FORMALITY)}
"""The planted traits by name."""

_ALIASES = {"optimis": "optimism", "mood": "optimism", "cheer": "optimism", "formal": "formality", "style": "formality"}


def toy_trait(name: str) -> ToyTrait:
    """The trait called ``name``: ``formality`` when the name says so (``formality``, ``toy-formal``, ``style``),
    else ``optimism``, the toy world's first trait, case-blind.

    Any other name scores optimism, as the rule judge did before there was a second trait: a study's trait or
    folder name (``optimism_natural``, ``toy-instruction``) can be passed as is.
    """
    lowered = name.strip().lower()
    if lowered in TOY_TRAITS:
        return TOY_TRAITS[lowered]
    if any(part in lowered for part, trait in _ALIASES.items() if trait == "formality"):
        return FORMALITY
    return OPTIMISM
