"""The rule judge: a deterministic scorer function (the toy family's ``score_response``) behind the Judge interface."""

from __future__ import annotations

import importlib
import inspect
import math
from collections.abc import Callable, Sequence

from ._base import Judge, ResultCallback
from ._cache import CachedJudgment, JudgeCache
from ._templates import METRIC_TRAIT
from ._types import JudgeConfigError, JudgePrompt

Scorer = Callable[[str, str], tuple[float, float]]
"""``scorer(question, response) -> (trait_score, coherence)``, both in [0, 100]; a scorer with a ``trait``
parameter is also given the judged trait's name (the toy family scores optimism and formality)."""

DEFAULT_SCORER = "steersweep.actors.toy:score_response"
# where the toy family defines it, should the package not re-export it
_DEFAULT_SCORER_FALLBACK = "steersweep.actors.toy.judge:score_response"


def _import_scorer(reference: str) -> Scorer:
    module_name, _, attribute = reference.partition(":")
    try:
        try:
            scorer = getattr(importlib.import_module(module_name), attribute)
        except AttributeError:
            if reference != DEFAULT_SCORER:
                raise
            module_name, _, attribute = _DEFAULT_SCORER_FALLBACK.partition(":")
            scorer = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as error:
        raise JudgeConfigError(
            f"rule judge: cannot import the scorer {reference!r} ({error}); give a function "
            "scorer(question, response) -> (trait_score, coherence) as 'module:function'"
        ) from error
    if not callable(scorer):
        raise JudgeConfigError(f"rule judge: {reference!r} is not callable")
    return scorer


def _takes_trait(scorer: Scorer) -> bool:
    try:
        return "trait" in inspect.signature(scorer).parameters
    except (TypeError, ValueError):
        return False


def _trait_name(prompt: JudgePrompt) -> str | None:
    """The trait's name from a trait prompt's metric id (``trait:<name>:<digest>``), None for coherence."""
    if prompt.metric != METRIC_TRAIT:
        return None
    return prompt.metric_id.split(":")[1] if prompt.metric_id.count(":") >= 2 else None


def _check_score(value: object, what: str, scorer_id: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise JudgeConfigError(f"rule judge {scorer_id}: returned {what}={value!r}; it must be a number in [0, 100]")
    if not 0.0 <= float(value) <= 100.0:
        raise JudgeConfigError(f"rule judge {scorer_id}: returned {what}={value!r}, outside [0, 100]")
    return float(value)


class RuleJudge(Judge):
    """Judges with a rule-based scorer; same interface, cache and counters as the LLM judges.

    A scorer without a ``trait`` parameter knows its one trait, so the trait definition only keys the cache; one
    with it gets the trait's name (from the metric id) and scores that trait. By default the toy family's
    ``steersweep.actors.toy.score_response`` is imported (lazily, at the first judgment).

    Example:
        >>> judge = RuleJudge(lambda question, response: (100.0 if "happy" in response else 0.0, 80.0))
        >>> from steersweep.actors.judges import TraitDefinition
        >>> trait = TraitDefinition("happiness", "Expresses joy.")
        >>> judge.judge([("How are you?", "very happy")], trait).judgments[0].trait_score
        100.0

    Args:
        scorer: ``scorer(question, response) -> (trait_score, coherence)``, or ``"module:function"``.
        name: the judge id in cache keys; default ``rule:<module>.<function>``.
    """

    def __init__(
        self, scorer: Scorer | str | None = None, *, name: str | None = None, cache: JudgeCache | None = None
    ) -> None:
        super().__init__(cache=cache)
        self._scorer_ref = scorer if scorer is not None else DEFAULT_SCORER
        self._scorer: Scorer | None = self._scorer_ref if callable(self._scorer_ref) else None
        if name is None:
            if callable(self._scorer_ref):
                name = f"rule:{self._scorer_ref.__module__}.{getattr(self._scorer_ref, '__qualname__', 'scorer')}"
            else:
                name = f"rule:{str(self._scorer_ref).replace(':', '.')}"
        self.judge_id = name
        self.endpoint = "rule scorer (in process)"

    @property
    def scorer(self) -> Scorer:
        if self._scorer is None:
            self._scorer = _import_scorer(str(self._scorer_ref))
        return self._scorer

    async def _judge_prompts(self, prompts: Sequence[JudgePrompt], on_result: ResultCallback) -> None:
        scored: dict[tuple[str, str, str | None], tuple[float | None, float | None]] = {}
        takes_trait = _takes_trait(self.scorer)
        for prompt in prompts:
            trait = _trait_name(prompt) if takes_trait else None
            pair = (prompt.question, prompt.response, trait)
            if pair not in scored:
                self.counters.requests += 1
                result = (self.scorer(prompt.question, prompt.response, trait=trait) if trait
                          else self.scorer(prompt.question, prompt.response))
                if not isinstance(result, tuple | list) or len(result) != 2:
                    raise JudgeConfigError(
                        f"rule judge {self.judge_id}: returned {result!r}; it must return (trait_score, coherence)"
                    )
                scored[pair] = (
                    _check_score(result[0], "trait_score", self.judge_id),
                    _check_score(result[1], "coherence", self.judge_id),
                )
            trait_score, coherence = scored[pair]
            on_result(prompt, CachedJudgment(score=trait_score if prompt.metric == METRIC_TRAIT else coherence))
