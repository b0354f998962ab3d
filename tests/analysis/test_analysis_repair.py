"""Vector repair: cosine filtering drops exactly the planted outliers; contrastive probing refuses small classes."""

from __future__ import annotations

import numpy as np
import pytest

from steersweep.analysis import (
    InsufficientClassError,
    binarize_scores,
    class_cosines,
    contrastive_probe,
    cosine_filter,
    mean_diff,
)


def _cos(a, b):
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_cosine_filter_removes_the_planted_outliers_and_nothing_else(planted_factory):
    data = planted_factory(seed=3, n=120, nuisance_sd=1.0, offset=20.0)  # tight classes: cosine ~0.95 to the mean
    positive = data.positive.copy()
    outliers = [5, 17, 60, 99]
    rng = np.random.default_rng(0)
    for i in outliers:  # same norm as a normal sample, pointing somewhere else
        direction = rng.normal(size=positive.shape[1:])
        positive[i] = direction / np.linalg.norm(direction, axis=1, keepdims=True) * 20.0
    normal = np.setdiff1d(np.arange(len(positive)), outliers)
    cosines = np.stack([class_cosines(positive[:, layer, :]) for layer in range(positive.shape[1])])
    assert cosines[:, normal].min() > 0.85 and cosines[:, outliers].max() < 0.6  # the planting is as intended

    result = cosine_filter(positive)  # default threshold 0.80
    assert result.threshold == 0.80
    assert result.n_dropped == [len(outliers)] * positive.shape[1]
    for layer_keep in result.keep_mask:
        assert sorted(np.flatnonzero(~layer_keep).tolist()) == outliers
    assert [len(k) for k in result.kept] == [len(normal)] * positive.shape[1]

    negative_result = cosine_filter(data.negative)
    assert negative_result.n_dropped == [0] * positive.shape[1]

    # the repaired vector is closer to the planted trait than the one polluted by the outliers
    polluted = mean_diff(positive, data.negative).vectors
    repaired = mean_diff(result.kept, negative_result.kept).vectors
    for p, r in zip(polluted, repaired, strict=True):
        assert _cos(r, data.trait) > _cos(p, data.trait)


def test_cosine_filter_refuses_when_too_few_samples_survive():
    samples = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.2]])
    with pytest.raises(ValueError, match="lower the threshold or add prompts"):
        cosine_filter(samples, threshold=0.99, min_keep=2)
    with pytest.raises(ValueError, match="is not a cosine"):
        cosine_filter(samples, threshold=1.5)


def _judged(planted_factory, n_high_wanted):
    data = planted_factory(seed=4, n=150, nuisance_sd=5.0, n_layers=1)
    activations = np.concatenate([data.positive, data.negative])[:, 0, :]
    projection = activations @ data.trait
    scores = 100.0 / (1.0 + np.exp(-2.0 * projection))  # a judge that reads the true trait
    order = np.argsort(-scores)
    # keep only n_high_wanted responses above 60, like a model that rarely shows the trait
    keep = np.concatenate([order[:n_high_wanted], order[np.searchsorted(-scores[order], -60.0):]])
    return activations[keep], scores[keep], data


def test_contrastive_probe_learns_from_judged_responses(planted_factory):
    activations, scores, data = _judged(planted_factory, n_high_wanted=60)
    result = contrastive_probe(activations, scores, high_threshold=60, low_threshold=40)
    assert result.method == "contrastive_probe"
    assert result.details["n_high"] == 60 and result.details["n_low"] == int((scores <= 40).sum())
    assert result.vectors.shape == (1, 32)
    assert _cos(result.vectors[0], data.trait) > 0.9


def test_contrastive_probe_refuses_when_the_high_class_is_too_small(planted_factory):
    activations, scores, _ = _judged(planted_factory, n_high_wanted=3)
    with pytest.raises(InsufficientClassError) as caught:
        contrastive_probe(activations, scores, high_threshold=60, low_threshold=40, min_per_class=10)
    message = str(caught.value)
    assert "3 responses scored >= 60" in message and "high class needs at least 10" in message
    assert "widen the thresholds" in message


def test_binarize_scores_ignores_unscored_and_rejects_overlapping_thresholds():
    high, low = binarize_scores([90.0, None, 10.0, float("nan"), 50.0], high_threshold=60, low_threshold=40)
    assert high.tolist() == [True, False, False, False, False]
    assert low.tolist() == [False, False, True, False, False]
    with pytest.raises(ValueError, match="must be below high_threshold"):
        binarize_scores([1.0], high_threshold=40, low_threshold=60)
