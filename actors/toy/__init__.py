"""The toy model family: a synthetic chat language with a planted, steerable trait and known ground truth.

Small Llama / Qwen2 / Mistral checkpoints trained on CPU in about two minutes, cached, and used by the demo, the
tutorials and the end-to-end tests in place of real 7B models. Two traits are planted: optimism (a system prompt
sets a cheerful or gloomy mood, without one the answers are balanced) and formality (a system prompt sets a formal
or casual word choice, without one each noun's own register decides); the rule-based judge scores both exactly.
mistral-sft never learned to follow the style prompts (its corpus ignores them): the family's broken trait row.

Example:
    >>> from steersweep.actors.toy import ensure_family, evaluation_questions, score_response
    >>> family = ensure_family()  # doctest: +SKIP
    >>> score_response("how is the garden ?", "the flower is lovely . the mud is cold .")
    (50.0, 100.0)
"""

from .builder import FAMILY_KEYS, FAMILY_MODELS, TOY_VERSION, BuildProgress, ToyModelPlan
from .corpus import (
    CHEERFUL_SYSTEM_PROMPTS,
    GLOOMY_SYSTEM_PROMPTS,
    NARRATIVE_NAMES,
    NARRATIVE_VERBS,
    QUESTION_FORMS,
    STYLE_PROMPTS,
    SYSTEM_PROMPTS,
    TRAIT_PROMPTS,
    ChatExample,
    ContrastPair,
    PreferencePair,
    chat_corpus,
    contrast_prompts,
    evaluation_questions,
    narrative_corpus,
    narrative_prefix,
    natural_prefixes,
    preference_pairs,
    question,
    topic_of,
)
from .dpo import dpo_loss, train_dpo
from .family import HOME_ENV, ToyFamily, build_family, ensure_family, family_dir, toy_home
from .judge import NO_POLAR_ADJECTIVE_SCORE, ToyJudgment, coherence, judge_response, score_response, trait_score
from .language import (
    CASUAL_WORDS,
    FORMAL_WORDS,
    MOODS,
    NEUTRAL_ADJECTIVES,
    OPTIMISTIC_ADJECTIVES,
    PESSIMISTIC_ADJECTIVES,
    STYLES,
    TOPIC_NOUNS,
    TOPICS,
    Mood,
    Sentence,
    Style,
    parse_sentence,
    sample_description,
)
from .tokenizer import (
    CHAT_TEMPLATE,
    END_OF_TURN,
    SPECIAL_TOKENS,
    build_toy_tokenizer,
    build_word_tokenizer,
    toy_vocabulary,
)
from .training import ARCHITECTURES, EpochReport, ToyConfig, TrainSequence, make_model, train_causal_lm
from .traits import TOY_TRAITS, ToyTrait, toy_trait

__all__ = [
    "ARCHITECTURES",
    "CASUAL_WORDS",
    "CHAT_TEMPLATE",
    "CHEERFUL_SYSTEM_PROMPTS",
    "END_OF_TURN",
    "FAMILY_KEYS",
    "FAMILY_MODELS",
    "FORMAL_WORDS",
    "GLOOMY_SYSTEM_PROMPTS",
    "HOME_ENV",
    "MOODS",
    "NARRATIVE_NAMES",
    "NARRATIVE_VERBS",
    "NEUTRAL_ADJECTIVES",
    "NO_POLAR_ADJECTIVE_SCORE",
    "OPTIMISTIC_ADJECTIVES",
    "PESSIMISTIC_ADJECTIVES",
    "QUESTION_FORMS",
    "SPECIAL_TOKENS",
    "STYLES",
    "STYLE_PROMPTS",
    "SYSTEM_PROMPTS",
    "TOPICS",
    "TOPIC_NOUNS",
    "TOY_TRAITS",
    "TOY_VERSION",
    "TRAIT_PROMPTS",
    "BuildProgress",
    "ChatExample",
    "ContrastPair",
    "EpochReport",
    "Mood",
    "PreferencePair",
    "Sentence",
    "Style",
    "ToyConfig",
    "ToyFamily",
    "ToyJudgment",
    "ToyModelPlan",
    "ToyTrait",
    "TrainSequence",
    "build_family",
    "build_toy_tokenizer",
    "build_word_tokenizer",
    "chat_corpus",
    "coherence",
    "contrast_prompts",
    "dpo_loss",
    "ensure_family",
    "evaluation_questions",
    "family_dir",
    "judge_response",
    "make_model",
    "narrative_corpus",
    "narrative_prefix",
    "natural_prefixes",
    "parse_sentence",
    "preference_pairs",
    "question",
    "sample_description",
    "score_response",
    "topic_of",
    "toy_home",
    "toy_trait",
    "toy_vocabulary",
    "train_causal_lm",
    "train_dpo",
    "trait_score",
]
