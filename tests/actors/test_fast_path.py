"""The fast path (own static cache, per-row delta buffers, continuous batching) against the reference path, on CPU.

float32 on CPU: the fast path's greedy tokens must equal the reference path's token for token.
"""

from __future__ import annotations

import numpy as np
import pytest

from steersweep.actors import ModelSpec, ModelWorker, SteeringTerm, SteerRequest, SteerRow
from steersweep.actors.fast_generation import BATCH_BUCKETS, LENGTH_STEP

PROMPTS = ("the cat is happy", "a dog runs here today and then it sleeps", "we", "blue river song",
           "they sing a small song and then the sun is warm and bright")


def _configs() -> list[tuple[SteeringTerm, ...]]:
    return [
        (),
        (SteeringTerm("a", 0, 4.0),),
        (SteeringTerm("a", 2, -3.0),),
        (SteeringTerm("b", 3, 6.0, "mlp_out"),),
        (SteeringTerm("a", 1, 2.0), SteeringTerm("b", 2, 2.0, "attn_out")),
        (SteeringTerm("a", 1, 1.5), SteeringTerm("a", 1, 1.5), SteeringTerm("b", 1, -1.0)),  # same point: adds
        (SteeringTerm("b", 1, 8.0),),
    ]


@pytest.fixture(scope="module")
def fast_workers(tiny_model_dirs) -> dict[str, ModelWorker]:
    return {arch: ModelWorker(ModelSpec(str(path), device="cpu"), fast=True, max_fast_slots=3)
            for arch, path in tiny_model_dirs.items()}


def _load_same_vectors(*workers: ModelWorker) -> None:
    rng = np.random.default_rng(11)
    first = workers[0]
    vectors = {name: rng.normal(size=(first.num_layers, first.hidden_size)).astype(np.float32) for name in "ab"}
    for worker in workers:
        worker.load_vectors(vectors)


def _rows(n: int) -> tuple[SteerRow, ...]:
    configs = _configs()
    return tuple(SteerRow(PROMPTS[i % len(PROMPTS)], configs[i % len(configs)], tag=str(i)) for i in range(n))


@pytest.mark.parametrize("architecture", ["llama", "qwen2", "mistral"])
def test_fast_greedy_tokens_equal_the_reference_with_mixed_per_row_configs(workers, fast_workers, architecture):
    reference, fast = workers[architecture], fast_workers[architecture]
    assert reference.fast_generator is None and fast.fast_generator is not None
    _load_same_vectors(reference, fast)
    # 7 rows through 2 slots (the largest bucket under 3): rows are prefilled into freed slots
    request = SteerRequest(rows=_rows(7), max_new_tokens=8)
    expected, got = reference.steer(request), fast.steer(request)
    assert got.token_ids == expected.token_ids
    assert got.stopped_at_eos == expected.stopped_at_eos and got.texts == expected.texts
    assert got.raw_texts == expected.raw_texts and got.tags == expected.tags
    assert len(set(got.token_ids)) > 4, "different configs must give different generations"


@pytest.mark.slow
def test_fast_path_steering_generated_tokens_only_equals_reference(workers, fast_workers):
    reference, fast = workers["qwen2"], fast_workers["qwen2"]
    _load_same_vectors(reference, fast)
    request = SteerRequest(rows=_rows(7), max_new_tokens=6, steer_prompt=False)
    assert fast.steer(request).token_ids == reference.steer(request).token_ids


def test_fast_rows_stop_at_eos_independently(workers, fast_workers):
    reference, fast = workers["llama"], fast_workers["llama"]
    eos = reference.tokenizer.eos_token_id
    unembed = reference.model.get_output_embeddings().weight[eos].detach().numpy().astype(np.float32)
    for worker in (reference, fast):
        worker.load_vectors({"eos": {3: unembed}})
    rows = (SteerRow(PROMPTS[0]), SteerRow(PROMPTS[1], (SteeringTerm("eos", 3, 50.0),)), SteerRow(PROMPTS[2]),
            SteerRow(PROMPTS[3], (SteeringTerm("eos", 3, 0.6),)))
    request = SteerRequest(rows=rows, max_new_tokens=10)
    expected, got = reference.steer(request), fast.steer(request)
    assert got.token_ids == expected.token_ids and got.stopped_at_eos == expected.stopped_at_eos
    assert got.token_ids[1] == (eos,) and got.stopped_at_eos[1]
    assert got.response_token_counts[0] > 1


