"""One real local Ray (dashboard on, token auth): named actors from a plan, load failures, metrics export, restarts
after SIGKILL and CUDA-OOM batch halving."""

from __future__ import annotations

import os
import signal
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from steersweep.actors import ModelSpec, ModelWorker, SteeringTerm, SteerRequest, SteerRow
from steersweep.actors.judges import RuleJudge, TraitDefinition
from steersweep.cluster import (
    GIB,
    METRICS,
    Inventory,
    MeteredJudge,
    ModelRequirement,
    ModelShape,
    Node,
    RayOptions,
    ResilientModel,
    SweepMetrics,
    actor_status,
    connect_ray,
    metrics_endpoints,
    plan_placement,
    read_metric,
    start_actors,
    status_text,
    wait_loaded,
)

QUESTIONS = ("the cat is", "the day was", "a dog is", "the sun is")


@pytest.fixture(scope="module")
def ray_session():
    import ray

    os.environ["RAY_metrics_report_interval_ms"] = "500"  # noqa: SIM112 (Ray reads this exact name; default 10 s)
    connection = connect_ray(RayOptions(num_cpus=3, dashboard=True))
    yield connection
    ray.shutdown()
    os.environ.pop("RAY_metrics_report_interval_ms", None)


def faulty_worker_class():
    """ModelWorker with an injectable GPU limit: a steer of more rows than ``max_rows`` raises CUDA's
    OutOfMemoryError, as a real GPU does. Built in a function so Ray ships the class by value."""
    import torch

    class FaultyWorker(ModelWorker):
        max_rows: int | None = None

        def limit_rows(self, max_rows: int | None) -> None:
            self.max_rows = max_rows

        def pid(self) -> int:
            return os.getpid()

        def steer(self, request):
            if self.max_rows is not None and len(request.rows) > self.max_rows:
                raise torch.OutOfMemoryError(f"CUDA out of memory. Tried to allocate {len(request.rows)} rows")
            return super().steer(request)

    return FaultyWorker


@pytest.fixture(scope="module")
def placed_actors(ray_session, tiny_llama_dir, tmp_path_factory):
    """A CUDA-less plan of a model that loads ("tiny") and one that does not ("broken"), started as named actors."""
    import ray

    broken = tmp_path_factory.mktemp("broken_model")
    (broken / "config.json").write_text((tiny_llama_dir / "config.json").read_text())  # no weights, no tokenizer
    plan = _cpu_plan(tiny_llama_dir, {"tiny": 1, "broken": 1})
    handles = start_actors(plan, {"tiny": ModelSpec(str(tiny_llama_dir)), "broken": ModelSpec(str(broken))},
                           max_restarts=2, actor_class=ray.remote(faulty_worker_class()))
    failed = wait_loaded(handles, timeout_s=300)
    yield handles, failed, broken
    for handle in handles.values():
        ray.kill(handle)


def _cpu_plan(tiny_llama_dir: Path, names: dict[str, int]):
    shape = ModelShape.from_pretrained_dir(tiny_llama_dir)
    reqs = [ModelRequirement(name, shape, "float32", replicas=replicas, batch_rows=8, tokens_per_row=64)
            for name, replicas in names.items()]
    return plan_placement(reqs, Inventory((Node("local", memory_bytes=4 * GIB),)))


def _request(rows: int = 8, max_new_tokens: int = 12) -> SteerRequest:
    return SteerRequest(rows=tuple(
        SteerRow(QUESTIONS[i % len(QUESTIONS)], (SteeringTerm("v", i % 4, 0.5 * (i % 3)),), tag=f"row{i}")
        for i in range(rows)), max_new_tokens=max_new_tokens, do_sample=True, seed=7)


def _vector() -> dict[str, np.ndarray]:
    return {"v": np.random.default_rng(0).normal(size=(4, 32)).astype(np.float32)}


def test_local_ray_has_the_dashboard_on_behind_token_auth(ray_session):
    assert ray_session.started_here and ray_session.namespace == "steersweep"
    assert ray_session.dashboard_url and ray_session.dashboard_url.startswith("http://127.0.0.1:")
    assert ray_session.token_auth
    url = f"{ray_session.dashboard_url}/api/version"
    with pytest.raises(urllib.error.HTTPError) as denied:
        urllib.request.urlopen(url, timeout=30)
    assert denied.value.code in (401, 403)
    token = (Path.home() / ".ray" / "auth_token").read_text().strip()
    answer = urllib.request.urlopen(urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"}),
                                    timeout=30)
    assert answer.status == 200


@pytest.mark.slow  # starts model actors: ~70 s on 2 loaded cores
def test_named_actors_and_a_model_that_fails_to_load_does_not_stop_the_other(placed_actors):
    import ray

    _handles, failed, broken = placed_actors
    assert list(failed) == ["broken"]
    assert failed["broken"].startswith(f"model path '{broken}' could not be loaded: check that the directory holds")
    actor = ray.get_actor("steersweep/tiny/0", namespace="steersweep")
    assert ray.get(actor.ping.remote()) == "ok"
    names = {row.name: row.state for row in actor_status()}
    assert names["steersweep/tiny/0"] == "ALIVE" and names["steersweep/broken/0"] == "DEAD"


