"""Every diagnostic against an independent plain-Python computation on a small hand-made array."""

from __future__ import annotations

import math

import numpy as np
import pytest

from steersweep.analysis import cohens_d, diagnose, diagnose_layer, mean_diff

TRAIN_POS = [[3.0, 1.0, 0.0], [4.0, 0.5, 1.0], [5.0, 1.5, -1.0]]
TRAIN_NEG = [[0.0, 1.0, 0.5], [1.0, 2.0, 0.0], [-1.0, 1.5, -0.5]]
HELD_POS = [[2.5, 1.0, 0.0], [0.2, 1.0, 2.0]]  # the second one falls on the wrong side
HELD_NEG = [[0.5, 0.0, 0.0], [-0.5, 2.0, 1.0]]
VECTOR = [1.0, -0.5, 0.25]
ACTIVATION_NORM = 4.0


def _dot(a, b):
    return sum(x * y for x, y in zip(a, b, strict=True))


def _norm(a):
    return math.sqrt(_dot(a, a))


def _mean_rows(rows):
    return [sum(col) / len(rows) for col in zip(*rows, strict=True)]


def _sample_var(values):
    mean = sum(values) / len(values)
    return sum((v - mean) ** 2 for v in values) / (len(values) - 1)


def test_every_diagnostic_matches_a_hand_computation():
    d = diagnose_layer(np.array(VECTOR), np.array(TRAIN_POS), np.array(TRAIN_NEG), np.array(HELD_POS),
                       np.array(HELD_NEG), layer=7, activation_norm=ACTIVATION_NORM)

    # threshold halfway between the training class-mean projections, accuracy on held-out samples
    train_pos_proj = [_dot(x, VECTOR) for x in TRAIN_POS]
    train_neg_proj = [_dot(x, VECTOR) for x in TRAIN_NEG]
    threshold = (sum(train_pos_proj) / 3 + sum(train_neg_proj) / 3) / 2
    held_pos_proj = [_dot(x, VECTOR) for x in HELD_POS]
    held_neg_proj = [_dot(x, VECTOR) for x in HELD_NEG]
    correct = sum(p > threshold for p in held_pos_proj) + sum(p < threshold for p in held_neg_proj)
    assert correct == 3  # the hand-made data has exactly one held-out mistake
    assert d.heldout_accuracy == pytest.approx(correct / 4)

    assert d.polarity_correct == (sum(held_pos_proj) / 2 > sum(held_neg_proj) / 2)
    pooled = (_sample_var(held_pos_proj) + _sample_var(held_neg_proj)) / 2  # equal sizes: plain average
    assert d.effect_size == pytest.approx((sum(held_pos_proj) / 2 - sum(held_neg_proj) / 2) / math.sqrt(pooled))

    all_pos, all_neg = TRAIN_POS + HELD_POS, TRAIN_NEG + HELD_NEG
    mean_pos, mean_neg = _mean_rows(all_pos), _mean_rows(all_neg)
    separation = _norm([a - b for a, b in zip(mean_pos, mean_neg, strict=True)])
    assert d.separation == pytest.approx(separation)

    def within_var(rows, mean):
        return sum(sum((x - m) ** 2 for x, m in zip(row, mean, strict=True)) for row in rows) / len(rows) / 3

    var_pos, var_neg = within_var(all_pos, mean_pos), within_var(all_neg, mean_neg)
    assert d.within_var_positive == pytest.approx(var_pos)
    assert d.within_var_negative == pytest.approx(var_neg)

    def mean_cos(rows, mean):
        return sum(_dot(r, mean) / (_norm(r) * _norm(mean)) for r in rows) / len(rows)

    assert d.cosine_positive == pytest.approx(mean_cos(all_pos, mean_pos))
    assert d.cosine_negative == pytest.approx(mean_cos(all_neg, mean_neg))
    assert d.snr == pytest.approx(separation / ((var_pos + var_neg) / 2))
    assert d.vector_norm == pytest.approx(_norm(VECTOR))
    assert d.activation_norm == ACTIVATION_NORM
    assert d.norm_ratio == pytest.approx(_norm(VECTOR) / ACTIVATION_NORM)
    assert (d.layer, d.n_train, d.n_heldout, d.evaluated_on) == (7, 6, 4, "heldout")


def test_without_heldout_samples_vector_numbers_come_from_training_data():
    d = diagnose_layer(np.array(VECTOR), np.array(TRAIN_POS), np.array(TRAIN_NEG))
    proj_pos = [_dot(x, VECTOR) for x in TRAIN_POS]
    proj_neg = [_dot(x, VECTOR) for x in TRAIN_NEG]
    pooled = (_sample_var(proj_pos) + _sample_var(proj_neg)) / 2
    assert d.evaluated_on == "train" and d.n_heldout == 0
    assert d.effect_size == pytest.approx((sum(proj_pos) / 3 - sum(proj_neg) / 3) / math.sqrt(pooled))
    assert d.heldout_accuracy == 1.0
    assert math.isnan(d.norm_ratio)  # no activation norm given


def test_cohens_d_with_unequal_class_sizes():
    pos, neg = [1.0, 2.0, 4.0, 5.0], [0.0, 1.0]
    pooled = (3 * _sample_var(pos) + 1 * _sample_var(neg)) / (4 + 2 - 2)
    assert cohens_d(np.array(pos), np.array(neg)) == pytest.approx((3.0 - 0.5) / math.sqrt(pooled))
    assert math.isnan(cohens_d(np.array([1.0]), np.array([0.0, 1.0])))


def test_diagnose_runs_every_layer_of_a_result_with_layer_ids_and_norms():
    rng = np.random.default_rng(1)
    pos, neg = rng.normal(1.0, 1.0, (20, 3, 5)), rng.normal(-1.0, 1.0, (20, 3, 5))
    result = mean_diff(pos[:15], neg[:15])
    rows = diagnose(result, pos[:15], neg[:15], pos[15:], neg[15:], layers=[4, 5, 6], activation_norms=[2, 4, 8])
    assert [r.layer for r in rows] == [4, 5, 6]
    for i, row in enumerate(rows):
        single = diagnose_layer(result.vectors[i], pos[:15, i], neg[:15, i], pos[15:, i], neg[15:, i],
                                layer=4 + i, activation_norm=[2, 4, 8][i])
        assert row == single
        assert row.n_heldout == 10 and row.polarity_correct
    with pytest.raises(ValueError, match="need 3 entries"):
        diagnose(result, pos, neg, layers=[1, 2])
