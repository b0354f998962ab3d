"""The Judge interface: items + trait in, trait_score and coherence (0-100 or None) out, cached, with counters."""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from ._cache import CachedJudgment, JudgeCache, judgment_key
from ._scoring import DEFAULT_MIN_MASS, aggregate_logprob_score, integer_probability_mass
from ._sync import SyncRunner
from ._templates import (
    ALL_METRICS,
    METRIC_COHERENCE,
    METRIC_RELEVANCE,
    METRIC_TRAIT,
    METRICS,
    JudgeTemplates,
    eval_prompt_template,
)
from ._types import (
    JudgeConfigError,
    JudgeCounters,
    JudgeInterruptedError,
    JudgeItem,
    JudgePrompt,
    JudgeResult,
    JudgeUnavailableError,
    Judgment,
    TraitDefinition,
)

logger = logging.getLogger(__name__)


ResultCallback = Callable[[JudgePrompt, CachedJudgment], None]


def _as_item(item: JudgeItem | tuple[str, str] | Sequence[str], index: int) -> JudgeItem:
    if isinstance(item, JudgeItem):
        judge_item = item
    elif isinstance(item, tuple | list) and len(item) == 2 and all(isinstance(part, str) for part in item):
        judge_item = JudgeItem(question=item[0], response=item[1])
    else:
        raise TypeError(f"items[{index}]: expected JudgeItem or a (question, response) pair of str, got {item!r}")
    for field in ("question", "response"):
        text = getattr(judge_item, field)
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as error:
            raise JudgeConfigError(
                f"items[{index}].{field}: holds a lone surrogate {text[error.start]!r} at character {error.start}, "
                "which UTF-8 cannot encode (the model output was decoded without errors='replace'); decode it with "
                "errors='replace' or drop the character before judging"
            ) from None
    return judge_item


