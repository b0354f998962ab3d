"""Issue 13, must show 1 and 2: Ctrl-C loses no answered judgment; one rejected item never blocks a batch."""

from __future__ import annotations

import _thread
import threading
import time

import pytest
from judge_helpers import FAST_RETRY, items
from judge_server import JudgeTestServer

from steersweep.actors.judges import (
    PROBE_PROMPT,
    CachedJudgment,
    JudgeCache,
    JudgeUnavailableError,
    OpenAIJudge,
    read_judgments,
    text_hash,
)


def make_judge(server: JudgeTestServer, **options) -> OpenAIJudge:
    return OpenAIJudge("judge-model", base_url=server.base_url, api_key="k", **{**FAST_RETRY, **options})


def judged_on_server(server: JudgeTestServer) -> int:
    return sum(count for text, count in server.served_counts().items() if text != PROBE_PROMPT)


def interrupt_main_when(condition, timeout_s: float = 60.0) -> threading.Thread:
    """Raise KeyboardInterrupt in the main thread (as Ctrl-C does) once ``condition()`` holds."""

    def watch() -> None:
        deadline = time.monotonic() + timeout_s
        while not condition() and time.monotonic() < deadline:
            time.sleep(0.005)
        _thread.interrupt_main()

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def test_ctrl_c_mid_batch_keeps_every_judgment_the_server_answered(tmp_path):
    pairs = items(240)
    with JudgeTestServer(latency_s=0.02) as server:
        # flush_every far above what is judged before the interrupt: only the interrupt path can write the rows
        judge = make_judge(server, cache=JudgeCache.for_run_dir(tmp_path, flush_every=10_000), max_in_flight=16)
        watcher = interrupt_main_when(lambda: server.completed >= 60)
        with pytest.raises(KeyboardInterrupt):
            judge.judge(pairs, metrics=("coherence",))
        watcher.join()
        answered = judged_on_server(server)
        assert server.in_flight == 0
        assert 60 <= answered < 240  # stopped mid-batch
        stored = read_judgments(tmp_path)
        assert stored.num_rows == answered  # every answered judgment is on disk, counted on the server
        assert set(stored.column("question_hash").to_pylist()) <= {text_hash(q) for q, _ in pairs}
        judge.close()

        # the resumed run asks only for what is missing, and every judgment was paid for exactly once
        with make_judge(server, cache=JudgeCache.for_run_dir(tmp_path)) as resumed:
            result = resumed.judge(pairs, metrics=("coherence",))
        assert result.counters.cache_hits == answered and result.counters.judgments == 240 - answered
        served = server.served_counts()
        del served[PROBE_PROMPT]
        assert len(served) == 240 and set(served.values()) == {1}
        print(f"Ctrl-C: server answered {answered} judgments before the stop, {stored.num_rows} in the cache (n=240)")


def test_cache_flushes_on_time_as_well_as_on_count(tmp_path):
    cache = JudgeCache.for_run_dir(tmp_path, flush_every=1000, flush_interval_s=0.2)
    folder = tmp_path / "data" / "judgments"
    cache.put("k1", CachedJudgment(score=1.0), judge="j", template_version="v", metric="coherence")
    assert cache.pending == 1 and not list(folder.glob("*.parquet"))  # young: waits for more
    time.sleep(0.25)
    cache.put("k2", CachedJudgment(score=2.0), judge="j", template_version="v", metric="coherence")
    assert cache.pending == 0  # the oldest pending row was 0.25 s old: written together with the new one
    assert len(list(folder.glob("*.parquet"))) == 1 and read_judgments(tmp_path).num_rows == 2


def test_one_item_rejected_with_400_among_600_gives_599_scores_and_one_none_in_one_run(tmp_path):
    pairs = items(600)
    bad = 417
    pairs[bad] = (pairs[bad][0], pairs[bad][1] + " TOO-LONG-FOR-THE-CONTEXT")
    with JudgeTestServer() as server:
        server.reject_containing("TOO-LONG-FOR-THE-CONTEXT", status=400)
        with make_judge(server, cache=JudgeCache.for_run_dir(tmp_path)) as judge:
            result = judge.judge(pairs, metrics=("coherence",))
        scores = result.coherence_scores
        assert sum(score is not None for score in scores) == 599 and scores[bad] is None
        [(index, metric, reason)] = result.rejected
        assert (index, metric) == (bad, "coherence") and "HTTP 400" in reason and "maximum context length" in reason
        assert result.counters.rejected == 1 and result.counters.judgments == 600
        assert server.statuses[400] == 1  # asked once, never retried
        rows = read_judgments(tmp_path).to_pylist()
        [rejected_row] = [row for row in rows if row["error"] is not None]
        assert rejected_row["score"] is None and rejected_row["response_hash"] == text_hash(pairs[bad][1])

        # a rerun does not send it again, and still reports why the score is missing
        with make_judge(server, cache=JudgeCache.for_run_dir(tmp_path)) as rerun:
            again = rerun.judge(pairs, metrics=("coherence",))
        assert again.counters.requests == 0 and again.counters.cache_hits == 600
        assert again.rejected == result.rejected and server.statuses[400] == 1
        # retry_rejected asks for exactly the rejected one again
        with make_judge(server, cache=JudgeCache.for_run_dir(tmp_path), retry_rejected=True) as retry:
            retried = retry.judge(pairs, metrics=("coherence",))
        assert retried.counters.rejected == 1 and retried.counters.cache_hits == 599
        assert server.statuses[400] == 2
        print(f"600 items, 1 rejected with HTTP 400: {599} scores + 1 None ({reason!r}) in one run")


def test_rejections_in_a_row_across_items_pause_and_are_not_cached(tmp_path):
    with JudgeTestServer() as server:
        server.reject_containing("Day", status=422, message="logprobs are not supported")  # every item
        judge = make_judge(server, cache=JudgeCache.for_run_dir(tmp_path), max_in_flight=2)
        with pytest.raises(JudgeUnavailableError, match=r"4 requests in a row were rejected.*HTTP 422") as caught:
            judge.judge(items(30), metrics=("coherence",))
        judge.close()
        assert "top_logprobs" in str(caught.value)  # the hint for 422
        assert server.statuses[422] <= 4 + 2  # the streak plus what was already on the wire
        # an endpoint problem is not the items' fault: nothing was cached, a resumed run asks them all again
        assert read_judgments(tmp_path).num_rows == 0 and caught.value.judged == 0
