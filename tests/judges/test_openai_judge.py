"""The OpenAI-compatible judge against a real HTTP server on 127.0.0.1 (Must show 2 and 3)."""

from __future__ import annotations

import asyncio
import time

import pytest
from judge_helpers import FAST_RETRY, items
from judge_server import Failure, JudgeTestServer, expected_hashed_score

from steersweep.actors.judges import (
    JUDGMENTS_SUBDIR,
    PROBE_PROMPT,
    JudgeCache,
    JudgeConfigError,
    JudgeLogprobsUnavailableError,
    JudgeUnavailableError,
    OpenAIJudge,
    read_judgments,
)


def make_judge(server: JudgeTestServer, **options) -> OpenAIJudge:
    settings = {**FAST_RETRY, **options}
    return OpenAIJudge("judge-model", base_url=server.base_url, api_key="test-key", **settings)


def expected_scores(judge: OpenAIJudge, pairs, trait) -> list[tuple[float, float]]:
    """Hand computation of each item's (trait, coherence) score from the distribution the server serves."""
    table = judge.make_prompts(pairs, trait, ("trait", "coherence"))
    return [(expected_hashed_score(row[0].messages), expected_hashed_score(row[1].messages)) for row in table]


def assert_scores(result, expected):
    assert len(result.judgments) == len(expected)
    for judgment, (trait_score, coherence) in zip(result.judgments, expected, strict=True):
        assert judgment.trait_score == pytest.approx(trait_score, abs=1e-9)
        assert judgment.coherence == pytest.approx(coherence, abs=1e-9)
        assert judgment.trait_mass == pytest.approx(0.8) and judgment.coherence_mass == pytest.approx(0.8)


def test_scores_equal_hand_computation_and_requests_follow_the_contract(judge_server, trait):
    pairs = items(12)
    with make_judge(judge_server) as judge:
        result = judge.judge(pairs, trait)
        assert_scores(result, expected_scores(judge, pairs, trait))
    body = judge_server.last_body
    assert body["max_tokens"] == 1 and body["temperature"] == 0
    assert body["logprobs"] is True and body["top_logprobs"] == 20 and body["model"] == "judge-model"
    # one probe, then one request per (item, metric)
    assert judge_server.completed == 1 + 24
    counters = result.counters
    assert (counters.requests, counters.retries, counters.judgments, counters.cache_hits) == (25, 0, 24, 0)
    assert counters.none_scores == 0 and counters.completion_tokens == 24 and counters.prompt_tokens > 24 * 50
    served_trait = [text for text in judge_server.served if "optimism" in text]
    assert len(served_trait) == 12 and all("bright side" in text for text in served_trait)


def test_429_with_retry_after_5xx_hangs_and_garbage_are_retried_to_the_right_scores(judge_server, trait):
    pairs = items(6)
    with make_judge(judge_server, request_timeout_s=1.5, max_in_flight=4) as judge:
        judge.start()  # the probe, so the injected failures hit judgment requests
        judge_server.inject(Failure.rate_limited(retry_after="1"), Failure.server_error(500),
                            Failure.server_error(503), Failure.hang(), Failure.server_error(502), Failure.garbage())
        started = time.perf_counter()
        result = judge.judge(pairs, trait)
        elapsed = time.perf_counter() - started
        assert_scores(result, expected_scores(judge, pairs, trait))
    assert judge_server.statuses[429] == 1 and judge_server.statuses[500] == 1
    assert judge_server.statuses[503] == 1 and judge_server.statuses[502] == 1 and judge_server.hung == 1
    assert judge_server.garbage == 1
    assert result.counters.retries == 6 and result.counters.failures == 6
    assert result.counters.requests == 12 + 6 and result.counters.judgments == 12
    # backoff here is 10-50 ms: waiting a whole second shows that Retry-After was honoured
    assert elapsed >= 0.95
    assert judge_server.completed == 1 + 12


def test_retry_after_as_http_date_and_milliseconds_is_honoured():
    from email.utils import formatdate

    from steersweep.actors.judges import parse_retry_after

    assert parse_retry_after({"retry-after-ms": "250"}) == pytest.approx(0.25)
    assert parse_retry_after({"retry-after": "3"}) == 3.0
    in_ten_seconds = formatdate(time.time() + 10, usegmt=True)
    assert parse_retry_after({"retry-after": in_ten_seconds}) == pytest.approx(10, abs=1.5)
    assert parse_retry_after({}) is None and parse_retry_after({"retry-after": "soon"}) is None


