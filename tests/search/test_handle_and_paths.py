"""ModelHandle (one call path for a ModelWorker and a Ray ModelActor), RunPaths, and the ratio -> coefficient rule."""

from __future__ import annotations

import math
from concurrent.futures import Future

import pytest

from steersweep.actors import ModelActor, ModelHandle, ModelSpec, ModelWorker, RunPaths, SteerRequest, SteerRow
from steersweep.actors.judges import JudgeCache
from steersweep.engine.rundir import RunDir
from steersweep.search import perturbation_coefficient, perturbation_ratio


@pytest.fixture(scope="module")
def worker(tiny_model_dirs) -> ModelWorker:
    return ModelWorker(ModelSpec(str(tiny_model_dirs["llama"]), device="cpu"))


def test_handle_wraps_a_worker_in_process(worker):
    handle = ModelHandle.of(worker)
    assert not handle.is_remote
    assert ModelHandle.of(handle) is handle
    request = SteerRequest(rows=(SteerRow("the day is", tag="a"),), max_new_tokens=4)
    pending = handle.submit("steer", request)
    assert isinstance(pending, Future) and pending.done()
    assert ModelHandle.result(pending).texts == handle.call("steer", request).texts == worker.steer(request).texts
    with pytest.raises(AttributeError, match="no method 'nope'"):
        handle.call("nope")
    failed = handle.submit("load_vectors", {"v": {0: [math.nan] * 32}})
    with pytest.raises(ValueError):
        failed.result()


def test_handle_wraps_a_ray_actor(ray_local, tiny_model_dirs, worker):
    actor = ModelActor.remote(ModelSpec(str(tiny_model_dirs["llama"]), device="cpu"))
    try:
        handle = ModelHandle.of(actor)
        assert handle.is_remote and "Ray actor" in repr(handle)
        request = SteerRequest(rows=(SteerRow("the day is", tag="a"),), max_new_tokens=4)
        ref = handle.submit("steer", request)
        assert isinstance(ref, ray_local.ObjectRef)
        assert ModelHandle.result(ref).texts == handle.call("steer", request).texts == worker.steer(request).texts
    finally:
        ray_local.kill(actor)


def test_run_paths_is_the_one_layout(tmp_path):
    paths, run = RunPaths(tmp_path), RunDir(tmp_path)
    assert isinstance(run, RunPaths)
    for name in ("study_db", "trials_dir", "responses_dir", "judgments_dir", "analysis_dir", "vectors_dir"):
        assert getattr(paths, name) == getattr(run, name)
    assert paths.trials_dir == tmp_path / "data" / "trials"
    assert JudgeCache.for_run_dir(tmp_path).folder == paths.judgments_dir
    assert type(run.create()) is RunDir and paths.responses_dir.is_dir()
    with pytest.raises(ValueError, match="model: 'a/b' cannot name a folder"):
        paths.vector_path("a/b", "t", "m", "residual", "response[:5]")


def test_perturbation_coefficient_round_trip():
    assert perturbation_coefficient(0.6, 30.0, 3.0) == pytest.approx(6.0)
    assert perturbation_ratio(6.0, 30.0, 3.0) == pytest.approx(0.6)
    with pytest.raises(ValueError, match="vector_norm"):
        perturbation_coefficient(0.6, 30.0, 0.0)
    with pytest.raises(ValueError, match="vector_norm"):
        perturbation_coefficient(0.6, 30.0, math.nan)
    with pytest.raises(ValueError, match="activation_norm"):
        perturbation_coefficient(0.6, -1.0, 1.0)
