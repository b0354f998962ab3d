"""Exact-count checks after a crashed and resumed search (shared by the in-process and the subprocess crash tests)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import optuna
from search_helpers import QUESTIONS, read_log

from steersweep.actors.paths import RunPaths
from steersweep.search import read_rows


def check_exact(run_dir: Path, n_trials: int, logs: list[Path]) -> dict[str, int]:
    """The study ends with exactly ``n_trials`` complete trials, none duplicated, and no response generated twice
    (from the Parquet tables and the actors' call logs). Returns counts for the test to report."""
    paths = RunPaths(run_dir)
    [summary] = optuna.get_all_study_summaries(f"sqlite:///{paths.study_db}")
    study = optuna.load_study(study_name=summary.study_name, storage=f"sqlite:///{paths.study_db}")
    states = Counter(t.state.name for t in study.get_trials())
    complete = {t.number for t in study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))}
    assert len(complete) == n_trials and states.get("RUNNING", 0) == 0 and states.get("WAITING", 0) == 0

    trials = read_rows(paths, "trials").to_pylist()
    numbers = [r["trial_number"] for r in trials]
    assert len(numbers) == len(set(numbers)), "a trial row was written twice"
    assert {r["trial_number"] for r in trials if r["state"] == "COMPLETE"} == complete

    responses = read_rows(paths, "responses").to_pylist()
    keys = [(r["trial_number"], r["question_index"]) for r in responses]
    assert len(keys) == len(set(keys)), "a response row was written twice"
    per_trial = Counter(n for n, _ in keys)
    assert all(per_trial[n] == len(QUESTIONS) for n in complete) and per_trial[-1] == len(QUESTIONS)

    logged = [line for path in logs for line in read_log(path)]
    duplicates = [tag for tag, count in Counter(logged).items() if count > 1]
    assert not duplicates, f"generated twice: {duplicates}"
    assert set(logged) == {f"{summary.study_name}/{n}/{q}" for n, q in keys}
    return {"complete": len(complete), "failed": states.get("FAIL", 0), "responses": len(responses),
            "generated": len(logged)}