def test_second_judging_makes_zero_http_requests(judge_server, trait, tmp_path):
    pairs = items(10)
    with make_judge(judge_server, cache=JudgeCache.for_run_dir(tmp_path)) as judge:
        first = judge.judge(pairs, trait)
        requests_after_first = judge_server.attempts
        second = judge.judge(pairs, trait)
        assert judge_server.attempts == requests_after_first  # not one HTTP request
        assert second.counters.requests == 0 and second.counters.cache_hits == 20
        assert second.judgments == first.judgments
    # a new judge on the same run directory (a resumed sweep) reads the Parquet cache: still zero requests
    with make_judge(judge_server, cache=JudgeCache.for_run_dir(tmp_path)) as resumed:
        third = resumed.judge(pairs, trait)
    assert judge_server.attempts == requests_after_first
    assert third.counters.cache_hits == 20 and third.judgments == first.judgments
    # the same item for another metric set or a repeated item in one call is not asked twice either
    with make_judge(judge_server) as fresh:
        fresh.judge([pairs[0], pairs[0], pairs[0]], trait, metrics=("coherence",))
    assert judge_server.attempts == requests_after_first + 2  # its probe + one coherence request


def test_dead_endpoint_gives_a_clear_error_and_the_resumed_run_asks_only_for_the_missing(trait, tmp_path):
    pairs = items(20)
    server = JudgeTestServer().start()
    try:
        server.die_after(1 + 9)  # the probe and 9 judgments, then the port closes
        judge = make_judge(server, cache=JudgeCache.for_run_dir(tmp_path), max_in_flight=4)
        with pytest.raises(JudgeUnavailableError) as caught:
            judge.judge(pairs, trait)
        judge.close()
        message = str(caught.value)
        assert server.base_url in message and "connection error" in message.lower()
        assert "is running and reachable" in message and "resume the run" in message
        assert str(tmp_path / JUDGMENTS_SUBDIR) in message
        assert not server.running
        first_served = server.served_counts()
        judged_first = sum(count for text, count in first_served.items() if text != PROBE_PROMPT)
        assert judged_first >= 9 and caught.value.judged == judged_first
        assert read_judgments(tmp_path).num_rows == judged_first  # every finished judgment is on disk

        server.start()  # the endpoint is back, on the same port
        with make_judge(server, cache=JudgeCache.for_run_dir(tmp_path)) as resumed:
            result = resumed.judge(pairs, trait)
            assert_scores(result, expected_scores(resumed, pairs, trait))
        served = server.served_counts()
        del served[PROBE_PROMPT]
        assert len(served) == 40 and set(served.values()) == {1}  # every judgment asked once over both runs
        assert result.counters.judgments == 40 - judged_first and result.counters.cache_hits == judged_first
        assert read_judgments(tmp_path).num_rows == 40
    finally:
        server.close()


def test_endpoint_down_from_the_start_is_the_same_clear_error(trait):
    server = JudgeTestServer().start()
    server.stop()
    try:
        judge = make_judge(server)
        with pytest.raises(JudgeUnavailableError, match="consecutive failed attempts") as caught:
            judge.judge(items(2), trait)
        assert caught.value.endpoint == server.base_url and caught.value.judged == 0
        judge.close()
    finally:
        server.close()


def test_model_without_logprobs_is_an_error_after_one_probe_request(trait):
    with JudgeTestServer(models_without_logprobs=["plain-model"]) as server:
        judge = OpenAIJudge("plain-model", base_url=server.base_url, api_key="k", **FAST_RETRY)
        with pytest.raises(JudgeLogprobsUnavailableError, match="returned no logprobs") as caught:
            judge.judge(items(50), trait)
        judge.close()
        assert "plain-model" in str(caught.value) and server.base_url in str(caught.value)
        assert server.attempts == 1  # found by the probe, not after 100 requests
        assert server.served == [PROBE_PROMPT]


def test_rejected_key_pauses_at_once_with_the_fix(judge_server, trait):
    judge = make_judge(judge_server)
    judge.start()
    judge_server.inject(*[Failure.server_error(401)] * 3)
    with pytest.raises(JudgeUnavailableError, match=r"HTTP 401.*API key") as caught:
        judge.judge(items(1), trait, metrics=("coherence",))
    judge.close()
    assert caught.value.judged == 0 and judge_server.statuses[401] == 1  # not retried


def test_requests_in_flight_are_bounded(trait):
    with JudgeTestServer(latency_s=0.02) as server:
        judge = OpenAIJudge("judge-model", base_url=server.base_url, api_key="k", max_in_flight=5)

        async def run():
            try:
                return await judge.ajudge(items(30), trait)
            finally:
                await judge.aclose()

        result = asyncio.run(run())
        assert result.counters.judgments == 60
        assert server.max_in_flight == 5


def test_blocking_api_refuses_to_run_inside_an_event_loop(judge_server, trait):
    judge = make_judge(judge_server)

    async def call_blocking():
        judge.judge(items(1), trait)

    with pytest.raises(RuntimeError, match=r"await judge\.ajudge"):
        asyncio.run(call_blocking())


def test_no_api_key_for_the_openai_api_is_a_config_error(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(JudgeConfigError, match="OPENAI_API_KEY"):
        OpenAIJudge("gpt-4.1-mini")
    with pytest.raises(JudgeConfigError, match="max_in_flight"):
        OpenAIJudge("m", base_url="http://127.0.0.1:9/v1", max_in_flight=0)