def test_sweep_metrics_reach_the_prometheus_export(ray_session):
    metrics = SweepMetrics.get()
    study = "tiny/optimism/mean_diff"
    metrics.trial_finished(study, "COMPLETE", trait_score=61.0)
    metrics.trial_finished(study, "COMPLETE", trait_score=74.5)
    metrics.trial_finished(study, "COMPLETE", trait_score=90.0, feasible=False)  # incoherent: not the best
    metrics.trial_finished(study, "FAIL", reason="oom")
    metrics.queue_depth(study, 5)
    metrics.steer_call("steersweep/tiny/0", "tiny", rows=48, generated_tokens=960, seconds=2.0)
    metrics.steer_retry("steersweep/tiny/0", "tiny", "restart")
    judge = MeteredJudge(RuleJudge(lambda question, response: (75.0, 90.0)), "rule", metrics)
    judged = judge.judge([("the cat is", "happy"), ("the day was", "bright")], TraitDefinition("mood", "Cheer."))
    assert [j.trait_score for j in judged.judgments] == [75.0, 75.0] and judged.counters.requests == 2
    metrics.judge_call("rule", 0.4, requests=1, errors=1)
    (endpoint,) = metrics_endpoints()
    wanted = {
        ("ray_steersweep_trials_completed_total", (("study", study),)): 3.0,
        ("ray_steersweep_trials_failed_total", (("study", study), ("reason", "oom"))): 1.0,
        ("ray_steersweep_best_trait_score", (("study", study),)): 74.5,
        ("ray_steersweep_queue_depth", (("study", study),)): 5.0,
        ("ray_steersweep_generated_tokens_total", (("actor", "steersweep/tiny/0"), ("model", "tiny"))): 960.0,
        ("ray_steersweep_tokens_per_second", (("actor", "steersweep/tiny/0"),)): 480.0,
        ("ray_steersweep_rows_per_steer_call_count", (("model", "tiny"),)): 1.0,
        ("ray_steersweep_rows_per_steer_call_sum", (("model", "tiny"),)): 48.0,
        ("ray_steersweep_steer_retries_total", (("reason", "restart"),)): 1.0,
        ("ray_steersweep_judge_requests_total", (("judge", "rule"),)): 3.0,
        ("ray_steersweep_judge_errors_total", (("judge", "rule"),)): 1.0,
        ("ray_steersweep_judge_latency_seconds_count", (("judge", "rule"),)): 2.0,
    }
    deadline, seen = time.monotonic() + 60, {}
    while time.monotonic() < deadline:
        body = urllib.request.urlopen(endpoint, timeout=30).read().decode()
        seen = {key: read_metric(body, key[0], **dict(key[1])) for key in wanted}
        if seen == wanted:
            break
        time.sleep(1)
    assert seen == wanted
    exported = {info.grafana for info in METRICS}
    assert {key[0].removesuffix("_count").removesuffix("_sum") for key in wanted} <= exported


@pytest.mark.slow  # starts model actors: ~70 s on 2 loaded cores
def test_sigkilled_actor_is_restarted_and_the_call_answered_once(placed_actors):
    import ray

    handle = placed_actors[0][("tiny", 0)]
    model = ResilientModel(handle, "steersweep/tiny/0", "tiny", metrics=SweepMetrics.get())
    model.load_vectors(_vector())
    request = _request(rows=64, max_new_tokens=48)
    expected = model.steer(request)
    restarts_before = {row.name: row.restarts for row in actor_status()}["steersweep/tiny/0"]
    pid = ray.get(handle.pid.remote())
    pending = model.submit("steer", request)
    time.sleep(max(0.3, expected.seconds / 4))  # mid-batch
    os.kill(pid, signal.SIGKILL)
    reply = model.result(pending)
    assert reply.texts == expected.texts and reply.tags == expected.tags  # the same rows, each answered once
    assert model.restarts == 1
    (after,) = [row for row in actor_status() if row.name == "steersweep/tiny/0"]
    assert after.restarts == restarts_before + 1 and after.state == "ALIVE" and after.pid != pid
    assert f"steersweep/tiny/0  ALIVE  restarts={after.restarts}" in status_text()


@pytest.mark.slow  # starts model actors: ~70 s on 2 loaded cores
def test_cuda_oom_halves_the_batch_and_the_texts_equal_an_unsplit_call(placed_actors, tiny_llama_dir):
    import ray

    handle = placed_actors[0][("tiny", 0)]
    model = ResilientModel(handle, "steersweep/tiny/0", "tiny")
    model.load_vectors(_vector())
    request = _request(rows=10)
    expected = model.steer(request)
    ray.get(handle.limit_rows.remote(3))
    try:
        reply = model.steer(request)
        with pytest.raises(ray.exceptions.RayTaskError, match="CUDA out of memory"):
            ray.get(handle.steer.remote(request))
    finally:
        ray.get(handle.limit_rows.remote(None))
    assert reply.texts == expected.texts and reply.tags == expected.tags and len(reply.texts) == 10
    assert model.oom_splits == 3  # 10 -> 5 + 5 -> (2 + 3) + (2 + 3): the 10-row call and both 5-row halves split
    reference = ModelWorker(ModelSpec(str(tiny_llama_dir)))  # and both equal the model run in this process
    reference.load_vectors(_vector())
    assert reference.steer(request).texts == expected.texts


@pytest.mark.slow  # starts model actors: ~70 s on 2 loaded cores
def test_an_actor_gone_for_good_raises_actor_lost_which_the_scheduler_counts_as_a_death(placed_actors):
    import ray

    from steersweep.cluster import ActorLostError
    from steersweep.search._scheduler import _is_actor_death

    handle = placed_actors[0][("tiny", 0)]
    model = ResilientModel(handle, "steersweep/tiny/0", "tiny")
    ray.kill(handle, no_restart=True)
    with pytest.raises(ActorLostError, match="steersweep/tiny/0: actor died and Ray will not restart it") as lost:
        model.steer(_request(rows=2))
    assert _is_actor_death(lost.value)
