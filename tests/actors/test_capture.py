"""Captured activations equal the model's own hidden states at the positions asked; replay equals generation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from steersweep.actors import (
    CaptureRequest,
    ModelActor,
    ModelSpec,
    Position,
    PositionSyntaxError,
    ProjectRequest,
    SteeringTerm,
    SteerRequest,
    SteerRow,
    encode_prompt,
)

PROMPTS = ("the cat is happy", "a dog runs here today and then it sleeps", "we sing")


def _hidden_states(worker, ids: list[int]) -> tuple[torch.Tensor, ...]:
    with torch.no_grad():
        return worker.model(torch.tensor([ids]), output_hidden_states=True).hidden_states


@pytest.mark.parametrize("architecture", ["llama", "qwen2", "mistral"])
def test_residual_capture_equals_output_hidden_states(workers, architecture):
    worker = workers[architecture]
    responses = ("happy day", "the sun is bright and warm today", "")
    positions = ("prompt[-1]", "prompt[:]", "response[:5]", "response[-3:]", "all[:]", "all[2:4]")
    reply = worker.capture(CaptureRequest(prompts=PROMPTS, responses=responses, positions=positions, batch_size=8))
    for i, (prompt, response) in enumerate(zip(PROMPTS, responses, strict=True)):
        prompt_ids = encode_prompt(worker.tokenizer, prompt)
        response_ids = worker.tokenizer(response, add_special_tokens=False)["input_ids"] if response else []
        hidden = _hidden_states(worker, prompt_ids + response_ids)
        for text in positions:
            index = Position.parse(text).indices(len(prompt_ids), len(response_ids))
            for layer in range(worker.num_layers):
                got = reply.get(layer, "residual", text)[i]
                if not index:
                    assert np.isnan(got).all(), f"{text} selects no token of an empty response: NaN row"
                    continue
                expected = hidden[layer + 1][0, index]
                if layer == worker.num_layers - 1:  # transformers applies the final norm to the last state
                    captured = reply.get(layer, "residual", text)
                    assert captured.shape == (len(PROMPTS), worker.hidden_size)
                    continue
                np.testing.assert_allclose(got, expected.mean(0).numpy(), rtol=1e-4, atol=1e-5)


def test_last_layer_capture_is_the_prenorm_state(workers):
    worker = workers["llama"]
    ids = encode_prompt(worker.tokenizer, PROMPTS[0])
    reply = worker.capture(CaptureRequest(prompts=(PROMPTS[0],), positions=("all[:]",), per_token=True))
    last = torch.from_numpy(reply.get(worker.num_layers - 1, "residual", "all[:]")[0])
    with torch.no_grad():
        normed = worker.model.model.norm(last)
    torch.testing.assert_close(normed, _hidden_states(worker, ids)[-1][0], rtol=1e-4, atol=1e-5)


def test_per_token_capture_and_components(workers):
    worker = workers["qwen2"]
    reply = worker.capture(CaptureRequest(
        prompts=PROMPTS, responses=("happy day", "bright", "a b"), layers=(0, 3),
        components=("residual", "attn_out", "mlp_out", "k_proj", "v_proj"), positions=("response[:]",),
        per_token=True,
    ))
    kv_dim = worker.info().kv_dim
    for component in ("residual", "attn_out", "mlp_out", "k_proj", "v_proj"):
        values = reply.get(3, component, "response[:]")
        assert [v.shape[0] for v in values] == [len(r) for r in reply.response_token_ids]
        dim = kv_dim if component in ("k_proj", "v_proj") else worker.hidden_size
        assert all(v.shape[1] == dim for v in values)
    # The residual stream adds both sub-layers: layer output = layer input + attn_out + mlp_out.
    layer_in = worker.capture(CaptureRequest(prompts=PROMPTS[:1], responses=("happy day",), layers=(2,),
                                             positions=("response[:]",), per_token=True))
    residual_in = layer_in.get(2, "residual", "response[:]")[0]
    total = residual_in + reply.get(3, "attn_out", "response[:]")[0] + reply.get(3, "mlp_out", "response[:]")[0]
    np.testing.assert_allclose(reply.get(3, "residual", "response[:]")[0], total, rtol=1e-4, atol=1e-4)
    with pytest.raises(KeyError, match="was not captured"):
        reply.get(1, "residual", "response[:]")


def _assert_same_capture(replayed, generated):
    assert replayed.response_token_ids == generated.response_token_ids
    for key, value in generated.activations.items():
        np.testing.assert_allclose(replayed.activations[key], value, rtol=1e-5, atol=1e-6)


POSITIONS = ("response[:5]", "response[:]", "prompt[-1]")


def test_replaying_generated_token_ids_captures_the_same_tokens(ray_local, tiny_model_dirs):
    """Token ids replay exactly, whatever the generation (a random model emits arbitrary byte pieces)."""
    actor = ModelActor.remote(ModelSpec(str(tiny_model_dirs["mistral"])))
    generated = ray_local.get(actor.capture.remote(
        CaptureRequest(prompts=PROMPTS, generate=True, max_new_tokens=10, positions=POSITIONS)
    ))
    assert all(len(ids) > 0 for ids in generated.response_token_ids)
    replayed = ray_local.get(actor.capture.remote(
        CaptureRequest(prompts=PROMPTS, responses=generated.response_token_ids, positions=POSITIONS)
    ))
    _assert_same_capture(replayed, generated)
    ray_local.kill(actor)


def test_replaying_generated_text_captures_the_same_tokens(ray_local, small_family):
    """A trained model (the toy qwen2-sft, under transformers' Qwen2Tokenizer) writes text that replays exactly."""
    from steersweep.actors.toy import evaluation_questions

    family, _ = small_family
    actor = ModelActor.remote(ModelSpec(str(family.path("qwen2-sft"))))
    questions = tuple(evaluation_questions()[:6])
    generated = ray_local.get(actor.capture.remote(
        CaptureRequest(prompts=questions, generate=True, max_new_tokens=24, positions=POSITIONS)
    ))
    # the 5%-scale family answers some questions in a few words; enough rows must be real text for the check to mean
    # anything, and every row, short or long, must replay exactly
    assert sum(len(ids) > 3 for ids in generated.response_token_ids) >= len(questions) // 2
    replayed = ray_local.get(actor.capture.remote(
        CaptureRequest(prompts=questions, responses=generated.responses, positions=POSITIONS)
    ))
    _assert_same_capture(replayed, generated)
    ray_local.kill(actor)


def test_activation_norms_equal_a_direct_computation(workers):
    worker = workers["llama"]
    norms = worker.activation_norms([0, 2], "residual", PROMPTS)
    special = set(worker.tokenizer.all_special_ids)
    expected = {0: [], 2: []}
    for prompt in PROMPTS:
        ids = encode_prompt(worker.tokenizer, prompt)
        hidden = _hidden_states(worker, ids)
        keep = [t for t, token in enumerate(ids) if token not in special]
        for layer in expected:
            expected[layer].extend(hidden[layer + 1][0, keep].norm(dim=-1).tolist())
    for layer, values in expected.items():
        assert norms.norms[layer] == pytest.approx(float(np.mean(values)), rel=1e-5)
    assert norms.n_tokens == len(expected[0]) and norms.n_prompts == len(PROMPTS)


def test_projection_during_generation_equals_replayed_capture(workers):
    worker = workers["llama"]
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(worker.num_layers, worker.hidden_size)).astype(np.float32)
    worker.load_vectors({"v": vectors})
    reply = worker.project(ProjectRequest(
        steer=SteerRequest(rows=(SteerRow(PROMPTS[0]), SteerRow(PROMPTS[1], (SteeringTerm("v", 0, 2.0),))),
                           max_new_tokens=6),
        vector_ids=("v",), layers=(1, 3),
    ))
    # Unsteered row: replay prompt + response and read the states that produced each response token.
    tokens = reply.generation.token_ids[0]
    captured = worker.capture(CaptureRequest(prompts=(PROMPTS[0],), responses=(tokens,), layers=(1, 3),
                                             positions=("all[:]",), per_token=True))
    n_prompt = reply.generation.prompt_token_counts[0]
    for j, layer in enumerate((1, 3)):
        states = captured.get(layer, "residual", "all[:]")[0][n_prompt - 1: n_prompt - 1 + len(tokens)]
        unit = vectors[layer] / np.linalg.norm(vectors[layer])
        np.testing.assert_allclose(reply.projections[0][:, 0, j], states @ unit, rtol=1e-4, atol=1e-4)
    assert reply.projections[1].shape == (len(reply.generation.token_ids[1]), 1, 2)


@pytest.mark.parametrize(
    ("text", "prompt_len", "response_len", "expected"),
    [
        ("prompt[-1]", 4, 3, [3]),
        ("prompt[:]", 4, 3, [0, 1, 2, 3]),
        ("response[:5]", 4, 3, [4, 5, 6]),
        ("response[-2:]", 4, 3, [5, 6]),
        ("response[0]", 4, 0, []),
        ("all[1:3]", 4, 3, [1, 2]),
        ("all[:]", 2, 1, [0, 1, 2]),
    ],
)
def test_position_language(text, prompt_len, response_len, expected):
    assert Position.parse(text).indices(prompt_len, response_len) == expected


@pytest.mark.parametrize("text", ["resp[:5]", "response[a:]", "prompt[]", "prompt", "all[1:2:3]"])
def test_bad_positions_are_clear_errors(text):
    with pytest.raises(PositionSyntaxError, match="SEGMENT"):
        Position.parse(text)
