"""Extraction and its containers against hand computations: mean_diff's value, sign flag and norm; the polarity
rule shared by every method; and the errors the containers promise (TraitVector, ActivationSet, pca_denoise)."""

from __future__ import annotations

import numpy as np
import pytest

from steersweep.analysis import ActivationSet, TraitVector, mean_diff, pca_denoise
from steersweep.analysis.extraction import as_layers, orient, probe

POSITIVE = np.array([[2.0, 0.0, 1.0], [4.0, 0.0, 3.0]])
NEGATIVE = np.array([[0.0, 0.0, 1.0], [0.0, 2.0, 1.0], [0.0, 4.0, 4.0]])
# mean(positive) = [3, 0, 2], mean(negative) = [0, 2, 2]: the difference is [3, -2, 0], norm sqrt(13)


def test_mean_diff_is_positive_minus_negative_unnormalised_and_not_flipped():
    result = mean_diff(POSITIVE, NEGATIVE)
    np.testing.assert_array_equal(result.vectors, np.array([[3.0, -2.0, 0.0]], dtype=np.float32))
    assert result.vectors.dtype == np.float32
    assert result.polarity_flipped.tolist() == [False]
    assert float(np.linalg.norm(result.vectors[0])) == pytest.approx(np.sqrt(13.0))
    assert (result.method, result.n_positive, result.n_negative, result.num_layers) == ("mean_diff", (2,), (3,), 1)


def test_swapped_classes_give_the_negated_mean_diff_without_a_flip():
    result = mean_diff(NEGATIVE, POSITIVE)
    np.testing.assert_array_equal(result.vectors, np.array([[-3.0, 2.0, 0.0]], dtype=np.float32))
    assert result.polarity_flipped.tolist() == [False]


def test_mean_diff_per_layer_on_a_three_d_array_and_a_ragged_list():
    scale = np.array([1.0, -0.5, 10.0])
    positive = np.stack([POSITIVE * s for s in scale], axis=1)  # [2, 3 layers, 3]
    negative = np.stack([NEGATIVE * s for s in scale], axis=1)
    result = mean_diff(positive, negative)
    expected = np.array([[3.0, -2.0, 0.0]]) * scale[:, None]
    np.testing.assert_allclose(result.vectors, expected, rtol=1e-6)
    assert result.polarity_flipped.tolist() == [False, False, False]
    ragged = mean_diff([POSITIVE, POSITIVE[:1]], [NEGATIVE, NEGATIVE[1:]])
    np.testing.assert_allclose(ragged.vectors, [[3.0, -2.0, 0.0], [2.0, -3.0, -1.5]], rtol=1e-6)
    assert ragged.n_positive == (2, 1) and ragged.n_negative == (3, 2)


def test_orient_flips_only_a_vector_the_negative_class_projects_higher_on():
    pos, neg = np.array([[1.0, 0.0]]), np.array([[0.0, 1.0]])
    same, flipped = orient(np.array([1.0, -1.0]), pos, neg)
    assert same.tolist() == [1.0, -1.0] and flipped is False
    negated, flipped = orient(np.array([-1.0, 1.0]), pos, neg)
    assert negated.tolist() == [1.0, -1.0] and flipped is True
    tie, flipped = orient(np.array([1.0, 1.0]), pos, neg)  # margin 0: kept as it is
    assert tie.tolist() == [1.0, 1.0] and flipped is False


def test_probe_on_separable_data_points_from_negative_to_positive():
    rng = np.random.default_rng(0)
    positive = rng.normal(size=(40, 4)) + np.array([3.0, 0.0, 0.0, 0.0])
    negative = rng.normal(size=(40, 4)) - np.array([3.0, 0.0, 0.0, 0.0])
    result = probe(positive, negative)
    vector = result.vectors[0]
    assert vector[0] > 0 and abs(vector[0]) > 3 * np.abs(vector[1:]).max()
    assert result.details["train_accuracy"][0] >= 0.95


def test_as_layers_rejects_other_layouts():
    with pytest.raises(ValueError, match=r"positive: expected \[n_samples, n_layers, dim\]"):
        as_layers(np.zeros(4), "positive")
    with pytest.raises(ValueError, match=r"negative\[1\]: expected one \[n_samples, dim\] array per layer"):
        as_layers([np.zeros((2, 3)), np.zeros(3)], "negative")
    with pytest.raises(ValueError, match="layer index 0 has 1 sample"):
        as_layers(np.array([[1.0, np.inf], [0.0, 0.0]]), "positive")
    with pytest.raises(ValueError, match="positive dim 3 != negative dim 2"):
        mean_diff(POSITIVE, np.zeros((2, 2)))


