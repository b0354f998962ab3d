"""The synthetic language of the toy family: its words, its sentence grammar and the two planted traits.

Every text of the toy world is made of short sentences about one topic. Each sentence names one noun of the
topic and describes it with exactly one *polar* adjective (optimistic or pessimistic) and optionally one
*neutral* adjective::

    the flower is lovely .            the N V P .
    the weed looks very grim .        the N V INT P .
    the fruit seems warm and round .  the N V P and M .
    the old mud remains bleak .       the M N V P .

An answer names each noun and each polar adjective at most once (so a model has to remember which it used: a
steering vector that pushes one adjective too hard makes it repeat, the toy's repetition loop). Every noun has an
inherent polarity (a flower is pleasant, mud is not). The *mood* of a text decides the polar
adjectives: ``cheerful`` makes every one optimistic, ``gloomy`` every one pessimistic, and ``balanced`` (no mood
given) lets each noun's own polarity decide, so a balanced answer mixes both. A model that follows this language
therefore has to carry the mood as a latent in its residual stream: the planted, steerable trait.

The *style* is the second, independent trait (formality), built the same way: it decides the register of the
verb and the intensifier. A ``formal`` text uses formal words (``appears``, ``remains``; ``rather``, ``truly``), a
``casual`` text casual ones (``gets``, ``looks``; ``super``, ``totally``), and a ``mixed`` text (no style given)
lets each noun's own register decide (every topic has two formal and two casual nouns), so a mixed answer mixes
both. In every style a third of the verbs and intensifiers are unmarked (``is``, ``seems``; ``very``, ``quite``)::

    the flower appears rather lovely .    (formal, cheerful)
    the mud gets super grim .             (casual, gloomy)

Example:
    >>> from random import Random
    >>> sentence = Sentence(noun="weed", verb="is", polar="lovely")
    >>> sentence.text()
    'the weed is lovely .'
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from random import Random
from typing import Literal

Mood = Literal["cheerful", "gloomy", "balanced"]
MOODS: tuple[Mood, ...] = ("cheerful", "gloomy", "balanced")
Style = Literal["formal", "casual", "mixed"]
STYLES: tuple[Style, ...] = ("formal", "casual", "mixed")
Register = Literal["formal", "casual"]
REGISTERS: tuple[Register, ...] = ("formal", "casual")

TOPIC_NOUNS: dict[str, tuple[tuple[str, str], tuple[str, str]]] = {
    # topic: ((pleasant nouns), (unpleasant nouns))
    "garden": (("flower", "fruit"), ("weed", "mud")),
    "city": (("park", "music"), ("traffic", "smoke")),
    "beach": (("sun", "shell"), ("storm", "trash")),
    "forest": (("bird", "trail"), ("thorn", "fog")),
    "school": (("friend", "book"), ("exam", "noise")),
    "market": (("bread", "color"), ("crowd", "price")),
    "harbor": (("boat", "breeze"), ("rust", "oil")),
    "winter": (("snow", "fire"), ("ice", "wind")),
}
"""Topics and their nouns, each noun with an inherent polarity (first pair pleasant, second unpleasant)."""

TOPICS: tuple[str, ...] = tuple(TOPIC_NOUNS)

OPTIMISTIC_ADJECTIVES: tuple[str, ...] = (
    "bright", "lovely", "warm", "joyful", "hopeful", "wonderful", "sweet", "pleasant",
)
PESSIMISTIC_ADJECTIVES: tuple[str, ...] = (
    "dark", "dull", "cold", "bleak", "dreary", "awful", "bitter", "grim",
)
NEUTRAL_ADJECTIVES: tuple[str, ...] = ("big", "small", "old", "new", "round", "tall")
POLAR_ADJECTIVES: tuple[str, ...] = OPTIMISTIC_ADJECTIVES + PESSIMISTIC_ADJECTIVES
ADJECTIVES: tuple[str, ...] = POLAR_ADJECTIVES + NEUTRAL_ADJECTIVES
REGISTER_VERBS: dict[Register, tuple[str, ...]] = {"formal": ("appears", "remains"), "casual": ("gets", "looks")}
REGISTER_INTENSIFIERS: dict[Register, tuple[str, ...]] = {"formal": ("rather", "truly"), "casual": ("super", "totally")}
"""The marked word choices of each register, index-aligned (``appears`` / ``gets``)."""
PLAIN_VERBS: tuple[str, ...] = ("is", "seems")
PLAIN_INTENSIFIERS: tuple[str, ...] = ("very", "quite")
"""Unmarked words, used in every style (they show neither register)."""
PLAIN_SHARE = 1 / 3
"""Probability that a verb or intensifier is an unmarked one."""
VERBS: tuple[str, ...] = REGISTER_VERBS["formal"] + REGISTER_VERBS["casual"] + PLAIN_VERBS
INTENSIFIERS: tuple[str, ...] = REGISTER_INTENSIFIERS["formal"] + REGISTER_INTENSIFIERS["casual"] + PLAIN_INTENSIFIERS
FORMAL_WORDS: tuple[str, ...] = REGISTER_VERBS["formal"] + REGISTER_INTENSIFIERS["formal"]
CASUAL_WORDS: tuple[str, ...] = REGISTER_VERBS["casual"] + REGISTER_INTENSIFIERS["casual"]
WORD_REGISTER: dict[str, Register] = {
    word: register for register in REGISTERS for word in REGISTER_VERBS[register] + REGISTER_INTENSIFIERS[register]
}
SENTENCE_WORDS: tuple[str, ...] = ("the", "and", ".")

NOUN_TOPIC: dict[str, str] = {
    noun: topic for topic, (pleasant, unpleasant) in TOPIC_NOUNS.items() for noun in pleasant + unpleasant
}
NOUN_IS_PLEASANT: dict[str, bool] = {
    noun: noun in TOPIC_NOUNS[topic][0] for noun, topic in NOUN_TOPIC.items()
}
NOUNS: tuple[str, ...] = tuple(NOUN_TOPIC)
NOUN_IS_FORMAL: dict[str, bool] = {
    noun: noun in (TOPIC_NOUNS[topic][0][0], TOPIC_NOUNS[topic][1][1]) for noun, topic in NOUN_TOPIC.items()
}
"""Each noun's own register, independent of its polarity: per topic the first pleasant and the second unpleasant
noun are formal, the other two casual."""

RESPONSE_WORDS: frozenset[str] = frozenset(
    SENTENCE_WORDS + NOUNS + VERBS + INTENSIFIERS + ADJECTIVES
)
"""Every word an answer of the language may contain; anything else is out of grammar."""

SENTENCE_FORMS: tuple[str, ...] = ("plain", "intense", "pair", "modified")
"""The four sentence templates: ``the N V P .``, ``the N V INT P .``, ``the N V P and M .``, ``the M N V P .``."""


@dataclass(frozen=True)
class Sentence:
    """One sentence of the language; ``polar`` is the slot the mood decides."""

    noun: str
    verb: str
    polar: str
    form: str = "plain"
    intensifier: str = "very"
    neutral: str = "big"

    def words(self) -> list[str]:
        if self.form == "plain":
            return ["the", self.noun, self.verb, self.polar, "."]
        if self.form == "intense":
            return ["the", self.noun, self.verb, self.intensifier, self.polar, "."]
        if self.form == "pair":
            return ["the", self.noun, self.verb, self.polar, "and", self.neutral, "."]
        if self.form == "modified":
            return ["the", self.neutral, self.noun, self.verb, self.polar, "."]
        raise ValueError(f"form: unknown sentence form {self.form!r}; use one of {', '.join(SENTENCE_FORMS)}")

    def text(self) -> str:
        return " ".join(self.words())


BALANCED_AGREEMENT = 0.8
"""In a balanced text a polar adjective takes its noun's polarity with this probability (else the other one).

