"""A real HTTP server on 127.0.0.1 speaking the OpenAI chat completions API with logprobs, for judge tests.

It answers ``POST /v1/chat/completions`` with one token and its ``top_logprobs``, from a deterministic next-token
distribution (by default derived from a hash of the messages; tests may plug in a tiny model's distribution),
and injects failures on demand: 429 with Retry-After, 5xx, hanging requests, a server that dies after N answers,
and models that return no logprobs. It counts everything it sees.

Run it alone (the benchmark does): ``python tests/judges/judge_server.py --port 0`` prints ``PORT <n>``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import math
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from aiohttp import web

Distribution = Callable[[Sequence[dict], int], list[tuple[str, float]]]
"""``distribution(messages, top_logprobs) -> [(token, logprob), ...]``, most likely first."""

_FILLER = ["The", " I", "\n", "Score", ":", "**", " The", "It", "A", "This", " score", "Based", "-", "#", " a"]


def hashed_distribution_probabilities(messages: Sequence[dict]) -> dict[str, float]:
    """The default distribution as probabilities: a function of the messages only (deterministic).

    Half the mass on a center integer c, 0.2 on (c+7) % 101, 0.1 on " " + (c+50) % 101 (leading space), and
    0.2 on non-number tokens; the tests compute the expected score from this by hand.
    """
    digest = hashlib.sha256(json.dumps(list(messages), sort_keys=True).encode()).digest()
    center = int.from_bytes(digest[:4], "big") % 101
    second, third = (center + 7) % 101, (center + 50) % 101
    probabilities = {str(center): 0.5}
    probabilities[str(second)] = probabilities.get(str(second), 0.0) + 0.2
    probabilities[f" {third}"] = 0.1
    probabilities["The"] = 0.15
    probabilities["\n"] = 0.05
    return probabilities


def hashed_distribution(messages: Sequence[dict], top_logprobs: int) -> list[tuple[str, float]]:
    """``hashed_distribution_probabilities`` as logprobs, padded with unlikely filler tokens to ``top_logprobs``."""
    pairs = [(token, math.log(p)) for token, p in hashed_distribution_probabilities(messages).items()]
    pairs.sort(key=lambda pair: -pair[1])
    for i, token in enumerate(_FILLER):
        if len(pairs) >= top_logprobs:
            break
        pairs.append((token, -12.0 - i))
    return pairs[:top_logprobs]


def expected_hashed_score(messages: Sequence[dict]) -> float:
    """The hand computation of the score the default distribution must give (mean over integer tokens)."""
    probabilities = hashed_distribution_probabilities(messages)
    numbers = {token: p for token, p in probabilities.items() if token.strip().isdigit()}
    return sum(int(token) * p for token, p in numbers.items()) / sum(numbers.values())


@dataclass(frozen=True)
class Failure:
    """One injected failure, applied to the next incoming chat request."""

    kind: str  # "status" | "hang" | "garbage"
    status: int = 500
    retry_after: str | None = None

    @classmethod
    def rate_limited(cls, retry_after: str | None = "1") -> Failure:
        return cls("status", 429, retry_after)

    @classmethod
    def server_error(cls, status: int = 500) -> Failure:
        return cls("status", status)

    @classmethod
    def hang(cls) -> Failure:
        return cls("hang")

    @classmethod
    def garbage(cls) -> Failure:
        """A 200 answer whose body is not JSON (a proxy's error page, a truncated body)."""
        return cls("garbage", 200)


class JudgeTestServer:
    """The server; ``start()`` binds 127.0.0.1 (a free port first, the same port on restart).

    Example:
        >>> with JudgeTestServer() as server:  # doctest: +SKIP
        ...     OpenAIJudge("judge-model", base_url=server.base_url, api_key="test")
    """

    def __init__(
        self,
        distribution: Distribution = hashed_distribution,
        *,
        port: int = 0,
        latency_s: float = 0.0,
        hang_s: float = 30.0,
        models_without_logprobs: Sequence[str] = (),
    ) -> None:
        self.distribution = distribution
        self.port = port
        self.latency_s = latency_s
        self.hang_s = hang_s
        self.models_without_logprobs = set(models_without_logprobs)
        self._lock = threading.Lock()
        self._failures: list[Failure] = []
        self._die_after: int | None = None
        self._rejections: dict[str, tuple[int, str]] = {}
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="judge-test-server", daemon=True)
        self._thread.start()
        self._runner: web.AppRunner | None = None
        self._stopping: asyncio.Event | None = None
        self.reset_counters()

    # -- counters ---------------------------------------------------------------------------------------------

    def reset_counters(self) -> None:
        with self._lock:
            self.attempts = 0  # chat requests received, whatever happened to them
            self.completed = 0  # answered 200
            self.statuses: Counter[int] = Counter()
            self.hung = 0
            self.garbage = 0
            self.in_flight = 0
            self.max_in_flight = 0
            self.served: list[str] = []  # the user message of every 200 answer, in order
            self.last_body: dict | None = None

    def served_counts(self) -> Counter[str]:
        with self._lock:
            return Counter(self.served)

    # -- control ----------------------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def inject(self, *failures: Failure) -> None:
        """Apply these failures, in order, to the next incoming chat requests."""
        with self._lock:
            self._failures.extend(failures)

    def reject_containing(
        self, marker: str, status: int = 400, message: str = "This model's maximum context length is 4096 tokens"
    ) -> None:
        """Answer every request whose last message contains ``marker`` with ``status`` (like vLLM's context-length
        400 or a provider's content filter): the item's problem, every time it is sent."""
        with self._lock:
            self._rejections[marker] = (status, message)

    def die_after(self, completed: int) -> None:
        """Shut the server down (port closed, hanging requests dropped) once ``completed`` answers were sent."""
        with self._lock:
            self._die_after = completed

    def start(self) -> JudgeTestServer:
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=30)
        return self

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(timeout=30)

    @property
    def running(self) -> bool:
        return self._runner is not None

    def close(self) -> None:
        self.stop()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    def __enter__(self) -> JudgeTestServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    async def _start(self) -> None:
        if self._runner is not None:
            return
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/v1/models", self._models)
        runner = web.AppRunner(app, shutdown_timeout=0.5, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", self.port, reuse_address=True, backlog=1024)
        await site.start()
        self.port = runner.addresses[0][1]
        self._stopping = asyncio.Event()
        self._runner = runner
        with self._lock:
            self._die_after = None

    async def _stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is None:
            return
        assert self._stopping is not None
        self._stopping.set()
        await runner.cleanup()

    # -- handlers ---------------------------------------------------------------------------------------------

    async def _models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": "judge-model", "object": "model"}]})

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        with self._lock:
            self.attempts += 1
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            self.last_body = body
            failure = self._failures.pop(0) if self._failures else None
        try:
            return await self._answer(request, body, failure)
        finally:
            with self._lock:
                self.in_flight -= 1

    async def _answer(self, request: web.Request, body: dict, failure: Failure | None) -> web.StreamResponse:
        stopping = self._stopping
        if failure is not None and failure.kind == "hang":
            with self._lock:
                self.hung += 1
            if stopping is not None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stopping.wait(), timeout=self.hang_s)
            # the client gave up long ago: never count a hung request as served
            return web.Response(status=504, text="hung request abandoned")
        if failure is not None and failure.kind == "garbage":
            with self._lock:
                self.garbage += 1
            return web.Response(status=200, text="<html>upstream error</html>", content_type="application/json")
        if failure is not None and failure.kind == "status":
            with self._lock:
                self.statuses[failure.status] += 1
            headers = {"Retry-After": failure.retry_after} if failure.retry_after is not None else {}
            error = {"error": {"message": f"injected failure {failure.status}", "type": "test", "code": None}}
            return web.json_response(error, status=failure.status, headers=headers)
        messages = body.get("messages") or []
        last = str(messages[-1].get("content", "")) if messages else ""
        with self._lock:
            rejection = next((rule for marker, rule in self._rejections.items() if marker in last), None)
            if rejection is not None:
                self.statuses[rejection[0]] += 1
        if rejection is not None:
            error = {"error": {"message": rejection[1], "type": "BadRequestError", "code": rejection[0]}}
            return web.json_response(error, status=rejection[0])
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        model = body.get("model", "")
        top_n = int(body.get("top_logprobs") or 0)
        pairs = self.distribution(messages, max(top_n, 1))
        token, logprob = pairs[0]
        logprobs = None
        if body.get("logprobs") and model not in self.models_without_logprobs:
            top = [{"token": t, "logprob": lp, "bytes": list(t.encode())} for t, lp in pairs[:top_n]]
            entry = {"token": token, "logprob": logprob, "bytes": list(token.encode()), "top_logprobs": top}
            logprobs = {"content": [entry], "refusal": None}
        prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in messages)
        answer = {
            "id": f"chatcmpl-{self.completed}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": token},
                    "finish_reason": "length",
                    "logprobs": logprobs,
                }
            ],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": 1, "total_tokens": prompt_tokens + 1},
        }
        response = web.json_response(answer)
        # count an answer as served only once it is written, so "served" is exactly what clients could read
        await response.prepare(request)
        await response.write_eof()
        with self._lock:
            self.completed += 1
            self.statuses[200] += 1
            self.served.append(str(messages[-1].get("content", "")) if messages else "")
            die = self._die_after is not None and self.completed >= self._die_after
            if die:
                self._die_after = None
        if die:
            asyncio.get_running_loop().call_soon(lambda: asyncio.ensure_future(self._stop()))
        return response


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency-ms", type=float, default=0.0, help="simulated server latency per request")
    args = parser.parse_args()
    server = JudgeTestServer(port=args.port, latency_s=args.latency_ms / 1000.0).start()
    print(f"PORT {server.port}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        server.close()


if __name__ == "__main__":
    main()
