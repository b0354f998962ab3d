"""Samplers on a real Optuna storage: the default walk, grid deduplication across a resume, the constraint that TPE
and GP see (``trial.set_constraint``), and windows / ensembles / signs in the trial parameters."""

from __future__ import annotations

import optuna
import pytest

from steersweep.search import GPSearch, GridSearch, SearchSpace, SearchStudy, StudySpec, grid_ratios


def drive(study: SearchStudy, respond, limit: int = 100) -> list:
    seen = []
    while not study.done and len(seen) < limit:
        [plan] = study.ask(1)
        seen.append(plan)
        study.tell(plan, *respond(plan))
    return seen


def test_default_walks_the_middle_layers_up_while_coherent_then_hands_over_to_tpe():
    study = SearchStudy(StudySpec("m", "t", "v", n_trials=16, coherence_threshold=80.0), "memory", num_layers=4)

    def respond(plan):  # layer 1 breaks at ratio > 0.7, layer 2 holds up to 1.5
        limit = 0.7 if plan.site.layer == 1 else 1.5
        return 50.0 * plan.point.ratio, 90.0 if plan.point.ratio <= limit else 40.0

    seen = drive(study, respond)
    walk = [(p.site.label, round(p.point.ratio, 4)) for p in seen if p.point.source == "walk"]
    assert walk == [("L1", 0.6), ("L2", 0.6), ("L1", 0.78), ("L2", 0.78), ("L2", 1.014), ("L2", 1.3182),
                    ("L2", 1.7137)]
    # L1 broke between 0.6 and 0.78, L2 between 1.3182 and 1.7137: geometric bisection closes in on each edge
    bisect = [(p.site.label, round(p.point.ratio, 4)) for p in seen if p.point.source == "bisect"]
    assert [r for label, r in bisect if label == "L1"] == [0.6841, 0.7305, 0.7069]
    assert [r for label, r in bisect if label == "L2"] == [1.503, 1.4076, 1.4545]
    sources = [p.point.source for p in seen]
    last_directed = max(i for i, s in enumerate(sources) if s in ("walk", "bisect"))
    assert set(sources[last_directed + 1:]) == {"default"}  # TPE after the walk and the bisections


def test_grid_points_are_each_tried_once_even_across_a_resume(tmp_path):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    spec = StudySpec("m", "t", "v", sampler=GridSearch(), space=SearchSpace(layers=(0, 1)), n_trials=20)
    first = drive(SearchStudy(spec, storage, num_layers=4), lambda p: (10.0, 90.0), limit=7)
    resumed = SearchStudy(spec, storage, num_layers=4)
    rest = drive(resumed, lambda p: (10.0, 90.0))
    points = [(p.point.site, p.point.ratio) for p in first + rest]
    assert len(points) == 20 == len(set(points)) == 2 * len(grid_ratios(spec.space))
    assert len(resumed.trials(optuna.trial.TrialState.COMPLETE)) == 20


@pytest.mark.parametrize("sampler", ["tpe", GPSearch(n_startup_trials=2)])
def test_coherence_is_a_constraint_not_a_penalty(sampler):
    study = SearchStudy(StudySpec("m", "t", "v", sampler=sampler, n_trials=5, coherence_threshold=70.0), "memory",
                        num_layers=4)
    drive(study, lambda p: (80.0, 100.0 - 40.0 * p.point.ratio))
    for trial in study.trials(optuna.trial.TrialState.COMPLETE):
        assert trial.value == 80.0  # the objective is the trait alone
        assert trial.constraints["coherence"] == pytest.approx(70.0 - trial.user_attrs["coherence"])


def test_windows_ensembles_and_both_signs_are_parameters():
    space = SearchSpace(layers=(1,), windows=("L[0-2]",), ensembles=("L0+L3",), sign="both")
    study = SearchStudy(StudySpec("m", "t", "v", sampler="random", space=space, n_trials=30), "memory", 4)
    seen = drive(study, lambda p: (50.0, 90.0))
    assert {p.site.label for p in seen} == {"L1", "L[0-2]", "L0+L3"}
    assert {p.point.sign for p in seen} == {1, -1}
    assert all(0.05 <= p.point.ratio <= 2.0 for p in seen)
