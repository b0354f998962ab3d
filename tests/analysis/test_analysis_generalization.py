"""Generalization matrices on synthetic data with two topics."""

from __future__ import annotations

import numpy as np
import pytest

from steersweep.analysis import generalization_matrix, heldout_split, mean_diff, probe


def _two_topics(shared_direction: bool, seed: int = 0, n: int = 100, dim: int = 24):
    """Topics A and B with a planted trait direction each (the same one, or orthogonal ones)."""
    rng = np.random.default_rng(seed)
    basis, _ = np.linalg.qr(rng.normal(size=(dim, 2)))
    directions = {"A": basis[:, 0], "B": basis[:, 0] if shared_direction else basis[:, 1]}
    activations, labels, topics = [], [], []
    for topic, direction in directions.items():
        for label in (True, False):
            x = rng.normal(size=(n, 2, dim)) + (2.0 if label else -2.0) * direction
            activations.append(x)
            labels += [label] * n
            topics += [topic] * n
    return np.concatenate(activations), np.array(labels), topics


@pytest.mark.parametrize("method", [probe, mean_diff])
def test_topic_specific_direction_gives_a_high_diagonal(method):
    activations, labels, topics = _two_topics(shared_direction=False)
    matrix = generalization_matrix(activations, labels, topics, method=method, layers=[10, 11])
    assert matrix.groups == ("A", "B") and matrix.layers == (10, 11)
    for layer in (10, 11):
        table = matrix.table(layer)
        assert np.diag(table).min() >= 0.9, table
        assert table[0, 1] <= 0.65 and table[1, 0] <= 0.65, table
        assert matrix.diagonal_mean(layer) - matrix.off_diagonal_mean(layer) >= 0.3


@pytest.mark.parametrize("method", [probe, mean_diff])
def test_shared_direction_gives_a_flat_matrix(method):
    activations, labels, topics = _two_topics(shared_direction=True)
    matrix = generalization_matrix(activations, labels, topics, method=method)
    for layer in matrix.layers:
        table = matrix.table(layer)
        assert table.min() >= 0.9, table
        assert abs(matrix.diagonal_mean(layer) - matrix.off_diagonal_mean(layer)) <= 0.05, table


def test_rows_and_text_table_cover_every_cell():
    activations, labels, topics = _two_topics(shared_direction=True, n=30)
    matrix = generalization_matrix(activations, labels, topics, method=mean_diff)
    rows = matrix.rows()
    assert len(rows) == 2 * 2 * 2
    assert {(r["train_group"], r["test_group"]) for r in rows} == {("A", "A"), ("A", "B"), ("B", "A"), ("B", "B")}
    assert matrix.n_test == (30, 30)
    text = matrix.format(layer=0)
    assert "train (rows) x test (columns)" in text and text.count("\n") == 3


def test_heldout_split_keeps_rollouts_of_one_scenario_together():
    labels = np.array([True] * 8 + [False] * 8)
    units = [f"s{i // 2}" for i in range(16)]  # two rollouts per scenario
    held = heldout_split(labels, units, heldout_fraction=0.5, seed=1)
    for i in range(0, 16, 2):
        assert held[i] == held[i + 1]
    assert held[labels].sum() == 4 and held[~labels].sum() == 4


def test_a_topic_with_one_class_is_rejected():
    activations = np.zeros((4, 3))
    with pytest.raises(ValueError, match="tag 'B' has only one class"):
        generalization_matrix(activations, [True, False, True, True], ["A", "A", "B", "B"])