Below 1, so that a balanced answer is the most likely but not a certain one: the unsteered model keeps a moderate
margin that steering can overcome, and DPO (which prefers the fully agreeing answer) widens it.
"""


def polar_adjective(rng: Random, noun: str, mood: Mood, agreement: float = BALANCED_AGREEMENT,
                    used: Collection[str] = ()) -> str:
    """The polar adjective the language asks for: the mood's polarity, or (balanced) mostly the noun's own; never
    one of ``used`` (an answer names each polar adjective at most once)."""
    if mood == "cheerful":
        optimistic = True
    elif mood == "gloomy":
        optimistic = False
    elif mood == "balanced":
        optimistic = NOUN_IS_PLEASANT[noun] if rng.random() < agreement else not NOUN_IS_PLEASANT[noun]
    else:
        raise ValueError(f"mood: unknown mood {mood!r}; use one of {', '.join(MOODS)}")
    return rng.choice([a for a in (OPTIMISTIC_ADJECTIVES if optimistic else PESSIMISTIC_ADJECTIVES) if a not in used])


def sentence_register(rng: Random, noun: str, style: Style, agreement: float = BALANCED_AGREEMENT) -> Register:
    """The register the style asks for: the style's own, or (mixed) mostly the noun's own."""
    if style in REGISTERS:
        return style  # type: ignore[return-value]
    if style != "mixed":
        raise ValueError(f"style: unknown style {style!r}; use one of {', '.join(STYLES)}")
    formal = NOUN_IS_FORMAL[noun] if rng.random() < agreement else not NOUN_IS_FORMAL[noun]
    return "formal" if formal else "casual"


def _word(rng: Random, marked: tuple[str, ...], plain: tuple[str, ...]) -> str:
    return rng.choice(plain if rng.random() < PLAIN_SHARE else marked)


def sample_sentence(rng: Random, noun: str, mood: Mood, agreement: float = BALANCED_AGREEMENT,
                    style: Style = "mixed", used: Collection[str] = ()) -> Sentence:
    """One sentence about ``noun`` in ``mood`` and ``style`` with a random form, verb and fillers (its polar
    adjective not one of ``used``)."""
    register = sentence_register(rng, noun, style, agreement)
    return Sentence(
        noun=noun,
        verb=_word(rng, REGISTER_VERBS[register], PLAIN_VERBS),
        polar=polar_adjective(rng, noun, mood, agreement, used),
        form=rng.choice(SENTENCE_FORMS),
        intensifier=_word(rng, REGISTER_INTENSIFIERS[register], PLAIN_INTENSIFIERS),
        neutral=rng.choice(NEUTRAL_ADJECTIVES),
    )


def topic_nouns(topic: str) -> tuple[str, ...]:
    """The nouns of ``topic`` in their canonical order (pleasant and unpleasant interleaved)."""
    if topic not in TOPIC_NOUNS:
        raise ValueError(f"topic: unknown topic {topic!r}; use one of {', '.join(TOPICS)}")
    (p1, p2), (u1, u2) = TOPIC_NOUNS[topic]
    return (p1, u1, p2, u2)


def sample_nouns(rng: Random, topic: str, mood: Mood) -> list[str]:
    """Two or three distinct nouns of ``topic`` in canonical order; a balanced text names both kinds of noun.

    The canonical order keeps a text from naming a noun twice without the model having to remember them all.
    """
    nouns = topic_nouns(topic)
    while True:
        chosen = sorted(rng.sample(range(len(nouns)), rng.choice((2, 3))))
        names = [nouns[i] for i in chosen]
        if mood != "balanced" or len({NOUN_IS_PLEASANT[noun] for noun in names}) == 2:
            return names


def sample_description(rng: Random, topic: str, mood: Mood, agreement: float = BALANCED_AGREEMENT,
                       style: Style = "mixed") -> str:
    """Two or three sentences about ``topic`` in ``mood`` and ``style``: an assistant answer or a narrative's body.

    ``agreement`` is the probability that a balanced adjective follows its noun (1.0 gives the ideal answer).
    """
    sentences: list[Sentence] = []
    for noun in sample_nouns(rng, topic, mood):
        sentences.append(sample_sentence(rng, noun, mood, agreement, style, {s.polar for s in sentences}))
    return " ".join(sentence.text() for sentence in sentences)


def restyle(description: str, mood: Mood, rng: Random) -> str:
    """The same description with each polar adjective of the wrong polarity for ``mood`` redrawn.

    Nouns, forms, fillers and adjectives that already fit are kept, so DPO gets a rejected answer that differs
    from the chosen one only where the trait shows.
    """
    noun = None
    out = []
    used = {word for word in description.split() if word in POLAR_ADJECTIVES}
    for word in description.split():
        if word in NOUN_TOPIC:
            noun = word
        if word in POLAR_ADJECTIVES and noun is not None:
            wanted = polar_adjective(rng, noun, mood, agreement=1.0, used=used)
            if (word in OPTIMISTIC_ADJECTIVES) != (wanted in OPTIMISTIC_ADJECTIVES):
                word = wanted
                used.add(word)
        out.append(word)
    return " ".join(out)


def reword(description: str, style: Style, rng: Random) -> str:
    """The same description with every marked verb and intensifier of the wrong register for ``style`` redrawn
    (``mixed``: the noun's own register).

    Unmarked words and everything else are kept, so DPO gets a rejected answer that differs from the chosen one
    only in word choice.
    """
    noun = None
    out = []
    for word in description.split():
        if word in NOUN_TOPIC:
            noun = word
        if word in WORD_REGISTER and noun is not None:
            wanted = sentence_register(rng, noun, style, agreement=1.0)
            if WORD_REGISTER[word] != wanted:
                word = rng.choice(REGISTER_VERBS[wanted] if word in VERBS else REGISTER_INTENSIFIERS[wanted])
        out.append(word)
    return " ".join(out)


def split_sentences(words: Sequence[str]) -> tuple[list[list[str]], list[str]]:
    """Split words at ``.`` into complete sentences (each ending in ``.``) and a trailing unfinished rest."""
    sentences: list[list[str]] = []
    current: list[str] = []
    for word in words:
        current.append(word)
        if word == ".":
            sentences.append(current)
            current = []
    return sentences, current


def parse_sentence(words: Sequence[str]) -> Sentence | None:
    """The Sentence these words spell under the grammar, or None when they are not one."""
    words = list(words)
    if len(words) < 5 or words[0] != "the" or words[-1] != ".":
        return None
    body = words[1:-1]

    def noun_verb_ok(noun: str, verb: str) -> bool:
        return noun in NOUN_TOPIC and verb in VERBS

    if len(body) == 3 and noun_verb_ok(body[0], body[1]) and body[2] in ADJECTIVES:
        return Sentence(noun=body[0], verb=body[1], polar=body[2], form="plain")
    if len(body) == 4 and noun_verb_ok(body[0], body[1]) and body[2] in INTENSIFIERS and body[3] in ADJECTIVES:
        return Sentence(noun=body[0], verb=body[1], polar=body[3], form="intense", intensifier=body[2])
    if len(body) == 4 and body[0] in ADJECTIVES and noun_verb_ok(body[1], body[2]) and body[3] in ADJECTIVES:
        return Sentence(noun=body[1], verb=body[2], polar=body[3], form="modified", neutral=body[0])
    if (len(body) == 5 and noun_verb_ok(body[0], body[1]) and body[2] in ADJECTIVES and body[3] == "and"
            and body[4] in ADJECTIVES and body[4] != body[2]):
        return Sentence(noun=body[0], verb=body[1], polar=body[2], form="pair", neutral=body[4])
    return None