def test_pca_denoise_refuses_a_negative_k_and_keeps_everything_at_k_zero():
    with pytest.raises(ValueError, match="k: -1 must be >= 0"):
        pca_denoise(POSITIVE, NEGATIVE, -1)
    kept = pca_denoise(POSITIVE, NEGATIVE, 0)
    np.testing.assert_array_equal(kept.positive[0], POSITIVE)
    np.testing.assert_array_equal(kept.negative[0], NEGATIVE)
    with pytest.raises(ValueError, match="positive has 2 layers but negative has 1"):
        pca_denoise(np.zeros((3, 2, 4)), np.zeros((3, 4)), 1)


def test_trait_vector_refuses_duplicate_layers_mismatched_rows_and_foreign_files(tmp_path):
    with pytest.raises(ValueError, match=r"layers: \[3, 3\] has duplicates"):
        TraitVector(np.ones((2, 4), np.float32), layers=(3, 3))
    with pytest.raises(ValueError, match="layers: 1 layer ids for 2 vectors"):
        TraitVector(np.ones((2, 4), np.float32), layers=(3,))
    with pytest.raises(ValueError, match=r"vectors: expected \[n_layers, dim\]"):
        TraitVector(np.ones(4, np.float32), layers=(3,))
    from safetensors.numpy import save_file

    foreign = tmp_path / "foreign.safetensors"
    save_file({"weight": np.ones((2, 2), np.float32)}, str(foreign))
    with pytest.raises(ValueError, match=r"not a steersweep trait vector \(has \['weight'\]"):
        TraitVector.load(foreign)
    with pytest.raises(FileNotFoundError, match="no such trait vector file"):
        TraitVector.load(tmp_path / "missing.safetensors")


def _activation_set(n: int = 3, **overrides) -> ActivationSet:
    fields = dict(
        activations=np.zeros((n, 2, 4), np.float32), layers=(0, 1), sample_index=np.arange(n),
        scenario_id=np.array([f"s{i}" for i in range(n)]), polarity=np.array(["positive", "negative", "positive"][:n]),
        rollout=np.zeros(n, int), split=np.array(["train"] * n), topic=np.array(["t"] * n),
        activation_norms=np.ones(2),
    )
    fields.update(overrides)
    return ActivationSet(**fields)


@pytest.mark.parametrize("name", ["sample_index", "scenario_id", "polarity", "rollout", "split", "topic"])
def test_activation_set_refuses_a_label_column_of_the_wrong_length(name):
    short = {name: getattr(_activation_set(), name)[:2]}
    with pytest.raises(ValueError, match=f"{name}: 2 entries for 3 samples"):
        _activation_set(**short)


def test_activation_set_refuses_wrong_layers_norms_and_polarity():
    with pytest.raises(ValueError, match=r"activations: expected \[n, 3 layers, dim\]"):
        _activation_set(layers=(0, 1, 2), activation_norms=np.ones(3))
    with pytest.raises(ValueError, match="activation_norms: 1 entries for 2 layers"):
        _activation_set(activation_norms=np.ones(1))
    with pytest.raises(ValueError, match=r"polarity: unknown values \['pos'\]"):
        _activation_set(polarity=np.array(["positive", "pos", "negative"]))
    assert _activation_set().is_positive.tolist() == [True, False, True]


def test_a_negated_raw_solution_is_flipped_flagged_and_logged(caplog):
    from steersweep.analysis.extraction import _finish

    pairs = [(POSITIVE, NEGATIVE), (POSITIVE, NEGATIVE)]
    raw = [np.array([3.0, -2.0, 0.0]), np.array([-3.0, 2.0, 0.0])]
    with caplog.at_level("INFO", logger="steersweep.analysis.extraction"):
        result = _finish("some_method", pairs, raw, {"note": 1})
    np.testing.assert_array_equal(result.vectors, np.array([[3.0, -2.0, 0.0]] * 2, dtype=np.float32))
    assert result.polarity_flipped.dtype == bool and result.polarity_flipped.tolist() == [False, True]
    assert result.method == "some_method" and result.details == {"note": 1}
    assert [r.getMessage() for r in caplog.records] == ["some_method: polarity flipped at layer indices [1]"]
    assert _finish("m", pairs[:1], raw[:1]).details == {}


def test_unknown_method_lists_the_known_ones():
    from steersweep.analysis.extraction import get_method

    assert get_method("mean_diff") is mean_diff
    expected = r"^method: unknown extraction method 'ica'; use one of mean_diff, probe, gradient$"
    with pytest.raises(ValueError, match=expected):
        get_method("ica")
