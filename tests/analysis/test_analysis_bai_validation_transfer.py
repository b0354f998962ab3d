"""Scenario drifts, BAI, validation table, transfer matrix and the activation transfer test on hand-made tables."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest
from scipy import stats as sps

from steersweep.analysis import (
    RESEARCH_UNIT,
    DriftError,
    activation_transfer_test,
    bai_label,
    bai_table,
    behavioral_alignment,
    projection_table,
    scenario_drifts,
    transfer_curves,
    transfer_matrix,
    validation_counts,
    validation_table,
)

RATIOS = (0.0, -0.4, -0.2, 0.2, 0.4)


def _rollouts(model: str, slope: float, seed: int, n_scenarios: int = 20, trait: str = "optimism") -> list[dict]:
    """Activation rises with the ratio; the judged score follows it with ``slope`` plus noise."""
    rng = np.random.default_rng(seed)
    rows = []
    for scenario in range(n_scenarios):
        base_activation, base_score = rng.normal(), 50 + rng.normal(scale=5)
        for ratio in RATIOS:
            activation = base_activation + 4 * ratio + rng.normal(scale=0.3) * (ratio != 0)
            score = base_score + slope * (activation - base_activation) + rng.normal(scale=3) * (ratio != 0)
            rows.append(dict(model=model, trait=trait, vector_source=model, layer=2, scenario=scenario,
                             perturbation_ratio=ratio, trait_score=score, activation=activation))
    return rows


def test_drifts_are_differences_from_the_unsteered_response_of_the_same_scenario():
    rows = _rollouts("m", 10.0, 0, n_scenarios=3)
    rows.append(dict(rows[-1], scenario=99, perturbation_ratio=0.4))  # no unsteered reference: dropped
    rows.append(dict(rows[0], scenario=1, perturbation_ratio=0.2, trait_score=None))  # no score: dropped
    drifts = scenario_drifts(pa.Table.from_pylist(rows)).to_pylist()
    assert len(drifts) == 3 * 4
    by_key = {(r["scenario"], r["perturbation_ratio"]): r for r in rows if r["trait_score"] is not None}
    for d in drifts:
        ref = by_key[(d["scenario"], 0.0)]
        assert d["activation_drift"] == pytest.approx(d["activation"] - ref["activation"])
        assert d["behavioral_drift"] == pytest.approx(d["trait_score"] - ref["trait_score"])
    with pytest.raises(DriftError, match="unsteered"):
        scenario_drifts(pa.Table.from_pylist([r for r in rows if r["perturbation_ratio"] != 0]))
    with pytest.raises(DriftError, match="activation"):
        scenario_drifts(pa.Table.from_pylist(rows).drop(["activation"]))


def test_bai_is_the_top_minus_bottom_quartile_difference_by_hand():
    rng = np.random.default_rng(1)
    activation = rng.normal(size=40)
    behavior = 2 * activation + rng.normal(size=40)
    result = behavioral_alignment(activation, behavior, quantile=0.25)
    order = np.argsort(activation)
    expected = behavior[order[-10:]].mean() - behavior[order[:10]].mean()
    assert result.bai == pytest.approx(abs(expected)) and result.n_top == result.n_bottom == 10
    tertile = behavioral_alignment(activation, behavior, quantile=1 / 3)
    low, high = np.percentile(activation, [100 / 3, 200 / 3])  # rows at or beyond the percentile thresholds
    assert tertile.n_top == int((activation >= high).sum()) and tertile.n_bottom == int((activation <= low).sum())
    assert tertile.signed_difference == pytest.approx(behavior[activation >= high].mean()
                                                      - behavior[activation <= low].mean())
    flipped = behavioral_alignment(activation, -behavior)
    assert flipped.signed_difference == pytest.approx(-expected) and flipped.bai == pytest.approx(abs(expected))
    assert behavioral_alignment(activation, behavior * RESEARCH_UNIT, unit=RESEARCH_UNIT).bai == pytest.approx(
        result.bai)
    assert [bai_label(v) for v in (0.0, 0.299, 0.3, 0.699, 0.7, 2.0)] == [
        "BROKEN", "BROKEN", "WEAK", "WEAK", "FUNCTIONAL", "FUNCTIONAL"]
    with pytest.raises(ValueError, match="quantile"):
        behavioral_alignment(activation, behavior, quantile=0.75)


def test_validation_table_and_bai_per_model_match_scipy_and_flag_the_broken_model():
    rows = _rollouts("good", 10.0, 2) + _rollouts("broken", 0.0, 3)
    drifts = scenario_drifts(pa.Table.from_pylist(rows))
    table = {r["model"]: r for r in validation_table(drifts).to_pylist()}
    for model in ("good", "broken"):
        mine = [r for r in drifts.to_pylist() if r["model"] == model]
        ref = sps.pearsonr([r["activation_drift"] for r in mine], [r["behavioral_drift"] for r in mine])
        assert table[model]["r"] == pytest.approx(ref.statistic) and table[model]["n"] == 80
        assert table[model]["p_value"] == pytest.approx(ref.pvalue, rel=1e-6, abs=1e-300)
    assert table["good"]["validated"] and not table["broken"]["validated"]
    counts = {r["model"]: r["scorecard"] for r in validation_counts(validation_table(drifts)).to_pylist()}
    assert counts == {"broken": "0/1", "good": "1/1"}
    labels = {r["model"]: r["label"] for r in bai_table(drifts).to_pylist()}
    assert labels == {"broken": "BROKEN", "good": "FUNCTIONAL"}


def test_validation_row_with_constant_drift_is_nan_with_a_reason():
    rows = [dict(model="m", trait="t", vector_source="m", layer=0, scenario=s, perturbation_ratio=r,
                 trait_score=50.0, activation=float(s + r)) for s in range(4) for r in (0.0, 0.5)]
    row = validation_table(scenario_drifts(pa.Table.from_pylist(rows))).to_pylist()[0]
    assert math.isnan(row["r"]) and not row["validated"] and "constant" in row["note"]


def _trial(source, target, layer, ratio, score, coherence, baseline=40.0, state="COMPLETE", number=0):
    return dict(study="s", target_model=target, trait="optimism", vector_source=source, vector_method="mean_diff",
                sampler="grid", trial_number=number, state=state, layers=[layer], layer=layer, perturbation_ratio=ratio,
                coefficient=ratio * 10, activation_norm=10.0, vector_norm=1.0, trait_score=score, coherence=coherence,
                trait_score_se=1.0, coherence_se=1.0, n=8, baseline_trait_score=baseline, baseline_coherence=99.0,
                feasible=coherence >= 70, coherence_threshold=70.0)


def test_transfer_matrix_takes_the_best_coherent_delta_per_layer_and_overall():
    trials = pa.Table.from_pylist([
        _trial("base", "sft", 1, 0.2, 60, 95), _trial("base", "sft", 1, 0.6, 90, 50),  # incoherent: ignored
        _trial("base", "sft", 2, 0.4, 75, 80), _trial("base", "sft", 2, 0.8, 99, 90, state="FAIL"),
        _trial("sft", "sft", 2, 0.3, 88, 85), _trial("sft", "dpo", 1, 1.5, 55, 20),
    ])
    by_layer, overall = transfer_matrix(trials)
    cells = {(r["vector_source"], r["target_model"], r["layer"]): r for r in by_layer.to_pylist()}
    assert cells[("base", "sft", 1)]["best_delta"] == 20 and cells[("base", "sft", 1)]["n_feasible"] == 1
    assert cells[("base", "sft", 2)]["best_delta"] == 35 and cells[("base", "sft", 2)]["n_trials"] == 1
    assert math.isnan(cells[("sft", "dpo", 1)]["best_delta"]) and cells[("sft", "dpo", 1)]["n_feasible"] == 0
    best = {(r["vector_source"], r["target_model"]): r for r in overall.to_pylist()}
    assert (best[("base", "sft")]["best_delta"], best[("base", "sft")]["best_layer"]) == (35, 2)
    assert best[("sft", "sft")]["best_ratio"] == 0.3
    _, strict = transfer_matrix(trials, coherence_threshold=90)
    assert {(r["vector_source"], r["target_model"]): r["best_delta"] for r in strict.to_pylist()}[("base", "sft")] == 20
    assert transfer_curves(by_layer, "base", "sft") == {"optimism": {1: 20.0, 2: 35.0}}
    with pytest.raises(ValueError, match="lack columns"):
        transfer_matrix(trials.drop(["baseline_trait_score"]))


def test_activation_transfer_test_flags_when_a_foreign_projection_predicts_better():
    rng = np.random.default_rng(4)
    rows = []
    for scenario in range(30):
        latent = rng.normal()
        for ratio in (0.0, 0.3):
            shift = latent * (ratio != 0)
            rows.append(dict(model="llama", trait="t", vector_source="llama", layer=1, scenario=scenario,
                             perturbation_ratio=ratio, trait_score=50 + 10 * shift, activation=shift))
            rows.append(dict(model="qwen", trait="t", vector_source="qwen", layer=1, scenario=scenario,
                             perturbation_ratio=ratio, trait_score=50 + 10 * shift + rng.normal(),
                             activation=rng.normal() * (ratio != 0)))
    test = activation_transfer_test(scenario_drifts(pa.Table.from_pylist(rows)), "llama", "qwen").to_pylist()[0]
    assert test["a_beats_b"] and test["r_cross"] > 0.9 and abs(test["r_self"]) < 0.5 and test["n"] == 30


def test_projection_table_lays_out_every_token_vector_and_layer():
    values = np.arange(12.0).reshape(3, 2, 2)
    table = projection_table([values], ["optimism", "formality"], [1, 3], [[5, 6, 7]], [["a", "b", "c"]], ["q0"])
    assert table.num_rows == 12
    row = next(r for r in table.to_pylist() if r["token_index"] == 2 and r["vector_id"] == "formality"
               and r["layer"] == 3)
    assert (row["projection"], row["token"], row["token_id"], row["tag"]) == (11.0, "c", 7, "q0")
