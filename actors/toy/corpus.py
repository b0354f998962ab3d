"""Corpora and prompt sets of the toy world: narratives (base), chat examples (sft), preference pairs (dpo).

Also the prompt sets that steering experiments need: the cheerful and gloomy (mood) and formal and casual (style)
system prompts, the instruction-elicitation contrast pairs of each trait, the natural-elicitation narrative
prefixes for the base model, and the evaluation questions.

Example:
    >>> pair = contrast_prompts()[0]
    >>> pair.positive[0]["content"], pair.negative[0]["content"], pair.positive[1]["content"]
    ('you are a cheerful assistant .', 'you are a gloomy assistant .', 'tell me about the garden ?')
"""

from __future__ import annotations

from dataclasses import dataclass
from random import Random

from .language import MOODS, STYLES, TOPICS, Mood, Style, restyle, reword, sample_description

QUESTION_FORMS: tuple[str, ...] = (
    "tell me about the {topic} ?",
    "what about the {topic} ?",
    "how is the {topic} ?",
    "describe the {topic} ?",
)
SYSTEM_PROMPTS: dict[str, tuple[str, ...]] = {
    "cheerful": ("you are a cheerful assistant .", "answer in a happy mood .", "always see the good side ."),
    "gloomy": ("you are a gloomy assistant .", "answer in a sad mood .", "always see the bad side ."),
}
"""System prompts that set the mood, index-aligned so ``cheerful[i]`` and ``gloomy[i]`` differ only in the mood."""
CHEERFUL_SYSTEM_PROMPTS = SYSTEM_PROMPTS["cheerful"]
GLOOMY_SYSTEM_PROMPTS = SYSTEM_PROMPTS["gloomy"]
STYLE_PROMPTS: dict[str, tuple[str, ...]] = {
    "formal": ("you are a formal assistant .", "answer in a polite tone .", "always use proper words ."),
    "casual": ("you are a casual assistant .", "answer in a relaxed tone .", "always use easy words ."),
}
"""System prompts that set the style (formality), index-aligned like :data:`SYSTEM_PROMPTS`."""
TRAIT_PROMPTS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "optimism": (SYSTEM_PROMPTS["cheerful"], SYSTEM_PROMPTS["gloomy"]),
    "formality": (STYLE_PROMPTS["formal"], STYLE_PROMPTS["casual"]),
}
"""Each trait's (positive, negative) system prompts."""

NARRATIVE_NAMES: tuple[str, ...] = ("anna", "ben", "mia", "tom")
NARRATIVE_VERBS: dict[Mood, tuple[str, ...]] = {
    "cheerful": ("smiled", "laughed", "sang"),
    "gloomy": ("sighed", "frowned", "wept"),
    "balanced": ("walked", "stood", "waited"),
}
"""The opening verb of a narrative sets its mood, index-aligned across moods (``smiled`` / ``sighed`` / ``walked``)."""


def question(topic: str, form: int = 0) -> str:
    """The user question of form ``form`` about ``topic``."""
    if topic not in TOPICS:
        raise ValueError(f"topic: unknown topic {topic!r}; use one of {', '.join(TOPICS)}")
    return QUESTION_FORMS[form % len(QUESTION_FORMS)].format(topic=topic)


def topic_of(text: str) -> str | None:
    """The topic a question or prefix is about (the first topic word in it), or None."""
    for word in text.split():
        if word in TOPICS:
            return word
    return None


def evaluation_questions() -> list[str]:
    """Every question form about every topic (32 questions): the prompts a steering evaluation asks."""
    return [question(topic, form) for topic in TOPICS for form in range(len(QUESTION_FORMS))]


def narrative_prefix(name: str, mood: Mood, topic: str, variant: int = 0) -> str:
    """The opening sentence of a narrative, e.g. ``anna smiled in the garden .``."""
    verbs = NARRATIVE_VERBS[mood]
    return f"{name} {verbs[variant % len(verbs)]} in the {topic} ."


@dataclass(frozen=True)
class ContrastPair:
    """Two prompts that differ only in the mood they elicit; ``positive`` elicits the optimistic trait.

    For chat models the prompts are conversations (system + user turn); for the base model they are narrative
    prefixes (plain text).
    """

    positive: str | tuple[dict[str, str], ...]
    negative: str | tuple[dict[str, str], ...]
    topic: str
    question: str
    """The same prompt without a mood: the user question, or for narratives the balanced opening
    (``anna walked in the garden .``)."""


def _chat(system: str | None, user: str) -> tuple[dict[str, str], ...]:
    turns = ({"role": "system", "content": system},) if system else ()
    return (*turns, {"role": "user", "content": user})


def system_prompt(rng: Random, mood: Mood, style: Style) -> str | None:
    """A system prompt asking for ``mood`` and ``style`` (a mood prompt, then a style prompt), None for neither."""
    parts = []
    if mood != "balanced":
        parts.append(rng.choice(SYSTEM_PROMPTS[mood]))
    if style != "mixed":
        parts.append(rng.choice(STYLE_PROMPTS[style]))
    return " ".join(parts) or None


