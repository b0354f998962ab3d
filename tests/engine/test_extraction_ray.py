"""End to end through a real ModelActor on a local Ray: capture -> Parquet -> vectors -> safetensors -> reload."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest

from steersweep.actors import CaptureRequest, ModelSpec
from steersweep.analysis import ActivationSet, TraitVector, get_method, load_trait_dataset
from steersweep.engine import ExtractionPlan, RunDir, extract_trait_vectors


@pytest.fixture(scope="module")
def actor(ray_local, tiny_model_dirs):
    from steersweep.actors import ModelActor

    handle = ModelActor.remote(ModelSpec(str(tiny_model_dirs["llama"])))
    yield handle
    ray_local.kill(handle)


def _mtimes(run: RunDir) -> dict[str, int]:
    return {str(p): p.stat().st_mtime_ns for p in sorted(run.root.rglob("*")) if p.is_file()}


def test_capture_parquet_vectors_safetensors_reload_identical_and_rerun_skips(tmp_path, ray_local, actor, trait_dir):
    dataset = load_trait_dataset(trait_dir)
    plan = ExtractionPlan(model="tiny-llama", components=("residual", "attn_out", "mlp_out"),
                          positions=("response[:5]", "prompt[-1]"), methods=("mean_diff", "probe", "gradient"),
                          rollouts=2, do_sample=True, temperature=1.0, seed=3, max_new_tokens=6)
    run = RunDir(tmp_path / "run")
    outcome = extract_trait_vectors(run, actor, dataset, plan)
    assert outcome.capture_calls == 1 and outcome.generated_rollouts == 48
    assert len(outcome.written) == 3 * 2 * 3 and not outcome.refused

    # the Parquet activations are what the actor produces for the saved rollouts
    rollouts = pq.read_table(run.rollouts_path("tiny-llama", "cheerful")).to_pylist()
    prompts = tuple(
        ({"role": "system", "content": r["system_prompt"]}, {"role": "user", "content": r["prompt"]}) for r in rollouts
    )
    replay = ray_local.get(actor.capture.remote(CaptureRequest(
        prompts=prompts, layers=(0, 1, 2, 3), components=("mlp_out",), positions=("response[:5]",),
        responses=tuple(tuple(r["response_token_ids"]) for r in rollouts))))
    stored = ActivationSet.read(run.activation_path("tiny-llama", "cheerful", "mlp_out", "response[:5]"))
    assert np.isfinite(stored.activations).all()
    for i, layer in enumerate(stored.layers):
        np.testing.assert_allclose(stored.activations[:, i], replay.get(layer, "mlp_out", "response[:5]"), atol=1e-5)

    # every safetensors file reloads to exactly the vectors the method gives on the Parquet activations
    for path in outcome.written:
        vector = TraitVector.load(path)
        meta = vector.metadata
        data = ActivationSet.read(run.activation_path("tiny-llama", "cheerful", meta["component"], meta["position"]))
        train = data.split == "train"
        expected = get_method(meta["base_method"])(data.activations[train & data.is_positive].astype(np.float64),
                                                   data.activations[train & ~data.is_positive].astype(np.float64))
        assert vector.layers == (0, 1, 2, 3) and meta["model"] == "tiny-llama"
        np.testing.assert_array_equal(vector.vectors, expected.vectors)
    assert pq.read_table(run.vectors_table).num_rows == 18 * 4

    # rerun: nothing captured, nothing written, no file touched
    before = _mtimes(run)
    again = extract_trait_vectors(run, actor, dataset, plan)
    assert again.capture_calls == 0 and again.generated_rollouts == 0 and not again.written
    assert len(again.skipped) == 18 and _mtimes(run) == before


def test_rollouts_are_seedable(tmp_path, actor, trait_dir):
    dataset = load_trait_dataset(trait_dir)

    def responses(seed: int, name: str) -> list[list[int]]:
        plan = ExtractionPlan(model="m", positions=("response[:]",), methods=("mean_diff",), rollouts=2,
                              do_sample=True, seed=seed, max_new_tokens=6, chunk_size=10)
        run = RunDir(tmp_path / name)
        extract_trait_vectors(run, actor, dataset, plan)
        return pq.read_table(run.rollouts_path("m", "cheerful")).column("response_token_ids").to_pylist()

    first, again, other = responses(5, "a"), responses(5, "b"), responses(6, "c")
    assert first == again
    assert first != other
