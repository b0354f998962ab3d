"""Judges: a common Judge interface with OpenAI-compatible, local-model and rule-based judges.

Every judge returns, per (question, response), a ``trait_score`` and a ``coherence`` in [0, 100] (None where the
judge gave no number), optionally a ``relevance``, through a content-addressed cache in ``RUN_DIR/data/judgments/``.
"""

from ._base import Judge
from ._cache import (
    JUDGMENT_SCHEMA,
    JUDGMENTS_SUBDIR,
    CachedJudgment,
    JudgeCache,
    JudgeCacheError,
    judgment_key,
    read_judgments,
    text_hash,
)
from ._config import JudgeConfig, build_judge
from ._local import LocalJudge, LocalJudgeWorker, local_judge_actor
from ._openai import PROBE_PROMPT, OpenAIJudge, parse_retry_after
from ._rule import RuleJudge, Scorer
from ._scoring import DEFAULT_MIN_MASS, aggregate_logprob_score, integer_probability_mass, parse_score_token
from ._templates import (
    ALL_METRICS,
    DEFAULT_TEMPLATE_VERSION,
    METRIC_COHERENCE,
    METRIC_RELEVANCE,
    METRIC_TRAIT,
    METRICS,
    TEMPLATE_VERSIONS,
    JudgeTemplate,
    JudgeTemplateError,
    JudgeTemplates,
    default_template,
    load_template,
)
from ._types import (
    JudgeConfigError,
    JudgeCounters,
    JudgeError,
    JudgeInterruptedError,
    JudgeItem,
    JudgeLogprobsUnavailableError,
    JudgePrompt,
    JudgeResult,
    JudgeUnavailableError,
    Judgment,
    TraitDefinition,
    judge_items,
)

__all__ = [
    "ALL_METRICS",
    "DEFAULT_MIN_MASS",
    "DEFAULT_TEMPLATE_VERSION",
    "JUDGMENTS_SUBDIR",
    "JUDGMENT_SCHEMA",
    "METRICS",
    "METRIC_COHERENCE",
    "METRIC_RELEVANCE",
    "METRIC_TRAIT",
    "PROBE_PROMPT",
    "TEMPLATE_VERSIONS",
    "CachedJudgment",
    "Judge",
    "JudgeCache",
    "JudgeCacheError",
    "JudgeConfig",
    "JudgeConfigError",
    "JudgeCounters",
    "JudgeError",
    "JudgeInterruptedError",
    "JudgeItem",
    "JudgeLogprobsUnavailableError",
    "JudgePrompt",
    "JudgeResult",
    "JudgeTemplate",
    "JudgeTemplateError",
    "JudgeTemplates",
    "JudgeUnavailableError",
    "Judgment",
    "LocalJudge",
    "LocalJudgeWorker",
    "OpenAIJudge",
    "RuleJudge",
    "Scorer",
    "TraitDefinition",
    "aggregate_logprob_score",
    "build_judge",
    "default_template",
    "integer_probability_mass",
    "judge_items",
    "judgment_key",
    "load_template",
    "local_judge_actor",
    "parse_retry_after",
    "parse_score_token",
    "read_judgments",
    "text_hash",
]
