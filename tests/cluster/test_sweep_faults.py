"""Must-show 2: SIGKILL of an actor's worker process mid-batch; the sweep finishes with every trial complete exactly
once and the restart shows in the status output."""

from __future__ import annotations

import pytest
from sweep_helpers import N_TRIALS, QUESTIONS, compared_rows, faulty_worker_class, run_sweep, trial_counts

from steersweep.actors import ModelSpec
from steersweep.cluster import (
    ModelNeed,
    RayOptions,
    actor_status,
    launch,
    status_text,
)


@pytest.mark.slow  # a local Ray + one model actor + its restart: ~2 min on 2 loaded cores
def test_sigkill_mid_batch_every_trial_complete_exactly_once_and_restart_in_status(tiny_llama_dir, tmp_path):
    import ray

    from steersweep.actors import ModelWorker

    reference = run_sweep({"tiny": [ModelWorker(ModelSpec(str(tiny_llama_dir)))]}, tmp_path / "reference")
    marker = tmp_path / "killed"
    try:
        launched = launch([ModelNeed("tiny", str(tiny_llama_dir))], {"tiny": ModelSpec(str(tiny_llama_dir))},
                          RayOptions(num_cpus=2, dashboard=False), max_restarts=2, batch_rows=8, tokens_per_row=64,
                          load_timeout_s=300, actor_class=ray.remote(faulty_worker_class()),
                          actor_kwargs={"marker": str(marker), "kill_at": 3})
        assert launched.failed == {} and [a.num_gpus for a in launched.plan.actors] == [0.0]
        (model,) = launched.replicas["tiny"]
        result = run_sweep(launched.replicas, tmp_path / "sweep")
        status = status_text()
        rows = {row.name: row for row in actor_status()}
    finally:
        ray.shutdown()
    assert marker.exists(), "the actor was not killed"
    pid, batch_rows = marker.read_text().split()[:2]
    assert int(batch_rows) == 2 * len(QUESTIONS)  # killed inside a full steer call
    trials, responses = trial_counts(tmp_path / "sweep")
    study = next(iter(result.best))
    assert trials == {(study, n): 1 for n in range(N_TRIALS)}  # every trial complete, exactly once
    assert responses == {**{(study, n): len(QUESTIONS) for n in range(N_TRIALS)}, (study, -1): len(QUESTIONS)}
    assert model.restarts == 1 and rows["steersweep/tiny/0"].restarts == 1
    assert rows["steersweep/tiny/0"].pid != int(pid)
    assert "steersweep/tiny/0  ALIVE  restarts=1" in status
    assert compared_rows(result) == compared_rows(reference)  # and the results are those of an undisturbed run
