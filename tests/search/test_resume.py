"""Must-show 4 (fast variant, in process): a search interrupted at a fault point, then rerun on the same run
directory, ends with exactly the configured number of complete trials, none duplicated, and no response generated
twice (Parquet + the worker's call log). The SIGKILL variant with Ray in a subprocess is in test_crash_subprocess.py
(slow)."""

from __future__ import annotations

import pytest
from crash_check import check_exact
from search_helpers import QUESTIONS, LoggingWorker

from steersweep.actors import ModelSpec
from steersweep.search import FAULT_ENV, InjectedFault, SearchSpace, search


@pytest.mark.parametrize(("point", "expect"), [
    # 3 trials asked, nothing generated: failed + re-enqueued with the same parameters
    pytest.param("dispatched:2", {"failed": 3}, marks=pytest.mark.slow),
    ("responses_written:2", {"failed": 0}),   # responses on disk, no trial rows: finished from the responses
    # trial rows on disk, Optuna not told: told from the rows
    pytest.param("trials_written:2", {"failed": 0}, marks=pytest.mark.slow),
])
def test_interrupted_search_resumes_exactly(point, expect, tiny_llama, tiny_vector, tmp_path, monkeypatch,
                                            lexicon_judge):
    log = tmp_path / "calls.log"
    worker = LoggingWorker(ModelSpec(tiny_llama, device="cpu"), str(log))
    options = dict(sampler="tpe", judge=lexicon_judge, run_dir=tmp_path / "run", n_trials=10, rows_per_call=15,
                   live=False, max_new_tokens=6)
    monkeypatch.setenv(FAULT_ENV, f"{point}:raise")
    with pytest.raises(InjectedFault):
        search(worker, tiny_vector, QUESTIONS, SearchSpace(), **options)
    monkeypatch.delenv(FAULT_ENV)
    result = search(worker, tiny_vector, QUESTIONS, SearchSpace(), **options)
    counts = check_exact(tmp_path / "run", 10, [log])
    assert counts["failed"] == expect["failed"]
    assert counts["generated"] == counts["responses"] == 11 * len(QUESTIONS)
    assert len(result.trials) == 10 and result.best


def test_rerun_of_a_finished_search_generates_nothing(tiny_llama, tiny_vector, tmp_path, lexicon_judge):
    log = tmp_path / "calls.log"
    worker = LoggingWorker(ModelSpec(tiny_llama, device="cpu"), str(log))
    options = dict(sampler="grid", judge=lexicon_judge, run_dir=tmp_path / "run", n_trials=6, rows_per_call=20,
                   live=False, max_new_tokens=6)
    first = search(worker, tiny_vector, QUESTIONS, SearchSpace(layers=(1, 2)), **options)
    calls = worker.calls
    again = search(worker, tiny_vector, QUESTIONS, SearchSpace(layers=(1, 2)), **options)
    assert worker.calls == calls
    assert [b["trial_number"] for b in first.best.values()] == [b["trial_number"] for b in again.best.values()]
    grid = [(r["site"], r["perturbation_ratio"]) for r in again.trials.to_dict("records")]
    assert len(grid) == len(set(grid)) == 6
    with pytest.raises(ValueError, match="other settings"):
        search(worker, tiny_vector, QUESTIONS, SearchSpace(layers=(1, 3)), **options)