def contrast_prompts(trait: str = "optimism") -> list[ContrastPair]:
    """Instruction elicitation: every evaluation question under each positive vs negative system prompt of
    ``trait`` (96 pairs): cheerful vs gloomy for ``optimism``, formal vs casual for ``formality``."""
    if trait not in TRAIT_PROMPTS:
        raise ValueError(f"trait: {trait!r} is not a toy trait; use one of {', '.join(TRAIT_PROMPTS)}")
    positive, negative = TRAIT_PROMPTS[trait]
    pairs = []
    for user in evaluation_questions():
        for first, second in zip(positive, negative, strict=True):
            pairs.append(ContrastPair(_chat(first, user), _chat(second, user), topic_of(user) or "", user))
    return pairs


def natural_prefixes() -> list[ContrastPair]:
    """Natural elicitation for the base model: narrative openings whose verb implies the mood (96 pairs)."""
    pairs = []
    for topic in TOPICS:
        for name in NARRATIVE_NAMES:
            for variant in range(len(NARRATIVE_VERBS["cheerful"])):
                positive = narrative_prefix(name, "cheerful", topic, variant)
                negative = narrative_prefix(name, "gloomy", topic, variant)
                pairs.append(ContrastPair(positive, negative, topic, narrative_prefix(name, "balanced", topic)))
    return pairs


@dataclass(frozen=True)
class ChatExample:
    """One supervised chat turn: the prompt messages and the assistant's answer."""

    messages: tuple[dict[str, str], ...]
    response: str
    mood: Mood
    style: Style = "mixed"
    """The style the system prompt asks for (the answer's own style unless the corpus ignores style prompts)."""


@dataclass(frozen=True)
class PreferencePair:
    """A DPO pair: the same prompt with a chosen (balanced) and a rejected (mood-extreme) answer."""

    messages: tuple[dict[str, str], ...]
    chosen: str
    rejected: str


def narrative_corpus(n: int, seed: int) -> list[str]:
    """``n`` plain-text narratives for the base model, a third of each mood and a third of each style (every
    combination equally often), e.g. ``mia sighed in the city . the park gets super dull . the smoke looks grim .``

    The opening verb sets the mood; nothing announces the style, which shows from the first verb of the body on.
    """
    rng = Random(f"narrative-{seed}")
    docs = []
    for i in range(n):
        mood, style = MOODS[i % len(MOODS)], STYLES[(i // len(MOODS)) % len(STYLES)]
        topic = rng.choice(TOPICS)
        opening = narrative_prefix(rng.choice(NARRATIVE_NAMES), mood, topic, rng.randrange(3))
        docs.append(f"{opening} {sample_description(rng, topic, mood, style=style)}")
    return docs


def chat_corpus(n: int, seed: int, follow_style: bool = True) -> list[ChatExample]:
    """``n`` chat examples, every (mood, style) combination equally often: a third under a cheerful system prompt,
    a third gloomy, a third with no mood (balanced); independently a third formal, a third casual, a third with no
    style (mixed).

    ``follow_style=False`` keeps the style prompts but answers every one mixed, as if there were none: a model
    trained on it never learns to carry formality (the family's deliberately broken trait row).
    """
    rng = Random(f"chat-{seed}")
    examples = []
    for i in range(n):
        mood, style = MOODS[i % len(MOODS)], STYLES[(i // len(MOODS)) % len(STYLES)]
        topic = rng.choice(TOPICS)
        user = question(topic, rng.randrange(len(QUESTION_FORMS)))
        system = system_prompt(rng, mood, style)
        answer = sample_description(rng, topic, mood, style=style if follow_style else "mixed")
        examples.append(ChatExample(_chat(system, user), answer, mood, style))
    return examples


def preference_pairs(n: int, seed: int) -> list[PreferencePair]:
    """``n`` DPO pairs that prefer balance and mixed words by default, and what a system prompt asks for.

    Two pairs in three have no system prompt: chosen is balanced and mixed (every adjective and marked word agrees
    with its noun), rejected is the same answer pushed to one mood (and, every other such pair, also reworded
    formal or casual). One in three has a system prompt asking for a mood and a style: chosen follows it, rejected
    is the same answer made balanced and mixed. Without these the tuned model would unlearn the system prompts
    (DPO lowers a rejected answer's probability wherever it can), while the resistance to steering comes from the
    first kind.
    """
    rng = Random(f"preference-{seed}")
    pairs: list[PreferencePair] = []
    while len(pairs) < n:
        topic = rng.choice(TOPICS)
        user = question(topic, rng.randrange(len(QUESTION_FORMS)))
        mood: Mood = "cheerful" if rng.random() < 0.5 else "gloomy"
        style: Style = "formal" if rng.random() < 0.5 else "casual"
        if len(pairs) % 3 < 2:
            chosen = sample_description(rng, topic, "balanced", agreement=1.0, style="mixed")
            rejected = restyle(chosen, mood, rng)
            if len(pairs) % 3 == 1:
                rejected = reword(rejected, style, rng)
            pair = PreferencePair(_chat(None, user), chosen, rejected)
        else:
            style = rng.choice(STYLES)
            chosen = sample_description(rng, topic, mood, style=style)
            pair = PreferencePair(_chat(system_prompt(rng, mood, style), user), chosen,
                                  reword(restyle(chosen, "balanced", rng), "mixed", rng))
        if pair.chosen != pair.rejected:
            pairs.append(pair)
    return pairs
