"""HTTP plumbing of the OpenAI-compatible judge: failure classification, Retry-After, the pause, endpoint resolution."""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import os
import time
from dataclasses import dataclass
from typing import Any

import openai

from ._types import JudgeConfigError, JudgeUnavailableError

OPENAI_DEFAULT_BASE_URL = "https://api.openai.com/v1"

PROBE_PROMPT = "On a scale from 0 to 100, how warm is a sunny summer afternoon? Reply with one integer only."
"""The start-up probe's question: any answer will do, what is checked is that logprobs come back."""

_RETRYABLE_STATUS = frozenset({408, 409, 425, 429})
# a request the endpoint refuses for its content (too long for the context, a content filter, unprocessable):
# the item's problem while other items succeed, the endpoint's when every item gets it
_ITEM_STATUS = frozenset({400, 413, 422})

_STATUS_HINTS = {
    400: "that the endpoint accepts chat completions with max_tokens=1, logprobs=true and top_logprobs (vLLM: "
    "--max-logprobs must be >= top_logprobs) and that the prompts fit the model's context",
    413: "that the prompts fit the endpoint's request size limit",
    401: "the API key (judge.api_key in the config or the OPENAI_API_KEY environment variable)",
    403: "that the API key may use this model",
    404: "the model name (judge.model) and the base_url (it usually ends in /v1)",
    422: "that the endpoint accepts logprobs=true and top_logprobs for chat completions",
}


class _Rejected(Exception):
    """The endpoint refused this one request (HTTP 400/413/422): the item gets a None score with this reason."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _Stopped(Exception):
    """A stop was requested: the request is not sent (again)."""


class _Pause:
    """Shared by the requests of one call: once one request pauses the judge (or a stop is requested), no request
    starts another attempt.

    Requests already on the wire are left to finish (and their judgments kept); requests waiting to retry stop.
    """

    def __init__(self) -> None:
        self.error: JudgeUnavailableError | None = None
        self.event = asyncio.Event()

    def set(self, error: JudgeUnavailableError) -> JudgeUnavailableError:
        if self.error is None:
            self.error = error
            self.event.set()
        return error

    def stop(self) -> None:
        """No new attempts, without an error (the caller asked to stop)."""
        self.event.set()

    async def sleep(self, delay_s: float) -> None:
        """Sleep ``delay_s``, or less if the judge pauses meanwhile."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.event.wait(), timeout=delay_s)


@dataclass(frozen=True)
class _Failure:
    retryable: bool
    description: str
    retry_after_s: float | None = None
    check: str = ""
    item_rejected: bool = False  # HTTP 400/413/422: probably this item's problem


def parse_retry_after(headers: Any) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``Retry-After`` (seconds or an HTTP date); None if absent."""
    if headers is None:
        return None
    milliseconds = headers.get("retry-after-ms")
    if milliseconds:
        try:
            return max(0.0, float(milliseconds) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _classify(error: Exception, timeout_s: float) -> _Failure:
    if isinstance(error, openai.APITimeoutError):
        return _Failure(True, f"request timed out after {timeout_s:g} s")
    if isinstance(error, openai.APIConnectionError):
        cause = error.__cause__ or error
        return _Failure(True, f"connection error ({type(cause).__name__}: {cause})")
    if isinstance(error, openai.APIStatusError):
        status = error.status_code
        description = f"HTTP {status}: {str(error.message)[:300]}"
        retry_after = parse_retry_after(error.response.headers if error.response is not None else None)
        if status in _RETRYABLE_STATUS or status >= 500:
            return _Failure(True, description, retry_after)
        hint = _STATUS_HINTS.get(status, "the request the endpoint rejected")
        return _Failure(False, description, None, hint, item_rejected=status in _ITEM_STATUS)
    raise error


def _resolve_endpoint(base_url: str | None, api_key: str | None) -> tuple[str, str]:
    endpoint = base_url or os.environ.get("OPENAI_BASE_URL") or OPENAI_DEFAULT_BASE_URL
    key = api_key or os.environ.get("OPENAI_API_KEY")
    if not key:
        if endpoint.rstrip("/") == OPENAI_DEFAULT_BASE_URL:
            raise JudgeConfigError(
                "judge: no API key for the OpenAI API; set the OPENAI_API_KEY environment variable or judge.api_key "
                "(or point judge.base_url / OPENAI_BASE_URL at an OpenAI-compatible server)"
            )
        key = "no-key"  # self-hosted servers (vLLM, llama.cpp) usually accept any key
    return endpoint, key
