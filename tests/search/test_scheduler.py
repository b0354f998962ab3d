"""Must-show 2 (packing): with 2 Ray actors and a batch of 16 trials x 5 questions, each actor receives ONE steer
call, and the scores told to Optuna equal those of running each trial alone. Also: a dead actor's trials go to the
other replica without loss or duplication."""

from __future__ import annotations

import numpy as np
import optuna
import pytest
from search_helpers import QUESTIONS, lexicon_score, read_log, remote_logging_worker

from steersweep.actors import ModelSpec, SteerRequest, SteerRow
from steersweep.actors.paths import RunPaths
from steersweep.search import SearchSpace, read_rows, search


@pytest.fixture
def two_actors(ray_local, tiny_llama, tmp_path):
    def make(**second):
        actor = remote_logging_worker(num_cpus=0)
        handles = [actor.remote(ModelSpec(tiny_llama, device="cpu"), str(tmp_path / "a.log")),
                   actor.remote(ModelSpec(tiny_llama, device="cpu"), str(tmp_path / "b.log"), **second)]
        made.extend(handles)
        return handles

    made = []
    yield make
    for handle in made:
        ray_local.kill(handle)


def test_one_steer_call_per_actor_per_batch_and_scores_equal_running_alone(ray_local, two_actors, worker,
                                                                          tiny_vector, tmp_path, lexicon_judge):
    actors = two_actors()
    # 45 rows per call: actor 0 gets the 5 baseline rows + 8 trials x 5 questions, actor 1 the other 8 trials
    result = search({"tiny": actors}, tiny_vector, QUESTIONS, SearchSpace(ratio=(0.3, 3.0)), sampler="random",
                    judge=lexicon_judge, run_dir=tmp_path / "run", n_trials=16, rows_per_call=45, live=False,
                    max_new_tokens=8)
    assert [ray_local.get(a.call_count.remote()) for a in actors] == [1, 1]
    assert sorted(len(read_log(tmp_path / name)) for name in ("a.log", "b.log")) == [40, 45]
    study = optuna.load_study(study_name=next(iter(result.best)), storage=f"sqlite:///{tmp_path / 'run' / 'study.db'}")
    complete = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert len(complete) == 16
    trials = {r["trial_number"]: r for r in result.trials.to_dict("records")}
    worker.load_vectors({"alone": tiny_vector.astype(np.float32)})
    run = result.trials.iloc[0]
    for trial in complete:
        row = trials[trial.number]
        terms = tuple(t.__class__("alone", t.layer, t.coefficient) for t in _terms(row))
        seeds = [_seed(trial.number, q) for q in range(len(QUESTIONS))]
        alone = worker.steer(SteerRequest(rows=tuple(SteerRow(q, terms, seed=s) for q, s in zip(QUESTIONS, seeds,
                                                                                                  strict=True)),
                                          max_new_tokens=8))
        texts = getattr(alone, "raw_texts", None) or alone.texts  # the judge reads the raw text (special tokens kept)
        scores = [lexicon_score(q, t) for q, t in zip(QUESTIONS, texts, strict=True)]
        assert trial.value == pytest.approx(np.mean([s[0] for s in scores]))
        assert trial.user_attrs["coherence"] == pytest.approx(np.mean([s[1] for s in scores]))
        assert trial.constraints["coherence"] == pytest.approx(run["coherence_threshold"] - row["coherence"])
    responses = read_rows(RunPaths(tmp_path / "run"), "responses")
    assert responses.num_rows == 17 * len(QUESTIONS)  # 16 trials + the baseline, each question once


def _terms(row):
    from steersweep.actors import SteeringTerm

    return [SteeringTerm("v", int(layer), float(coefficient))
            for layer, coefficient in zip(row["layers"], row["coefficients"], strict=True)]


def _seed(trial: int, question: int, seed: int = 0) -> int:
    return (seed * 1_000_003 + (trial + 1) * 1_009 + question) % (2**31)


@pytest.mark.slow
def test_a_dead_actor_s_trials_go_to_the_other_replica_once(ray_local, two_actors, tiny_vector, tmp_path,
                                                            lexicon_judge):
    actors = two_actors(exit_on_call=1)  # the second actor dies inside its first steer call
    result = search({"tiny": actors}, tiny_vector, QUESTIONS, SearchSpace(), sampler="tpe", judge=lexicon_judge,
                    run_dir=tmp_path / "run", n_trials=12, rows_per_call=30, live=False, max_new_tokens=8)
    trials = result.trials
    assert list(trials["state"]) == ["COMPLETE"] * 12 and trials["trial_number"].is_unique
    assert sorted(trials["trial_number"]) == list(range(12))  # the dead actor's trials kept their numbers
    log = read_log(tmp_path / "a.log") + read_log(tmp_path / "b.log")
    assert len(log) == len(set(log)) == 13 * len(QUESTIONS) and not read_log(tmp_path / "b.log")
