"""Steering checked against independent references: several terms on one layer add up, and response-only steering
steers exactly the generated positions (from the first one on). Each reference patches ``module.forward`` and
decodes greedily without a KV cache or padding, so it shares no code with the hooks, the mask or the decode loop."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import numpy as np
import pytest
import torch

from steersweep.actors import (
    SteeringDeltas,
    SteeringTerm,
    SteerRequest,
    SteerRow,
    component_module,
    encode_prompt,
    steering,
)

PROMPTS = ("the cat is happy", "a dog runs here today and then it sleeps", "we", "blue river song")
STEPS = 8


@contextlib.contextmanager
def patched_forward(module: torch.nn.Module, add: Callable[[torch.Tensor], torch.Tensor]):
    """Replace ``module.forward`` by ``forward(...) + add(hidden)`` (the hidden state is ``[batch, seq, dim]``)."""
    original = module.forward

    def patched(*args, **kwargs):
        output = original(*args, **kwargs)
        hidden = output[0] if isinstance(output, tuple) else output
        steered = hidden + add(hidden)
        return (steered, *output[1:]) if isinstance(output, tuple) else steered

    module.forward = patched
    try:
        yield
    finally:
        module.forward = original


def greedy_reference(model, prompt_ids: list[int], steps: int, eos: int) -> list[int]:
    """Greedy decoding that re-runs the whole unpadded sequence every step (no cache, no batch)."""
    ids = list(prompt_ids)
    out: list[int] = []
    with torch.no_grad():
        for _ in range(steps):
            token = int(model(torch.tensor([ids])).logits[0, -1].argmax())
            out.append(token)
            if token == eos:
                break
            ids.append(token)
    return out


def _vectors(worker, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(worker.num_layers, worker.hidden_size)).astype(np.float32)


def test_two_terms_on_one_layer_add_both_vectors(workers):
    worker = workers["llama"]
    a, b = _vectors(worker, 11), _vectors(worker, 12)
    worker.load_vectors({"a": a, "b": b})
    layer, coef_a, coef_b, component = 1, 2.5, -3.0, "mlp_out"
    two_terms = (SteeringTerm("a", layer, coef_a, component), SteeringTerm("b", layer, coef_b, component))
    same_twice = (SteeringTerm("a", layer, coef_a, component), SteeringTerm("a", layer, coef_a, component))
    rows = [SteerRow(p, two_terms) for p in PROMPTS] + [SteerRow(p, same_twice) for p in PROMPTS]
    reply = worker.steer(SteerRequest(rows=tuple(rows), max_new_tokens=STEPS))
    eos = worker.tokenizer.eos_token_id
    module = component_module(worker.model, worker.layout, layer, component)
    sums = [coef_a * a[layer] + coef_b * b[layer]] * len(PROMPTS) + [2 * coef_a * a[layer]] * len(PROMPTS)
    lasts = [coef_b * b[layer]] * len(PROMPTS) + [coef_a * a[layer]] * len(PROMPTS)
    firsts = [coef_a * a[layer]] * (2 * len(PROMPTS))

    def reference(vectors: list[np.ndarray]) -> list[list[int]]:
        tokens = []
        for row, vector in zip(rows, vectors, strict=True):
            added = torch.from_numpy(vector)
            with patched_forward(module, lambda hidden, added=added: added):
                tokens.append(greedy_reference(worker.model, encode_prompt(worker.tokenizer, row.prompt), STEPS, eos))
        return tokens

    expected, last_only, first_only = reference(sums), reference(lasts), reference(firsts)
    # The test can tell a sum from either term alone (otherwise it would not catch an overwrite).
    assert expected != last_only and expected != first_only
    assert [list(t) for t in reply.token_ids] == expected


def _response_only_reference(worker, module, vector: torch.Tensor, prompt_ids: list[int], first_steered: int):
    """Greedy decoding adding ``vector`` at absolute positions ``>= first_steered`` only."""

    def add(hidden: torch.Tensor) -> torch.Tensor:
        mask = (torch.arange(hidden.shape[1]) >= first_steered).to(hidden.dtype)[None, :, None]
        return vector * mask

    with patched_forward(module, add):
        return greedy_reference(worker.model, prompt_ids, STEPS, worker.tokenizer.eos_token_id)


@pytest.mark.parametrize("architecture", ["mistral", "qwen2"])
def test_response_only_steering_steers_every_generated_position(workers, architecture):
    worker = workers[architecture]
    vectors = _vectors(worker, 21)
    worker.load_vectors({"v": vectors})
    layer, coefficient = 1, 6.0
    rows = tuple(SteerRow(p, (SteeringTerm("v", layer, coefficient),)) for p in PROMPTS)
    reply = worker.steer(SteerRequest(rows=rows, max_new_tokens=STEPS, steer_prompt=False))
    plain = worker.steer(SteerRequest(rows=tuple(SteerRow(p) for p in PROMPTS), max_new_tokens=STEPS))
    module = component_module(worker.model, worker.layout, layer, "residual")
    vector = coefficient * torch.from_numpy(vectors[layer])
    expected, skipping_first = [], []
    for prompt in PROMPTS:
        ids = encode_prompt(worker.tokenizer, prompt)
        expected.append(_response_only_reference(worker, module, vector, ids, len(ids)))
        skipping_first.append(_response_only_reference(worker, module, vector, ids, len(ids) + 1))
    assert [list(t) for t in reply.token_ids] == expected
    # Sensitivity: response-only steering changes the generations, and steering from the second generated
    # position on would give different ones.
    assert [list(t) for t in plain.token_ids] != expected
    assert skipping_first != expected
    # The first token is read at the last prompt position, which response-only steering leaves alone.
    assert [t[0] for t in reply.token_ids] == [t[0] for t in plain.token_ids]


def test_steering_mask_counts_positions_from_the_offset_per_row():
    plan = SteeringDeltas({}, active_from=torch.tensor([2, 0, 5]))
    assert plan.offset == 0 and SteeringDeltas({}).mask(4, torch.device("cpu")) is None
    expected = torch.tensor([[False, False, True, True], [True] * 4, [False] * 4])[:, :, None]
    assert torch.equal(plan.mask(4, torch.device("cpu")), expected)
    plan.offset = 4  # one generated token at absolute position 4
    assert torch.equal(plan.mask(1, torch.device("cpu")), torch.tensor([[[True]], [[True]], [[False]]]))


def test_hook_steers_each_row_from_its_own_first_position(workers):
    worker = workers["qwen2"]
    model, layout, layer = worker.model, worker.layout, 2
    ids = torch.tensor([encode_prompt(worker.tokenizer, PROMPTS[1])] * 2)
    deltas = torch.from_numpy(_vectors(worker, 31)[:2]) * 4.0  # one delta per row
    active_from = torch.tensor([3, 7])
    with torch.no_grad():
        with steering(model, layout, SteeringDeltas({(layer, "residual"): deltas}, active_from=active_from)):
            hooked = model(ids).logits
        positions = torch.arange(ids.shape[1])
        mask = (positions[None, :] >= active_from[:, None]).float()[:, :, None]
        with patched_forward(component_module(model, layout, layer, "residual"),
                             lambda hidden: deltas[:, None, :] * mask):
            reference = model(ids).logits
        plain = model(ids).logits
    torch.testing.assert_close(hooked, reference, rtol=1e-5, atol=1e-5)
    assert torch.equal(hooked[0, :3], plain[0, :3]) and not torch.allclose(hooked[0, 3:], plain[0, 3:], atol=1e-3)
