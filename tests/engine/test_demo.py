"""`steersweep demo` end to end on a small-scale toy family: tables on disk, steering effect, resume, frozen options."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest
from rich.console import Console

from steersweep.engine import RunDir
from steersweep.engine.demo import DemoOptions, RunDirMismatchError, run_demo


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory, ray_local, small_family):
    family, _ = small_family
    options = DemoOptions(run_dir=tmp_path_factory.mktemp("demo") / "run", home=family.root.parent,
                          toy_scale=family.manifest["scale"],
                          ratios=(0.0, 0.6, 2.0), n_contrast=16, n_questions=4, max_new_tokens=24)
    trials = run_demo(options, console=Console(record=True, width=140))
    return options, trials


def test_demo_writes_trials_responses_vectors_and_judgments(demo_run):
    options, trials = demo_run
    n_layers = len({row["layer"] for row in trials.to_pylist()})
    assert trials.num_rows == len(options.target_models) * n_layers * len(options.ratios)
    assert set(trials.column("n").to_pylist()) == {options.n_questions}
    on_disk = pq.read_table(options.run_dir / "data" / "trials" / "demo.parquet")
    assert on_disk.equals(trials)
    for model in options.target_models:
        responses = pq.read_table(options.run_dir / "data" / "responses" / f"{model}.parquet")
        assert responses.num_rows == n_layers * len(options.ratios) * options.n_questions
        assert all(0 <= s <= 100 for s in responses.column("trait_score").to_pylist())
    run = RunDir(options.run_dir)
    assert run.vector_path(options.source_model, "optimism", "mean_diff", "residual", "response[:5]").exists()
    assert any((options.run_dir / "data" / "judgments").glob("*.parquet"))


def test_ratio_zero_is_the_unsteered_baseline_and_steering_moves_the_trait(demo_run):
    options, _ = demo_run
    responses = pq.read_table(options.run_dir / "data" / "responses" / "llama-sft.parquet").to_pylist()
    baseline = {}
    for row in responses:
        if row["perturbation_ratio"] == 0.0:
            assert row["coefficient"] == 0.0
            baseline.setdefault(row["question_index"], set()).add(row["response"])
    # Unsteered rows of every layer are the same generation (one baseline per question).
    assert all(len(texts) == 1 for texts in baseline.values())
    strongest = [r for r in responses if r["perturbation_ratio"] == max(options.ratios)]
    assert any(r["response"] not in baseline[r["question_index"]] for r in strongest)


def test_rerun_resumes_without_regenerating(demo_run):
    options, trials = demo_run
    files = sorted((options.run_dir / "data" / "responses").glob("*.parquet"))
    before = {path: path.stat().st_mtime_ns for path in files}
    again = run_demo(options, console=Console(record=True, width=140))
    assert again.equals(trials)
    assert {path: path.stat().st_mtime_ns for path in files} == before


def test_changed_options_on_the_same_run_dir_are_refused(demo_run):
    options, _ = demo_run
    changed = DemoOptions(**{**options.__dict__, "ratios": (0.0, 1.0)})
    with pytest.raises(RunDirMismatchError, match="ratios"):
        run_demo(changed, console=Console(record=True))