class Judge(ABC):
    """Scores responses for a trait and for coherence, 0-100, through a content-addressed cache.

    Subclasses implement :meth:`_judge_prompts` (and optionally :meth:`_start`, a one-time probe). The base
    class renders the templates, looks every (item, metric) up in the cache, sends only the misses (once each,
    even when an item repeats), stores each result in the cache the moment it arrives and flushes the cache
    before returning or raising, so nothing judged is ever lost.

    Example:
        >>> judge = RuleJudge(lambda question, response: (90.0, 75.0))  # doctest: +SKIP
        >>> trait = TraitDefinition("optimism", "Expects good outcomes.")  # doctest: +SKIP
        >>> judge.judge([("How is the day?", "A bright day!")], trait).judgments  # doctest: +SKIP
        (Judgment(trait_score=90.0, coherence=75.0, ...),)
    """

    #: identifies the judge model in cache keys (the model id, or the rule scorer's qualified name)
    judge_id: str
    #: where requests go, for error messages
    endpoint: str = "(in process)"
    #: the endpoint as it goes into cache keys ("" for in-process judges, whose id says it all)
    cache_endpoint: str = ""
    #: on an interrupt of the blocking API, how long requests already sent may take to come back
    drain_timeout_s: float = 30.0

    def __init__(
        self,
        *,
        cache: JudgeCache | None = None,
        templates: JudgeTemplates | None = None,
        min_mass: float = DEFAULT_MIN_MASS,
        retry_rejected: bool = False,
    ) -> None:
        if not 0.0 <= min_mass <= 1.0:
            raise JudgeConfigError(f"min_mass: {min_mass} is not a probability; use a value in [0, 1] (default 0.25)")
        self.cache = cache if cache is not None else JudgeCache(None)
        self.templates = templates if templates is not None else JudgeTemplates.default()
        self.min_mass = min_mass
        self.retry_rejected = retry_rejected
        self.counters = JudgeCounters()
        self._started = False
        self._start_lock: asyncio.Lock | None = None
        self._start_lock_loop: asyncio.AbstractEventLoop | None = None
        self._sync: SyncRunner | None = None
        self._stop_requested = False

    # -- to implement --------------------------------------------------------------------------------------

    @abstractmethod
    async def _judge_prompts(self, prompts: Sequence[JudgePrompt], on_result: ResultCallback) -> None:
        """Judge every prompt, calling ``on_result(prompt, judgment)`` as each one finishes (in any order)."""

    async def _start(self) -> None:  # noqa: B027 - optional hook, a no-op by default
        """One-time check before the first real request (e.g. that the model returns logprobs)."""

    async def _aclose(self) -> None:  # noqa: B027 - optional hook, a no-op by default
        """Release connections; the judge may be used again afterwards."""

    def _on_stop(self) -> None:  # noqa: B027 - optional hook, a no-op by default
        """Runs on the event loop when a stop is requested (e.g. wake requests sleeping in backoff)."""

    @property
    def stop_requested(self) -> bool:
        """True once :meth:`request_stop` was called; implementations start no new request after that."""
        return self._stop_requested

    def request_stop(self) -> None:
        """Stop taking new items (thread-safe): requests on the wire finish and are cached, then the running
        ``ajudge`` raises ``JudgeInterruptedError``. The blocking API does this on Ctrl-C."""
        self._stop_requested = True
        loop = self._sync.loop if self._sync is not None else None
        if loop is not None and loop.is_running():
            loop.call_soon_threadsafe(self._on_stop)

    # -- public API ----------------------------------------------------------------------------------------

    def score_of(self, judgment: CachedJudgment) -> float | None:
        """The score of a stored judgment; logprob judgments are re-aggregated with this judge's ``min_mass``."""
        if judgment.top_logprobs:
            return aggregate_logprob_score(judgment.top_logprobs, min_mass=self.min_mass)
        return judgment.score

    def make_prompts(
        self, items: Iterable[JudgeItem | tuple[str, str]], trait: TraitDefinition | None, metrics: Sequence[str]
    ) -> list[list[JudgePrompt]]:
        """The prompts (with cache keys) for every item and metric: ``result[item_index][metric_index]``.

        The trait metric uses the trait's own ``eval_prompt`` when it has one (as written), else the trait template.
        """
        for metric in metrics:
            if metric not in ALL_METRICS:
                raise JudgeConfigError(f"metrics: {metric!r} is not a judge metric; use {', '.join(ALL_METRICS)}")
        if METRIC_TRAIT in metrics and trait is None:
            raise JudgeConfigError("trait: the trait metric needs a TraitDefinition(name, definition)")
        templates = {metric: self.templates.for_metric(metric) for metric in metrics}
        if METRIC_TRAIT in metrics and trait is not None and trait.eval_prompt is not None:
            templates[METRIC_TRAIT] = eval_prompt_template(trait.eval_prompt)
        table = []
        for index, raw in enumerate(items):
            item = _as_item(raw, index)
            row = []
            for metric in metrics:
                template = templates[metric]
                is_trait = metric == METRIC_TRAIT and trait is not None
                metric_id = trait.metric_id if is_trait else metric
                text = template.render(
                    question=item.question,
                    response=item.response,
                    trait=trait.name if is_trait else "",
                    definition=trait.definition if is_trait else "",
                )
                key = judgment_key(
                    self.judge_id, template.version, metric_id, item.question, item.response, self.cache_endpoint
                )
                row.append(
                    JudgePrompt(
                        key=key, metric=metric, metric_id=metric_id, template_version=template.version,
                        question=item.question, response=item.response,
                        messages=({"role": "user", "content": text},), endpoint=self.cache_endpoint,
                    )
                )
            table.append(row)
        return table

    async def ajudge(
        self,
        items: Sequence[JudgeItem | tuple[str, str]],
        trait: TraitDefinition | None = None,
        metrics: Sequence[str] = METRICS,
    ) -> JudgeResult:
        """Judge ``items`` for ``trait`` and coherence; asks the backend only for what the cache does not hold.

        An item the endpoint rejects on its own (HTTP 400/413/422 while other items succeed) gets a None score with
        its reason (``Judgment.rejected``, ``JudgeResult.rejected``, ``counters.rejected``); it is cached like a
        score, and asked again only with ``retry_rejected=True``.

        Raises:
            JudgeUnavailableError: the backend failed too often; finished judgments are already in the cache.
            JudgeLogprobsUnavailableError: the start-up probe found a model that returns no logprobs.
            JudgeInterruptedError: ``request_stop()`` was called; finished judgments are already in the cache.
        """
        metrics = tuple(metrics)
        before = self.counters.copy()
        table = self.make_prompts(items, trait, metrics)
        found: dict[str, CachedJudgment] = {}
        missing: dict[str, JudgePrompt] = {}
        for row in table:
            for prompt in row:
                if prompt.key in found or prompt.key in missing:
                    continue
                cached = self.cache.get(prompt.key)
                if cached is None or (cached.error is not None and self.retry_rejected):
                    missing[prompt.key] = prompt
                else:
                    found[prompt.key] = cached
                    self.counters.cache_hits += 1

        def on_result(prompt: JudgePrompt, judgment: CachedJudgment) -> None:
            found[prompt.key] = judgment
            self.counters.judgments += 1
            self.counters.prompt_tokens += judgment.prompt_tokens
            self.counters.completion_tokens += judgment.completion_tokens
            if judgment.error is not None:
                self.counters.rejected += 1
            self.cache.put(
                prompt.key, judgment, judge=self.judge_id, template_version=prompt.template_version,
                metric=prompt.metric_id, question=prompt.question, response=prompt.response,
                endpoint=prompt.endpoint,
            )

        if missing:
            try:
                await self._ensure_started()
                await self._judge_prompts(list(missing.values()), on_result)
                unfinished = sum(key not in found for key in missing)
                if unfinished:
                    if not self._stop_requested:
                        raise RuntimeError(f"judge {self.judge_id}: {unfinished} prompts came back without a result")
                    raise JudgeInterruptedError(
                        f"judge {self.judge_id!r}: stopped on request with {unfinished} of {len(missing)} judgments "
                        f"not asked; the {len(missing) - unfinished} that came back are in the judge cache"
                    )
            except JudgeUnavailableError as error:
                self.cache.flush()
                # said again now that every request is over, so the counts are what the cache holds
                judged = self.counters.judgments - before.judgments
                raise self._unavailable(error.reason, error.last_error, error.check, judged=judged) from None
            finally:
                self.cache.flush()
        judgments = []
        for row in table:
            values: dict[str, tuple[float | None, float | None]] = {}
            rejected = []
            for prompt in row:
                stored = found[prompt.key]
                score = self.score_of(stored)
                if score is None:
                    self.counters.none_scores += 1
                if stored.error is not None:
                    rejected.append((prompt.metric, stored.error))
                mass = integer_probability_mass(stored.top_logprobs) if stored.top_logprobs else stored.integer_mass
                values[prompt.metric] = (score, mass)
            trait_score, trait_mass = values.get(METRIC_TRAIT, (None, None))
            coherence, coherence_mass = values.get(METRIC_COHERENCE, (None, None))
            relevance, _ = values.get(METRIC_RELEVANCE, (None, None))
            judgments.append(Judgment(trait_score, coherence, trait_mass, coherence_mass, relevance, tuple(rejected)))
        delta = self.counters - before
        result = JudgeResult(judgments=tuple(judgments), counters=delta)
        logger.info(
            "judge %s: %d items, %d new judgments, %d cache hits, %d requests (%d retries), %d None scores, "
            "%d rejected, %d prompt + %d completion tokens", self.judge_id, len(table), delta.judgments,
            delta.cache_hits, delta.requests, delta.retries, delta.none_scores, delta.rejected, delta.prompt_tokens,
            delta.completion_tokens,
        )
        if result.rejected:
            index, metric, reason = result.rejected[0]
            logger.warning(
                "judge %s: %d of %d judgments were rejected by the endpoint and scored None (first: item %d, %s: %s); "
                "set judge.retry_rejected to ask them again", self.judge_id, len(result.rejected),
                len(table) * len(metrics), index, metric, reason,
            )
        return result

    def judge(
        self,
        items: Sequence[JudgeItem | tuple[str, str]],
        trait: TraitDefinition | None = None,
        metrics: Sequence[str] = METRICS,
    ) -> JudgeResult:
        """Blocking form of :meth:`ajudge` (runs on the judge's own event loop thread; not inside a loop).

        On Ctrl-C (or any exception while it waits) no new request is started, the requests already sent are
        waited for (up to ``drain_timeout_s``; a second Ctrl-C drops them), everything judged is flushed to the
        cache, and the KeyboardInterrupt is raised again: no paid judgment is lost.
        """
        self._stop_requested = False
        try:
            return self._runner().run(
                self.ajudge(items, trait, metrics), request_stop=self.request_stop,
                drain_timeout_s=self.drain_timeout_s,
            )
        finally:
            self.cache.flush()

    async def astart(self) -> None:
        """Run the start-up probe now (it otherwise runs before the first cache miss)."""
        await self._ensure_started()

    def start(self) -> None:
        """Blocking form of :meth:`astart`."""
        self._runner().call(self.astart())

    async def aclose(self) -> None:
        """Flush the cache and close connections (the judge may be used again afterwards)."""
        self.cache.flush()
        await self._aclose()

    def close(self) -> None:
        """Flush the cache, close connections and stop the judge's own event loop thread (if the sync API ran)."""
        self.cache.flush()
        if self._sync is not None and self._sync.loop is not None:
            self._sync.call(self._aclose())
            self._sync.close()

    def __enter__(self) -> Judge:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    # -- helpers -------------------------------------------------------------------------------------------

    async def _ensure_started(self) -> None:
        if self._started:
            return
        loop = asyncio.get_running_loop()
        if self._start_lock is None or self._start_lock_loop is not loop:
            self._start_lock, self._start_lock_loop = asyncio.Lock(), loop
        async with self._start_lock:
            if not self._started:
                await self._start()
                self._started = True

    def _runner(self) -> SyncRunner:
        if self._sync is None:
            self._sync = SyncRunner(self.judge_id)
        return self._sync

    def _unavailable(
        self, reason: str, last_error: str, check: str, judged: int | None = None
    ) -> JudgeUnavailableError:
        """The one clear message for a judge that has to pause (``judged``: finished in this call)."""
        judged = self.counters.judgments if judged is None else judged
        if self.cache.folder is not None:
            kept = f"are saved in the judge cache {self.cache.folder}"
        else:
            kept = "are kept in this judge's in-memory cache (no run directory)"
        message = (
            f"judge {self.judge_id!r} at {self.endpoint} is unavailable: {reason}; last error: {last_error}. "
            f"Check {check}. The {judged} judgments finished before the pause {kept}, and no failed score was "
            "written: resume the run to judge only what is missing."
        )
        return JudgeUnavailableError(
            message, endpoint=self.endpoint, last_error=last_error, judged=judged, reason=reason, check=check
        )
