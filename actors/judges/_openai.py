"""The logprob judge over any OpenAI-compatible chat completions endpoint (OpenAI, vLLM, SGLang, llama.cpp ...)."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import random
from collections.abc import Sequence
from typing import Any

import openai

from ._base import Judge, ResultCallback
from ._cache import CachedJudgment, JudgeCache
from ._http import (
    PROBE_PROMPT,
    _classify,
    _Failure,
    _Pause,
    _Rejected,
    _resolve_endpoint,
    _Stopped,
    parse_retry_after,
)
from ._scoring import DEFAULT_MIN_MASS, aggregate_logprob_score, integer_probability_mass, parse_score_token
from ._templates import JudgeTemplates
from ._types import JudgeConfigError, JudgeLogprobsUnavailableError, JudgePrompt

logger = logging.getLogger(__name__)

__all__ = ["PROBE_PROMPT", "OpenAIJudge", "parse_retry_after"]

class OpenAIJudge(Judge):
    """Logprob judge over an OpenAI-compatible endpoint: one 1-token completion per (item, metric).

    Each request asks for ``max_tokens=1, temperature=0, logprobs=True, top_logprobs=20``; the score is the
    probability-weighted mean of the integer tokens 0-100 among the top logprobs (``aggregate_logprob_score``).
    The client's own retries are off: this class bounds the requests in flight, retries 429 / 5xx / timeouts /
    connection errors with exponential backoff and jitter (at least as long as Retry-After asks), and raises
    ``JudgeUnavailableError`` once one request failed ``max_consecutive_failures`` times in a row with no
    success anywhere in between (or ``max_attempts`` times in all). A request refused for its content (HTTP
    400/413/422: too long for the context, a content filter) is that item's problem: its score is None with the
    reason, and the judge pauses only when ``max_consecutive_failures`` items in a row are refused.

    Example:
        >>> judge = OpenAIJudge("gpt-4.1-mini", cache=JudgeCache.for_run_dir("runs/r1"))  # doctest: +SKIP
        >>> trait = TraitDefinition("optimism", "Expects good outcomes.")  # doctest: +SKIP
        >>> judge.judge([("How was your day?", "Wonderful!")], trait).judgments  # doctest: +SKIP
        (Judgment(trait_score=87.4, coherence=91.2, ...),)

    Args:
        model: the judge model id as the endpoint names it (also the cache's judge id).
        base_url: the endpoint (``http://host:8000/v1``); default ``OPENAI_BASE_URL`` or the OpenAI API.
        api_key: default ``OPENAI_API_KEY``; self-hosted endpoints may need none.
        max_in_flight: requests open at once.
        request_timeout_s: per-request timeout (a hanging request is abandoned and retried).
        max_consecutive_failures: failed attempts in a row, with no success anywhere meanwhile, that pause the judge.
        max_attempts: attempts for one request in all (even while other requests succeed) before pausing.
        backoff_initial_s, backoff_max_s: exponential backoff bounds; the delay is drawn in [d/2, d] (jitter).
        max_retry_after_s: cap on how long a Retry-After header may make one request wait.
        top_logprobs: how many next-token alternatives to ask for (OpenAI allows up to 20).
        probe: send one probe request before the first real one to fail fast on a model without logprobs.
        retry_rejected: ask again for items the endpoint rejected in an earlier run (they are cached as None).
    """

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        cache: JudgeCache | None = None,
        templates: JudgeTemplates | None = None,
        min_mass: float = DEFAULT_MIN_MASS,
        top_logprobs: int = 20,
        max_in_flight: int = 32,
        request_timeout_s: float = 60.0,
        max_consecutive_failures: int = 8,
        max_attempts: int = 30,
        backoff_initial_s: float = 1.0,
        backoff_max_s: float = 60.0,
        max_retry_after_s: float = 120.0,
        probe: bool = True,
        seed: int | None = None,
        retry_rejected: bool = False,
    ) -> None:
        super().__init__(cache=cache, templates=templates, min_mass=min_mass, retry_rejected=retry_rejected)
        checks = {
            "max_in_flight": (max_in_flight, max_in_flight >= 1, ">= 1"),
            "top_logprobs": (top_logprobs, 1 <= top_logprobs <= 20, "in 1..20"),
            "request_timeout_s": (request_timeout_s, request_timeout_s > 0, "> 0"),
            "max_consecutive_failures": (max_consecutive_failures, max_consecutive_failures >= 1, ">= 1"),
            "max_attempts": (max_attempts, max_attempts >= 1, ">= 1"),
            "backoff_initial_s": (backoff_initial_s, backoff_initial_s >= 0, ">= 0"),
            "backoff_max_s": (backoff_max_s, backoff_max_s >= backoff_initial_s, ">= backoff_initial_s"),
            "max_retry_after_s": (max_retry_after_s, max_retry_after_s >= 0, ">= 0"),
        }
        for name, (value, ok, rule) in checks.items():
            if not ok:
                raise JudgeConfigError(f"judge.{name}: {value!r} is out of range; it must be {rule}")
        self.model = model
        self.judge_id = model
        self.endpoint, self._api_key = _resolve_endpoint(base_url, api_key)
        self.cache_endpoint = self.endpoint.rstrip("/")
        self.drain_timeout_s = min(request_timeout_s, 30.0)
        self.top_logprobs = top_logprobs
        self.max_in_flight = max_in_flight
        self.request_timeout_s = request_timeout_s
        self.max_consecutive_failures = max_consecutive_failures
        self.max_attempts = max_attempts
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.max_retry_after_s = max_retry_after_s
        self.probe = probe
        self._random = random.Random(seed)
        self._successes = 0
        self._rejected_streak = 0  # items refused in a row (400/413/422) with no success in between
        # rejections are recorded only once a later success (or the end of the batch) shows the endpoint works:
        # if the streak turns into a pause they were the endpoint's problem, and a resumed run asks them again
        self._held: list[tuple[JudgePrompt, CachedJudgment]] = []
        self._pauses: set[_Pause] = set()
        self._client: openai.AsyncOpenAI | None = None
        self._semaphore: asyncio.Semaphore | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- connection per event loop -------------------------------------------------------------------------

    def _bind_loop(self) -> tuple[openai.AsyncOpenAI, asyncio.Semaphore]:
        """Client and semaphore belong to one event loop; a call from another loop gets fresh ones."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self._client is None or self._semaphore is None:
            self._client = openai.AsyncOpenAI(
                base_url=self.endpoint, api_key=self._api_key, max_retries=0, timeout=self.request_timeout_s
            )
            self._semaphore = asyncio.Semaphore(self.max_in_flight)
            self._loop = loop
        return self._client, self._semaphore

    def _on_stop(self) -> None:
        for pause in self._pauses:
            pause.stop()

    async def _aclose(self) -> None:
        if self._client is not None and self._loop is asyncio.get_running_loop():
            await self._client.close()
        self._client, self._semaphore, self._loop = None, None, None

    # -- requests -------------------------------------------------------------------------------------------

    def _backoff_s(self, streak: int) -> float:
        ceiling = min(self.backoff_max_s, self.backoff_initial_s * 2 ** (streak - 1))
        return self._random.uniform(ceiling / 2, ceiling)

    async def _complete(self, messages: Sequence[dict[str, str]], pause: _Pause, probe: bool = False) -> Any:
        """One chat completion with retries; raises JudgeUnavailableError when the endpoint keeps failing,
        ``_Rejected`` when it refuses this request's content (never for the probe), ``_Stopped`` on a stop."""
        client, semaphore = self._bind_loop()
        attempt = 0
        streak = 0
        successes_seen = self._successes
        while True:
            attempt += 1
            async with semaphore:
                if pause.error is not None:
                    raise pause.error
                if self._stop_requested and not probe:
                    raise _Stopped
                self.counters.requests += 1
                if attempt > 1:
                    self.counters.retries += 1
                try:
                    # the client's documented raw-request path: same errors and timeouts as
                    # chat.completions.create, without its per-request type transforms and model parsing
                    # (which cost more CPU than the HTTP itself at 64 requests in flight)
                    raw = await client.post(
                        "/chat/completions",
                        cast_to=bytes,
                        body={
                            "model": self.model, "messages": list(messages), "max_tokens": 1, "temperature": 0,
                            "logprobs": True, "top_logprobs": self.top_logprobs,
                        },
                        options={"timeout": self.request_timeout_s},
                    )
                    response = json.loads(raw)
                    if not isinstance(response, dict):
                        raise ValueError(f"expected a JSON object, got {type(response).__name__}")
                except (openai.APIConnectionError, openai.APIStatusError) as error:
                    failure = _classify(error, self.request_timeout_s)
                except ValueError as error:  # includes json.JSONDecodeError: a broken answer, worth a retry
                    failure = _Failure(True, f"invalid JSON in the answer ({error})")
                else:
                    self._successes += 1
                    self._rejected_streak = 0
                    return response
            self.counters.failures += 1
            if pause.error is not None:
                raise pause.error
            if failure.item_rejected and not probe:
                self._rejected_streak += 1
                if self._rejected_streak < self.max_consecutive_failures:
                    raise _Rejected(failure.description)
                error = self._unavailable(
                    f"{self._rejected_streak} requests in a row were rejected with no success in between",
                    failure.description, failure.check,
                )
                raise pause.set(error)
            if not failure.retryable:
                error = self._unavailable("the endpoint rejected a request", failure.description, failure.check)
                raise pause.set(error)
            if self._stop_requested and not probe:
                raise _Stopped
            if self._successes != successes_seen:
                streak, successes_seen = 0, self._successes
            streak += 1
            if streak >= self.max_consecutive_failures or attempt >= self.max_attempts:
                reason = (
                    f"{streak} consecutive failed attempts with no success in between"
                    if streak >= self.max_consecutive_failures
                    else f"one request failed {attempt} times"
                )
                check = (
                    f"that the server at {self.endpoint} is running and reachable, that it serves the model "
                    f"{self.model!r}, the API key, and its rate limits (lower judge.max_in_flight if it keeps "
                    "answering 429)"
                )
                raise pause.set(self._unavailable(reason, failure.description, check))
            delay = self._backoff_s(streak)
            if failure.retry_after_s is not None:
                delay = max(delay, min(failure.retry_after_s, self.max_retry_after_s))
            logger.debug("judge %s: %s; retry %d in %.2f s", self.model, failure.description, attempt, delay)
            await pause.sleep(delay)

    @staticmethod
    def _top_logprobs(response: dict[str, Any]) -> list[tuple[str, float]] | None:
        """``choices[0].logprobs.content[0].top_logprobs`` as (token, logprob) pairs; None when absent."""
        try:
            content = (response.get("choices") or [{}])[0].get("logprobs") or {}
            first_token = (content.get("content") or [None])[0]
            top = (first_token or {}).get("top_logprobs") or []
            pairs = [(str(entry["token"]), float(entry["logprob"])) for entry in top]
        except (AttributeError, KeyError, TypeError, ValueError):
            return None
        pairs = [(token, logprob) for token, logprob in pairs if math.isfinite(logprob)]
        return pairs or None

    async def _start(self) -> None:
        if not self.probe:
            return
        response = await self._complete(({"role": "user", "content": PROBE_PROMPT},), _Pause(), probe=True)
        top = self._top_logprobs(response)
        if top is None:
            raise JudgeLogprobsUnavailableError(
                f"judge model {self.model!r} at {self.endpoint} returned no logprobs for the start-up probe request, "
                "so no logprob score can be computed. Use a model and server that return logprobs for chat "
                "completions: OpenAI non-reasoning models (e.g. gpt-4.1-mini; o-series/gpt-5 reasoning models "
                "return none), vLLM/SGLang with --max-logprobs >= "
                f"{self.top_logprobs}, llama.cpp server with n_probs; or choose judge.kind: local"
            )
        if len(top) < self.top_logprobs:
            logger.warning(
                "judge %s: asked for %d top logprobs, the probe got %d", self.model, self.top_logprobs, len(top)
            )
        numbers = [(parse_score_token(token), math.exp(logprob)) for token, logprob in top]
        numbers = [(value, p) for value, p in numbers if value is not None]
        if numbers and all(value < 10 for value, _ in numbers) and sum(p for _, p in numbers) >= 0.5:
            raise JudgeConfigError(
                f"judge model {self.model!r} at {self.endpoint} answered the start-up probe (a 0-100 question) with "
                f"single digits only ({', '.join(str(v) for v, _ in numbers)}): its tokenizer writes numbers digit by "
                "digit (Qwen2, Llama-2, Mistral), so a one-token logprob score could only say 0-9. Use a judge model "
                "with number tokens (OpenAI models, Llama-3), or judge.kind: local, which scores such models by the "
                "joint probability of the digits; judge.probe: false skips this check"
            )

    async def _judge_one(self, prompt: JudgePrompt, on_result: ResultCallback, pause: _Pause) -> None:
        try:
            response = await self._complete(prompt.messages, pause)
        except _Rejected as rejected:
            logger.debug("judge %s: a %s prompt was rejected: %s", self.model, prompt.metric, rejected.reason)
            self._held.append((prompt, CachedJudgment(score=None, error=rejected.reason)))
            return
        self._release_held(on_result)
        top = self._top_logprobs(response)
        if top is None:
            raise pause.set(self._unavailable(
                "a response came back without logprobs (the start-up probe had them)",
                f"no logprobs in the answer to a {prompt.metric} prompt",
                f"the server's logprobs settings and that {self.model!r} still serves logprobs",
            ))
        usage = response.get("usage") or {}
        on_result(
            prompt,
            CachedJudgment(
                score=aggregate_logprob_score(top, min_mass=self.min_mass),
                integer_mass=integer_probability_mass(top),
                top_logprobs=tuple(top),
                prompt_tokens=int(usage.get("prompt_tokens") or 0),
                completion_tokens=int(usage.get("completion_tokens") or 0),
            ),
        )

    def _release_held(self, on_result: ResultCallback) -> None:
        held, self._held = self._held, []
        for prompt, judgment in held:
            on_result(prompt, judgment)

    async def _judge_prompts(self, prompts: Sequence[JudgePrompt], on_result: ResultCallback) -> None:
        pause = _Pause()
        if self._stop_requested:
            pause.stop()
        queue = iter(prompts)

        async def worker() -> None:
            # workers share one iterator, so a million prompts never become a million tasks; twice the
            # in-flight bound keeps every slot busy while some requests sleep in backoff
            for prompt in queue:
                if pause.event.is_set():
                    return
                try:
                    await self._judge_one(prompt, on_result, pause)
                except _Stopped:
                    return
                except BaseException:
                    pause.event.set()  # no new prompts; requests on the wire still finish
                    raise

        workers = [asyncio.create_task(worker()) for _ in range(min(len(prompts), 2 * self.max_in_flight))]
        # no cancelling on a pause: answers already on the wire are awaited and kept, the rest stop by themselves
        self._pauses.add(pause)
        try:
            outcomes = await asyncio.gather(*workers, return_exceptions=True)
        finally:
            self._pauses.discard(pause)
            if pause.error is None:
                self._release_held(on_result)
            self._held = []
        if pause.error is not None:
            raise pause.error
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