def test_fast_sampling_depends_only_on_the_row_seed(fast_workers):
    worker = fast_workers["qwen2"]
    _load_same_vectors(worker)
    rows = tuple(SteerRow(PROMPTS[i % 5], _configs()[i + 3], seed=100 + i) for i in range(3))
    common = dict(max_new_tokens=6, do_sample=True, temperature=1.3, top_p=0.9)
    batched = worker.steer(SteerRequest(rows=rows, **common))
    for i, row in enumerate(rows):
        assert worker.steer(SteerRequest(rows=(row,), **common)).token_ids[0] == batched.token_ids[i]
    reseeded = worker.steer(SteerRequest(rows=tuple(SteerRow(r.prompt, r.terms, seed=7 + i)
                                                    for i, r in enumerate(rows)), **common))
    assert reseeded.token_ids != batched.token_ids


def test_step_variants_stay_bounded_by_buckets_when_configs_change_every_batch(fast_workers):
    worker = fast_workers["mistral"]
    generator = worker.fast_generator
    rng = np.random.default_rng(5)
    worker.load_vectors({"a": rng.normal(size=(4, 32)).astype(np.float32)})
    before = len(generator.step_variants)
    for call in range(3):
        terms = tuple((SteeringTerm("a", int(rng.integers(4)), float(rng.normal() * 4)),) if rng.random() < 0.8
                      else () for _ in range(4))
        rows = tuple(SteerRow(PROMPTS[(call + i) % 5], t) for i, t in enumerate(terms))
        worker.steer(SteerRequest(rows=rows, max_new_tokens=4))
    # one slot bucket (2), prompts + 4 tokens stay under one length bucket, residual-only or unsteered
    assert len(generator.step_variants) - before <= 2
    assert all(key[0] in BATCH_BUCKETS and key[1] % LENGTH_STEP == 0 for key in generator.step_variants)
    assert generator.graph_captures == 0  # no graphs on CPU: the same step code runs eagerly
    assert generator.held_bytes() > 0  # the cache stays for the next call ...
    generator.release()
    assert generator.held_bytes() == 0  # ... until released


@pytest.mark.slow
def test_fast_generated_capture_equals_reference(workers, fast_workers):
    from steersweep.actors import CaptureRequest

    request = CaptureRequest(prompts=PROMPTS, generate=True, max_new_tokens=6, layers=(1, 2),
                             positions=("response[:3]",))
    expected, got = workers["qwen2"].capture(request), fast_workers["qwen2"].capture(request)
    assert got.response_token_ids == expected.response_token_ids
    for key, value in expected.activations.items():
        np.testing.assert_allclose(got.activations[key], value, rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_fast_path_on_the_toy_family_equals_reference(small_family):
    spec = small_family[0].spec("llama-sft")
    reference, fast = ModelWorker(spec), ModelWorker(spec, fast=True, max_fast_slots=8)
    prompts = tuple(f"question {i}" for i in range(6))
    rng = np.random.default_rng(1)
    vectors = rng.normal(size=(reference.num_layers, reference.hidden_size)).astype(np.float32)
    for worker in (reference, fast):
        worker.load_vectors({"v": vectors})
    rows = tuple(SteerRow(p, (SteeringTerm("v", i % reference.num_layers, 0.5 * i),) if i % 3 else ())
                 for i, p in enumerate(prompts * 2))
    request = SteerRequest(rows=rows, max_new_tokens=24)
    expected, got = reference.steer(request), fast.steer(request)
    assert got.token_ids == expected.token_ids and got.stopped_at_eos == expected.stopped_at_eos
