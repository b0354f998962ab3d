"""Must-show 1: the adaptive sampler reproduces the research's step rule (x1.3 when coherent, else x0.9; 4 steps;
best = highest trait with coherence >= threshold; the star and the recommendation line)."""

from __future__ import annotations

import pytest

from steersweep.search import (
    AdaptiveSearch,
    SearchStudy,
    Step,
    StudySpec,
    WalkRule,
    run_walk,
    step_table,
    walk_values,
)


def scripted(responses):
    """A response function that returns the research log's (trait, coherence) for each step in turn."""
    calls = []

    def evaluate(value):
        calls.append(value)
        return responses[len(calls) - 1]

    return evaluate, calls


def test_research_layer20_dpo_log_is_reproduced_with_real_coefficients():
    # zephyr-7b-beta layer 20 in cross-model-transfer-sft-dpo.md: base_coef=2, threshold 70.
    rule = WalkRule(threshold=70.0, up=1.3, down=0.9, steps=4)
    evaluate, calls = scripted([(62.8, 78.8), (67.0, 59.1), (72.7, 81.3), (74.6, 60.3)])
    steps = run_walk(rule, 2.0, evaluate)
    assert calls == pytest.approx([2.0, 2.6, 2.34, 3.042])  # the research printed 2, 3, 3, 4
    table = step_table(rule, steps)
    assert table.splitlines() == [
        "Step |  coef | Trait | Coherence | Action",
        "-----|-------|-------|-----------|-------",
        "  1  |     2 |  62.8 |      78.8 | ×1.3",
        "  2  |   2.6 |  67.0 |      59.1 | ×0.9",
        "  3  |  2.34 |  72.7 |      81.3 | ×1.3  ★",
        "  4  |  3.04 |  74.6 |      60.3 | (done)",
        "→ Recommended: coef=2.34 (trait=72.7, coherence=81.3)",
    ]


def test_research_layer12_sft_log_star_on_first_step():
    rule = WalkRule(threshold=70.0)
    evaluate, calls = scripted([(84.3, 76.0), (80.9, 73.6), (71.9, 51.9), (73.5, 67.6)])
    steps = run_walk(rule, 1.0, evaluate)
    assert calls == pytest.approx([1.0, 1.3, 1.69, 1.521])
    lines = step_table(rule, steps).splitlines()
    assert [line.split("|")[-1].strip() for line in lines[2:6]] == ["×1.3  ★", "×1.3", "×0.9", "(done)"]
    assert lines[-1] == "→ Recommended: coef=1 (trait=84.3, coherence=76.0)"


def test_threshold_and_factors_are_parameters_and_no_coherent_step_says_so():
    rule = WalkRule(threshold=85.0, up=1.5, down=0.85, steps=3)
    evaluate, calls = scripted([(60.0, 84.0), (50.0, 90.0), (40.0, 20.0)])
    steps = run_walk(rule, 1.0, evaluate)
    assert calls == pytest.approx([1.0, 0.85, 1.275])
    lines = step_table(rule, steps).splitlines()
    assert lines[3].endswith("×1.5  ★") and lines[-1] == "→ Recommended: coef=0.85 (trait=50.0, coherence=90.0)"
    flat = run_walk(rule, 1.0, lambda v: (10.0, 5.0))
    assert step_table(rule, flat).splitlines()[-1] == "→ No step reached coherence >= 85; no recommendation"


def test_base_zero_never_moves_so_the_sampler_starts_from_the_prior():
    rule = WalkRule(threshold=70.0)
    steps = [Step(0.0, 38.4, 53.7), Step(0.0, 43.3, 58.8)]  # the research's layer-8 DPO search stayed at coef 0
    assert walk_values(rule, 0.0, steps) == 0.0
    study = SearchStudy(StudySpec("m", "t", "v", sampler="adaptive", n_trials=8, coherence_threshold=70.0),
                        "memory", num_layers=4)
    first = study.ask(1)[0]
    assert first.point.ratio == pytest.approx(0.6) and first.site.label == "L0"


def test_adaptive_sampler_walks_layer_after_layer_by_the_rule():
    spec = StudySpec("m", "t", "v", sampler=AdaptiveSearch(steps=4), n_trials=8, coherence_threshold=70.0)
    study = SearchStudy(spec, "memory", num_layers=2)
    coherence = iter([80.0, 75.0, 60.0, 90.0, 50.0, 50.0, 71.0, 10.0])
    seen = []
    while not study.done:
        [plan] = study.ask(1)
        seen.append((plan.site.label, plan.point.ratio))
        study.tell(plan, 50.0, next(coherence))
    assert [s for s, _ in seen] == ["L0"] * 4 + ["L1"] * 4
    assert [r for _, r in seen] == pytest.approx([0.6, 0.78, 1.014, 0.9126, 0.6, 0.54, 0.486, 0.6318])
