"""Steering adds coef * v to a layer component's output, exactly, in one batched call per many configs."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
import torch

from steersweep.actors import (
    ModelActor,
    ModelSpec,
    SteeringDeltas,
    SteeringTerm,
    SteerRequest,
    SteerRow,
    VectorError,
    component_module,
    encode_prompt,
    steering,
)

PROMPTS = ("the cat is happy", "a dog runs here today and then it sleeps", "we", "blue river song")


@contextlib.contextmanager
def reference_addition(model, module, vector: torch.Tensor):
    """Replace ``module.forward`` by ``forward + vector``: an implementation independent of forward hooks."""
    original = module.forward

    def patched(*args, **kwargs):
        output = original(*args, **kwargs)
        if isinstance(output, tuple):
            return (output[0] + vector, *output[1:])
        return output + vector

    module.forward = patched
    try:
        yield
    finally:
        module.forward = original


def _random_vectors(worker, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(worker.num_layers, worker.hidden_size)).astype(np.float32)


def _greedy_reference(model, prompt_ids: list[int], steps: int, eos: int) -> list[int]:
    """Greedy decoding without cache or padding: re-run the whole sequence each step."""
    ids = list(prompt_ids)
    out: list[int] = []
    with torch.no_grad():
        for _ in range(steps):
            logits = model(torch.tensor([ids])).logits[0, -1]
            token = int(logits.argmax())
            out.append(token)
            if token == eos:
                break
            ids.append(token)
    return out


@pytest.mark.parametrize("architecture", ["llama", "qwen2", "mistral"])
@pytest.mark.parametrize("component", ["residual", "attn_out", "mlp_out"])
def test_steered_logits_equal_reference_addition(workers, architecture, component):
    worker = workers[architecture]
    model, layout = worker.model, worker.layout
    vector = torch.from_numpy(_random_vectors(worker, 1)[2])
    coefficient = 3.5
    ids = torch.tensor([encode_prompt(worker.tokenizer, PROMPTS[1])])
    with torch.no_grad():
        plain = model(ids).logits
        with steering(model, layout, SteeringDeltas({(2, component): coefficient * vector[None, :]})):
            hooked = model(ids).logits
        with reference_addition(model, component_module(model, layout, 2, component), coefficient * vector):
            reference = model(ids).logits
    assert not torch.allclose(plain, reference, atol=1e-3), "the steering must change the logits"
    torch.testing.assert_close(hooked, reference, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("component", ["residual", "attn_out", "mlp_out"])
def test_steer_generation_matches_reference_decoding(workers, component):
    worker = workers["llama"]
    vectors = _random_vectors(worker, 2)
    worker.load_vectors({"v": vectors})
    coefficient, layer = 2.0, 1
    request = SteerRequest(
        rows=tuple(SteerRow(p, (SteeringTerm("v", layer, coefficient, component),)) for p in PROMPTS),
        max_new_tokens=10,
    )
    reply = worker.steer(request)
    module = component_module(worker.model, worker.layout, layer, component)
    with reference_addition(worker.model, module, coefficient * torch.from_numpy(vectors[layer])):
        for prompt, tokens in zip(PROMPTS, reply.token_ids, strict=True):
            ids = encode_prompt(worker.tokenizer, prompt)
            assert list(tokens) == _greedy_reference(worker.model, ids, 10, worker.tokenizer.eos_token_id)


def _configs() -> list[tuple[SteeringTerm, ...]]:
    return [
        (),  # unsteered baseline
        (SteeringTerm("a", 0, 4.0),),
        (SteeringTerm("a", 2, -3.0),),
        (SteeringTerm("b", 3, 6.0, "mlp_out"),),
        (SteeringTerm("a", 1, 2.0), SteeringTerm("b", 2, 2.0, "attn_out")),  # multi-layer
        (SteeringTerm("a", 1, 1.5), SteeringTerm("a", 2, 1.5)),  # ensemble: two layers, half strength each
        (SteeringTerm("b", 1, 8.0),),
    ]


@pytest.mark.parametrize("do_sample", [False, True], ids=["greedy", "sampled"])
def test_one_batched_call_equals_separate_calls_through_ray(ray_local, tiny_model_dirs, do_sample):
    actor = ModelActor.remote(ModelSpec(str(tiny_model_dirs["qwen2"])))
    info = ray_local.get(actor.info.remote())
    rng = np.random.default_rng(3)
    vectors = {name: rng.normal(size=(info.num_layers, info.hidden_size)).astype(np.float32) for name in "ab"}
    ray_local.get(actor.load_vectors.remote(vectors))
    rows = tuple(
        SteerRow(PROMPTS[i % len(PROMPTS)], terms, seed=100 + i, tag=f"config-{i}")
        for i, terms in enumerate(_configs())
    )
    common = dict(max_new_tokens=12, do_sample=do_sample, temperature=1.0)
    batched = ray_local.get(actor.steer.remote(SteerRequest(rows=rows, **common)))
    separate = [ray_local.get(actor.steer.remote(SteerRequest(rows=(row,), **common))) for row in rows]
    assert batched.tags == tuple(row.tag for row in rows)
    assert len({len(row_prompt) for row_prompt in PROMPTS}) > 1, "prompts of different lengths force left padding"
    for i, single in enumerate(separate):
        assert batched.token_ids[i] == single.token_ids[0], f"row {i} differs between batched and separate calls"
        assert batched.texts[i] == single.texts[0]
    assert len(set(batched.token_ids)) > 3, "different configs must give different generations"
    ray_local.kill(actor)


def test_steering_only_generated_tokens_leaves_prompt_unchanged(workers):
    worker = workers["mistral"]
    worker.load_vectors({"v": _random_vectors(worker, 4)})
    term = (SteeringTerm("v", 1, 5.0),)
    prompt_steered = worker.steer(SteerRequest(rows=(SteerRow(PROMPTS[0], term),), max_new_tokens=6))
    response_only = worker.steer(
        SteerRequest(rows=(SteerRow(PROMPTS[0], term),), max_new_tokens=6, steer_prompt=False)
    )
    plain = worker.steer(SteerRequest(rows=(SteerRow(PROMPTS[0]),), max_new_tokens=6))
    # The first token comes from the last prompt position: unsteered when only generated tokens are steered.
    assert response_only.token_ids[0][0] == plain.token_ids[0][0]
    assert response_only.token_ids[0] != prompt_steered.token_ids[0]


def test_stop_at_eos_per_row(workers):
    worker = workers["llama"]
    eos = worker.tokenizer.eos_token_id
    # Steer the final layer hard towards the EOS unembedding so that row alone stops at once.
    unembed = worker.model.get_output_embeddings().weight[eos].detach().numpy()
    worker.load_vectors({"eos": {worker.num_layers - 1: unembed.astype(np.float32)}})
    reply = worker.steer(SteerRequest(
        rows=(SteerRow(PROMPTS[0], (SteeringTerm("eos", worker.num_layers - 1, 50.0),)), SteerRow(PROMPTS[0])),
        max_new_tokens=8,
    ))
    assert reply.token_ids[0] == (eos,) and reply.stopped_at_eos[0]
    assert reply.response_token_counts[1] > 1


def test_unknown_vector_and_nan_vector_are_clear_errors(workers):
    worker = workers["llama"]
    with pytest.raises(VectorError, match="not loaded"):
        worker.steer(SteerRequest(rows=(SteerRow("the cat", (SteeringTerm("missing", 0, 1.0),)),)))
    bad = _random_vectors(worker, 5)
    bad[1, 3] = np.nan
    with pytest.raises(VectorError, match="layer 1 holds NaN"):
        worker.load_vectors({"bad": bad})
    with pytest.raises(VectorError, match=r"shape \(3, 32\)"):
        worker.load_vectors({"short": bad[:3]})
    worker.load_vectors({"partial": {0: bad[0]}})
    with pytest.raises(VectorError, match="has no layer 2"):
        worker.steer(SteerRequest(rows=(SteerRow("the cat", (SteeringTerm("partial", 2, 1.0),)),)))


@pytest.mark.parametrize("architecture", ["gemma2", "olmo", "olmo2"])
@pytest.mark.parametrize("component", ["residual", "attn_out", "mlp_out"])
def test_gemma2_and_olmo_layouts_steer_like_the_reference(architecture, component):
    from transformers import (
        Gemma2Config,
        Gemma2ForCausalLM,
        Olmo2Config,
        Olmo2ForCausalLM,
        OlmoConfig,
        OlmoForCausalLM,
    )

    from steersweep.actors import resolve_layout

    config_class, model_class = {
        "gemma2": (Gemma2Config, Gemma2ForCausalLM), "olmo": (OlmoConfig, OlmoForCausalLM),
        "olmo2": (Olmo2Config, Olmo2ForCausalLM),
    }[architecture]
    torch.manual_seed(0)
    model = model_class(config_class(
        vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=4,
        num_key_value_heads=2, head_dim=8, max_position_embeddings=64, bos_token_id=1, eos_token_id=2, pad_token_id=0,
    )).eval()
    layout = resolve_layout(model)
    vector = 2.0 * torch.randn(32)
    ids = torch.tensor([[1, 5, 9, 13, 17, 21]])
    with torch.no_grad():
        plain = model(ids).logits
        with steering(model, layout, SteeringDeltas({(1, component): vector[None, :]})):
            hooked = model(ids).logits
        with reference_addition(model, component_module(model, layout, 1, component), vector):
            reference = model(ids).logits
    assert not torch.allclose(plain, reference, atol=1e-4)
    torch.testing.assert_close(hooked, reference, rtol=1e-5, atol=1e-5)
