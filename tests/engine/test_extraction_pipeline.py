"""The extraction pipeline on a tiny real model: capture -> Parquet -> vectors -> safetensors, reruns, judge checks."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from steersweep.actors import CaptureRequest, ModelSpec, ModelWorker
from steersweep.analysis import ActivationSet, TraitVector, load_trait_dataset, mean_diff, probe
from steersweep.engine import ExtractionError, ExtractionPlan, JudgeVetting, RunDir, extract_trait_vectors


@pytest.fixture(scope="module")
def worker(tiny_model_dirs) -> ModelWorker:
    return ModelWorker(ModelSpec(str(tiny_model_dirs["llama"])))


def _mtimes(run: RunDir) -> dict[str, int]:
    return {str(p): p.stat().st_mtime_ns for p in sorted(run.root.rglob("*")) if p.is_file()}


def test_pipeline_writes_activations_vectors_and_diagnostics(tmp_path, worker, trait_dir):
    dataset = load_trait_dataset(trait_dir)
    plan = ExtractionPlan(model="tiny", components=("residual", "attn_out"), positions=("response[:5]", "prompt[-1]"),
                          methods=("mean_diff", "probe"), max_new_tokens=6, test_fraction=0.25)
    run = RunDir(tmp_path / "run")
    outcome = extract_trait_vectors(run, worker, dataset, plan)
    assert outcome.capture_calls == 1 and outcome.generated_rollouts == 24
    assert sorted(outcome.captured) == sorted((c, p) for c in plan.components for p in plan.positions)
    assert len(outcome.written) == 2 * 2 * 2 and not outcome.refused

    table = pq.read_table(run.activation_path("tiny", "cheerful", "attn_out", "response[:5]"))
    assert table.num_rows == 24 * 4  # samples x layers
    activation_type = table.schema.field("activation").type
    assert activation_type.list_size == 32 and str(activation_type.value_type) == "float"
    assert set(table.column("polarity").to_pylist()) == {"positive", "negative"}
    assert table.column("split").to_pylist().count("test") == 6 * 4  # 3 scenarios per class x 4 layers
    data = ActivationSet.read(run.activation_path("tiny", "cheerful", "attn_out", "response[:5]"))
    assert data.layers == (0, 1, 2, 3) and data.activations.shape == (24, 4, 32)
    assert np.all(data.activation_norms > 0)

    vectors = pq.read_table(run.vectors_table).to_pylist()
    assert len(vectors) == 8 * 4  # one row per vector file x layer
    row = next(r for r in vectors if r["method"] == "probe" and r["component"] == "residual"
               and r["position"] == "prompt[-1]" and r["layer"] == 2)
    assert row["n_train"] == 18 and row["n_heldout"] == 6 and row["evaluated_on"] == "heldout"
    assert row["norm_ratio"] == pytest.approx(row["vector_norm"] / row["activation_norm"])
    # prompt[-1] reads the same token after two different system prompts: the classes are separable
    assert row["heldout_accuracy"] == 1.0 and row["polarity_correct"]
    rollouts = pq.read_table(run.rollouts_path("tiny", "cheerful"))
    assert rollouts.num_rows == 24 and set(rollouts.column("source").to_pylist()) == {"generated"}


def test_rerun_skips_everything_and_new_position_replays_saved_rollouts(tmp_path, worker, trait_dir):
    dataset = load_trait_dataset(trait_dir)
    plan = ExtractionPlan(model="tiny", positions=("response[:5]",), methods=("mean_diff",), max_new_tokens=6)
    run = RunDir(tmp_path / "run")
    extract_trait_vectors(run, worker, dataset, plan)
    before = _mtimes(run)
    again = extract_trait_vectors(run, worker, dataset, plan)
    assert again.capture_calls == 0 and not again.written and len(again.skipped) == 1
    assert _mtimes(run) == before  # nothing rewritten

    wider = ExtractionPlan(model="tiny", positions=("response[:5]", "response[:]"), methods=("mean_diff",),
                           max_new_tokens=6)
    third = extract_trait_vectors(run, worker, dataset, wider)
    assert third.capture_calls == 1 and third.generated_rollouts == 0  # replayed, not regenerated
    assert third.captured == [("residual", "response[:]")] and len(third.skipped) == 1
    after = _mtimes(run)
    assert after[str(run.rollouts_path("tiny", "cheerful"))] == before[str(run.rollouts_path("tiny", "cheerful"))]
    old_file = str(run.activation_path("tiny", "cheerful", "residual", "response[:5]"))
    assert after[old_file] == before[old_file]


def test_replayed_capture_equals_the_stored_activations(tmp_path, worker, trait_dir):
    dataset = load_trait_dataset(trait_dir)
    plan = ExtractionPlan(model="tiny", positions=("response[:]",), methods=("mean_diff",), max_new_tokens=5)
    run = RunDir(tmp_path / "run")
    extract_trait_vectors(run, worker, dataset, plan)
    rollouts = pq.read_table(run.rollouts_path("tiny", "cheerful")).to_pylist()
    prompts = tuple(
        ({"role": "system", "content": r["system_prompt"]}, {"role": "user", "content": r["prompt"]}) for r in rollouts
    )
    reply = worker.capture(CaptureRequest(prompts=prompts, positions=("response[:]",), layers=(0, 1, 2, 3),
                                          responses=tuple(tuple(r["response_token_ids"]) for r in rollouts)))
    stored = ActivationSet.read(run.activation_path("tiny", "cheerful", "residual", "response[:]"))
    for i, layer in enumerate(stored.layers):
        np.testing.assert_allclose(stored.activations[:, i], reply.get(layer, "residual", "response[:]"), atol=1e-5)


def test_swapped_dataset_gives_negated_vectors_flagged_by_the_judge(tmp_path, worker, trait_dir_with_responses,
                                                                    lexicon_judge):
    dataset = load_trait_dataset(trait_dir_with_responses)
    plan = ExtractionPlan(model="tiny", positions=("response[:]",), methods=("mean_diff", "probe"))
    honest = extract_trait_vectors(RunDir(tmp_path / "a"), worker, dataset, plan, judge=lexicon_judge)
    swapped = extract_trait_vectors(RunDir(tmp_path / "b"), worker, dataset.swapped(), plan, judge=lexicon_judge)
    assert honest.label_polarity.agrees and honest.label_polarity.mean_positive == 100.0
    assert not swapped.label_polarity.agrees
    assert honest.generated_rollouts == 0  # the given responses were replayed
    for a_path, b_path in zip(honest.written, swapped.written, strict=True):
        a, b = TraitVector.load(a_path), TraitVector.load(b_path)
        assert a.metadata["labels_agree_with_judge"] == "true" and b.metadata["labels_agree_with_judge"] == "false"
        for cosine in a.cosine(b).values():
            assert cosine < -0.999
    rows = pq.read_table(RunDir(tmp_path / "b").vectors_table).to_pylist()
    assert {r["labels_agree_with_judge"] for r in rows} == {False}


def test_vetting_reports_pass_rates_and_contrastive_probe_refuses_a_missing_pole(tmp_path, worker, trait_dir,
                                                                                lexicon_judge):
    dataset = load_trait_dataset(trait_dir)
    plan = ExtractionPlan(model="tiny", positions=("response[:5]",), methods=("mean_diff", "contrastive_probe"),
                          vetting=JudgeVetting(positive_min=0.0, negative_max=100.0), max_new_tokens=6,
                          contrastive_thresholds=(101.0, -1.0), min_per_class=2)
    outcome = extract_trait_vectors(RunDir(tmp_path / "run"), worker, dataset, plan, judge=lexicon_judge)
    assert outcome.vetting_pass == {"positive": (12, 12), "negative": (12, 12)}
    assert "contrastive_probe/residual/response[:5]" in outcome.refused
    assert "scored >= 101.0" in outcome.refused["contrastive_probe/residual/response[:5]"]
    assert [p.parent.parent.name for p in outcome.written] == ["mean_diff+vet0-100"]


def test_saved_vector_equals_the_method_applied_to_the_parquet_activations(tmp_path, worker, trait_dir):
    dataset = load_trait_dataset(trait_dir)
    plan = ExtractionPlan(model="tiny", positions=("prompt[-1]",), methods=("mean_diff", "probe"),
                          cosine_filter=0.5, pca_components=1)
    run = RunDir(tmp_path / "run")
    outcome = extract_trait_vectors(run, worker, dataset, plan)
    assert outcome.generated_rollouts == 0  # prompt positions only: nothing to generate
    data = ActivationSet.read(run.activation_path("tiny", "cheerful", "residual", "prompt[-1]"))
    saved = TraitVector.load(run.vector_path("tiny", "cheerful", "mean_diff+cos0.5+pca1", "residual", "prompt[-1]"))
    from steersweep.analysis import cosine_filter, pca_denoise

    train = data.split == "train"
    pos = data.activations[train & data.is_positive].astype(np.float64)
    neg = data.activations[train & ~data.is_positive].astype(np.float64)
    kept_pos, kept_neg = cosine_filter(pos, 0.5), cosine_filter(neg, 0.5)
    assert json.loads(saved.metadata["cosine_dropped_positive"]) == kept_pos.n_dropped
    assert json.loads(saved.metadata["cosine_dropped_negative"]) == kept_neg.n_dropped
    denoised = pca_denoise(kept_pos.kept, kept_neg.kept, 1)
    np.testing.assert_array_equal(saved.vectors, mean_diff(denoised.positive, denoised.negative).vectors)
    saved_probe = TraitVector.load(run.vector_path("tiny", "cheerful", "probe+cos0.5+pca1", "residual", "prompt[-1]"))
    reference_probe = probe(denoised.positive, denoised.negative).vectors
    np.testing.assert_allclose(saved_probe.vectors, reference_probe, rtol=1e-5, atol=1e-6)


def test_plan_errors_name_the_field():
    with pytest.raises(ExtractionError, match="greedy rollouts would be identical"):
        ExtractionPlan(model="m", rollouts=3)
    with pytest.raises(ExtractionError, match="components: unknown 'q_proj'"):
        ExtractionPlan(model="m", components=("q_proj",))
    with pytest.raises(ValueError, match="unknown extraction method 'ica'"):
        ExtractionPlan(model="m", methods=("ica",))
    with pytest.raises(ValueError, match="model: 'a/b' cannot name a folder"):
        ExtractionPlan(model="a/b")


def test_out_of_range_layer_and_missing_judge_are_clear(tmp_path, worker, trait_dir):
    dataset = load_trait_dataset(trait_dir)
    with pytest.raises(ExtractionError, match=r"layers: 9 is out of range for LlamaForCausalLM \(4 layers\)"):
        extract_trait_vectors(tmp_path / "r", worker, dataset, ExtractionPlan(model="m", layers=(1, 9)))
    with pytest.raises(ExtractionError, match="needs judge scores"):
        extract_trait_vectors(tmp_path / "r", worker, dataset, ExtractionPlan(model="m", vetting=JudgeVetting()))


def test_saved_layers_are_skipped_and_uncaptured_layers_are_a_clear_error(tmp_path, worker, trait_dir):
    dataset = load_trait_dataset(trait_dir)
    run = RunDir(tmp_path / "run")
    first = extract_trait_vectors(run, worker, dataset, ExtractionPlan(model="tiny", positions=("prompt[-1]",),
                                                                       methods=("mean_diff",), layers=(1, 2)))
    assert TraitVector.load(first.written[0]).layers == (1, 2)
    subset = extract_trait_vectors(run, worker, dataset, ExtractionPlan(model="tiny", positions=("prompt[-1]",),
                                                                        methods=("mean_diff",), layers=(2,)))
    assert subset.capture_calls == 0 and not subset.written  # layer 2 exists already
    with pytest.raises(ExtractionError, match=r"layers \[3\] were not captured here .*delete the file"):
        extract_trait_vectors(run, worker, dataset, ExtractionPlan(model="tiny", positions=("prompt[-1]",),
                                                                   methods=("mean_diff",), layers=(2, 3)))
