"""Must-show 4: activation similarity of a model with itself is 1.0 at every layer and position; a perturbed copy drops
exactly where the perturbation was planted. Plus the coverage clipping and the transfer correlation by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats as sps
from tiny_models import build_tiny_model as tiny_model
from tiny_models import build_tiny_tokenizer as tiny_tokenizer
from tiny_models import save

from steersweep.actors import ModelSpec, ModelWorker
from steersweep.analysis import activation_similarity, similarity_transfer_correlation
from steersweep.engine.replay import replay

PROMPTS = ("the cat is happy", "a dog runs here", "the sun is bright today", "rain and night",
           "we sing a song", "the old city road")
PERTURBED_LAYER = 2


@pytest.fixture(scope="module")
def workers(tmp_path_factory):
    root = tmp_path_factory.mktemp("similarity")
    tokenizer = tiny_tokenizer()
    model = tiny_model("llama", len(tokenizer), seed=5)
    base = save(model, tokenizer, root / "base")
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        weight = model.model.layers[PERTURBED_LAYER].mlp.down_proj.weight
        weight += 0.3 * torch.randn(weight.shape, generator=generator)
    perturbed = save(model, tokenizer, root / "perturbed")
    return ModelWorker(ModelSpec(str(base))), ModelWorker(ModelSpec(str(perturbed)))


def test_model_with_itself_is_one_at_every_layer_and_position(workers):
    base, _ = workers
    result = replay(base, base, PROMPTS, layers=range(4), max_new_tokens=6).similarity()
    assert result.per_layer.num_rows == 4
    assert all(r["n_prompts"] == len(PROMPTS) for r in result.per_layer.to_pylist())
    np.testing.assert_allclose(list(result.layer_means().values()), 1.0, atol=1e-6)
    positions = result.per_position.to_pylist()
    assert {r["position"] for r in positions} == set(range(6)) and {r["layer"] for r in positions} == set(range(4))
    np.testing.assert_allclose([r["mean_cosine"] for r in positions], 1.0, atol=1e-6)


def test_perturbed_copy_drops_exactly_from_the_planted_layer_on(workers):
    base, perturbed = workers
    run = replay(base, perturbed, PROMPTS, layers=range(4), max_new_tokens=6)
    assert all(a.shape == b.shape for a, b in zip(run.model_a, run.model_b, strict=True))
    means = run.similarity().layer_means()
    for layer in range(PERTURBED_LAYER):
        assert means[layer] == pytest.approx(1.0, abs=1e-6), layer
    for layer in range(PERTURBED_LAYER, 4):
        assert means[layer] < 0.999, (layer, means[layer])
    for row in run.similarity().per_position.to_pylist():
        if row["layer"] < PERTURBED_LAYER:
            assert row["mean_cosine"] == pytest.approx(1.0, abs=1e-6)
        else:
            assert row["mean_cosine"] < 1 - 1e-4


def test_positions_are_clipped_to_80_percent_coverage_and_averaged_by_hand():
    rng = np.random.default_rng(0)
    lengths = [5, 5, 5, 3, 2]
    a = [rng.normal(size=(n, 2, 8)) for n in lengths]
    b = [x + rng.normal(scale=0.5, size=x.shape) for x in a]
    result = activation_similarity(a, b, layers=(7, 9))
    rows = result.per_position.to_pylist()
    assert sorted({r["position"] for r in rows}) == [0, 1, 2]  # t=3,4 reached by 3/5 < 80%
    row = next(r for r in rows if r["layer"] == 9 and r["position"] == 2)
    expected = np.mean([x[2, 1] @ y[2, 1] / np.linalg.norm(x[2, 1]) / np.linalg.norm(y[2, 1])
                        for x, y in zip(a, b, strict=True) if len(x) > 2])
    assert row["mean_cosine"] == pytest.approx(expected) and row["n_prompts"] == 4
    layer_row = next(r for r in result.per_layer.to_pylist() if r["layer"] == 7)
    expected_layer = np.mean([x[:, 0].mean(0) @ y[:, 0].mean(0) / np.linalg.norm(x[:, 0].mean(0))
                              / np.linalg.norm(y[:, 0].mean(0)) for x, y in zip(a, b, strict=True)])
    assert layer_row["mean_cosine"] == pytest.approx(expected_layer)
    with pytest.raises(ValueError, match="same layers and hidden size"):
        activation_similarity([np.ones((2, 2, 8))], [np.ones((2, 2, 4))])


def test_similarity_transfer_correlation_is_pearson_over_common_layers():
    similarity = {0: 0.99, 1: 0.95, 2: 0.9, 3: 0.8, 4: 0.7}
    curves = {"optimism": {1: 40.0, 2: 35.0, 3: 20.0, 4: 18.0}, "flat": {1: 5.0, 2: 5.0, 3: 5.0}}
    rows = {r["trait"]: r for r in similarity_transfer_correlation(similarity, curves).to_pylist()}
    ref = sps.pearsonr([0.95, 0.9, 0.8, 0.7], [40.0, 35.0, 20.0, 18.0])
    assert rows["optimism"]["r"] == pytest.approx(ref.statistic) and rows["optimism"]["n"] == 4
    assert np.isnan(rows["flat"]["r"]) and "constant" in rows["flat"]["note"]
