"""Extraction methods on synthetic data with a planted trait direction: recovery, PCA denoising, polarity."""

from __future__ import annotations

import numpy as np
import pytest

from steersweep.analysis import (
    METHODS,
    get_method,
    gradient,
    label_polarity,
    mean_diff,
    orient,
    pca_denoise,
    probe,
)


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_probe_and_gradient_recover_planted_direction_despite_nuisance(planted):
    mean_cos = [_cos(v, planted.trait) for v in mean_diff(planted.positive, planted.negative).vectors]
    for method in (probe, gradient):
        result = method(planted.positive, planted.negative)
        assert result.vectors.shape == (4, 32)
        cosines = [_cos(v, planted.trait) for v in result.vectors]
        assert min(cosines) >= 0.95, (result.method, cosines)
        assert not result.polarity_flipped.any()
    # the nuisance spread really is a hard case: the plain mean difference is pulled off the trait direction
    assert np.mean(mean_cos) < 0.85, mean_cos


def test_pca_denoising_raises_mean_diff_cosine_and_removes_the_nuisance(planted):
    before = [_cos(v, planted.trait) for v in mean_diff(planted.positive, planted.negative).vectors]
    denoised = pca_denoise(planted.positive, planted.negative, k=1)
    after = [_cos(v, planted.trait) for v in mean_diff(denoised.positive, denoised.negative).vectors]
    assert all(a > b for a, b in zip(after, before, strict=True)), (before, after)
    assert np.mean(after) - np.mean(before) >= 0.2, (before, after)
    assert min(after) >= 0.95
    for component in denoised.components:
        assert abs(_cos(component[0], planted.nuisance)) > 0.99
    assert all(0.9 < share < 1.0 for share in denoised.explained_variance_ratio)


def test_pca_denoise_with_k_zero_changes_nothing(planted):
    denoised = pca_denoise(planted.positive, planted.negative, k=0)
    np.testing.assert_allclose(denoised.positive[0], planted.positive[:, 0, :])


@pytest.mark.parametrize("name", sorted(METHODS))
def test_swapped_classes_yield_the_negated_vector(planted, name):
    method = get_method(name)
    forward = method(planted.positive, planted.negative)
    swapped = method(planted.negative, planted.positive)
    for v, w in zip(forward.vectors, swapped.vectors, strict=True):
        assert _cos(v, w) < -0.9999
        np.testing.assert_allclose(np.linalg.norm(v), np.linalg.norm(w), rtol=1e-3)
    # each result makes ITS positive class project higher
    cases = ((forward, planted.positive, planted.negative), (swapped, planted.negative, planted.positive))
    for result, pos, neg in cases:
        for i, v in enumerate(result.vectors):
            assert pos[:, i, :].mean(axis=0) @ v > neg[:, i, :].mean(axis=0) @ v


def test_swapped_labels_are_flagged_by_judge_scores(planted):
    """Judge-like scores that read the ground truth flag a dataset whose files are swapped."""

    def judge(samples: np.ndarray) -> list[float]:  # 0-100 from the true trait projection at layer 0
        return list(100.0 / (1.0 + np.exp(-(samples[:, 0, :] @ planted.trait))))

    honest = label_polarity(judge(planted.positive), judge(planted.negative))
    assert honest.agrees and honest.mean_positive > 70 > 30 > honest.mean_negative
    swapped = label_polarity(judge(planted.negative), judge(planted.positive))
    assert not swapped.agrees
    assert "reverse" in swapped.describe()
    vector = probe(planted.negative, planted.positive).vectors[0]
    assert _cos(vector, planted.trait) < -0.95  # the swapped dataset's vector is the negated trait direction


def test_orient_flips_a_vector_pointing_to_the_negative_class_and_says_so():
    positive = np.array([[2.0, 0.0], [3.0, 1.0]])
    negative = np.array([[-1.0, 0.0], [-2.0, 1.0]])
    vector, flipped = orient(np.array([-1.0, 0.0]), positive, negative)
    assert flipped and vector.tolist() == [1.0, 0.0]
    vector, flipped = orient(np.array([1.0, 0.5]), positive, negative)
    assert not flipped and vector.tolist() == [1.0, 0.5]


def test_methods_accept_one_array_per_layer_with_different_sample_counts(planted):
    positive = [planted.positive[:200, 0, :], planted.positive[:150, 1, :]]
    negative = [planted.negative[:180, 0, :], planted.negative[:, 1, :]]
    result = probe(positive, negative)
    assert result.n_positive == (200, 150) and result.n_negative == (180, 300)
    assert all(_cos(v, planted.trait) > 0.9 for v in result.vectors)


def test_probe_direction_does_not_depend_on_activation_units(planted):
    small = probe(planted.positive, planted.negative).vectors
    large = probe(planted.positive * 100.0, planted.negative * 100.0).vectors
    for a, b in zip(small, large, strict=True):
        assert _cos(a, b) > 0.9999
        np.testing.assert_allclose(np.linalg.norm(a) / np.linalg.norm(b), 100.0, rtol=1e-2)


def test_bad_inputs_name_the_field_and_the_fix():
    with pytest.raises(ValueError, match="positive has 2 layers but negative has 1"):
        mean_diff(np.zeros((3, 2, 4)), np.zeros((3, 4)))
    with pytest.raises(ValueError, match="NaN"):
        mean_diff(np.full((3, 4), np.nan), np.zeros((3, 4)))
    with pytest.raises(ValueError, match="each class needs at least one"):
        mean_diff(np.zeros((0, 4)), np.zeros((3, 4)))
    with pytest.raises(ValueError, match="unknown extraction method 'pca_diff'"):
        get_method("pca_diff")


def test_label_polarity_is_undecided_when_the_judge_cannot_tell_the_classes_apart():
    undecided = label_polarity([50.0, 50.0], [50.0, None])
    assert undecided.agrees is None and "not separated" in undecided.describe()
    with pytest.raises(ValueError, match="need at least one of each"):
        label_polarity([None], [10.0])
